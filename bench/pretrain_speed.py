"""Pretraining step speed (issue 26): our ELECTRA and masked-LM steps against Hugging Face PyTorch.

    MKL_NUM_THREADS=1 python bench/pretrain_speed.py --corpus /work/runs/i26/corpus --steps 6 --warmup 2 --repeats 3
    python bench/pretrain_speed.py                 # generated sample corpus (examples/pretrain/common.py)
    python bench/pretrain_speed.py --smoke         # seconds: hidden 32, 1 layer, length 32, batch 4, 2 steps

"Ours" is exactly the step of examples/pretrain/electra/run.py (``--whole_word_mask --pack_documents``):
``MaskedCorpusReader(vocab, max_len, lang="cn", seed=1, whole_word_mask=True, pack_documents=True)``,
``ELECTRA.from_config`` (hidden 256, embedding 128, 4 layers, 4 heads, intermediate 1024, gelu,
dropout 0.1) and ``ReplacedTokenDetection.from_config`` (generator a quarter wide: hidden 64, 1 head,
sharing the backbone's token embeddings; loss MLM + 50 x RTD) or ``MaskLM(hidden, vocab, "gelu",
embedding_size=128)``; ``palm.Trainer`` with ``AdamW`` (weight decay 0.01 off bias and layer norm,
epsilon 1e-6, global-norm clipping at 1.0) under ``WarmupSchedualer``; per step
``trainer.train_one_step(trainer.get_one_batch())``. Batch 32, length 128.

PyTorch (transformers, optional bench dependencies): ``ElectraForMaskedLM`` as the generator (hidden
64, 1 head, intermediate 256, 4 layers, embedding 128; its word, position and type embeddings are the
discriminator's, as in the ELECTRA paper) and ``ElectraForPreTraining`` as the discriminator; the
generator's MLM head runs at the masked positions only (as ours does), replacements are sampled
from its softmax without gradient, the discriminator loss is the mean BCE over non-padding tokens
(``ElectraForPreTraining(labels=...)``), loss = MLM + 50 x RTD. Masked LM: ``ElectraForMaskedLM`` at
the discriminator's size, its head at the masked positions. ``torch.optim.AdamW`` with the same
decay groups, epsilon and schedule, ``clip_grad_norm_(1.0)``; fp32, and ``torch.autocast('cpu',
torch.bfloat16)``. ``torch.set_num_threads(MKL_NUM_THREADS)`` (default 1, as pretraining runs).

Batches: the main process reads the corpus with our reader once (``--corpus``: the first
``--corpus_lines`` lines of its train.txt, whole documents, and its vocab.txt; without it a
generated sample and a vocabulary built from it) and stores the batches of the first epoch. Our
run reads the same corpus with its own reader inside the step, as run.py does, so our step time
includes batch production (masking, collation; the column "reader ms") and checks that it saw the
stored batches; the PyTorch runs start from the stored numpy batches and count their conversion
to tensors (``torch.from_numpy``) in the step. Every run is a fresh subprocess; runs alternate
(ours fp32, torch fp32, torch bf16, the diagnostic runs of ours, ours, ...) per objective; each times ``--warmup`` untimed steps
then ``--steps`` timed ones; a run's figure is its median step, the table's the median over
``--repeats`` runs (the spread: lowest and highest run). tokens/s counts batch x max_len positions.
paddlepalm flushes denormal floats to zero when imported (paddlepalm/utils/denormals.py) and runs
GELU and layer normalization in its own operators (paddlepalm/utils/fused_gelu.py, fused_layer_norm.py).
Two diagnostic rows of ours (``--no_diagnostics`` leaves them out) switch one of these off:
"denormals kept" (``PALM_FLUSH_DENORMALS=0``: Paddle's CPU matmuls slow down several times on the
denormal values that appear in our gradients) and "Paddle's GELU and layer-norm gradient"
(``PADDLEPALM_FUSED_GELU=0 PADDLEPALM_FUSED_LAYER_NORM=0``). The last columns: ours' steps/s over the
row's, and the row's CPU seconds a step over ours'. PyTorch runs with its default (denormals kept).
Prints the markdown table, then one JSON line; logs go to stderr; writes only temporary files.
"""
import argparse
import importlib.util
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
PRETRAIN = os.path.join(ROOT, "examples", "pretrain")
SECTION = "## Pretraining step: paddlepalm vs PyTorch (bench/pretrain_speed.py, issue 26)"
RUNS = [("ours fp32", "ours", False), ("torch fp32", "torch", False), ("torch bf16", "torch", True),
        ("ours fp32, denormals kept (diagnostic)", "ours-keep", False),
        ("ours fp32, Paddle's GELU and layer-norm gradient (diagnostic)", "ours-kernels", False)]
# what each diagnostic run of ours changes in its worker's environment
DIAGNOSTIC_ENV = {"ours-keep": {"PALM_FLUSH_DENORMALS": "0"},
                  "ours-kernels": {"PADDLEPALM_FUSED_GELU": "0", "PADDLEPALM_FUSED_LAYER_NORM": "0"}}
BATCH_KEYS = ("token_ids", "position_ids", "segment_ids", "input_mask", "mask_pos", "mask_label")
RTD_WEIGHT, WEIGHT_DECAY, EPSILON, CLIP = 50.0, 0.01, 1e-6, 1.0
MAX_POSITIONS, TYPE_VOCAB = 512, 2  # common.backbone_config's (checked by our worker)


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def threads() -> int:
    return int(os.environ.get("MKL_NUM_THREADS") or 1)


def shape(args) -> SimpleNamespace:
    """The model and batch of this run (run.py's argument names, for common.backbone_config)."""
    return SimpleNamespace(hidden=args.hidden, embedding_size=args.embedding_size, layers=args.layers,
                           heads=args.heads, max_len=args.max_len, batch_size=args.batch_size)


def vocab_size_of(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)


def backbone_config(args, vocab_size: int) -> dict:
    sys.path.insert(0, PRETRAIN)
    import common
    return {**common.backbone_config(shape(args), "electra", vocab_size), "generator_size": args.generator_size}


# ---------------------------------------------------------------------------- corpus and batches
def corpus_slice(src_dir: str, lines: int, work: str) -> tuple:
    """(train.txt, vocab.txt) in ``work``: the first ``lines`` lines of ``src_dir/train.txt``, then on to
    the end of that document (its blank line), and ``src_dir/vocab.txt``."""
    train = os.path.join(work, "train.txt")
    with open(os.path.join(src_dir, "train.txt"), encoding="utf-8") as src, \
            open(train, "w", encoding="utf-8") as dst:
        for number, line in enumerate(src):
            dst.write(line)
            if number + 1 >= lines and not line.strip():
                break
    return train, os.path.join(src_dir, "vocab.txt")


def sample_corpus(args, work: str) -> tuple:
    sys.path.insert(0, PRETRAIN)
    import common
    needed = (args.warmup + args.steps) * args.batch_size * args.max_len  # tokens; ~60 per document
    train = common.make_sample_corpus(os.path.join(work, "train.txt"), documents=max(400, needed // 40))
    return train, common.corpus_vocab(train, os.path.join(work, "vocab.txt"), 5000)


def make_reader(args, vocab: str, train: str):
    import paddlepalm as palm
    reader = palm.reader.MaskedCorpusReader(vocab, args.max_len, lang="cn", seed=1, whole_word_mask=True,
                                            pack_documents=True)
    reader.load_data(train, batch_size=args.batch_size)
    return reader


def store_batches(args, vocab: str, train: str, path: str) -> dict:
    """The first ``warmup + steps`` training batches of our reader, pickled to ``path``; their stats."""
    reader = make_reader(args, vocab, train)
    needed = args.warmup + args.steps
    if reader.steps_per_epoch < needed:
        raise SystemExit(f"the corpus gives {reader.steps_per_epoch} batches an epoch, {needed} are needed: "
                         "raise --corpus_lines")
    batches = []
    for batch in reader.iter_epoch(0):
        batches.append({k: batch[k].copy() for k in BATCH_KEYS})
        if len(batches) == needed:
            break
    with open(path, "wb") as f:
        pickle.dump(batches, f)
    filled = sum(float(b["input_mask"].sum()) for b in batches) / (needed * args.batch_size * args.max_len)
    masked = sum(len(b["mask_pos"]) for b in batches) / needed
    return {"sequences_per_epoch": reader.num_examples, "fill": round(filled, 3), "masked_per_batch": round(masked, 1)}


# ------------------------------------------------------------------------------------ workers
def ours_worker(args) -> dict:
    """run.py's model, reader and step; per-step wall, CPU and reader seconds (denormals flushed,
    paddlepalm's default, unless the main process set ``PALM_FLUSH_DENORMALS=0``)."""
    import numpy as np
    import paddlepalm as palm  # before paddle: sets MKL flags
    import paddle
    with open(args.batches, "rb") as f:
        stored = pickle.load(f)
    paddle.seed(1)
    vocab_size = vocab_size_of(args.vocab)
    config = backbone_config(args, vocab_size)
    assert (config["max_position_embeddings"], config["type_vocab_size"]) == (MAX_POSITIONS, TYPE_VOCAB), config
    reader = make_reader(args, args.vocab, args.train)
    backbone = palm.backbone.ELECTRA.from_config(config)
    if args.objective == "electra":
        head = palm.head.ReplacedTokenDetection.from_config(config)
        assert (head.generator.config.hidden_size, head.generator.config.num_attention_heads) == \
            (args.generator_hidden, args.generator_heads), "the torch generator is built with this shape"
    else:
        head = palm.head.MaskLM(args.hidden, vocab_size, "gelu", embedding_size=args.embedding_size)
    trainer = palm.Trainer(args.objective)
    loss_var = trainer.build_forward(backbone, head)
    trainer.build_backward(palm.optimizer.AdamW(loss_var, args.lr, palm.lr_sched.WarmupSchedualer(args.warmup_lr)))
    trainer.fit_reader(reader)
    pooler = sum(int(p.size) for name, p in backbone.named_parameters() if name.startswith("pooler."))
    total = sum(int(p.size) for p in backbone.parameters()) + sum(int(p.size) for p in head.parameters())
    # the generator's own position and type tables (only the token table is shared with the backbone)
    generator_tables = sum(int(p.size) for name, p in head.named_parameters()
                           if name.endswith(("position_embeddings.weight", "token_type_embeddings.weight")))
    wall, cpu, reading, losses = [], [], [], []
    for number, expected in enumerate(stored):
        start, cpu_start = time.perf_counter(), time.process_time()
        batch = trainer.get_one_batch()
        read = time.perf_counter()
        loss = trainer.train_one_step(batch)["loss"]
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        reading.append(read - start)
        losses.append(loss)
        if not all(np.array_equal(batch[k], expected[k]) for k in BATCH_KEYS):
            raise RuntimeError(f"step {number}: the trainer's batch differs from the stored one")
    return {"wall": wall[args.warmup:], "cpu": cpu[args.warmup:], "reader": reading[args.warmup:],
            "losses": losses, "params": total, "params_in_loss": total - pooler, "generator_tables": generator_tables}


def torch_worker(args) -> dict:
    """The same steps in PyTorch + transformers, from the stored batches."""
    import torch
    import torch.nn.functional as F
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining
    torch.set_num_threads(threads())
    torch.manual_seed(1)
    with open(args.batches, "rb") as f:
        stored = pickle.load(f)
    vocab_size = vocab_size_of(args.vocab)

    def electra_config(hidden: int, heads: int) -> ElectraConfig:
        return ElectraConfig(vocab_size=vocab_size, embedding_size=args.embedding_size, hidden_size=hidden,
                             num_hidden_layers=args.layers, num_attention_heads=heads, intermediate_size=4 * hidden,
                             hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                             max_position_embeddings=MAX_POSITIONS, type_vocab_size=TYPE_VOCAB,
                             initializer_range=0.02,
                             layer_norm_eps=1e-12)
    if args.objective == "electra":
        disc = ElectraForPreTraining(electra_config(args.hidden, args.heads))
        generator = ElectraForMaskedLM(electra_config(args.generator_hidden, args.generator_heads))
        shared, own = disc.electra.embeddings, generator.electra.embeddings
        own.word_embeddings, own.position_embeddings = shared.word_embeddings, shared.position_embeddings
        own.token_type_embeddings = shared.token_type_embeddings
        generator.generator_lm_head.weight = shared.word_embeddings.weight  # the MLM output layer, tied
        modules = torch.nn.ModuleList([disc, generator])
    else:
        mlm = ElectraForMaskedLM(electra_config(args.hidden, args.heads))
        modules = torch.nn.ModuleList([mlm])
    modules.train()
    params = dict((id(p), (n, p)) for n, p in modules.named_parameters())  # tied ones once
    no_decay = [p for n, p in params.values() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in params.values() if not (n.endswith("bias") or "LayerNorm" in n)]
    everything = decay + no_decay
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, eps=EPSILON)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / args.warmup_lr if step < args.warmup_lr else 1.0)

    def mlm_logits(model, sequence, mask_pos):
        picked = sequence.reshape(-1, sequence.shape[-1])[mask_pos]
        return model.generator_lm_head(model.generator_predictions(picked)).float()

    def loss_of(b):
        ids, mask = b["token_ids"], b["input_mask"].squeeze(-1)
        common = {"attention_mask": mask, "token_type_ids": b["segment_ids"], "position_ids": b["position_ids"]}
        if args.objective == "mlm":
            sequence = mlm.electra(input_ids=ids, **common)[0]
            return F.cross_entropy(mlm_logits(mlm, sequence, b["mask_pos"]), b["mask_label"])
        sequence = generator.electra(input_ids=ids, **common)[0]
        logits = mlm_logits(generator, sequence, b["mask_pos"])
        generator_loss = F.cross_entropy(logits, b["mask_label"])
        with torch.no_grad():
            sampled = torch.multinomial(F.softmax(logits, dim=-1), 1).squeeze(-1)
            corrupted = ids.reshape(-1).clone()
            corrupted[b["mask_pos"]] = sampled
            labels = torch.zeros_like(corrupted)
            labels[b["mask_pos"]] = (sampled != b["mask_label"]).long()
        rtd_loss = disc(input_ids=corrupted.view_as(ids), labels=labels.view_as(ids), **common).loss
        return generator_loss + RTD_WEIGHT * rtd_loss.float()

    wall, cpu, losses = [], [], []
    for arrays in stored:
        start, cpu_start = time.perf_counter(), time.process_time()
        b = {k: torch.from_numpy(v) for k, v in arrays.items()}
        b["input_mask"] = b["input_mask"].long()  # ours: float 0/1; HF takes an integer mask
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = loss_of(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(everything, CLIP)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return {"wall": wall[args.warmup:], "cpu": cpu[args.warmup:], "losses": losses,
            "params": sum(p.numel() for _, p in params.values()), "params_in_loss": sum(p.numel() for _, p in params.values()),
            "torch": torch.__version__, "transformers": __import__("transformers").__version__}


# ---------------------------------------------------------------------------------------- main
def missing_torch() -> list:
    return [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]


def worker_command(args, system: str, objective: str, bf16: bool) -> list:
    keep = ["--hidden", "--embedding_size", "--layers", "--heads", "--max_len", "--batch_size", "--steps",
            "--warmup", "--generator_size", "--generator_hidden", "--generator_heads", "--lr", "--warmup_lr"]
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", system.split("-")[0], "--objective", objective,
           "--batches", args.batches, "--vocab", args.vocab, "--train", args.train]
    for flag in keep:
        cmd += [flag, str(getattr(args, flag[2:]))]
    return cmd + (["--bf16"] if bf16 else [])


def run_worker(args, system: str, objective: str, bf16: bool) -> dict:
    env = dict(os.environ, MKL_NUM_THREADS=str(threads()),
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    env.update(DIAGNOSTIC_ENV.get(system, {}))
    out = subprocess.run(worker_command(args, system, objective, bf16), capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{system} {objective} worker failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.processor() or "unknown"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    return f"{name}; {' '.join(wanted) or 'no avx2/avx512/amx'}"


def summarize(results: list, tokens: int) -> dict:
    """Per run its median step; over runs the median (and lowest, highest) of those."""
    per_run = [statistics.median(r["wall"]) for r in results]
    step = statistics.median(per_run)
    out = {"step_s": step, "steps_per_s": 1 / step, "tokens_per_s": tokens / step,
           "cpu_s": statistics.median([statistics.median(r["cpu"]) for r in results]),
           "runs_steps_per_s": [round(1 / s, 3) for s in per_run]}
    if "reader" in results[0]:
        out["reader_s"] = statistics.median([statistics.median(r["reader"]) for r in results])
    return out


def report(args, table: dict, params: dict, stats: dict, versions: dict, command: str, load: tuple) -> str:
    env = f"MKL_NUM_THREADS={threads()}"
    lines = [f"Command: `{env} {command}`", "",
             f"Machine: {cpu_flags()}; {os.cpu_count()} cores; load average before {load[0]}, after {load[1]} "
             f"(uptime); torch {versions.get('torch', '-')}, transformers {versions.get('transformers', '-')}.", "",
             f"Shape: hidden {args.hidden}, embedding {args.embedding_size}, {args.layers} layers, {args.heads} heads, "
             f"intermediate {4 * args.hidden}, generator {args.generator_size} wide; batch {args.batch_size} x "
             f"length {args.max_len}; corpus {args.corpus or 'generated sample'}"
             + (f" (first {args.corpus_lines} lines)" if args.corpus else "")
             + f": vocabulary {vocab_size_of(args.vocab)}, {stats['sequences_per_epoch']} packed sequences, "
             f"{100 * stats['fill']:.0f}% of positions filled, {stats['masked_per_batch']:.0f} masked tokens a batch. "
             f"{args.repeats} run(s) of each, alternating; {args.warmup} warm-up + {args.steps} timed steps a run.", "",
             "| objective | run | steps/s | tokens/s | ms/step | CPU ms/step | reader ms | runs (steps/s) "
             "| ours / this | ours per CPU-s / this |", "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for objective, rows in table.items():
        ours = rows.get(RUNS[0][0])
        for name, row in rows.items():
            ratios = ([f"{ours['steps_per_s'] / row['steps_per_s']:.2f}x", f"{row['cpu_s'] / ours['cpu_s']:.2f}x"]
                      if ours else ["n/a", "n/a"])
            reader = f"{1000 * row['reader_s']:.1f}" if "reader_s" in row else "-"
            lines.append(f"| {objective} | {name} | {row['steps_per_s']:.2f} | {row['tokens_per_s']:.0f} | "
                         f"{1000 * row['step_s']:.0f} | {1000 * row['cpu_s']:.0f} | {reader} | "
                         f"{', '.join(f'{v:.2f}' for v in row['runs_steps_per_s'])} | {' | '.join(ratios)} |")
    lines.append("")
    for objective, counts in params.items():
        text = "; ".join(f"{name} {c['params']:,}" + (f" ({c['params_in_loss']:,} without the unused pooler)"
                                                      if c["params"] != c["params_in_loss"] else "")
                         for name, c in counts.items())
        own = counts.get("ours", {}).get("generator_tables")
        if own:
            text += (f"; ours counts {own:,} in the generator's own position and type tables, which the torch "
                     "generator shares with the discriminator (ours shares only the token table)")
        lines.append(f"Parameters ({objective}): {text}.")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=None, help="a folder with train.txt and vocab.txt (default: a generated sample)")
    p.add_argument("--corpus_lines", type=int, default=8000, help="lines of --corpus's train.txt to read "
                   "(whole documents; reading the whole corpus with jieba takes minutes a run)")
    p.add_argument("--objectives", default="electra,mlm")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embedding_size", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max_len", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--generator_size", type=float, default=0.25)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup_lr", type=int, default=300, help="learning-rate warm-up steps (the schedule's)")
    p.add_argument("--smoke", action="store_true", help="seconds: hidden 32, embedding 16, 1 layer, 2 heads, "
                   "length 32, batch 4, 1 warm-up + 2 timed steps, 1 run")
    # worker side
    p.add_argument("--worker", choices=["ours", "torch"])
    p.add_argument("--no_diagnostics", "--no_keep_row", action="store_true",
                   help="leave out the diagnostic rows (denormals kept; Paddle's GELU and layer-norm gradient)")
    p.add_argument("--objective", choices=["electra", "mlm"])
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--generator_hidden", type=int, help="(torch worker) set by the main process from ours")
    p.add_argument("--generator_heads", type=int)
    p.add_argument("--batches")
    p.add_argument("--vocab")
    p.add_argument("--train")
    args = p.parse_args(argv)
    if args.smoke:
        args.hidden, args.embedding_size, args.layers, args.heads = 32, 16, 1, 2
        args.max_len, args.batch_size, args.steps, args.warmup, args.repeats = 32, 4, 2, 1, 1
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        result = torch_worker(args) if args.worker == "torch" else ours_worker(args)
        print(json.dumps(result))
        return result
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    work = tempfile.mkdtemp(prefix="palm-bench-pretrain-speed.")
    try:
        if args.corpus:
            args.train, args.vocab = corpus_slice(args.corpus, args.corpus_lines, work)
        else:
            args.train, args.vocab = sample_corpus(args, work)
        args.batches = os.path.join(work, "batches.pkl")
        from paddlepalm.head.rtd import generator_shape  # the generator ReplacedTokenDetection builds
        args.generator_hidden, args.generator_heads = generator_shape(args.hidden, args.heads, args.generator_size)
        stats = store_batches(args, args.vocab, args.train, args.batches)
        log(f"batches stored: {stats}")
        missing = missing_torch()
        runs = []
        for name, system, bf16 in RUNS:
            if system in DIAGNOSTIC_ENV and args.no_diagnostics:
                continue
            if system == "torch" and missing:
                for objective in args.objectives.split(","):
                    print(f"{objective} {name}: skipped (no torch: {' and '.join(missing)} not installed)", flush=True)
            else:
                runs.append((name, system, bf16))
        chosen = [(o, run) for o in args.objectives.split(",") for run in runs
                  if not (args.smoke and o != "electra" and (run[2] or run[1] in DIAGNOSTIC_ENV))]  # --smoke: once
        results = {(o, run[0]): [] for o, run in chosen}
        versions, params = {}, {}
        for repeat in range(args.repeats):
            for objective, (name, system, bf16) in chosen:
                result = run_worker(args, system, objective, bf16)
                results[(objective, name)].append(result)
                versions.update({k: v for k, v in result.items() if k in ("torch", "transformers")})
                params.setdefault(objective, {})[system.split("-")[0]] = {
                    k: result[k] for k in ("params", "params_in_loss", "generator_tables") if k in result}
                log(f"run {repeat + 1} {objective} {name}: {1 / statistics.median(result['wall']):.2f} steps/s, "
                    f"losses {[round(x, 3) for x in result['losses']]}")
        tokens = args.batch_size * args.max_len
        table = {}
        for (objective, name), rs in results.items():
            table.setdefault(objective, {})[name] = summarize(rs, tokens)
        load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
        command = "python bench/pretrain_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
        print(report(args, table, params, stats, versions, command, (load_before, load_after)), flush=True)
        for objective, counts in params.items():
            if "torch" in counts and "ours" in counts:
                ours = counts["ours"]["params_in_loss"] - counts["ours"].get("generator_tables", 0)
                theirs = counts["torch"]["params_in_loss"]
                log(f"{objective}: parameters in the loss (ours less the generator's own position and type "
                    f"tables) ours {ours:,}, torch {theirs:,} ({100 * (ours - theirs) / theirs:+.2f}%)")
        summary = {"table": table, "params": params, "batches": stats, "versions": versions,
                   "load_average": [load_before, load_after], "cpu": cpu_flags(), "threads": threads()}
        print(json.dumps(summary), flush=True)
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
