"""Paddle's matmul with and without ``MKL_DEBUG_CPU_TYPE=5``: each setting in its own process (MKL
reads it when it loads), alternating, twice; GFLOP/s of a ``[1024, 512] @ [512, 20000]`` matmul,
best of 5, one thread. paddlepalm sets the variable on AMD CPUs only (paddlepalm/_runtime.py).

    python bench/mkl_cpu_type.py
"""
import os
import subprocess
import sys

PROBE = """
import time, paddle
a = paddle.randn([1024, 512]); b = paddle.randn([512, 20000])
for _ in range(2): paddle.matmul(a, b)
best = 1e9
for _ in range(5):
    t = time.perf_counter(); paddle.matmul(a, b); best = min(best, time.perf_counter() - t)
print(round(2 * 1024 * 512 * 20000 / best / 1e9, 1))
"""


def gflops(cpu_type):
    env = dict(os.environ, MKL_NUM_THREADS="1")
    env.pop("MKL_DEBUG_CPU_TYPE", None)
    if cpu_type:
        env["MKL_DEBUG_CPU_TYPE"] = cpu_type
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    for round_ in (1, 2):
        five, default = gflops("5"), gflops(None)
        print(f"round {round_}: MKL_DEBUG_CPU_TYPE=5 {five} GFLOP/s, unset {default} GFLOP/s ({default / five:.2f}x)")


if __name__ == "__main__":
    main()
