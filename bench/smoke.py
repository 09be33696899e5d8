"""Run every benchmark's ``--smoke`` mode, each in its own process, so that no bench script rots.

    python bench/smoke.py                       # every bench/*.py but the EXCLUDED ones
    python bench/smoke.py compare_torch tagger  # only these
    python bench/smoke.py --jobs 2 --timeout 120

A ``--smoke`` mode runs the script's own code on tiny sizes (a tiny model or few sentences, a step or two,
one repeat), skips the rows that need an optional dependency it lacks (PyTorch) with a printed note, and
writes nothing outside temporary folders. Every bench/*.py is a benchmark and must have one, unless it is
listed in EXCLUDED with the reason. Each script runs in a fresh temporary folder (its working directory
and TMPDIR; removed afterwards) with this checkout first on PYTHONPATH and MKL_NUM_THREADS=1 unless set.

Prints one line per script (wall seconds, CPU seconds of the script and its workers, status, the rows
it skipped), the output's end of each failure, and a total; exits 1 if a script failed or ran past
``--timeout`` seconds.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXCLUDED = {
    "smoke.py": "this runner",
    "smoke_data.py": "helper module without a main (the --smoke data); run by the smoke modes of "
                     "compare_torch.py, memory.py, reader_speed.py, inference.py and joint_modes.py",
    "timing.py": "helper module without a main (alternating step timing); run by the smoke modes of "
                 "elmo_lm.py and tagger.py",
}
SKIPPED = re.compile(r"^(.+?): skipped \(", re.M)  # the note a script prints for a row it leaves out


def scripts(names=()) -> list:
    """The benchmark scripts to run: ``names`` (without ``.py``), or every bench/*.py not excluded."""
    found = {os.path.basename(p): p for p in sorted(glob.glob(os.path.join(HERE, "*.py")))}
    if not names:
        return [p for name, p in found.items() if name not in EXCLUDED]
    unknown = [n for n in names if f"{n}.py" not in found or f"{n}.py" in EXCLUDED]
    if unknown:
        raise SystemExit(f"no benchmark named {unknown}; benchmarks: "
                         f"{[n[:-3] for n in found if n not in EXCLUDED]}")
    return [found[f"{n}.py"] for n in names]


def environment(tmp: str) -> dict:
    env = dict(os.environ, TMPDIR=tmp, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def wait(proc: subprocess.Popen, timeout: float) -> tuple:
    """``(exit status or None past the timeout, CPU seconds of the process and the workers it waited
    for)``; past the timeout the process and everything it started are killed."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not pid:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the script and the workers it started
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode if pid else None), usage.ru_utime + usage.ru_stime


def run(path: str, timeout: float) -> dict:
    """Run ``path --smoke`` in a fresh temporary folder; its status, seconds and output."""
    tmp = tempfile.mkdtemp(prefix=f"palm-smoke-{os.path.basename(path)[:-3]}.")
    start = time.perf_counter()
    try:
        with open(os.path.join(tmp, "output.txt"), "w+", encoding="utf-8", errors="replace") as out:
            proc = subprocess.Popen([sys.executable, path, "--smoke"], cwd=tmp, env=environment(tmp), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            code, cpu = wait(proc, timeout)
            out.seek(0)
            output = out.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    status = f"TIMEOUT (over {timeout:g} s)" if code is None else "ok" if code == 0 else f"FAILED (exit {code})"
    return {"name": os.path.basename(path), "status": status, "seconds": time.perf_counter() - start, "cpu": cpu,
            "output": output, "skipped": list(dict.fromkeys(SKIPPED.findall(output)))}


def line(result: dict) -> str:
    skipped = f"; skipped: {', '.join(result['skipped'])}" if result["skipped"] else ""
    return f"{result['name']:<24} {result['seconds']:6.1f} s {result['cpu']:6.1f} CPU s  {result['status']}{skipped}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--timeout", type=float, default=120, help="seconds each script may take")
    p.add_argument("--jobs", type=int, default=2, help="scripts run at once (default 2: most run one thread)")
    args = p.parse_args(argv)
    for name, reason in EXCLUDED.items():
        print(f"{name:<24} {'':>19}  excluded: {reason}", flush=True)
    start = time.perf_counter()
    results = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for result in pool.map(lambda path: run(path, args.timeout), scripts(args.names)):
            print(line(result), flush=True)
            results.append(result)
    failed = [r for r in results if r["status"] != "ok"]
    for result in failed:
        print(f"\n----- {result['name']}: {result['status']}; the end of its output:\n{result['output'][-4000:]}")
    print(f"\n{len(results) - len(failed)} of {len(results)} smoke runs passed in {time.perf_counter() - start:.1f} s "
          f"({sum(r['cpu'] for r in results):.1f} CPU s, {args.jobs} at once; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
