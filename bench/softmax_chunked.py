"""The full-softmax loss of the biLM alone: Paddle's matmul + cross_entropy, a chunked PyLayer
(loss and gradients computed a block of rows at a time, so the [N, V] logits never exist whole),
paddlepalm's fused C++ op (paddlepalm/utils/fused_softmax.py: the same idea in C++), and PyTorch, forward + backward on [6272, 256] hidden states (bench/elmo_lm.py's batch 64 x length 49 x
2 directions) and a [20000, 256] output layer; process CPU seconds, min and median of 3 rounds.

    MKL_NUM_THREADS=1 python bench/softmax_chunked.py
    python bench/softmax_chunked.py --smoke     # seconds: [600, 16] hidden states, [200, 16] output layer, 1 round

The chunked layer is for this measurement only: its backward takes the mean-reduced loss's uniform
upstream gradient (enough to time it, not a general layer). PyTorch is optional: without it its row
is skipped.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import paddlepalm  # noqa: E402,F401  (runtime settings before paddle)
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

SHAPE, SMOKE_SHAPE = (6272, 256, 20000), (600, 16, 200)  # rows N, hidden size P, vocabulary V


class ChunkedSoftmaxCE(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx, x, w, b, t, chunk):
        losses, dxs = [], []
        dw, db = paddle.zeros_like(w), paddle.zeros_like(b)
        for s in range(0, x.shape[0], chunk):
            xc, tc = x[s:s + chunk], t[s:s + chunk]
            logits = paddle.matmul(xc, w, transpose_y=True) + b
            lse = paddle.logsumexp(logits, axis=-1)
            true = paddle.take_along_axis(logits, tc.unsqueeze(-1), axis=-1).squeeze(-1)
            losses.append(lse - true)
            p = paddle.exp(logits - lse.unsqueeze(-1))
            p = paddle.put_along_axis(p, tc.unsqueeze(-1), paddle.take_along_axis(p, tc.unsqueeze(-1), axis=-1) - 1.0,
                                      axis=-1)
            dxs.append(paddle.matmul(p, w))
            dw = dw + paddle.matmul(p, xc, transpose_x=True)
            db = db + p.sum(0)
        ctx.save_for_backward(paddle.concat(dxs), dw, db)
        return paddle.concat(losses)

    @staticmethod
    def backward(ctx, g):
        dx, dw, db = ctx.saved_tensor()
        # per-row upstream gradient g [N]: dx scales by row; dw/db need g inside the sum -> assume uniform g
        return dx * g.unsqueeze(-1), dw * g.mean(), db * g.mean()


def inputs(n: int, p: int, v: int) -> tuple:
    """Hidden states [n, p], output weight [v, p] and bias [v], targets [n] (numpy)."""
    rng = np.random.RandomState(0)
    return (rng.randn(n, p).astype("float32") * 0.1, rng.randn(v, p).astype("float32") * 0.05,
            np.zeros(v, "float32"), rng.randint(0, v, n))


def _paddle_leaves(data):
    x, w, b, t = data
    return [paddle.to_tensor(a, stop_gradient=False) for a in (x, w, b)] + [paddle.to_tensor(t)]


def paddle_full(data) -> float:
    x, w, b, t = _paddle_leaves(data)
    logits = paddle.matmul(x, w, transpose_y=True) + b
    loss = F.cross_entropy(logits, t.unsqueeze(-1), reduction="none").squeeze(-1).mean()
    loss.backward()
    return float(loss)


def paddle_chunk(data, chunk: int) -> float:
    x, w, b, t = _paddle_leaves(data)
    loss = ChunkedSoftmaxCE.apply(x, w, b, t, chunk).mean()
    loss.backward()
    return float(loss)


def paddle_op(data) -> float:
    from paddlepalm.utils import fused_softmax

    x, w, b, t = _paddle_leaves(data)
    loss = fused_softmax.mean_softmax_cross_entropy(x, w, b, t)
    loss.backward()
    return float(loss)


def torch_full(data) -> float:
    import torch
    x, w, b = (torch.tensor(a, requires_grad=True) for a in data[:3])
    loss = torch.nn.functional.cross_entropy(x @ w.T + b, torch.tensor(data[3]))
    loss.backward()
    return float(loss)


def variants(data) -> dict:
    fns = {"paddle-full": lambda: paddle_full(data), "paddle-chunk1024": lambda: paddle_chunk(data, 1024),
           "paddle-chunk256": lambda: paddle_chunk(data, 256)}
    from paddlepalm.utils import fused_softmax
    if fused_softmax.load_op() is not None:
        fns["paddle-fused-op"] = lambda: paddle_op(data)
    else:
        print(f"paddle-fused-op: skipped ({fused_softmax.status()['error']})", flush=True)
    try:
        import torch
    except ImportError:
        print("torch-full: skipped (PyTorch not installed: pip install paddlepalm[bench])", flush=True)
        return fns
    torch.set_num_threads(int(os.environ.get("MKL_NUM_THREADS", "1")))
    fns["torch-full"] = lambda: torch_full(data)
    return fns


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="seconds: [600, 16] x [200, 16], 1 round")
    args = p.parse_args()
    fns = variants(inputs(*(SMOKE_SHAPE if args.smoke else SHAPE)))
    for name, f in fns.items():  # warm-up; the losses agree
        print(name, "loss", f())
    times = {k: [] for k in fns}
    for _ in range(1 if args.smoke else 3):
        for k, f in fns.items():
            t0 = time.process_time()
            f()
            times[k].append(time.process_time() - t0)
    for k, v in times.items():
        print(k, "CPU s", round(min(v), 2), round(statistics.median(v), 2),
              "MKL_DEBUG_CPU_TYPE", os.environ.get("MKL_DEBUG_CPU_TYPE"))


if __name__ == "__main__":
    main()
