"""BiLSTM-CRF tagger training speed: paddlepalm's BiLSTM + SequenceLabel against plain PyTorch, in one run.

    python bench/tagger.py                      # the zh-ner tagger (examples/configs/zh-ner.yaml): characters
                                                # embedded in 100 (vocab 5000), one biLSTM layer of 2 x 128,
                                                # dropout 0.5, 7 tags, CRF; batches of 32 sentences
    python bench/tagger.py --quick              # small shapes, for a test
    python bench/tagger.py --smoke              # seconds: --quick, 1 warm-up + 1 timed step, 1 round,
                                                # the table written into a temporary file
    python bench/tagger.py --write docs/benchmarks.md   # also write the table into that file's tagger section

Every variant trains (forward, CRF negative log-likelihood, backward, Adam step, lr 2e-3) on the
same batches: the same numpy arrays, laid out as SequenceLabelReader lays them out ([CLS] chars
[SEP], one word per character), sentence lengths drawn uniformly from ``--min_len``..``--max_len``
(mean 47, about MSRA NER's), padded to the batch's longest. Tokens/s counts the real characters
(not the padding). Variants alternate (bench/timing.py): ``--repeats`` rounds of ``--steps`` timed
steps each, after ``--warmup`` untimed steps; a round's figure is its batches' sentences (tokens)
over their summed seconds, the table gives the median round and the spread of the rounds, per wall
second and per CPU second of this process. PyTorch is optional: without it the torch rows are skipped.

Variants:
  paddle-ours         palm.backbone.BiLSTM (paddle.nn.LSTM: Paddle's fused ``rnn`` operator, with
                      sequence_length) + palm.head.SequenceLabel (paddlepalm/utils/crf.py) in a
                      MultiTaskModel, the loss the Trainer computes; paddle.optimizer.Adam
  paddle-ours-static  the same training forward under paddle.jit.to_static, one program per batch
                      shape, all compiled before the timing (with a dynamic length it is refused)
  paddle-stepped      the same model with the recurrence stepped in Python: one paddle.nn.LSTMCell
                      call per time step and direction, states held past each sentence's length
                      (what a recurrence without a fused kernel costs)
  torch               torch.nn.LSTM over pack_padded_sequence, the same CRF NLL in plain torch
                      (forward algorithm, logsumexp per time step, vectorized over the batch)
  torch-reversed      the same with two unidirectional torch.nn.LSTMs on padded batches, the backward
                      one on each sentence reversed within its length (no packing: torch's backward
                      through a packed LSTM is about 4x slower on CPU than through a padded one)
  paddle-ours-crf-fallback  paddle-ours with the CRF loss on its pure-Paddle fallback
                      (PADDLEPALM_FUSED_CRF=0: the forward algorithm stepped in Python) instead of
                      the CRF operator (paddlepalm/utils/fused_crf.py)
  crf:paddle-ours, crf:paddle-fallback, crf:torch   the CRF NLL forward + backward alone, on fixed
                      random emissions (its share of the step is printed below the table)
"""
import argparse
import os
import statistics
import sys
import tempfile
from typing import Dict, List, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(BENCH), BENCH]  # paddlepalm from this checkout; bench/timing.py, report.py


def _set_threads(argv: List[str]) -> None:
    """``--threads`` reaches MKL only through the environment, before paddle is imported."""
    threads = argv[argv.index("--threads") + 1] if "--threads" in argv[:-1] else "1"
    os.environ["MKL_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = threads


if __name__ == "__main__":
    _set_threads(sys.argv[1:])

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle import nn  # noqa: E402

import paddlepalm as palm  # noqa: E402
from paddlepalm.model import MultiTaskModel, to_tensors  # noqa: E402
from paddlepalm.utils.crf import crf_nll  # noqa: E402
from report import machine, update_marked  # noqa: E402  (bench/report.py)
from timing import alternate  # noqa: E402  (bench/timing.py)

SECTION = "BiLSTM-CRF tagger training: paddlepalm vs PyTorch (bench/tagger.py)"
VARIANTS = ("paddle-ours,paddle-ours-crf-fallback,paddle-ours-static,paddle-stepped,torch,torch-reversed,"
            "crf:paddle-ours,crf:paddle-fallback,crf:torch")
NUM_TAGS = 7  # MSRA NER's BIO tags over PER, LOC, ORG
CLS, SEP = 1, 2
MODEL_KEYS = ("token_ids", "seq_lens", "word_starts", "word_counts", "label_ids")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="vocab 300, embedding 16, hidden 32, batch 4, lengths 3..12")
    p.add_argument("--vocab", type=int, default=5000)
    p.add_argument("--embedding", type=int, default=100)
    p.add_argument("--hidden", type=int, default=256, help="both directions together")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--min_len", type=int, default=5)
    p.add_argument("--max_len", type=int, default=89)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="rounds of alternating variants")
    p.add_argument("--threads", type=int, default=1, help="MKL/OMP threads (set before paddle loads) and torch's")
    p.add_argument("--variants", default=VARIANTS)
    p.add_argument("--write", default=None, help="markdown file whose tagger section receives the table")
    p.add_argument("--smoke", action="store_true", help="seconds: --quick, 1 warm-up + 1 timed step, 1 round, "
                                                         "--write to a temporary file")
    args = p.parse_args(argv)
    if args.quick or args.smoke:
        args.vocab, args.embedding, args.hidden, args.batch, args.min_len, args.max_len = 300, 16, 32, 4, 3, 12
    if args.smoke:
        args.steps, args.warmup, args.repeats = 1, 1, 1
        args.write = os.path.join(tempfile.mkdtemp(prefix="palm-bench-tagger."), "benchmarks.md")
    return args


def make_batches(args, n: int, seed: int = 0) -> List[Dict[str, np.ndarray]]:
    """``n`` batches as SequenceLabelReader gives them, plus random ``emissions`` for the CRF-alone rows."""
    rng = np.random.RandomState(seed)
    batches = []
    for _ in range(n):
        chars = rng.randint(args.min_len, args.max_len + 1, size=args.batch).astype("int64")
        words = int(chars.max())
        token_ids = np.zeros((args.batch, words + 2), dtype="int64")
        word_starts = np.zeros((args.batch, words), dtype="int64")
        label_ids = np.zeros((args.batch, words), dtype="int64")
        for row, length in enumerate(chars):
            token_ids[row, :length + 2] = [CLS, *rng.randint(3, args.vocab, size=length), SEP]
            word_starts[row, :length] = np.arange(1, length + 1)
            label_ids[row, :length] = rng.randint(0, NUM_TAGS, size=length)
        batches.append({"token_ids": token_ids, "seq_lens": chars + 2, "word_starts": word_starts,
                        "word_counts": chars, "label_ids": label_ids,
                        "emissions": rng.normal(size=(args.batch, words, NUM_TAGS)).astype("float32")})
    return batches


# ---------------------------------------------------------------- paddle
class SteppedBiLSTM(nn.Layer):
    """``paddle.nn.LSTM(direction='bidirect')`` of one layer, called as the backbone calls it, with the
    recurrence stepped in Python: one ``LSTMCell`` call per time step and direction. A row's states
    stay as they are past its length, so the backward direction starts at the row's last token."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.cell_fw = nn.LSTMCell(input_size, hidden_size)
        self.cell_bw = nn.LSTMCell(input_size, hidden_size)

    def forward(self, inputs, sequence_length):
        steps = inputs.shape[1]
        mask = (paddle.arange(steps).unsqueeze(0) < sequence_length.unsqueeze(1)).astype(inputs.dtype)
        forward = self._run(self.cell_fw, inputs, mask, range(steps))
        backward = self._run(self.cell_bw, inputs, mask, reversed(range(steps)))
        return paddle.concat([forward, backward], axis=-1), None

    @staticmethod
    def _run(cell, inputs, mask, order):
        h = paddle.zeros([inputs.shape[0], cell.hidden_size], dtype=inputs.dtype)
        c = paddle.zeros_like(h)
        outputs = [None] * inputs.shape[1]
        for t in order:
            keep = mask[:, t:t + 1]
            new_h, (_, new_c) = cell(inputs[:, t], (h, c))
            h, c = keep * new_h + (1 - keep) * h, keep * new_c + (1 - keep) * c
            outputs[t] = h * keep
        return paddle.stack(outputs, axis=1)


def fused_name(name: str) -> str:
    """The ``paddle.nn.LSTM`` parameter a :class:`SteppedBiLSTM` parameter stands for (others: itself)."""
    for cell, suffix in (("rnn.cell_fw.", "_l0"), ("rnn.cell_bw.", "_l0_reverse")):
        if cell in name:
            return name.replace(cell, "rnn.") + suffix
    return name


def copy_weights(source: nn.Layer, target: nn.Layer) -> None:
    """``target``'s parameters := ``source``'s, between the fused and the stepped recurrence."""
    own = dict(source.named_parameters())
    by_fused = {fused_name(name): name for name, _ in target.named_parameters()}
    if set(by_fused) != set(own):
        raise ValueError(f"parameters differ: {sorted(set(by_fused) ^ set(own))}")
    target.set_state_dict({by_fused[name]: value.detach().clone() for name, value in own.items()})


def build_paddle(args, recurrence: str = "fused", seed: int = 0, dropout: Optional[float] = None) -> MultiTaskModel:
    """The zh-ner tagger as the Trainer builds it (one task, ``ner``); ``recurrence='stepped'``
    swaps the backbone's ``paddle.nn.LSTM`` for a :class:`SteppedBiLSTM` with its weights."""
    paddle.seed(seed)
    backbone = palm.backbone.BiLSTM({"vocab_size": args.vocab, "embedding_size": args.embedding,
                                     "hidden_size": args.hidden, "num_layers": 1,
                                     "dropout": args.dropout if dropout is None else dropout})
    if recurrence == "stepped":
        fused, backbone.rnn = backbone.rnn, SteppedBiLSTM(args.embedding, args.hidden // 2)
        for cell, suffix in ((backbone.rnn.cell_fw, "_l0"), (backbone.rnn.cell_bw, "_l0_reverse")):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).set_value(getattr(fused, name + suffix))
    head = palm.head.SequenceLabel(NUM_TAGS, backbone.hidden_size, learning_rate=1.0)
    return MultiTaskModel(backbone, {"ner": head})


def paddle_loss(model: MultiTaskModel, batch: Dict[str, np.ndarray]) -> paddle.Tensor:
    return model("ner", to_tensors({k: batch[k] for k in MODEL_KEYS}))["loss"]


def paddle_trainer(args, recurrence: str = "fused", static_shapes: Optional[List[Dict[str, np.ndarray]]] = None):
    """A training step; ``static_shapes``: compile the forward with ``paddle.jit.to_static``, one
    program per batch shape (the CRF's time loop is unrolled; a dynamic length is refused, see
    docs/benchmarks.md), for every shape among these batches before the timing."""
    model = build_paddle(args, recurrence)
    opt = paddle.optimizer.Adam(args.lr, parameters=model.parameters())

    def forward(batch):
        return model("ner", batch)["loss"]
    if static_shapes is not None:
        forward = paddle.jit.to_static(forward, full_graph=True)
        model.train()
        for batch in {b["token_ids"].shape: b for b in static_shapes}.values():  # compile (fails here if it must)
            forward(to_tensors({k: batch[k] for k in MODEL_KEYS})).backward()
            opt.clear_grad()

    def step(batch):
        model.train()
        loss = forward(to_tensors({k: batch[k] for k in MODEL_KEYS}))
        float(loss)  # the Trainer's LossGuard reads every loss
        loss.backward()
        opt.step()
        opt.clear_grad()
    return step


def paddle_crf(args):
    transitions = paddle.to_tensor(np.random.RandomState(1).uniform(-0.1, 0.1, (NUM_TAGS + 2, NUM_TAGS))
                                   .astype("float32"), stop_gradient=False)

    def step(batch):
        emissions = paddle.to_tensor(batch["emissions"], stop_gradient=False)
        lengths = paddle.to_tensor(np.maximum(batch["word_counts"], 1))
        crf_nll(emissions, paddle.to_tensor(batch["label_ids"]), lengths, transitions).mean().backward()
        transitions.clear_gradient()
    return step


def crf_fallback(step):
    """``step`` with the CRF loss on its pure-Paddle fallback (``PADDLEPALM_FUSED_CRF=0`` while it
    runs; the operator is chosen call by call)."""
    def run(batch):
        saved = os.environ.get("PADDLEPALM_FUSED_CRF")
        os.environ["PADDLEPALM_FUSED_CRF"] = "0"
        try:
            step(batch)
        finally:
            if saved is None:
                del os.environ["PADDLEPALM_FUSED_CRF"]
            else:
                os.environ["PADDLEPALM_FUSED_CRF"] = saved
    return run


# ----------------------------------------------------------------- torch
def torch_crf_nll(emissions, labels, lengths, transitions):
    """Per-sequence ``-log p(labels | emissions)`` in plain torch, transitions in paddlepalm's layout
    (row 0 start, row 1 stop, rows 2.. ``from -> to``)."""
    import torch

    start, stop, trans = transitions[0], transitions[1], transitions[2:]
    steps = emissions.shape[1]
    mask = (torch.arange(steps)[None, :] < lengths[:, None]).to(emissions.dtype)  # [B, T]
    gold = (emissions.gather(2, labels[..., None]).squeeze(-1) * mask).sum(1) + start[labels[:, 0]]
    gold = gold + (trans[labels[:, :-1], labels[:, 1:]] * mask[:, 1:]).sum(1)
    gold = gold + stop[labels.gather(1, (lengths - 1)[:, None]).squeeze(1)]
    alpha = start[None, :] + emissions[:, 0]  # [B, K]
    for t in range(1, steps):
        scores = torch.logsumexp(alpha[:, :, None] + trans[None] + emissions[:, t, None, :], dim=1)
        keep = mask[:, t, None]
        alpha = scores * keep + alpha * (1 - keep)
    return torch.logsumexp(alpha + stop[None, :], dim=1) - gold


def torch_bilstm(args, packed: bool = True):
    """The biLSTM of the torch rows, ``forward(x, lengths) -> [B, T, hidden]`` (0 at the padding).
    ``packed``: one bidirectional ``nn.LSTM`` over ``pack_padded_sequence``; else two
    unidirectional ones over padded batches, the backward one on each row reversed within its length
    (the padding stays at the end, so neither direction reads it before a real token)."""
    import torch
    from torch import nn as tnn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Packed(tnn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = tnn.LSTM(args.embedding, args.hidden // 2, batch_first=True, bidirectional=True)

        def forward(self, x, lengths):
            run = self.lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[0]
            return pad_packed_sequence(run, batch_first=True, total_length=x.shape[1])[0]

    class Reversed(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fw = tnn.LSTM(args.embedding, args.hidden // 2, batch_first=True)
            self.bw = tnn.LSTM(args.embedding, args.hidden // 2, batch_first=True)

        def forward(self, x, lengths):
            positions = torch.arange(x.shape[1])[None, :]
            valid = positions < lengths[:, None]
            order = torch.where(valid, lengths[:, None] - 1 - positions, positions)[..., None]  # its own inverse
            backward = self.bw(x.gather(1, order.expand(-1, -1, x.shape[-1])))[0]
            backward = backward.gather(1, order.expand(-1, -1, backward.shape[-1]))
            return torch.cat([self.fw(x)[0], backward], -1) * valid[..., None].to(x.dtype)

    return Packed() if packed else Reversed()


def torch_tagger(args, packed: bool = True):
    import torch
    from torch import nn as tnn

    torch.manual_seed(0)

    class Tagger(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = tnn.Embedding(args.vocab, args.embedding)
            self.dropout = tnn.Dropout(args.dropout)
            self.bilstm = torch_bilstm(args, packed)
            self.emission = tnn.Linear(args.hidden, NUM_TAGS)
            self.transitions = tnn.Parameter(torch.empty(NUM_TAGS + 2, NUM_TAGS).uniform_(-0.1, 0.1))

        def forward(self, token_ids, seq_lens, word_starts, word_counts, label_ids):
            hidden = self.dropout(self.bilstm(self.dropout(self.embedding(token_ids)), seq_lens))
            words = hidden.gather(1, word_starts[..., None].expand(-1, -1, hidden.shape[-1]))
            nll = torch_crf_nll(self.emission(words), label_ids, word_counts.clamp(min=1), self.transitions)
            return nll.mean()

    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), args.lr)

    def step(batch):
        model.train()
        loss = model(*(torch.from_numpy(batch[k]) for k in MODEL_KEYS))
        float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_crf(args):
    import torch

    transitions = torch.tensor(np.random.RandomState(1).uniform(-0.1, 0.1, (NUM_TAGS + 2, NUM_TAGS))
                               .astype("float32"), requires_grad=True)

    def step(batch):
        emissions = torch.tensor(batch["emissions"], requires_grad=True)
        lengths = torch.from_numpy(np.maximum(batch["word_counts"], 1))
        torch_crf_nll(emissions, torch.from_numpy(batch["label_ids"]), lengths, transitions).mean().backward()
        transitions.grad = None
    return step


# ------------------------------------------------------------------ main
def build(name: str, args, data):
    if name in ("torch", "torch-reversed", "crf:torch"):
        try:
            import torch
        except ImportError as err:
            raise ImportError(f"PyTorch is not installed ({err})") from None
        torch.set_num_threads(args.threads)
        if name == "crf:torch":
            return torch_crf(args)
        return torch_tagger(args, packed=name == "torch")
    builders = {"paddle-ours": lambda: paddle_trainer(args),
                "paddle-ours-static": lambda: paddle_trainer(args, static_shapes=data),
                "paddle-stepped": lambda: paddle_trainer(args, "stepped"),
                "crf:paddle-ours": lambda: paddle_crf(args),
                "paddle-ours-crf-fallback": lambda: crf_fallback(paddle_trainer(args)),
                "crf:paddle-fallback": lambda: crf_fallback(paddle_crf(args))}
    if name not in builders:
        raise ValueError(f"unknown variant {name!r}; known: {VARIANTS}")
    return builders[name]()


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    data = make_batches(args, args.warmup + args.steps)
    steps, missing = {}, {}
    for name in args.variants.split(","):
        try:
            steps[name] = build(name, args, data)
        except ImportError as err:
            print(f"{name}: skipped ({err})", flush=True)
        except Exception as err:  # to_static refusing the model: a row that says why
            if name != "paddle-ours-static":
                raise
            missing[name] = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
            print(f"{name}: not available ({missing[name]})", flush=True)
    timed_data = data[args.warmup:]
    sentences = args.batch * len(timed_data)
    tokens = int(sum(b["word_counts"].sum() for b in timed_data))

    def progress(round_, name, times):
        print(f"round {round_} {name}: {tokens / sum(times[0]):.0f} tokens/s wall", flush=True)
    load_before = loadavg()
    rounds = alternate(steps, data, args.warmup, args.repeats, progress=progress)
    results = {name: summarize(times, sentences, tokens) for name, times in rounds.items()}
    table = report(args, results, missing, argv, (load_before, loadavg()), sentences, tokens)
    print(table)
    if args.write:
        update_marked(SECTION, "bench/tagger.py", table, args.write)
    return results, missing


def summarize(rounds, sentences: int, tokens: int) -> Dict[str, float]:
    """Median round (and the rounds' spread) of sentences/s and tokens/s, per wall and per CPU second;
    ``seconds``: the median round's wall seconds per step."""
    wall = [sum(w) for w, _ in rounds]
    cpu = [sum(c) for _, c in rounds]
    steps = len(rounds[0][0])
    return {"sent_wall": sentences / statistics.median(wall), "tok_wall": tokens / statistics.median(wall),
            "sent_cpu": sentences / statistics.median(cpu), "tok_cpu": tokens / statistics.median(cpu),
            "tok_low": tokens / max(wall), "tok_high": tokens / min(wall),
            "seconds": statistics.median(wall) / steps}


def report(args, results, missing, argv, load, sentences, tokens) -> str:
    try:
        import torch
        torch_line = f"PyTorch {torch.__version__}, torch.get_num_threads()={torch.get_num_threads()}"
    except ImportError:
        torch_line = "PyTorch not installed"
    nice = os.nice(0)
    command = f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS')} {f'nice -n {nice} ' if nice else ''}" \
              f"python bench/tagger.py {' '.join(argv)}".rstrip()
    lines = [f"Command: `{command}`", "",
             f"Machine: {machine()}; {torch_line}; --threads {args.threads}; "
             f"load average (1/5/15 min) {load[0]} before the timed rounds, {load[1]} after.", "",
             f"Model: characters embedded in {args.embedding} (vocab {args.vocab}), one biLSTM layer of "
             f"2 x {args.hidden // 2}, dropout {args.dropout}, {NUM_TAGS} tags, CRF NLL, Adam lr {args.lr}. "
             f"Batches of {args.batch} sentences, lengths uniform {args.min_len}..{args.max_len}, padded to the "
             f"batch's longest; {args.repeats} alternating rounds of {args.steps} timed steps ({sentences} sentences, "
             f"{tokens} characters per round) after {args.warmup} warm-up step(s).", "",
             "| variant | sentences/s (wall) | tokens/s (wall) | spread tokens/s (rounds) | sentences per CPU-s "
             "| tokens per CPU-s | vs torch (wall) | vs torch (CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = results.get("torch")
    for name, r in results.items():
        if name.startswith("crf:"):
            continue
        ratios = [f"{r[k] / base[k]:.2f}x" for k in ("tok_wall", "tok_cpu")] if base else ["n/a", "n/a"]
        lines.append(f"| {name} | {r['sent_wall']:.1f} | {r['tok_wall']:.0f} | {r['tok_low']:.0f}-{r['tok_high']:.0f} "
                     f"| {r['sent_cpu']:.1f} | {r['tok_cpu']:.0f} | {ratios[0]} | {ratios[1]} |")
    for name, reason in missing.items():
        lines.append(f"| {name} | not available: {reason.replace('|', '/')} | | | | | | |")
    shares = []
    for model, crf_row in (("paddle-ours", "crf:paddle-ours"), ("paddle-ours-crf-fallback", "crf:paddle-fallback"),
                           ("torch", "crf:torch")):
        crf, full = results.get(crf_row), results.get(model)
        if crf and full:
            shares.append(f"{model} {1000 * crf['seconds']:.1f} ms of a {1000 * full['seconds']:.1f} ms step "
                          f"({100 * crf['seconds'] / full['seconds']:.0f}%)")
    if shares:
        lines += ["", "CRF NLL forward + backward alone, on the same batches' shapes (median round, wall): "
                  + "; ".join(shares) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
