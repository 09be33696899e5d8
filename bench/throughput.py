"""Training samples/s of a single-task Trainer vs MultiHeadTrainer on the same model and data.

    python bench/throughput.py                                  # generated sample
    python bench/throughput.py --data_dir $PALM_DATA_ROOT/atis   # ATIS intents

Both runs train ``Classify`` on the same intent file with the same backbone
config and batch size; the multi-task run has two such tasks (so its step does
the same work), sampled 1:1, and the two tasks together read exactly the batches
the single-task run reads. Runs alternate (single, multi, single, ...) and the
ratio of the median step times is written to docs/benchmarks.md. Step time is
measured as process CPU time (robust when other jobs share the machine) and as
wall time; run with ``MKL_NUM_THREADS=1`` for the steadiest CPU-time figure.

``--joint`` compares, instead, one joint-batch update of slot + intent (both heads on the same
examples, one backbone pass) with the two alternating steps (one per task) over the same examples:
both runs read the same batches, and samples/s counts examples (each labelled for both tasks).

``--before_root OLD_CHECKOUT`` compares two versions of paddlepalm side by side in one
run instead: each repeat runs both trainers under the old checkout and under this one,
alternating, each in its own process, and the after/before step-time ratios are
reported (a change must not cost training speed).

``--smoke`` (seconds: hidden 16, 1 layer, batch 8, 2 steps, 1 repeat, nothing written) runs both
tables, the default one and ``--joint``'s, in one process.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.environ.get("PALM_BENCH_ROOT", ROOT))  # --before_root: an older checkout
sys.path.insert(0, os.path.join(ROOT, "examples", "multi-task"))
sys.path.insert(0, HERE)

import paddlepalm as palm  # noqa: E402  (before paddle: thread and quiet settings)
import paddle  # noqa: E402
import prepare_data  # noqa: E402
from make_sample import make_sample  # noqa: E402
from report import machine, update_section  # noqa: E402


HIDDEN, LAYERS = 256, 4  # the small ERNIE's default size
WARMUP = 10  # untimed steps before the first timed run


def config(vocab_size, hidden=HIDDEN, layers=LAYERS):
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
            "intermediate_size": 4 * hidden, "vocab_size": vocab_size, "type_vocab_size": 2,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


def reader(data, batch_size, epochs):
    r = palm.reader.ClassifyReader(os.path.join(data, "vocab.txt"), 64, do_lower_case=True, seed=1)
    r.load_data(os.path.join(data, "intent", "train.tsv"), batch_size=batch_size, num_epochs=epochs)
    return r


def run_single(data, cfg, classes, batch_size, steps):
    paddle.seed(0)
    r = reader(data, batch_size, None)
    r = reader(data, batch_size, steps / r.steps_per_epoch)  # the epochs that make ``steps`` steps
    trainer = palm.Trainer("intent")
    model = trainer.build_forward(palm.backbone.ERNIE.from_config(cfg), palm.head.Classify(classes, cfg["hidden_size"], 0.1))
    trainer.build_backward(palm.optimizer.Adam(model, 1e-4))
    trainer.fit_reader(r)
    return timed(trainer.train, trainer_steps=lambda: trainer.cur_train_step)


def run_multi(data, cfg, classes, batch_size, steps):
    paddle.seed(0)
    backbone = palm.backbone.ERNIE.from_config(cfg)
    trainers = [palm.Trainer(name) for name in ("intent_a", "intent_b")]
    for t in trainers:
        t.build_forward(backbone, palm.head.Classify(classes, cfg["hidden_size"], 0.1))
    multi = palm.MultiHeadTrainer(trainers)
    model = multi.build_forward()
    multi.build_backward(palm.optimizer.Adam(model, 1e-4))
    readers = [reader(data, batch_size, None) for _ in trainers]
    multi.fit_readers_with_mixratio(readers, "intent_a", steps / 2 / readers[0].steps_per_epoch)
    # Task b reads the second half of the batches the single-task run reads, so both runs
    # train on the same batches (lengths differ between batches, and so does their cost).
    trainers[1]._batch_in_epoch = steps // 2
    return timed(multi.train, trainer_steps=lambda: multi.overall_train_steps)


def run_slot_intent(data, cfg, sizes, batch_size, steps, joint):
    """``steps`` batches of slot + intent examples: as ``steps`` joint updates, or as ``2 * steps``
    alternating ones (each task reads the same ``steps`` batches)."""
    paddle.seed(0)
    backbone = palm.backbone.ERNIE.from_config(cfg)
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(backbone, palm.head.SequenceLabel(sizes["slot_classes"], cfg["hidden_size"], 0.1))
    intent.build_forward(backbone, palm.head.Classify(sizes["intent_classes"], cfg["hidden_size"], 0.1))
    multi = palm.MultiHeadTrainer([slot, intent])
    multi.build_backward(palm.optimizer.Adam(multi.build_forward(), 1e-4))
    slot_reader = palm.reader.SequenceLabelReader(os.path.join(data, "vocab.txt"), 64,
                                                  os.path.join(data, "label_map.json"), do_lower_case=True, seed=1)
    slot_reader.load_data(os.path.join(data, "slot", "train.tsv"), batch_size=batch_size)
    intent_reader = reader(data, batch_size, None)
    multi.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", steps / slot_reader.steps_per_epoch,
                                    joint=joint or None)
    cpu, wall, updates = timed(multi.train, trainer_steps=lambda: multi.overall_train_steps)
    return cpu * updates / steps, wall * updates / steps, updates  # per batch of examples


def joint_main(args, data, sizes, cfg) -> None:
    rows = {"joint": [], "alternating": []}
    run_slot_intent(data, cfg, sizes, args.batch_size, min(WARMUP, args.steps), True)
    for rep in range(args.repeats):
        for kind in ("joint", "alternating"):
            rows[kind].append(run_slot_intent(data, cfg, sizes, args.batch_size, args.steps, kind == "joint"))
        j, a = rows["joint"][-1], rows["alternating"][-1]
        print(f"repeat {rep}: CPU ms per batch of examples: joint {1000 * j[0]:.1f} ({j[2]} updates), alternating "
              f"{1000 * a[0]:.1f} ({a[2]} updates), ratio {a[0] / j[0]:.3f}", flush=True)
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in rows.items()}
    data_name = os.path.basename(os.path.normpath(args.data_dir)) if args.data_dir else "generated sample"
    b = args.batch_size
    body = f"""Command: `{command(args, '--joint')}`

Machine: {machine()}

Small ERNIE (hidden {args.hidden}, {args.layers} layers, 4 heads, dropout 0.1), slot (CRF) + intent heads on the {data_name}
training sentences, batch {b}, {args.steps} batches of examples per run, {args.repeats} alternating repeats
(median). A joint update trains both heads on one batch (one backbone pass, both losses); the alternating
run trains the same batches as {2 * args.steps} one-task steps. Samples = examples labelled for both tasks.

| mode | updates | samples per CPU-second | CPU ms per batch of examples | wall ms per batch |
|---|---|---|---|---|
| joint batches | {args.steps} | {b / med['joint'][0]:.1f} | {1000 * med['joint'][0]:.1f} | {1000 * med['joint'][1]:.1f} |
| alternating (PALM) | {2 * args.steps} | {b / med['alternating'][0]:.1f} | {1000 * med['alternating'][0]:.1f} | {1000 * med['alternating'][1]:.1f} |

Joint-batch throughput: **{med['alternating'][0] / med['joint'][0]:.2f}x** the alternating steps' (CPU time; wall
{med['alternating'][1] / med['joint'][1]:.2f}x). Per-repeat CPU ratios: {', '.join(f'{a[0] / j[0]:.3f}' for j, a in zip(rows['joint'], rows['alternating']))}.
"""
    print(body)
    if not args.no_write:
        update_section("Joint batches vs alternating steps (bench/throughput.py --joint)", body)


def timed(train, trainer_steps):
    """(CPU seconds per step, wall seconds per step, steps) of ``train(print_steps=0)``."""
    cpu, wall = time.process_time(), time.perf_counter()
    train(print_steps=0)
    steps = trainer_steps()
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps, steps


def command(args, *flags: str) -> str:
    """The command line of this run, for the report."""
    threads = os.environ.get("MKL_NUM_THREADS", "")
    parts = ([f"MKL_NUM_THREADS={threads}"] if threads else []) + ["python bench/throughput.py", *flags]
    parts += [f"--data_dir {args.data_dir}"] if args.data_dir else []
    parts += [f"--steps {args.steps} --repeats {args.repeats}"]
    if (args.hidden, args.layers) != (HIDDEN, LAYERS):
        parts.append(f"--hidden {args.hidden} --layers {args.layers}")
    return " ".join(parts)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=HIDDEN)
    p.add_argument("--layers", type=int, default=LAYERS)
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--joint", action="store_true", help="joint-batch updates vs alternating steps (slot + intent)")
    p.add_argument("--before_root", help="an older paddlepalm checkout to compare with, side by side")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--smoke", action="store_true", help="seconds: hidden 16, 1 layer, batch 8, 2 steps, 1 repeat, "
                                                         "both tables, no write")
    args = p.parse_args()
    work = os.path.join("/tmp", "palm_bench_throughput")
    if args.smoke:
        work = tempfile.mkdtemp(prefix="palm-bench-throughput.")
        args.data_dir, args.steps, args.repeats, args.batch_size, args.hidden, args.layers = None, 2, 1, 8, 16, 1
        args.no_write = True
    if args.before_root:
        return compare_versions(args)
    raw = args.data_dir or make_sample(os.path.join(work, "raw"))
    data = os.path.join(work, "data")
    sizes = prepare_data.convert(raw, data)
    cfg = config(sum(1 for _ in open(os.path.join(data, "vocab.txt"), encoding="utf-8")), args.hidden, args.layers)
    if args.joint or args.smoke:
        joint_main(args, data, sizes, cfg)
    if not args.joint:
        single_main(args, data, sizes["intent_classes"], cfg)


def single_main(args, data, classes, cfg) -> None:
    run_single(data, cfg, classes, args.batch_size, min(WARMUP, args.steps))  # warm-up
    if args.worker:
        print("RESULT " + json.dumps({"single": run_single(data, cfg, classes, args.batch_size, args.steps),
                                      "multi": run_multi(data, cfg, classes, args.batch_size, args.steps)}), flush=True)
        return
    single, multi = [], []
    for rep in range(args.repeats):
        single.append(run_single(data, cfg, classes, args.batch_size, args.steps))
        multi.append(run_multi(data, cfg, classes, args.batch_size, args.steps))
        (s_cpu, s_wall, n_s), (m_cpu, m_wall, n_m) = single[-1], multi[-1]
        print(f"repeat {rep}: CPU ms/step single {1000 * s_cpu:.1f} ({n_s} steps), multi {1000 * m_cpu:.1f} "
              f"({n_m} steps), ratio {m_cpu / s_cpu:.3f}; wall ratio {m_wall / s_wall:.3f}", flush=True)
    s, m = statistics.median(r[0] for r in single), statistics.median(r[0] for r in multi)
    s_wall, m_wall = statistics.median(r[1] for r in single), statistics.median(r[1] for r in multi)
    data_name = os.path.basename(os.path.normpath(args.data_dir)) if args.data_dir else "generated sample"
    body = f"""Command: `{command(args)}`

Machine: {machine()}

Small ERNIE (hidden {args.hidden}, {args.layers} layers, 4 heads), Classify on the {data_name} intents, batch {args.batch_size}, {args.steps} steps per run, {args.repeats} alternating repeats (median step time).

| trainer | samples per CPU-second | CPU ms/step | wall ms/step |
|---|---|---|---|
| `Trainer` (one task) | {args.batch_size / s:.1f} | {1000 * s:.1f} | {1000 * s_wall:.1f} |
| `MultiHeadTrainer` (two tasks, 1:1) | {args.batch_size / m:.1f} | {1000 * m:.1f} | {1000 * m_wall:.1f} |

Multi-task / single-task step CPU time: **{m / s:.3f}x** (target: at most 1.03x); wall time {m_wall / s_wall:.3f}x. Per-repeat CPU-time ratios: {', '.join(f'{b[0] / a[0]:.3f}' for a, b in zip(single, multi))}.
"""
    print(body)
    if not args.no_write:
        update_section("Single-task vs multi-task step (bench/throughput.py)", body)


def compare_versions(args) -> None:
    """Alternate worker processes of the old checkout and this one; report after/before."""
    runs = {"before": [], "after": []}
    base = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
            "--batch_size", str(args.batch_size), "--hidden", str(args.hidden), "--layers", str(args.layers)] + \
        (["--data_dir", args.data_dir] if args.data_dir else [])
    for rep in range(args.repeats):
        for version, root in (("before", os.path.abspath(args.before_root)), ("after", ROOT)):
            out = subprocess.run(base, capture_output=True, text=True, check=True,
                                 env=dict(os.environ, PALM_BENCH_ROOT=root)).stdout
            result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            runs[version].append(result)
            print(f"repeat {rep} {version}: CPU ms/step single {1000 * result['single'][0]:.1f}, "
                  f"multi {1000 * result['multi'][0]:.1f}", flush=True)

    def median(version, kind, index=0):
        return statistics.median(r[kind][index] for r in runs[version])

    rows = []
    for kind, label in (("single", "`Trainer` (one task)"), ("multi", "`MultiHeadTrainer` (two tasks, 1:1)")):
        b, a = median("before", kind), median("after", kind)
        per_rep = ", ".join(f"{x[kind][0] / y[kind][0]:.3f}" for x, y in zip(runs["after"], runs["before"]))
        rows.append(f"| {label} | {1000 * b:.1f} | {1000 * a:.1f} | **{a / b:.3f}x** | {per_rep} |")
    body = f"""Command: `{command(args)} --before_root {args.before_root}` (before: the checkout at `--before_root`; after: this one)

Machine: {machine()}

Same model and data as the table above; CPU ms per step, median of {args.repeats} alternating repeats, each version in its own process.

| trainer | before | after | after / before | per repeat |
|---|---|---|---|---|
{chr(10).join(rows)}
"""
    print(body)
    if not args.no_write:
        update_section("Reliability checks vs training speed (bench/throughput.py --before_root)", body)


if __name__ == "__main__":
    main()
