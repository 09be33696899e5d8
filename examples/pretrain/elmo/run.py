"""Pretrain a small ELMo biLM (character-level Chinese) with paddlepalm.

    python examples/pretrain/elmo/run.py                        # generated sample corpus, about a minute
    MKL_NUM_THREADS=1 python examples/pretrain/elmo/run.py --data_root $PALM_DATA_ROOT --minutes 20 \\
        --save_to pretrain_models/elmo-zh-tiny                  # zh_raw_corpus, the shipped checkpoint

Every Chinese character is a token (``tokenizer='char'``), so the biLM lines up
with character-tagged NER sets (examples/elmo-transfer). Training stops after
``--epochs`` or ``--minutes`` of CPU time, whichever comes first; the loss (sampled softmax)
is printed as it falls, and the dev perplexity (full softmax) at the end.

``--save_to DIR`` writes a fine-tuning package: ``DIR/ckpt`` (a paddlepalm
checkpoint of the backbone only, float16 to keep it small; ``Trainer.load_pretrain``
casts back to float32), ``DIR/elmo_config.json``, ``DIR/vocab.txt`` and
``DIR/README.md`` with the command and the final losses.
"""
import argparse
import copy
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import paddlepalm as palm  # noqa: E402  (first: sets threads and quiet flags before paddle loads)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from paddlepalm import checkpoint  # noqa: E402
from make_corpus_sample import make_sample  # noqa: E402
from prepare_corpus import prepare_corpus  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=None, help="shared data root holding zh_raw_corpus/ "
                                                      "(default: a generated sample corpus)")
    p.add_argument("--work_dir", default=os.path.join(HERE, "outputs"))
    p.add_argument("--save_to", default=None, help="write the fine-tuning package (checkpoint, config, vocab) here")
    p.add_argument("--minutes", type=float, default=20.0, help="CPU-time budget of the training loop (this "
                                                               "process's CPU minutes, compilation included)")
    p.add_argument("--epochs", type=float, default=3)
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
    return p.parse_args(argv)


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
    reader = palm.reader.LMCorpusReader(vocab, args.max_len, tokenizer="char", seed=args.seed, phase="predict")
    reader.load_data(dev_path, batch_size=64)
    trainer.fit_reader(reader, phase="predict")
    trainer.predict(print_steps=0)
    return pred_head.perplexity


def save_package(backbone: palm.backbone.ELMo, config: dict, vocab: str, out_dir: str, summary: dict) -> None:
    small = copy.deepcopy(backbone)
    small.to(dtype="float16")
    holder = paddle.nn.Layer()
    holder.backbone = small
    os.makedirs(out_dir, exist_ok=True)
    checkpoint.save_checkpoint(os.path.join(out_dir, "ckpt"), holder, None, {"global_step": summary["steps"]})
    with open(os.path.join(out_dir, "elmo_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    with open(vocab, encoding="utf-8") as src, open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as dst:
        dst.write(src.read())
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write("# Tiny Chinese ELMo (character tokens), pretrained with examples/pretrain/elmo\n\n")
        f.write(f"Command: `{summary['command']}`\n\n")
        for key in ("corpus", "train_sentences", "train_tokens", "oov_tokens", "steps", "cpu_minutes", "wall_minutes",
                    "first_loss", "final_loss", "dev_perplexity"):
            f.write(f"- {key}: {summary[key]}\n")
        f.write("\nLoss: sampled softmax (512 candidates), mean of the last 50 steps; perplexity: full softmax "
                "on the dev split. Load with `trainer.load_pretrain('<this dir>/ckpt')` on an "
                "`ELMo.from_config(json.load(open('elmo_config.json')))` backbone.\n")


def main(argv=None):
    args = parse_args(argv)
    paddle.seed(args.seed)
    np.random.seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.data_root:
        paths = prepare_corpus(args.data_root, os.path.join(args.work_dir, "corpus"))
        corpus = "zh_raw_corpus (zhwiki sample + FewCLUE TNEWS/EPRSTMT unlabeled)"
    else:
        paths = {"train": make_sample(os.path.join(args.work_dir, "sample", "train.txt"), 3000, seed=1),
                 "dev": make_sample(os.path.join(args.work_dir, "sample", "dev.txt"), 200, seed=2)}
        corpus = "generated sample"
    tokens = palm.reader.build_vocab_from_corpus(paths["train"], split="char", min_freq=args.min_freq,
                                                 max_size=args.vocab_size)
    vocab = os.path.join(args.work_dir, "vocab.txt")
    palm.reader.write_word_vocab(tokens, vocab)
    config = elmo_config(args, len(tokens))

    reader = palm.reader.LMCorpusReader(vocab, args.max_len, tokenizer="char", seed=args.seed)
    reader.load_data(paths["train"], batch_size=args.batch_size, num_epochs=args.epochs)
    stats = reader.stats()
    print(f"corpus: {stats} (out-of-vocabulary characters become <UNK>; long lines are cut into pieces)",
          flush=True)

    backbone = palm.backbone.ELMo.from_config(dict(config, static_graph=not args.dygraph))
    head = palm.head.BiLM(len(tokens), args.projection_size, num_samples=min(args.num_samples, len(tokens) - 1),
                          seed=args.seed)
    trainer = palm.Trainer("bilm")
    model = trainer.build_forward(backbone, head)
    trainer.build_backward(palm.optimizer.Adam(model, args.lr))
    trainer.fit_reader(reader)

    max_steps = int(args.epochs * reader.steps_per_epoch)
    cpu_deadline = time.process_time() + 60 * args.minutes
    start, cpu_start, losses = time.time(), time.process_time(), []
    step = 0
    while step < max_steps and time.process_time() < cpu_deadline:
        losses.append(trainer.train_one_step(trainer.get_one_batch())["loss"])
        step += 1
        if step % args.print_steps == 0 or step == max_steps:
            mean = float(np.mean(losses[-args.print_steps:]))
            print(f"step {step}/{max_steps} (epoch {trainer.cur_train_epoch}), loss {mean:.3f}, "
                  f"{step / (time.time() - start):.2f} steps/s, {(time.process_time() - cpu_start) / 60:.1f} "
                  f"CPU-minutes", flush=True)
    minutes = (time.process_time() - cpu_start) / 60
    wall_minutes = (time.time() - start) / 60
    ckpt = checkpoint.save_checkpoint(os.path.join(args.work_dir, f"ckpt.step{step}"), model, trainer.optimizer,
                                      trainer._checkpoint_state(step))
    ppl = dev_perplexity(trainer, config, vocab, args, paths["dev"])
    summary = {"command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
               "corpus": corpus, "train_sentences": reader.num_examples, "train_tokens": stats["tokens"],
               "oov_tokens": stats["oov_tokens"], "steps": step, "cpu_minutes": round(minutes, 1),
               "wall_minutes": round(wall_minutes, 1),
               "first_loss": round(float(np.mean(losses[:args.print_steps])), 3),
               "final_loss": round(float(np.mean(losses[-args.print_steps:])), 3),
               "dev_perplexity": round(ppl, 2)}
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    print(f"checkpoint: {ckpt}", flush=True)
    if args.save_to:
        save_package(backbone, config, vocab, args.save_to, summary)
        print(f"fine-tuning package written to {args.save_to}", flush=True)
    return summary


if __name__ == "__main__":
    main()
