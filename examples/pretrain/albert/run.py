"""Pretrain a small Chinese ALBERT: sentence-order prediction + n-gram masked LM with
whole-word masking from jieba segmentation (labels are the original characters), LAMB.

    python examples/pretrain/albert/run.py                       # generated sample corpus, 1 CPU-minute
    python examples/pretrain/albert/run.py --data_dir $PALM_DATA_ROOT/zh_raw_corpus --cpu_minutes 8 \
        --output pretrain_models/albert-zh-tiny                  # the shipped checkpoint

The layers are shared (``num_hidden_groups=1``) and embeddings factorized
(``embedding_size`` < ``hidden``). The backbone is exported to ``--output`` as a
checkpoint that ``Trainer.load_pretrain`` reads, with config.json, vocab.txt and
pretrain_info.json (command, steps, losses).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import paddlepalm as palm  # noqa: E402  (before paddle: sets MKL flags)
import paddle  # noqa: E402

import common  # noqa: E402
from paddlepalm.utils.fileio import read_lines  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(p, "albert", lr=2e-3)
    p.add_argument("--max_ngram", type=int, default=3)
    return p.parse_args(argv)


def make_reader(args, vocab: str):
    return palm.reader.SentenceOrderReader(vocab, args.max_len, lang="cn", seed=args.seed, whole_word_mask=True,
                                           max_ngram=args.max_ngram, word_segmenter="jieba")


def build_model(args, vocab_size: int):
    """(config, backbone, head): one group of shared layers, factorized embeddings, SOP + masked LM."""
    config = {**common.backbone_config(args, "albert", vocab_size), "num_hidden_groups": 1, "inner_group_num": 1}
    backbone = palm.backbone.ALBERT.from_config(config)
    head = palm.head.SentenceOrder(args.hidden, vocab_size, "gelu", embedding_size=args.embedding_size)
    return config, backbone, head


def task_name(args) -> str:
    """The trainer's name for this run's objective (its checkpoints' parameter names start with it)."""
    return "sop"


def heldout_outputs(args, batch, backbone, head) -> dict:
    """What ``heldout.py`` scores in one batch: ``"mlm": (vocabulary logits, targets)`` at the masked
    positions and ``"sentence_order": (predicted order, labels)`` of the segment pairs."""
    outputs = backbone.task_outputs(task_name(args), backbone(batch))
    logits = head.mlm.logits(outputs["encoder_outputs"], batch["mask_pos"], outputs.get("embedding_table"))
    return {"mlm": (logits, batch["mask_label"]),
            "sentence_order": (head.order_logits(outputs).argmax(-1), batch["label_ids"])}


def main(argv=None):
    args = parse_args(argv)
    paddle.seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    corpus = common.corpus_for(args, args.work_dir)
    vocab = common.vocab_for(args, corpus)
    vocab_size = len(read_lines(vocab))
    reader = make_reader(args, vocab)
    reader.load_data(corpus, batch_size=args.batch_size)
    config, backbone, head = build_model(args, vocab_size)
    trainer = palm.Trainer(task_name(args))
    loss_var = trainer.build_forward(backbone, head)
    trainer.build_backward(palm.optimizer.LAMB(loss_var, args.lr, palm.lr_sched.WarmupSchedualer(args.warmup)),
                           weight_decay=0.01)
    trainer.fit_reader(reader)
    common.run(args, trainer, reader, backbone, config, vocab, task_name(args))


if __name__ == "__main__":
    main()
