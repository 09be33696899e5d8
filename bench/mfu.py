"""Model FLOPs utilization of a paddlepalm training step on CPU.

    python bench/mfu.py --steps 8 --repeats 3
    python bench/mfu.py --smoke     # seconds: a 64 x 64 GEMM peak, batches of 4 x 16, 1 step, 1 repeat

MFU = (model FLOPs of one training step / step time) / (the machine's fp32 GEMM
peak). The peak is measured in the same run as the best of: paddle ``matmul``
(paddle's bundled MKL; ``MKL_DEBUG_CPU_TYPE=5`` is set by paddlepalm before paddle
loads) and numpy ``@`` (numpy's OpenBLAS), on square fp32 matrices, all cores.

Model FLOPs are counted analytically for the transformer encoders (the usual
"6 x parameters x tokens" rule written out per matmul): per token and layer the
forward pass costs 2*(4h^2 + 2hi) for the projections and the FFN plus 4*L*h for
the attention scores and their weighted sum (L = padded length); ALBERT adds the
e -> h embedding projection; the pooler and classifier are added per sequence;
a training step costs 3x the forward pass (backward = 2x forward). Softmax,
layer norm, GELU, dropout and the optimizer are not counted (they are memory
bound and not "model FLOPs").

Each backbone (ERNIE, BERT, ALBERT, ELECTRA; 4 layers, hidden 256, 4 heads,
intermediate 1024, vocabulary 21128) trains a ``Classify`` head through
``Trainer.train_one_step`` on batches of 32 x 128 tokens (no padding) produced by
``ClassifyReader`` from a generated file. The biLM is covered by bench/elmo_lm.py.
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import paddlepalm as palm  # noqa: E402  (before paddle: thread and MKL settings)
import numpy as np  # noqa: E402
import paddle  # noqa: E402
from report import machine, update_section  # noqa: E402
from paddlepalm.runtime import set_openblas_threads  # noqa: E402

HIDDEN, LAYERS, HEADS, INTER, VOCAB = 256, 4, 4, 1024, 21128
BATCH, SEQ = 32, 128
WORK = os.path.join("/tmp", "palm_bench_mfu")


def gemm_gflops(n: int = 2048, repeats: int = 5) -> dict:
    """Best GFLOP/s of an n x n x n fp32 matmul, per library."""
    a = np.random.RandomState(0).rand(n, n).astype("float32")
    b = np.random.RandomState(1).rand(n, n).astype("float32")
    flops = 2.0 * n ** 3
    result = {}
    pa, pb = paddle.to_tensor(a), paddle.to_tensor(b)
    cores = len(os.sched_getaffinity(0))
    for name, fn in (("paddle matmul (MKL)", lambda: paddle.matmul(pa, pb).numpy()),
                     (f"numpy @ (OpenBLAS, {cores} threads)", lambda: a @ b)):
        if name.startswith("numpy"):  # paddlepalm keeps numpy's OpenBLAS on 1 thread; its peak uses all cores
            set_openblas_threads(cores)
        fn()
        best = min(_timed(fn) for _ in range(repeats))
        result[name] = flops / best / 1e9
    set_openblas_threads(1)
    return result


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops(kind: str, batch: int, seq: int, classes: int = 2) -> float:
    tokens = batch * seq
    per_token_layer = 2 * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTER) + 4 * seq * HIDDEN
    forward = tokens * LAYERS * per_token_layer
    if kind == "albert":
        forward += tokens * 2 * 128 * HIDDEN  # embedding projection e=128 -> h
    forward += batch * (2 * HIDDEN * HIDDEN + 2 * HIDDEN * classes)  # pooler + classifier
    return 3.0 * forward


def config(kind: str) -> dict:
    cfg = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
           "intermediate_size": INTER, "vocab_size": VOCAB, "type_vocab_size": 2,
           "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    if kind == "albert":
        cfg["embedding_size"] = 128
    if kind == "electra":
        cfg["embedding_size"] = HIDDEN
    return cfg


BACKBONES = {"ernie": "ERNIE", "bert": "BERT", "albert": "ALBERT", "electra": "ELECTRA"}


def make_data(work: str, batch: int, seq: int) -> tuple:
    os.makedirs(work, exist_ok=True)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    vocab = os.path.join(work, "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n")
    rng = random.Random(0)
    path = os.path.join(work, "train.tsv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("label\ttext_a\n")
        for _ in range(batch * 16):
            f.write(f"{rng.randint(0, 1)}\t{''.join(rng.choice(chars) for _ in range(seq - 2))}\n")
    return vocab, path


def step_time(kind: str, vocab: str, data: str, steps: int, batch: int, seq: int) -> float:
    paddle.seed(0)
    reader = palm.reader.ClassifyReader(vocab, seq, seed=1)
    reader.load_data(data, batch_size=batch)
    trainer = palm.Trainer("cls")
    backbone = getattr(palm.backbone, BACKBONES[kind]).from_config(config(kind))
    model = trainer.build_forward(backbone, palm.head.Classify(2, HIDDEN, 0.1))
    trainer.build_backward(palm.optimizer.Adam(model, 1e-4), weight_decay=0.01)
    trainer.fit_reader(reader)
    batches = list(reader.iter_epoch(0))
    assert batches[0]["token_ids"].shape == (batch, seq)
    trainer.train_one_step(batches[0])  # warm-up
    times = []
    for i in range(steps):
        times.append(_timed(lambda: trainer.train_one_step(batches[(i + 1) % len(batches)])))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backbones", default="ernie,bert,albert,electra")
    p.add_argument("--no_write", action="store_true")
    p.add_argument("--note", default="")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--seq", type=int, default=SEQ)
    p.add_argument("--gemm", type=int, default=2048, help="size of the square matmul of the peak")
    p.add_argument("--smoke", action="store_true", help="seconds: 64 x 64 GEMM, batches of 4 x 16, 1 step, no write")
    args = p.parse_args()
    work = WORK
    if args.smoke:
        work = tempfile.mkdtemp(prefix="palm-bench-mfu.")
        args.steps, args.repeats, args.batch, args.seq, args.gemm, args.no_write = 1, 1, 4, 16, 64, True
    vocab, data = make_data(work, args.batch, args.seq)
    kinds = args.backbones.split(",")
    peaks = {}
    times = {k: [] for k in kinds}
    for rep in range(args.repeats):  # alternate the peak and every backbone
        for name, value in gemm_gflops(args.gemm).items():
            peaks.setdefault(name, []).append(value)
        for kind in kinds:
            times[kind].append(step_time(kind, vocab, data, args.steps, args.batch, args.seq))
            print(f"repeat {rep} {kind}: {1000 * times[kind][-1]:.0f} ms/step", flush=True)
        print(f"repeat {rep} peaks: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in peaks.items()), flush=True)
    peak_rows = [f"| {name} | {statistics.median(v):.1f} ({', '.join(f'{x:.0f}' for x in v)}) |"
                 for name, v in peaks.items()]
    peak = max(statistics.median(v) for v in peaks.values())
    rows = []
    for kind in kinds:
        t = statistics.median(times[kind])
        gflops = step_flops(kind, args.batch, args.seq) / t / 1e9
        rows.append(f"| {BACKBONES[kind]} | {step_flops(kind, args.batch, args.seq) / 1e9:.1f} | {1000 * t:.0f} | "
                    f"{args.batch / t:.1f} | {gflops:.1f} | {100 * gflops / peak:.0f}% |")
    cmd = f"python bench/mfu.py --steps {args.steps} --repeats {args.repeats}"
    body = f"""Command: `{cmd}`

Machine: {machine()}. {args.note}

fp32 GEMM peak ({args.gemm} x {args.gemm} x {args.gemm}, best of 5 per repeat, median of {args.repeats} repeats, GFLOP/s):

| library | GFLOP/s (per repeat) |
|---|---|
{chr(10).join(peak_rows)}

Training step of `Trainer.train_one_step` (backbone + `Classify`, AdamW), batch {args.batch} x {args.seq} tokens, 4 layers, hidden 256, 4 heads, intermediate 1024; median of {args.steps} steps x {args.repeats} repeats; MFU against the best peak ({peak:.0f} GFLOP/s):

| backbone | model GFLOP/step | ms/step | samples/s | model GFLOP/s | MFU |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""
    print(body)
    if not args.no_write:
        update_section("Model FLOPs utilization (bench/mfu.py)", body)


if __name__ == "__main__":
    main()
