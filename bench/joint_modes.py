"""Joint batches vs alternating steps (issue 14): runs ``examples/multi-task/run.py`` for every
data set x mode x seed, one process at a time, and prints a table of test metrics (mean ± std
over the seeds) and CPU minutes.

    MKL_NUM_THREADS=1 python bench/joint_modes.py --data atis:15 snips:3 \\
        --modes jointbatch alternating --seeds 1 2 3 --out /tmp/joint_modes.jsonl

``--data NAME:EPOCHS`` reads ``<data_root>/NAME`` (``PALM_DATA_ROOT``, default ``../shared/data``)
and trains that many epochs. Runs already in ``--out`` are not run again (the file is appended
to after each run), so an interrupted sweep continues where it stopped.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PALM_DATA_ROOT", os.path.join(os.path.dirname(ROOT), "shared", "data"))
METRICS = ("slot_f1", "intent_accuracy", "sentence_accuracy", "cpu_minutes", "steps")


def run_one(data: str, epochs: float, mode: str, seed: int, work: str, extra) -> dict:
    command = [sys.executable, os.path.join(ROOT, "examples", "multi-task", "run.py"), "--data_dir",
               os.path.join(DATA, data), "--epochs", str(epochs), "--mode", mode, "--seed", str(seed),
               "--work_dir", work, "--print_steps", "500", *extra]
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("test results: ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("test results: "):])
    result.update(data=data, epochs=epochs, seed=seed, wall_minutes=round((time.time() - start) / 60, 2),
                  command=" ".join(["python"] + command[1:]))
    return result


def summarize(rows) -> str:
    groups = {}
    for row in rows:
        groups.setdefault((row["data"], row["epochs"], row["mode"]), []).append(row)
    out = ["| data | epochs | mode | seeds | updates | slot F1 | intent acc. | sentence acc. | CPU min / run |",
           "|---|---|---|---|---|---|---|---|---|"]
    for (data, epochs, mode), runs in sorted(groups.items()):
        cells = []
        for metric in ("slot_f1", "intent_accuracy", "sentence_accuracy", "cpu_minutes"):
            values = [r[metric] for r in runs if metric in r]
            if not values:
                cells.append("-")
            elif len(values) == 1:
                cells.append(f"{values[0]:.2f}")
            else:
                cells.append(f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}")
        seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        out.append(f"| {data} | {epochs:g} | {mode} | {seeds} | {runs[0]['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=["atis:15", "snips:3"], help="NAME:EPOCHS")
    p.add_argument("--modes", nargs="+", default=["jointbatch", "alternating"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--out", default="/tmp/joint_modes.jsonl")
    p.add_argument("--work_root", default="/tmp/joint_modes_runs")
    p.add_argument("--summary_only", action="store_true", help="print the table of --out and stop")
    args, extra = p.parse_known_args(argv)
    if not args.summary_only:
        for spec in args.data:
            data, epochs = spec.split(":")
            for seed in args.seeds:
                for mode in args.modes:
                    work = os.path.join(args.work_root, f"{data}_{mode}_{seed}")
                    if not claim(args.out, work, (data, float(epochs), mode, seed)):
                        continue  # done, or another sweep on the same --out is running it
                    row = run_one(data, float(epochs), mode, seed, work, extra)
                    with open(args.out, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps({k: row.get(k) for k in ("data", "mode", "seed") + METRICS}), flush=True)
    print(summarize(read_rows(args.out)))


def read_rows(path: str) -> list:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def claim(out: str, work: str, key) -> bool:
    """True if this sweep should run ``key``: not in ``out`` yet and not claimed by a parallel
    sweep (a claim is a file created exclusively beside the run's work folder)."""
    if key in {(r["data"], r["epochs"], r["mode"], r["seed"]) for r in read_rows(out)}:
        return False
    os.makedirs(os.path.dirname(work) or ".", exist_ok=True)
    try:
        os.close(os.open(work + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


if __name__ == "__main__":
    main()
