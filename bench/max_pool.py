"""Max over one axis, forward + backward: ``Tensor.max(axis=...)`` against paddlepalm's ``max_over``
(``adaptive_max_pool1d``), and a check that both give the same values and gradients.

    MKL_NUM_THREADS=1 python bench/max_pool.py
    python bench/max_pool.py --smoke     # seconds: small shapes, one timed repeat

Wall seconds per forward + backward, mean of 5 after one warm-up, the two in turn in one process.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import paddlepalm  # noqa: E402,F401  (runtime settings before paddle)
import paddle  # noqa: E402

from paddlepalm.utils.pooling import max_over  # noqa: E402


def seconds(fn, x, repeats=5):
    fn(x).sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x).sum().backward()
    return (time.perf_counter() - start) / repeats


CASES = (([400, 64, 48], -1), ([400, 48, 64], 1), ([16, 30, 512], 1))
SMOKE_CASES = (([8, 16, 12], -1), ([8, 12, 16], 1), ([2, 6, 32], 1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="seconds: small shapes, one timed repeat")
    args = p.parse_args()
    repeats = 1 if args.smoke else 5
    for shape, axis in SMOKE_CASES if args.smoke else CASES:
        x = paddle.randn(shape)
        x.stop_gradient = False
        same = float((x.max(axis=axis) - max_over(x, axis)).abs().max())
        plain = seconds(lambda t: t.max(axis=axis), x, repeats)
        pooled = seconds(lambda t: max_over(t, axis), x, repeats)
        print(f"{shape} axis {axis}: Tensor.max {plain * 1e3:.1f} ms, max_over {pooled * 1e3:.1f} ms "
              f"({plain / pooled:.0f}x), largest value difference {same}")


if __name__ == "__main__":
    main()
