"""One biLM layer, forward + backward, both directions: oneDNN's LSTM primitive (LSTM with projection,
the libdnnl.so.3 of Paddle's wheel) against paddlepalm's fused LSTMP op and PyTorch's nn.LSTM, in one
run; process CPU seconds per call (min and median of the repeats), one thread.

    MKL_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/onednn_lstm.py --include DIR
    python bench/onednn_lstm.py --smoke      # seconds: a tiny layer, 1 repeat (oneDNN row only with --include)

``DIR`` holds oneDNN's headers (``oneapi/dnnl/dnnl.hpp``) of the library's version: Paddle's wheel
ships only stubs of them, so they come from elsewhere, e.g. ``pip download --no-deps
onednn-devel==2025.0.1`` (oneDNN 3.6.1 headers for the wheel's 3.6.2 library; unzip it, the headers
are under ``onednn_devel-2025.0.1.data/data/include``). The script prints the library's version.

Not like for like in one respect: the primitive has no cell or projection clipping (ELMo clips both
at 3), so its row runs without clips, ours with them; PyTorch's nn.LSTM has no clipping either.
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import paddlepalm  # noqa: E402,F401  (runtime settings before paddle)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "onednn_lstmp.cc")
LIBS = os.path.join(os.path.dirname(paddle.__file__), "libs")


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int), ("hash", ctypes.c_char_p),
                ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


def library_version() -> str:
    lib = ctypes.CDLL(os.path.join(LIBS, "libdnnl.so.3"))
    lib.dnnl_version.restype = ctypes.POINTER(_Version)
    v = lib.dnnl_version().contents
    return f"{v.major}.{v.minor}.{v.patch}"


def onednn_rows(include: str, shape, repeats: int) -> list:
    """Build the primitive's program and run it in f32 and bf16; its output lines."""
    binary = os.path.join(tempfile.mkdtemp(prefix="palm-onednn."), "onednn_lstmp")
    subprocess.run(["g++", "-O2", "-std=c++17", "-I", include, SOURCE, "-o", binary, f"-L{LIBS}", "-l:libdnnl.so.3",
                    f"-Wl,-rpath,{LIBS}", "-lgomp"], check=True)
    lines = []
    for dtype in ("f32", "bf16"):
        run = subprocess.run([binary, *map(str, shape), dtype, str(repeats)], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1")})
        lines.append((run.stdout + run.stderr).strip().replace("\n", "; ") or f"{dtype}: no output")
    return lines


def timed(fn, repeats: int) -> str:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return f"min {min(times):.3f} median {statistics.median(times):.3f}"


def ours(shape, clip: float):
    from paddlepalm.utils import fused_lstmp

    T, B, In, H, P = shape
    rng = np.random.RandomState(0)
    arrays = [rng.randn(2, B, T, In) * 0.1, rng.randn(2, In, 4 * H) * 0.01, np.zeros((2, 4 * H)),
              rng.randn(2, P, 4 * H) * 0.01, rng.randn(2, H, P) * 0.01, np.zeros((2, B, P)), np.zeros((2, B, H))]
    arrays = [a.astype("float32") for a in arrays]
    grad = paddle.to_tensor(rng.randn(2, B, T, P).astype("float32"))

    def step():
        tensors = [paddle.to_tensor(a, stop_gradient=False) for a in arrays]
        (fused_lstmp.fused_layer(*tensors, clip, clip) * grad).sum().backward()
    return step if fused_lstmp.load_op() is not None else None


def torch_layer(shape):
    import torch

    torch.set_num_threads(int(os.environ.get("MKL_NUM_THREADS", "1")))
    T, B, In, H, P = shape
    lstm = torch.nn.LSTM(In, H, proj_size=P, batch_first=True, bidirectional=True)
    x, grad = torch.randn(B, T, In, requires_grad=True), torch.randn(B, T, 2 * P)

    def step():
        out, _ = lstm(x)
        (out * grad).sum().backward()
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--include", default=None, help="oneDNN headers (the directory holding oneapi/dnnl); "
                                                    "without it the oneDNN row is skipped")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shape", default="50,64,256,512,256", help="T,B,In,H,P")
    p.add_argument("--smoke", action="store_true", help="shape 4,2,8,8,4 and 1 repeat")
    args = p.parse_args()
    if args.smoke:
        args.shape, args.repeats = "4,2,8,8,4", 1
    shape = tuple(int(v) for v in args.shape.split(","))
    print(f"shape T,B,In,H,P = {shape}; libdnnl.so.3 {library_version()}; "
          f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS')}")
    if args.include and os.path.isfile(os.path.join(args.include, "oneapi", "dnnl", "dnnl.hpp")):
        for line in onednn_rows(args.include, shape, args.repeats):
            print(line)
    else:
        print("onednn: skipped (no oneDNN headers: pass --include, see the docstring)")
    for clip in (3.0, 0.0):
        step = ours(shape, clip)
        print(f"paddlepalm fused op, clips {clip}: " + (timed(step, args.repeats) if step else "op unavailable"))
    try:
        print("torch nn.LSTM(proj_size, bidirectional): " + timed(torch_layer(shape), args.repeats))
    except ImportError:
        print("torch: not installed")


if __name__ == "__main__":
    main()
