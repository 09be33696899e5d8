"""Each CPU speed-up of paddlepalm measured on its own, cumulatively, on one training step.

    python bench/cpu_speedups.py --steps 6 --repeats 3
    python bench/cpu_speedups.py --smoke     # seconds: the last variant (the default), batch 4 x 16, 1 step

The issue-7 shape: ERNIE with 4 layers, hidden 256, 4 heads, intermediate 1024,
vocabulary 21128, dropout 0.1, a ``Classify`` head, AdamW, one batch of 32 x 128
tokens, ``Trainer.train_one_step``. Each variant runs in a fresh process (the
settings act before paddle loads), after 2 warm-up steps; variants alternate and
the median step over repeats is reported.

Variants, each adding one change to the one above:

1. before: Paddle's defaults plus the thread count and ``MKL_DEBUG_CPU_TYPE=5`` that
   paddlepalm set from its first release (``MKL_DEBUG_CPU_TYPE`` alone: 2.2x on matmul,
   measured on the 2-core AMD EPYC, 62 to 137 GFLOP/s, 2026-11-24; ``bench/mkl_cpu_type.py`` measures it);
2. + ``FLAGS_use_stride_kernel=0`` (transpose copies instead of a strided view);
3. + ``CpuLinear`` (GEMM-only linear gradients, bias added in numpy);
4. + ``CpuDropout`` (numpy mask, also inside multi-head attention, whose mask add moves to numpy);
5. + ``CpuLayerNorm`` (numpy layer-norm gradient);
6. + ``OPENBLAS_NUM_THREADS=1`` (numpy's OpenBLAS threads no longer spin on MKL's core) =
   paddlepalm's default. Rows 1-5 run numpy's OpenBLAS with a thread per core, its default.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from compare_torch import CONFIG  # noqa: E402  (the issue's small BERT, shared by the benchmarks)

BATCH, SEQ = 32, 128
_OPENBLAS_ALL = str(len(os.sched_getaffinity(0)))  # numpy's default before paddlepalm pinned it to 1
VARIANTS = [
    ("before (Paddle defaults + MKL_DEBUG_CPU_TYPE=5)",
     {"FLAGS_use_stride_kernel": "1", "PALM_CPU_KERNELS": "none", "OPENBLAS_NUM_THREADS": _OPENBLAS_ALL}),
    ("+ FLAGS_use_stride_kernel=0", {"PALM_CPU_KERNELS": "none", "OPENBLAS_NUM_THREADS": _OPENBLAS_ALL}),
    ("+ CpuLinear", {"PALM_CPU_KERNELS": "linear", "OPENBLAS_NUM_THREADS": _OPENBLAS_ALL}),
    ("+ CpuDropout", {"PALM_CPU_KERNELS": "linear,dropout", "OPENBLAS_NUM_THREADS": _OPENBLAS_ALL}),
    ("+ CpuLayerNorm", {"PALM_CPU_KERNELS": "all", "OPENBLAS_NUM_THREADS": _OPENBLAS_ALL}),
    ("+ OPENBLAS_NUM_THREADS=1 (default)", {"PALM_CPU_KERNELS": "all", "OPENBLAS_NUM_THREADS": "1"}),
]
# --tried: settings measured against paddlepalm's default and not adopted (each alone, not cumulative)
TRIED = [
    ("paddlepalm default", {}),
    ("+ FLAGS_use_mkldnn=1 (oneDNN kernels in dynamic graph)", {"FLAGS_use_mkldnn": "1"}),
    ("+ OMP_NUM_THREADS=2", {"OMP_NUM_THREADS": "2"}),
    ("+ KMP_BLOCKTIME=1", {"KMP_BLOCKTIME": "1"}),
    ("+ glibc malloc keeps freed memory", {"MALLOC_MMAP_THRESHOLD_": "4294967296",
                                          "MALLOC_TRIM_THRESHOLD_": "17179869184", "MALLOC_TOP_PAD_": "268435456"}),
]


def build_step(batch: int = BATCH, seq: int = SEQ):
    """The trainer and the one batch of ``batch`` x ``seq`` tokens every variant trains on (also used by
    bench/profile_step.py)."""
    sys.path.insert(0, ROOT)
    import paddlepalm as palm
    import numpy as np
    import paddle
    paddle.seed(0)
    trainer = palm.Trainer("cls")
    model = trainer.build_forward(palm.backbone.ERNIE.from_config(dict(CONFIG)), palm.head.Classify(2, 256, 0.1))
    trainer.build_backward(palm.optimizer.Adam(model, 1e-4), weight_decay=0.01)
    rng = np.random.RandomState(0)
    return trainer, {"token_ids": rng.randint(1, CONFIG["vocab_size"], (batch, seq)).astype("int64"),
                     "position_ids": np.tile(np.arange(seq), (batch, 1)).astype("int64"),
                     "segment_ids": np.zeros((batch, seq), "int64"),
                     "input_mask": np.ones((batch, seq, 1), "float32"),
                     "label_ids": rng.randint(0, 2, (batch,)).astype("int64")}


def worker(steps: int, batch: int, seq: int) -> dict:
    trainer, batch = build_step(batch, seq)
    for _ in range(2):
        trainer.train_one_step(batch)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_one_step(batch)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times)}


def run_variant(env_changes: dict, args) -> float:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
           "--batch", str(args.batch), "--seq", str(args.seq)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--note", default="")
    p.add_argument("--tried", action="store_true", help="measure the TRIED settings instead of VARIANTS")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--seq", type=int, default=SEQ)
    p.add_argument("--smoke", action="store_true",
                   help="seconds: the last variant only, batch 4 x 16, 1 step, no write")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.steps, args.batch, args.seq)))
        return
    variants = TRIED if args.tried else VARIANTS
    if args.smoke:
        variants = variants[-1:]
        args.steps, args.repeats, args.batch, args.seq, args.no_write = 1, 1, 4, 16, True
    times = {name: [] for name, _ in variants}
    for rep in range(args.repeats):
        for name, env in variants:
            seconds = run_variant(env, args)
            times[name].append(seconds)
            print(f"repeat {rep} {name}: {1000 * seconds:.0f} ms/step ({args.batch / seconds:.1f} samples/s)",
                  flush=True)
    report(args, variants, times)


def report(args, variants, times):
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import paddlepalm  # noqa: F401  (thread settings before paddle)
    from report import machine, update_section
    first = statistics.median(times[variants[0][0]])
    rows, previous = [], first
    for name, _ in variants:
        t = statistics.median(times[name])
        per = ", ".join(f"{1000 * x:.0f}" for x in times[name])
        versus = f"{first / t:.2f}x |" if args.tried else f"{previous / t:.2f}x | {first / t:.2f}x |"
        rows.append(f"| {name} | {1000 * t:.0f} ({per}) | {args.batch / t:.1f} | {versus}")
        previous = t
    if args.tried:
        heading = "CPU settings tried and not adopted (bench/cpu_speedups.py --tried)"
        how = "Each row changes one setting of paddlepalm's default (the first row); speed relative to the default."
        columns = "| setting | ms/step (per repeat) | samples/s | vs default |\n|---|---|---|---|"
    else:
        heading = "CPU speed-ups, one at a time (bench/cpu_speedups.py)"
        how = "Each row adds one change to the row above (see the script's docstring)."
        columns = "| variant | ms/step (per repeat) | samples/s | vs row above | vs before |\n|---|---|---|---|---|"
    shape = "" if (args.batch, args.seq) == (BATCH, SEQ) else f" --batch {args.batch} --seq {args.seq}"
    body = f"""Command: `python bench/cpu_speedups.py --steps {args.steps} --repeats {args.repeats}{' --tried' if args.tried else ''}{shape}`

Machine: {machine()}. {args.note}

ERNIE 4 layers, hidden 256, 4 heads, intermediate 1024, vocabulary 21128, dropout 0.1, `Classify`, AdamW; one batch of {args.batch} x {args.seq} tokens through `Trainer.train_one_step`; fresh process per variant, 2 warm-up steps, median of {args.steps} steps, {args.repeats} alternating repeats (medians of the per-repeat medians; per-repeat figures in brackets). {how}

{columns}
{chr(10).join(rows)}
"""
    print(body)
    if not args.no_write:
        update_section(heading, body)


if __name__ == "__main__":
    main()
