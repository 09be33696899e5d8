"""Single operations: Paddle's CPU kernel vs what paddlepalm/utils/cpu_speed.py (and crf.py) do instead.

    python bench/op_micro.py --repeats 20
    python bench/op_micro.py --smoke     # seconds: batch 2 x 16 tokens, 1 repeat

Shapes of the small-BERT step (batch 32 x 128 tokens = 4096 rows). Each operation runs
alone in a loop (median of ``--repeats`` after a warm-up), so it includes the cost of
fresh output buffers; inside a training step Paddle's allocator reuses memory and some
figures are lower (bench/profile_step.py has the in-step profile).
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import paddlepalm  # noqa: E402,F401  (thread and flag settings before paddle)
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
from paddlepalm.utils import cpu_speed, fused_gelu, fused_layer_norm  # noqa: E402
from report import machine, update_section  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def layer_norm_grad_paddle(x, weight, bias, grad):
    def run():
        x_in = x.detach()
        x_in.stop_gradient = False
        F.layer_norm(x_in, x.shape[-1:], weight, bias, 1e-12).backward(grad)
    return run


def forward_backward(fn, x, grad):
    """``fn(x)`` and its gradient with respect to ``x`` (the leaf is made once)."""
    leaf = x.detach()
    leaf.stop_gradient = False

    def run():
        paddle.grad(fn(leaf), [leaf], grad)
    return run


def crf_loss(gemm: bool, batch: int = 32):
    """CRF loss forward + backward on an ATIS-sized batch: ``batch`` sentences x 20 words, 127 tags."""
    from paddlepalm.utils import crf
    rng = np.random.RandomState(0)
    emissions = paddle.to_tensor(rng.randn(batch, 20, 127).astype("float32"))
    transitions = paddle.to_tensor((rng.randn(129, 127) * 0.1).astype("float32"))
    labels = paddle.to_tensor(rng.randint(0, 127, (batch, 20)))
    lengths = paddle.to_tensor(rng.randint(5, 21, (batch,)))
    emissions.stop_gradient = transitions.stop_gradient = False

    def run():
        spread = crf.GEMM_SPREAD if gemm else -1.0  # -1: the broadcast + logsumexp recursion
        crf.crf_nll_reference(emissions, labels, lengths, transitions, gemm_spread=spread).mean().backward()
    return run


def cases(batch: int = 32, seq: int = 128):
    rows, width, hidden = batch * seq, 1024, 256
    grad = paddle.randn([rows, width])
    ones = paddle.ones([1, rows])
    out, bias = paddle.randn([rows, width]), paddle.randn([width])
    probs = paddle.rand([batch, 4, seq, seq])
    mask = paddle.randn([batch, 1, 1, seq])
    x, gx = paddle.randn([rows, hidden]), paddle.randn([rows, hidden])
    weight, beta = paddle.rand([hidden]) + 0.5, paddle.zeros([hidden])
    weight.stop_gradient = beta.stop_gradient = False
    x_np, gx_np, w_np = x.numpy(), gx.numpy(), weight.numpy()
    ln_forward = lambda: F.layer_norm(x, [hidden], weight, beta, 1e-12)  # noqa: E731
    scores = f"{batch} x 4 x {seq} x {seq}"
    return [
        (f"linear bias gradient: column sum of {rows} x {width}", lambda: grad.sum(axis=0),
         lambda: paddle.matmul(ones, grad), 0.0),
        (f"linear bias add: {rows} x {width} + {width}", lambda: out + bias,
         lambda: cpu_speed.numpy_add(out, bias), 0.0),
        (f"dropout p=0.1 forward: {scores}", lambda: F.dropout(probs, 0.1),
         lambda: cpu_speed.dropout(probs, 0.1), 0.0),
        (f"attention mask add: {scores} + {batch} x 1 x 1 x {seq}", lambda: probs + mask,
         lambda: cpu_speed.numpy_add(probs, mask), 0.0),
        (f"layer-norm gradient: {rows} x {hidden} (Paddle: forward + backward minus forward)",
         layer_norm_grad_paddle(x, weight, beta, gx),
         lambda: cpu_speed.layer_norm_grads(x_np, gx_np, w_np, 1e-12), ln_forward),
        (f"GELU forward + backward: {rows} x {width} (ours: utils/fused_gelu.py op)",
         forward_backward(F.gelu, out, grad), forward_backward(fused_gelu.gelu, out, grad), 0.0),
        (f"layer norm forward + backward: {rows} x {hidden} (ours: utils/fused_layer_norm.py op)",
         forward_backward(lambda v: F.layer_norm(v, [hidden], weight, beta, 1e-12), x, gx),
         forward_backward(lambda v: fused_layer_norm.layer_norm(v, weight, beta, 1e-12), x, gx), 0.0),
        (f"CRF loss forward + backward: {batch} x 20 words, 127 tags (ours: utils/crf.py GEMM recursion)",
         crf_loss(False, batch), crf_loss(True, batch), 0.0),
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--note", default="")
    p.add_argument("--smoke", action="store_true", help="seconds: batch 2 x 16 tokens, 1 repeat, no write")
    args = p.parse_args()
    batch, seq = (2, 16) if args.smoke else (32, 128)
    if args.smoke:
        args.repeats, args.no_write = 1, True
    rows = []
    for name, paddle_fn, ours_fn, subtract in cases(batch, seq):
        paddle_ms = median_ms(paddle_fn, args.repeats) - (median_ms(subtract, args.repeats) if subtract else 0.0)
        ours_ms = median_ms(ours_fn, args.repeats)
        rows.append(f"| {name} | {paddle_ms:.2f} | {ours_ms:.2f} | {paddle_ms / ours_ms:.1f}x |")
        print(rows[-1], flush=True)
    body = f"""Command: `python bench/op_micro.py --repeats {args.repeats}`

Machine: {machine()}. {args.note}

Each operation alone in a loop, median of {args.repeats} after a warm-up (fresh output buffers included; in a training step Paddle's allocator reuses memory, see the profile in the analysis section).

| operation | Paddle kernel, ms | paddlepalm CPU layer, ms | speed-up |
|---|---|---|---|
{chr(10).join(rows)}
"""
    print(body)
    if not args.no_write:
        update_section("Single operations, Paddle vs the CPU layers (bench/op_micro.py)", body)


if __name__ == "__main__":
    main()
