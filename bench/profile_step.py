"""Where a paddlepalm training step goes: Paddle's operator profile of a few steps.

    python bench/profile_step.py --steps 3
    python bench/profile_step.py --smoke     # seconds: 1 step of a batch of 4 x 16 tokens
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

from cpu_speedups import BATCH, SEQ, build_step  # noqa: E402
import compare_torch  # noqa: E402

compare_torch.import_palm()  # paddlepalm before paddle: thread and flag settings
import paddle.profiler as profiler  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=16)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--seq", type=int, default=SEQ)
    p.add_argument("--smoke", action="store_true", help="seconds: 1 step of a batch of 4 x 16 tokens")
    args = p.parse_args()
    if args.smoke:
        args.steps, args.batch, args.seq = 1, 4, 16
    trainer, batch = build_step(args.batch, args.seq)
    for _ in range(2):
        trainer.train_one_step(batch)
    # on_trace_ready: keep the summary in memory; the default writes a chrome trace into ./profiler_log
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda _: None)
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
