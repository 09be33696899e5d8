"""Training steps with denormal floats flushed to zero and kept, side by side in one process.

    MKL_NUM_THREADS=1 python bench/denormals.py                  # the three workloads below
    python bench/denormals.py --smoke                            # seconds: tiny shapes, 1 step, 1 round

paddlepalm flushes denormals (FTZ + DAZ) when imported (paddlepalm/utils/denormals.py). The
register is per thread, so with one MKL thread every computation of a step runs under the setting
of the main thread, and this script switches it before each step of a variant: ``flush`` and
``keep`` train the *same* model in alternating rounds (bench/timing.py), so both are timed at the
same weights. ``--trained_steps`` updates run first (flushing) so the weights are past their
initialisation, where denormals accumulate (attention probabilities of peaked softmaxes, Adam
moments of rows that no longer get gradient).

Workloads (public API, paddlepalm's training step: ``Trainer.train_one_step``):
  mlm     examples/pretrain/electra/run.py --objective mlm at the issue-26 size: ELECTRA backbone,
          hidden 256, embedding 128, 4 layers, 4 heads, + MaskLM tied to the embeddings, AdamW;
          packed 128-token sequences of a generated corpus (whole-word masking), batch 32
  tagger  bench/tagger.py's paddle-ours (BiLSTM 2 x 128 + CRF, batch 32, lengths 5..89)
  bilm    bench/elmo_lm.py's paddle-ours-fused-full (ELMo biLM, cell 512, projection 256, vocab 20000,
          full softmax, batch 64 x 50)
"""
import argparse
import os
import statistics
import sys
import tempfile
from types import SimpleNamespace

os.environ.setdefault("MKL_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "examples", "pretrain"))

import paddlepalm as palm  # noqa: E402  (sets the register: flushing)
import paddle  # noqa: E402

from paddlepalm.utils import denormals  # noqa: E402
import timing  # noqa: E402

WORKLOADS = ("mlm", "tagger", "bilm")


def mlm_step(args, work: str):
    import common

    corpus = common.make_sample_corpus(os.path.join(work, "corpus.txt"), documents=3000 if not args.smoke else 200)
    vocab = common.corpus_vocab(corpus, os.path.join(work, "vocab.txt"), 5000)
    size = SimpleNamespace(hidden=32, embedding_size=16, layers=1, heads=2) if args.smoke else \
        SimpleNamespace(hidden=256, embedding_size=128, layers=4, heads=4)
    vocab_size = len(open(vocab, encoding="utf-8").read().split("\n")) - 1
    config = common.backbone_config(size, "electra", vocab_size)
    paddle.seed(1)
    reader = palm.reader.MaskedCorpusReader(vocab, 32 if args.smoke else 128, lang="cn", seed=1,
                                            whole_word_mask=True, pack_documents=True)
    reader.load_data(corpus, batch_size=4 if args.smoke else 32)
    trainer = palm.Trainer("mlm")
    loss = trainer.build_forward(palm.backbone.ELECTRA.from_config(config),
                                 palm.head.MaskLM(size.hidden, vocab_size, "gelu", embedding_size=size.embedding_size))
    trainer.build_backward(palm.optimizer.AdamW(loss, 5e-4, palm.lr_sched.WarmupSchedualer(10)))
    trainer.fit_reader(reader)
    batches = [trainer.get_one_batch() for _ in range(args.steps + args.warmup + args.trained_steps)]
    tokens = int(sum((b["token_ids"] != 0).sum() for b in batches)) / len(batches)
    return (lambda batch: trainer.train_one_step(batch)), batches, tokens


def tagger_step(args):
    import tagger

    targs = tagger.parse_args(["--quick"] if args.smoke else [])
    batches = tagger.make_batches(targs, args.steps + args.warmup + args.trained_steps)
    tokens = sum(int(b["seq_lens"].sum()) if "seq_lens" in b else b["token_ids"].size for b in batches) / len(batches)
    return tagger.paddle_trainer(targs), batches, tokens


def bilm_step(args):
    import elmo_lm

    eargs = elmo_lm.parse_args(["--quick"] if args.smoke else [])
    batches = elmo_lm.batches(eargs, args.steps + args.warmup + args.trained_steps)
    return elmo_lm.paddle_ours(eargs, 0), batches, eargs.batch * eargs.length


def switched(step, flush: bool):
    def run(batch):
        denormals.set_flush_denormals(flush)
        step(batch)
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--trained_steps", type=int, default=30, help="updates before the timing (flushing)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.trained_steps, args.steps, args.warmup, args.repeats = 1, 1, 1, 1
    if not denormals.set_flush_denormals(True):
        print(f"denormals: skipped (the register cannot be set: {denormals.status()['reason']})", flush=True)
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.workloads:
            step, batches, tokens = {"mlm": lambda: mlm_step(args, work), "tagger": lambda: tagger_step(args),
                                     "bilm": lambda: bilm_step(args)}[name]()
            for batch in batches[:args.trained_steps]:
                step(batch)
            rounds = timing.alternate({"flush": switched(step, True), "keep": switched(step, False)},
                                      batches[args.trained_steps:], args.warmup, args.repeats,
                                      progress=lambda r, v, t: print(f"{name} round {r} {v}: "
                                                                     f"{sum(t[1]) / len(t[1]):.3f} CPU-s/step",
                                                                     file=sys.stderr, flush=True))
            cpu = {v: statistics.median(sum(t[1]) / len(t[1]) for t in rs) for v, rs in rounds.items()}
            rows.append((name, cpu["flush"], cpu["keep"], tokens))
    denormals.set_flush_denormals(True)
    print(f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS')}; {args.trained_steps} updates first; median of "
          f"{args.repeats} rounds of {args.steps} steps; CPU seconds per step of this process")
    print("| workload | flush (s/step) | keep (s/step) | keep / flush |\n|---|---|---|---|")
    for name, flush, keep, _ in rows:
        print(f"| {name} | {flush:.3f} | {keep:.3f} | {keep / flush:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
