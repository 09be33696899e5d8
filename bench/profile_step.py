"""Where a paddlepalm training step goes: Paddle's operator profile of a few steps.

    python bench/profile_step.py --steps 3
    PALM_CPU_KERNELS=none FLAGS_use_stride_kernel=1 python bench/profile_step.py --steps 3   # Paddle's own kernels

ERNIE 4 layers x 256 + ``Classify``, AdamW, one batch of 32 x 128 tokens (the shape of
bench/cpu_speedups.py), ``Trainer.train_one_step`` after 2 warm-up steps. Prints the
operators by total CPU time per step (forward ops as ``<op> dygraph``, backward nodes as
``Global_<Op>GradNode``; paddlepalm's CPU layers appear as ``GradNodePyLayer_*``; a
node's time includes the ops it runs) and the matmul share of the step.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cpu_speedups import BATCH, CONFIG, SEQ  # noqa: E402
import compare_torch  # noqa: E402

palm = compare_torch._palm()
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.profiler as profiler  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=16)
    args = p.parse_args()
    paddle.seed(0)
    trainer = palm.Trainer("cls")
    model = trainer.build_forward(palm.backbone.ERNIE.from_config(dict(CONFIG)), palm.head.Classify(2, 256, 0.1))
    trainer.build_backward(palm.optimizer.Adam(model, 1e-4), weight_decay=0.01)
    rng = np.random.RandomState(0)
    batch = {"token_ids": rng.randint(1, CONFIG["vocab_size"], (BATCH, SEQ)).astype("int64"),
             "position_ids": np.tile(np.arange(SEQ), (BATCH, 1)).astype("int64"),
             "segment_ids": np.zeros((BATCH, SEQ), "int64"),
             "input_mask": np.ones((BATCH, SEQ, 1), "float32"),
             "label_ids": rng.randint(0, 2, (BATCH,)).astype("int64")}
    for _ in range(2):
        trainer.train_one_step(batch)
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    for _ in range(args.steps):
        trainer.train_one_step(batch)
        prof.step()
    prof.stop()
    print_summary(prof, args.steps, args.top)


def print_summary(prof, steps: int, top: int) -> None:
    from paddle.profiler.profiler_statistic import StatisticData, TracerEventType
    data = StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info())
    ops = data.event_summary.items  # name -> per-op statistics
    step_ms = data.time_range_summary.get_cpu_range_sum(TracerEventType.ProfileStep) / 1e6 / steps
    print(f"kernels: {os.environ.get('PALM_CPU_KERNELS', 'all')}, FLAGS_use_stride_kernel="
          f"{os.environ.get('FLAGS_use_stride_kernel')}; profiled step {step_ms:.0f} ms (profiling adds overhead)")
    print("| operator | calls per step | ms per step | share of step |")
    print("|---|---|---|---|")
    rows = sorted(ops.items(), key=lambda kv: -kv[1].cpu_time)[:top]
    for name, item in rows:
        ms = item.cpu_time / 1e6 / steps
        print(f"| {name} | {item.call / steps:.0f} | {ms:.1f} | {100 * ms / step_ms:.0f}% |")


if __name__ == "__main__":
    main()
