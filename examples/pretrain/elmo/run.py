"""Pretrain a small ELMo biLM (character-level Chinese) with paddlepalm.

    python examples/pretrain/elmo/run.py                        # generated sample corpus, about a minute
    MKL_NUM_THREADS=1 python examples/pretrain/elmo/run.py --data_root $PALM_DATA_ROOT --minutes 20 \\
        --save_to pretrain_models/elmo-zh-tiny                  # zh_raw_corpus, the shipped checkpoint
    MKL_NUM_THREADS=1 python examples/pretrain/elmo/run.py --corpus runs/i26/corpus --cpu_minutes 120 \\
        --save_steps 500 --work_dir runs/i26/elmo --save_to runs/i26/elmo/package   # issue 26, resumable

Every Chinese character is a token (``tokenizer='char'``), so the biLM lines up
with character-tagged NER sets (examples/elmo-transfer). Training stops after
``--epochs``, ``--max_steps`` or ``--cpu_minutes`` (alias ``--minutes``) of CPU time, whichever
comes first; the loss (sampled softmax) is printed as it falls and logged to
``WORK_DIR/bilm_loss.jsonl`` (step, epoch, loss, cpu_seconds, wall_seconds: the format of the
other pretraining examples), and the dev perplexity (full softmax) is printed at the end.

Corpora: a generated sample (default); ``--data_root``: zh_raw_corpus cut into sentences here;
``--corpus DIR``: a folder written by ``python -m paddlepalm.prepare.pretrain_corpus`` (its
``train.txt`` to train on, ``heldout.txt`` for the dev perplexity). The character vocabulary
(``<S>``, ``</S>``, ``<UNK>``, then the characters seen ``--min_freq`` times, up to
``--vocab_size``) is built from the training text into ``WORK_DIR/vocab.txt``: the corpus
folder's own ``vocab.txt`` is a BERT vocabulary (``[PAD]``, ``[CLS]``, ``##`` pieces), not an
ELMo one. ``--vocab FILE`` takes an existing ELMo vocabulary instead, e.g. the shipped
package's, so that data prepared for that package (``examples/configs/zh-ner.yaml`` copies its
``vocab.txt``) fits; ``--fold_width`` reads full-width letters and digits as half-width, as that
config reads the NER data (the vocabulary built from the text is counted without folding).

``--save_steps N`` checkpoints every N steps into ``WORK_DIR/checkpoints`` (the newest two kept);
the same command run again resumes exactly from the newest one, with the CPU time spent so far
carried over (``examples/pretrain/common.py``'s ``pretrain``, shared with the transformer
examples).

``--save_to DIR`` writes a fine-tuning package: ``DIR/ckpt`` (a paddlepalm
checkpoint of the backbone only, float16 to keep it small; ``Trainer.load_pretrain``
casts back to float32), ``DIR/elmo_config.json``, ``DIR/vocab.txt`` and
``DIR/README.md`` with the command and the final losses; ``ELMo.from_pretrained(DIR)`` loads it.
"""
import argparse
import copy
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import paddlepalm as palm  # noqa: E402  (first: sets threads and quiet flags before paddle loads)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

import common  # noqa: E402  (examples/pretrain/common.py: the resumable, CPU-budgeted loop)
from paddlepalm import checkpoint  # noqa: E402
from paddlepalm.utils.fileio import read_lines, read_text, write_json, write_text  # noqa: E402
from make_corpus_sample import make_sample  # noqa: E402
from prepare_corpus import prepare_corpus  # noqa: E402

ELMO_SPECIALS = ["<S>", "</S>", "<UNK>"]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=None, help="shared data root holding zh_raw_corpus/ "
                                                      "(default: a generated sample corpus)")
    p.add_argument("--corpus", default=None, help="a folder written by `python -m paddlepalm.prepare.pretrain_corpus`"
                   " (its train.txt and heldout.txt; instead of --data_root)")
    p.add_argument("--vocab", default=None, help="an ELMo vocabulary to use (<S>, </S>, <UNK> first) instead of "
                   "one built from the training text")
    p.add_argument("--fold_width", action="store_true", help="read full-width letters and digits as half-width "
                   "(as examples/configs/zh-ner.yaml reads the NER data)")
    p.add_argument("--work_dir", default=os.path.join(HERE, "outputs"))
    p.add_argument("--save_to", default=None, help="write the fine-tuning package (checkpoint, config, vocab) here")
    p.add_argument("--cpu_minutes", "--minutes", dest="cpu_minutes", type=float, default=20.0,
                   help="CPU-time budget of the training loop (this process's CPU minutes, compilation included; "
                        "a resumed run goes on counting from its checkpoint's)")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0: --epochs decides)")
    p.add_argument("--save_steps", type=int, default=0, help="checkpoint every N steps and resume from the newest "
                   "(a multiple of --print_steps; 0: no checkpoints)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_len", type=int, default=48, help="tokens per sentence with <S> and </S>; longer lines "
                                                           "are cut into pieces")
    p.add_argument("--vocab_size", type=int, default=5000)
    p.add_argument("--min_freq", type=int, default=2)
    p.add_argument("--cell_size", type=int, default=256)
    p.add_argument("--projection_size", type=int, default=128)
    p.add_argument("--num_samples", type=int, default=512, help="sampled-softmax candidates (0: full softmax)")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--dygraph", action="store_true", help="run the biLSTM eagerly (default: compiled with "
                                                           "paddle.jit.to_static, faster after a compilation per shape)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--print_steps", type=int, default=50)
    args = p.parse_args(argv)
    if args.corpus and args.data_root:
        p.error("give --corpus or --data_root, not both")
    return args


def elmo_config(args, vocab_size: int) -> dict:
    """The backbone config shipped with the checkpoint (``static_graph`` is a run-time choice, set apart)."""
    return {"input_type": "word", "vocab_size": vocab_size, "cell_size": args.cell_size,
            "projection_size": args.projection_size, "num_layers": 2, "cell_clip": 3.0, "proj_clip": 3.0,
            "residual": True, "dropout": args.dropout, "tokenizer": "char", "max_len": args.max_len}


def dev_perplexity(trainer: palm.Trainer, config: dict, vocab: str, args, dev_path: str) -> float:
    """Full-softmax perplexity on the dev sentences, through the predict API."""
    pred_backbone = palm.backbone.ELMo.from_config(config, phase="predict")
    pred_head = palm.head.BiLM(config["vocab_size"], args.projection_size, phase="predict")
    trainer.build_predict_forward(pred_backbone, pred_head)
    trainer.pred_model.set_state_dict(trainer.model.state_dict())
    reader = palm.reader.LMCorpusReader(vocab, args.max_len, tokenizer="char", seed=args.seed, phase="predict",
                                        fold_width=args.fold_width)
    reader.load_data(dev_path, batch_size=64)
    trainer.fit_reader(reader, phase="predict")
    trainer.predict(print_steps=0)
    return pred_head.perplexity


def save_package(backbone: palm.backbone.ELMo, config: dict, vocab: str, out_dir: str, summary: dict) -> None:
    """``ckpt/`` (float16 backbone), ``elmo_config.json``, ``vocab.txt`` and ``README.md``, each written
    atomically: what ``ELMo.from_pretrained(out_dir)`` reads."""
    small = copy.deepcopy(backbone)
    small.to(dtype="float16")
    holder = paddle.nn.Layer()
    holder.backbone = small
    os.makedirs(out_dir, exist_ok=True)
    checkpoint.save_checkpoint(os.path.join(out_dir, "ckpt"), holder, None, {"global_step": summary["steps"]})
    write_json(os.path.join(out_dir, "elmo_config.json"), config)
    write_text(os.path.join(out_dir, "vocab.txt"), read_text(vocab))
    write_text(os.path.join(out_dir, "README.md"), package_readme(summary))


def package_readme(summary: dict) -> str:
    lines = ["# Tiny Chinese ELMo (character tokens), pretrained with examples/pretrain/elmo", "",
             f"Command: `{summary['command']}`", ""]
    lines += [f"- {key}: {summary[key]}" for key in ("corpus", "train_sentences", "train_tokens", "oov_tokens",
                                                     "steps", "cpu_minutes", "wall_minutes", "first_loss",
                                                     "final_loss", "dev_perplexity", "fold_width")]
    lines += ["", f"Loss: sampled softmax ({summary['num_samples']} candidates), mean over the first and the last "
                  f"{summary['print_steps']} steps; perplexity: full softmax on the dev split. Load with "
                  "`palm.backbone.ELMo.from_pretrained('<this dir>')`, or `trainer.load_pretrain('<this dir>/ckpt')` "
                  "on an `ELMo.from_config(json.load(open('elmo_config.json')))` backbone."]
    return "\n".join(lines) + "\n"


def corpus_paths(args: argparse.Namespace) -> Tuple[Dict[str, str], str]:
    """The training and dev text files, and how to name the corpus."""
    if args.corpus:
        paths = {"train": os.path.join(args.corpus, "train.txt"), "dev": os.path.join(args.corpus, "heldout.txt")}
        missing = [p for p in paths.values() if not os.path.isfile(p)]
        if missing:
            raise SystemExit(f"--corpus {args.corpus}: {missing} not found (write the folder with "
                             "`python -m paddlepalm.prepare.pretrain_corpus`)")
        return paths, f"{args.corpus} (paddlepalm.prepare.pretrain_corpus: train.txt, dev: heldout.txt)"
    if args.data_root:
        paths = prepare_corpus(args.data_root, os.path.join(args.work_dir, "corpus"))
        return paths, "zh_raw_corpus (zhwiki sample + FewCLUE TNEWS/EPRSTMT unlabeled)"
    paths = {"train": make_sample(os.path.join(args.work_dir, "sample", "train.txt"), 3000, seed=1),
             "dev": make_sample(os.path.join(args.work_dir, "sample", "dev.txt"), 200, seed=2)}
    return paths, "generated sample"


def elmo_vocab(args: argparse.Namespace, train_path: str) -> List[str]:
    """``--vocab``'s tokens, or ``<S>``, ``</S>``, ``<UNK>`` and the training text's characters."""
    if args.vocab:
        tokens = read_lines(args.vocab)
        if tokens[:3] != ELMO_SPECIALS:
            raise SystemExit(f"--vocab {args.vocab}: not an ELMo vocabulary (its first lines are {tokens[:3]}, "
                             f"expected {ELMO_SPECIALS})")
        return tokens
    return palm.reader.build_vocab_from_corpus(train_path, split="char", min_freq=args.min_freq,
                                               max_size=args.vocab_size)


def write_run_vocab(args: argparse.Namespace, tokens: List[str]) -> str:
    """``WORK_DIR/vocab.txt``. Checkpoints there to resume from were trained on the vocabulary
    written beside them: another one (another corpus, ``--vocab`` or size) is an error rather than
    weights read with the wrong ids."""
    path = os.path.join(args.work_dir, "vocab.txt")
    saved = os.path.join(args.work_dir, "checkpoints")
    resuming = args.save_steps and os.path.isdir(saved) and checkpoint.latest_checkpoint(saved) is not None
    if resuming and os.path.isfile(path) and read_lines(path) != tokens:
        raise SystemExit(f"{path} differs from this run's vocabulary, and {args.work_dir}/checkpoints were trained "
                         "with it: use the same corpus and vocabulary options, or another --work_dir")
    palm.reader.write_word_vocab(tokens, path)
    return path


def build_trainer(args: argparse.Namespace, config: dict, vocab_size: int,
                  reader: palm.reader.LMCorpusReader) -> Tuple[palm.Trainer, palm.backbone.ELMo]:
    backbone = palm.backbone.ELMo.from_config(dict(config, static_graph=not args.dygraph))
    head = palm.head.BiLM(vocab_size, args.projection_size, num_samples=min(args.num_samples, vocab_size - 1),
                          seed=args.seed)
    trainer = palm.Trainer("bilm")
    model = trainer.build_forward(backbone, head)
    trainer.build_backward(palm.optimizer.Adam(model, args.lr))
    trainer.fit_reader(reader)
    return trainer, backbone


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    paddle.seed(args.seed)
    np.random.seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    paths, corpus = corpus_paths(args)
    tokens = elmo_vocab(args, paths["train"])
    vocab = write_run_vocab(args, tokens)
    config = elmo_config(args, len(tokens))

    reader = palm.reader.LMCorpusReader(vocab, args.max_len, tokenizer="char", seed=args.seed,
                                        fold_width=args.fold_width)
    reader.load_data(paths["train"], batch_size=args.batch_size, num_epochs=args.epochs)
    stats = reader.stats()
    print(f"corpus: {stats} (out-of-vocabulary characters become <UNK>; long lines are cut into pieces)",
          flush=True)
    trainer, backbone = build_trainer(args, config, len(tokens), reader)

    max_steps = int(args.epochs * reader.steps_per_epoch)
    if args.max_steps:
        max_steps = min(max_steps, args.max_steps)
    history = common.pretrain(trainer, args.cpu_minutes, max_steps, args.print_steps,
                              os.path.join(args.work_dir, "bilm_loss.jsonl"), args.save_steps)
    if not history:
        raise SystemExit("no training step was run (--max_steps, --epochs or --cpu_minutes is 0)")
    ppl = dev_perplexity(trainer, config, vocab, args, paths["dev"])
    summary = {"command": "python " + " ".join([os.path.relpath(__file__)] + list(argv or sys.argv[1:])),
               "corpus": corpus, "train_sentences": reader.num_examples, "train_tokens": stats["tokens"],
               "oov_tokens": stats["oov_tokens"], "steps": history[-1]["step"],
               "cpu_minutes": round(history[-1]["cpu_seconds"] / 60, 1),
               "wall_minutes": round(history[-1]["wall_seconds"] / 60, 1),
               "first_loss": round(history[0]["loss"], 3), "final_loss": round(history[-1]["loss"], 3),
               "dev_perplexity": round(ppl, 2), "fold_width": args.fold_width, "num_samples": args.num_samples,
               "print_steps": args.print_steps}
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    if args.save_to:
        save_package(backbone, config, vocab, args.save_to, summary)
        print(f"fine-tuning package written to {args.save_to}", flush=True)
    return summary


if __name__ == "__main__":
    main()
