"""The full-softmax loss of the biLM alone: Paddle's matmul + cross_entropy, a chunked PyLayer
(loss and gradients computed a block of rows at a time, so the [N, V] logits never exist whole), and
PyTorch, forward + backward on [6272, 256] hidden states (bench/elmo_lm.py's batch 64 x length 49 x
2 directions) and a [20000, 256] output layer; process CPU seconds, min and median of 3 rounds.

    MKL_NUM_THREADS=1 python bench/softmax_chunked.py

The chunked layer is for this measurement only: its backward takes the mean-reduced loss's uniform
upstream gradient (enough to time it, not a general layer).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import paddlepalm  # noqa: E402,F401  (runtime settings before paddle)
import paddle, paddle.nn.functional as F
import numpy as np
N, P, V = 6272, 256, 20000
rng = np.random.RandomState(0)
xh = rng.randn(N, P).astype("float32") * 0.1; wh = rng.randn(V, P).astype("float32") * 0.05
bh = np.zeros(V, "float32"); th = rng.randint(0, V, N)

class ChunkedSoftmaxCE(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx, x, w, b, t, chunk):
        losses, dxs = [], []
        dw = paddle.zeros_like(w); db = paddle.zeros_like(b)
        for s in range(0, x.shape[0], chunk):
            xc, tc = x[s:s+chunk], t[s:s+chunk]
            logits = paddle.matmul(xc, w, transpose_y=True) + b
            lse = paddle.logsumexp(logits, axis=-1)
            true = paddle.take_along_axis(logits, tc.unsqueeze(-1), axis=-1).squeeze(-1)
            losses.append(lse - true)
            p = paddle.exp(logits - lse.unsqueeze(-1))
            p = paddle.put_along_axis(p, tc.unsqueeze(-1), paddle.take_along_axis(p, tc.unsqueeze(-1), axis=-1) - 1.0, axis=-1)
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

def paddle_full():
    x = paddle.to_tensor(xh, stop_gradient=False); w = paddle.to_tensor(wh, stop_gradient=False); b = paddle.to_tensor(bh, stop_gradient=False)
    t = paddle.to_tensor(th)
    logits = paddle.matmul(x, w, transpose_y=True) + b
    loss = F.cross_entropy(logits, t.unsqueeze(-1), reduction="none").squeeze(-1).mean()
    loss.backward(); return float(loss)
def paddle_chunk(chunk=1024):
    x = paddle.to_tensor(xh, stop_gradient=False); w = paddle.to_tensor(wh, stop_gradient=False); b = paddle.to_tensor(bh, stop_gradient=False)
    t = paddle.to_tensor(th)
    loss = ChunkedSoftmaxCE.apply(x, w, b, t, chunk).mean()
    loss.backward(); return float(loss)
fns = {"paddle-full": paddle_full, "paddle-chunk1024": paddle_chunk, "paddle-chunk256": lambda: paddle_chunk(256)}
try:
    import torch
    torch.set_num_threads(int(os.environ.get("MKL_NUM_THREADS", "1")))
    def torch_full():
        x = torch.tensor(xh, requires_grad=True); w = torch.tensor(wh, requires_grad=True); b = torch.tensor(bh, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, torch.tensor(th)); loss.backward(); return float(loss)
    fns["torch-full"] = torch_full
except ImportError:
    pass
for f in fns.values(): print(f())
times = {k: [] for k in fns}
for r in range(3):
    for k, f in fns.items():
        t0 = time.process_time(); f(); times[k].append(time.process_time() - t0)
for k, v in times.items(): print(k, "CPU s", round(min(v), 2), round(sorted(v)[1], 2), "MKL_DEBUG_CPU_TYPE", os.environ.get("MKL_DEBUG_CPU_TYPE"))
