"""Paddle's matmul with and without ``MKL_DEBUG_CPU_TYPE=5``: each setting in its own process (MKL
reads it when it loads), alternating, twice; GFLOP/s of a ``[1024, 512] @ [512, 20000]`` matmul,
best of 5, one thread. paddlepalm sets the variable on AMD CPUs only (paddlepalm/runtime.py).

    python bench/mkl_cpu_type.py
    python bench/mkl_cpu_type.py --smoke     # seconds: one round of a [64, 64] @ [64, 256] matmul
"""
import argparse
import os
import subprocess
import sys

PROBE = """
import sys, time, paddle
m, k, n = map(int, sys.argv[1:])
a = paddle.randn([m, k]); b = paddle.randn([k, n])
for _ in range(2): paddle.matmul(a, b)
best = 1e9
for _ in range(5):
    t = time.perf_counter(); paddle.matmul(a, b); best = min(best, time.perf_counter() - t)
print(round(2 * m * k * n / best / 1e9, 1))
"""
SHAPE, SMOKE_SHAPE = (1024, 512, 20000), (64, 64, 256)


def gflops(cpu_type, shape):
    env = dict(os.environ, MKL_NUM_THREADS="1")
    env.pop("MKL_DEBUG_CPU_TYPE", None)
    if cpu_type:
        env["MKL_DEBUG_CPU_TYPE"] = cpu_type
    out = subprocess.run([sys.executable, "-c", PROBE, *map(str, shape)], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="seconds: one round of a [64, 64] @ [64, 256] matmul")
    args = p.parse_args()
    shape = SMOKE_SHAPE if args.smoke else SHAPE
    for round_ in (1,) if args.smoke else (1, 2):
        five, default = gflops("5", shape), gflops(None, shape)
        print(f"round {round_}: MKL_DEBUG_CPU_TYPE=5 {five} GFLOP/s, unset {default} GFLOP/s ({default / five:.2f}x)")


if __name__ == "__main__":
    main()
