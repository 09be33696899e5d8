"""biLM training speed: paddlepalm's ELMo + BiLM head against plain PyTorch, in one run.

    python bench/elmo_lm.py                     # issue shape: 2-layer biLSTM, cell 512, projection 256,
                                                # vocab 20k, length 50, batch 64
    python bench/elmo_lm.py --quick             # small shape for a quick check
    python bench/elmo_lm.py --smoke             # seconds: every variant on a tiny shape, 1 step, 1 round
    python bench/elmo_lm.py --write docs/benchmarks.md   # also write the table into that file's ELMo section

Every variant trains (forward, backward, Adam step) on the same random batches
of full-length sentences; tokens/s counts input tokens (batch x length) per
second. The variants alternate: ``--repeats`` rounds, each running ``--steps``
timed steps of every variant in turn (each variant's ``--warmup`` steps come before
its first round); the figure is the median over all timed steps, the spread the
lowest and highest per-round median. Two figures per variant:
per wall-clock second, and per CPU second of the process (all its threads),
which stays meaningful when other jobs share the cores. PyTorch is an optional
bench dependency: without it only the Paddle variants run.

Variants:
  paddle-ours-fused-full    ELMo backbone (BiLSTMP: one GEMM for all input projections,
                            both directions batched) with the recurrence in the fused C++
                            op (paddlepalm/utils/fused_lstmp.py) + BiLM head, full softmax
                            in the fused C++ op (paddlepalm/utils/fused_softmax.py)
  paddle-ours-fused-sampled the same with the sampled softmax (``--samples`` candidates)
  paddle-ours-lstmop-full   the fused recurrence with the full softmax as matmul +
                            cross_entropy (PADDLEPALM_FUSED_SOFTMAX=0)
  paddle-ours-eager-*       the pure-Paddle fallback (PADDLEPALM_FUSED_LSTM=0,
                            PADDLEPALM_FUSED_SOFTMAX=0): the recurrence stepped in Python
  paddle-ours-static-*      the fallback compiled by paddle.jit.to_static
                            (compilation happens in the warm-up steps, not timed)
  paddle-nn.LSTM-full   paddle.nn.LSTM(proj_size=...) per direction, full softmax
  torch-full            torch.nn.LSTM(proj_size=...) per direction, full softmax
  torch-sampled         the same with the same sampled softmax as ours
"""
import argparse
import os
import re
import statistics
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(BENCH), BENCH]  # paddlepalm from this checkout; bench/timing.py

import paddlepalm as palm  # noqa: E402  (first: MKL settings before paddle loads)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from timing import alternate  # noqa: E402  (bench/timing.py)

SECTION = "## ELMo biLM training speed (bench/elmo_lm.py)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="vocab 2000, cell 128, projection 64, length 20, batch 16")
    p.add_argument("--vocab", type=int, default=20000)
    p.add_argument("--cell", type=int, default=512)
    p.add_argument("--proj", type=int, default=256)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--samples", type=int, default=1024, help="sampled-softmax draws")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1, help="rounds of alternating variants")
    p.add_argument("--variants", default="paddle-ours-fused-full,paddle-ours-fused-sampled,paddle-ours-lstmop-full,"
                                         "paddle-ours-eager-full,"
                                         "paddle-ours-eager-sampled,paddle-ours-static-full,paddle-ours-static-sampled,"
                                         "paddle-nn.LSTM-full,torch-full,torch-sampled")
    p.add_argument("--profile", action="store_true", help="time forward / loss / backward / optimizer of each "
                                                           "variant but paddle-nn.LSTM")
    p.add_argument("--write", default=None, help="markdown file whose ELMo section receives the table")
    p.add_argument("--smoke", action="store_true", help="seconds: vocab 200, cell 16, projection 8, length 6, "
                                                         "batch 4, 32 samples, 1 warm-up + 1 timed step, --profile, "
                                                         "--write to a temporary file")
    args = p.parse_args(argv)
    if args.quick:
        args.vocab, args.cell, args.proj, args.length, args.batch = 2000, 128, 64, 20, 16
    if args.smoke:
        args.vocab, args.cell, args.proj, args.length, args.batch, args.samples = 200, 16, 8, 6, 4, 32
        args.steps, args.warmup, args.repeats, args.profile = 1, 1, 1, True
        args.write = os.path.join(tempfile.mkdtemp(prefix="palm-bench-elmo."), "benchmarks.md")
    return args


def batches(args, n):
    rng = np.random.RandomState(0)
    return [rng.randint(3, args.vocab, size=(args.batch, args.length)).astype("int64") for _ in range(n)]


# ---------------------------------------------------------------- paddle
PROFILE_PARTS = ("forward (embedding + biLSTM)", "softmax loss", "backward", "optimizer")


def record(profile, stamps) -> None:
    """Add the intervals between the ``stamps`` (5 perf_counter readings) to ``profile``."""
    if profile is not None:
        for key, start, end in zip(PROFILE_PARTS, stamps, stamps[1:]):
            profile.setdefault(key, []).append(end - start)


def paddle_ours(args, samples: int, profile: dict = None, mode: str = "fused"):
    """``mode``: 'fused' (both C++ ops), 'lstmop' (the recurrence op, matmul + cross_entropy softmax),
    'eager' (the pure-Paddle fallback) or 'static' (fallback + to_static)."""
    from paddlepalm.utils import fused_lstmp, fused_softmax

    fused = mode in ("fused", "lstmop")
    fused_sm = mode == "fused"
    os.environ["PADDLEPALM_FUSED_LSTM"], os.environ["PADDLEPALM_FUSED_SOFTMAX"] = "1", "1"
    if fused and fused_lstmp.load_op() is None:
        raise ImportError("the fused LSTMP op is not available (see the log line above)")
    if fused_sm and fused_softmax.load_op() is None:
        raise ImportError("the fused softmax op is not available (see the log line above)")
    paddle.seed(0)
    config = {"input_type": "word", "vocab_size": args.vocab, "cell_size": args.cell, "projection_size": args.proj,
              "dropout": 0.0, "static_graph": mode == "static"}
    backbone = palm.backbone.ELMo.from_config(config)
    head = palm.head.BiLM(args.vocab, args.proj, num_samples=samples)
    params = backbone.parameters() + head.parameters()
    opt = paddle.optimizer.Adam(1e-3, parameters=params)
    lengths = paddle.full([args.batch], args.length, dtype="int64")

    def step(ids):
        os.environ["PADDLEPALM_FUSED_LSTM"] = "1" if fused else "0"
        os.environ["PADDLEPALM_FUSED_SOFTMAX"] = "1" if fused_sm else "0"
        stamps = [time.perf_counter()]
        inputs = {"token_ids": paddle.to_tensor(ids), "seq_lens": lengths}
        outputs = backbone(inputs)
        stamps.append(time.perf_counter())
        loss = head(inputs, outputs)["loss"]
        float(loss)
        stamps.append(time.perf_counter())
        loss.backward()
        stamps.append(time.perf_counter())
        opt.step()
        opt.clear_grad()
        stamps.append(time.perf_counter())
        record(profile, stamps)
    return step


def paddle_nn_lstm(args):
    paddle.seed(0)
    from paddle import nn

    class Model(nn.Layer):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(args.vocab, args.proj)
            self.fw = nn.LSTM(args.proj, args.cell, num_layers=2, proj_size=args.proj)
            self.bw = nn.LSTM(args.proj, args.cell, num_layers=2, proj_size=args.proj)
            self.out = nn.Linear(args.proj, args.vocab)

        def forward(self, ids):
            x = self.embedding(ids)
            fw, _ = self.fw(x)
            bw, _ = self.bw(paddle.flip(x, [1]))
            bw = paddle.flip(bw, [1])
            fw_loss = nn.functional.cross_entropy(self.out(fw[:, :-1]), ids[:, 1:].unsqueeze(-1))
            bw_loss = nn.functional.cross_entropy(self.out(bw[:, 1:]), ids[:, :-1].unsqueeze(-1))
            return (fw_loss + bw_loss) / 2

    model = Model()
    opt = paddle.optimizer.Adam(1e-3, parameters=model.parameters())

    def step(ids):
        loss = model(paddle.to_tensor(ids))
        loss.backward()
        opt.step()
        opt.clear_grad()
    return step


# ----------------------------------------------------------------- torch
def torch_bilm(args, samples: int, profile: dict = None):
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("MKL_NUM_THREADS", "2")))
    zipf = np.log((np.arange(args.vocab) + 2) / (np.arange(args.vocab) + 1)) / np.log(args.vocab + 1)
    zipf_t = torch.tensor(zipf, dtype=torch.float32)
    rng = np.random.RandomState(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(args.vocab, args.proj)
            self.fw = nn.LSTM(args.proj, args.cell, num_layers=2, proj_size=args.proj, batch_first=True)
            self.bw = nn.LSTM(args.proj, args.cell, num_layers=2, proj_size=args.proj, batch_first=True)
            self.out = nn.Linear(args.proj, args.vocab)

        def loss(self, hidden, targets):
            hidden, targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
            if not samples:
                return nn.functional.cross_entropy(self.out(hidden), targets)
            draws = np.floor(np.exp(rng.uniform(0, np.log(args.vocab + 1), samples))) - 1
            sampled = torch.tensor(np.unique(np.clip(draws, 0, args.vocab - 1)).astype("int64"))

            def log_q(ids):
                return torch.log(-torch.expm1(samples * torch.log1p(-zipf_t[ids])))
            w, b = self.out.weight, self.out.bias
            true = (hidden * w[targets]).sum(-1) + b[targets] - log_q(targets)
            logits = hidden @ w[sampled].T + b[sampled] - log_q(sampled)
            logits = logits.masked_fill(targets[:, None] == sampled[None, :], -1e9)
            full = torch.cat([true[:, None], logits], 1)
            return nn.functional.cross_entropy(full, torch.zeros(len(targets), dtype=torch.long))

        def forward(self, ids):
            x = self.embedding(ids)
            fw, _ = self.fw(x)
            bw, _ = self.bw(torch.flip(x, [1]))
            return fw, torch.flip(bw, [1])

        def lm_loss(self, ids, fw, bw):
            return (self.loss(fw[:, :-1], ids[:, 1:]) + self.loss(bw[:, 1:], ids[:, :-1])) / 2

    model = Model()
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step(ids):
        stamps = [time.perf_counter()]
        ids = torch.from_numpy(ids)
        fw, bw = model(ids)
        stamps.append(time.perf_counter())
        loss = model.lm_loss(ids, fw, bw)
        float(loss)
        stamps.append(time.perf_counter())
        opt.zero_grad()
        loss.backward()
        stamps.append(time.perf_counter())
        opt.step()
        stamps.append(time.perf_counter())
        record(profile, stamps)
    return step


# ------------------------------------------------------------------ main
def build(name, args, profile):
    prof = profile.setdefault(name, {}) if args.profile else None
    for mode in ("fused", "lstmop", "eager", "static"):
        for softmax, samples in (("full", 0), ("sampled", args.samples)):
            if name == f"paddle-ours-{mode}-{softmax}":
                return paddle_ours(args, samples, prof, mode)
    if name == "paddle-nn.LSTM-full":
        return paddle_nn_lstm(args)
    if name == "torch-full":
        return torch_bilm(args, 0, prof)
    if name == "torch-sampled":
        return torch_bilm(args, args.samples, prof)
    raise ValueError(f"unknown variant {name}")


def main(argv=None):
    args = parse_args(argv)
    data = batches(args, args.warmup + args.steps)
    steps = {}
    profile = {}
    for name in args.variants.split(","):
        try:
            steps[name] = build(name, args, profile)
        except ImportError as err:
            steps.pop(name, None)
            print(f"{name}: skipped ({err})", flush=True)

    def clear_profile():  # the warm-up steps (and to_static compilation) are not profiled
        for prof in profile.values():
            prof.clear()

    def progress(round_, name, times):
        print(f"round {round_} {name}: {args.batch * args.length / statistics.median(times[0]):.0f} tokens/s wall",
              flush=True)
    times = alternate(steps, data, args.warmup, args.repeats, clear_profile, progress)
    tokens = args.batch * args.length
    results = {}
    for name, rounds in times.items():
        wall = statistics.median([w for r in rounds for w in r[0]])
        cpu = statistics.median([c for r in rounds for c in r[1]])
        per_round = [tokens / statistics.median(r[0]) for r in rounds]
        results[name] = (tokens / wall, tokens / cpu, min(per_round), max(per_round))
    table = report(args, results, profile, " ".join(["python bench/elmo_lm.py"] + (argv or sys.argv[1:])))
    print(table)
    if args.write:
        write_section(args.write, table)
    return results


def report(args, results, profile, command):
    env = f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS')} MKL_DEBUG_CPU_TYPE={os.environ.get('MKL_DEBUG_CPU_TYPE', '')}"
    flags = sorted(set(palm_cpu_flags().split()) & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni"})
    lines = [f"CPU: {cpu_model()}, flags (of interest) {' '.join(flags) or 'n/a'}; paddle {paddle.__version__}.",
             f"Shape: 2-layer biLSTM LM, cell {args.cell}, projection {args.proj}, vocab {args.vocab}, "
             f"length {args.length}, batch {args.batch}; sampled softmax {args.samples} draws; {env}.",
             f"Command: `{env} {command}`", "",
             f"{args.repeats} alternating rounds of {args.steps} timed steps after {args.warmup} warm-up steps.", "",
             "| variant | tokens/s (wall) | spread (per-round medians) | tokens per CPU-s "
             "| vs torch-full (wall) | vs torch-full (CPU) |",
             "|---|---:|---:|---:|---:|---:|"]
    base = results.get("torch-full")
    for name, (wall, cpu, low, high) in results.items():
        ratios = [f"{v / b:.2f}x" for v, b in zip((wall, cpu), base)] if base else ["n/a", "n/a"]
        lines.append(f"| {name} | {wall:.0f} | {low:.0f}-{high:.0f} | {cpu:.0f} | {ratios[0]} | {ratios[1]} |")
    lines += profile_table(profile)
    return "\n".join(lines) + "\n"


def profile_table(profile: dict) -> list:
    """Markdown lines: per variant, the median wall seconds of each part of a step (empty without --profile)."""
    rows = [(name, parts) for name, parts in profile.items() if parts]
    if not rows:
        return []
    lines = ["", "Profile, wall seconds per step (median over the timed steps; share of the step):", "",
             "| variant | " + " | ".join(PROFILE_PARTS) + " | step |", "|---|" + "---:|" * (len(PROFILE_PARTS) + 1)]
    for name, parts in rows:
        medians = [statistics.median(parts[k]) for k in PROFILE_PARTS]
        total = sum(medians)
        cells = [f"{m:.3f} ({100 * m / total:.0f}%)" for m in medians]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {total:.3f} |")
    return lines


def palm_cpu_flags() -> str:
    from paddlepalm.utils.custom_ops import cpu_flags
    return cpu_flags().partition(":")[2]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.partition(":")[2].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def write_section(path, table):
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    body = f"{SECTION}\n\n{table}"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    text = pattern.sub(lambda _: body.rstrip("\n"), text) if SECTION in text else text + ("\n" if text else "") + body
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
