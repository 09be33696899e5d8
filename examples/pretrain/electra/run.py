"""Pretrain a small Chinese ELECTRA (or, for comparison, the same backbone with masked LM).

    python examples/pretrain/electra/run.py                      # generated sample corpus, 1 minute
    python examples/pretrain/electra/run.py --data_dir $PALM_DATA_ROOT/zh_raw_corpus --cpu_minutes 8 \
        --output pretrain_models/electra-zh-tiny                 # the shipped checkpoint
    python examples/pretrain/electra/run.py --objective mlm ...  # masked-LM baseline, same backbone

ELECTRA: a generator (a quarter of the discriminator's width, sharing its token
embeddings) fills masked positions with samples and the backbone learns to detect
replaced tokens; loss = MLM + 50 x RTD. The backbone (discriminator) is exported to
``--output`` as a checkpoint that ``Trainer.load_pretrain`` reads, with config.json,
vocab.txt and pretrain_info.json (command, steps, losses).
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
    common.add_common_args(p, "electra", lr=1e-3)
    p.add_argument("--objective", choices=["electra", "mlm"], default="electra")
    p.add_argument("--generator_size", type=float, default=0.25)
    p.add_argument("--whole_word_mask", action="store_true", help="mask whole jieba words (as ALBERT-zh and "
                   "Chinese BERT-wwm do) instead of single characters")
    p.add_argument("--pack_documents", action="store_true", help="fill every sequence, continuing with the next "
                   "document after [SEP] (RoBERTa's full sentences) instead of one document a sequence")
    return p.parse_args(argv)


def make_reader(args, vocab: str):
    return palm.reader.MaskedCorpusReader(vocab, args.max_len, lang="cn", seed=args.seed,
                                          whole_word_mask=args.whole_word_mask, pack_documents=args.pack_documents)


def build_model(args, vocab_size: int):
    """(config, backbone, head) of ``--objective``: the backbone is the same for both."""
    config = {**common.backbone_config(args, "electra", vocab_size), "generator_size": args.generator_size}
    backbone = palm.backbone.ELECTRA.from_config(config)
    if args.objective == "electra":
        head = palm.head.ReplacedTokenDetection.from_config(config)
    else:
        head = palm.head.MaskLM(args.hidden, vocab_size, "gelu", embedding_size=args.embedding_size)
    return config, backbone, head


def task_name(args) -> str:
    """The trainer's name for this run's objective (its checkpoints' parameter names start with it)."""
    return args.objective


def heldout_outputs(args, batch, backbone, head) -> dict:
    """What ``heldout.py`` scores in one batch: ``{"mlm": (vocabulary logits, targets)}`` at the masked
    positions (ELECTRA: its generator's), and for ELECTRA ``"detection": (logits, labels)`` over the
    real tokens (padding left out)."""
    if args.objective == "mlm":
        outputs = backbone.task_outputs("mlm", backbone(batch))
        logits = head.logits(outputs["encoder_outputs"], batch["mask_pos"], outputs.get("embedding_table"))
        return {"mlm": (logits, batch["mask_label"])}
    generator_logits = head.generator_logits(batch, backbone)  # before sampling the replacements below
    inputs = head.prepare_inputs(batch, backbone)
    hidden = backbone.task_outputs("electra", backbone(inputs))["encoder_outputs"]
    real = inputs["input_mask"].numpy().reshape(hidden.shape[:2]) > 0
    return {"mlm": (generator_logits, batch["mask_label"]),
            "detection": (head.detection_logits(hidden).numpy()[real], inputs["rtd_labels"].numpy()[real])}


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
    trainer.build_backward(palm.optimizer.AdamW(loss_var, args.lr, palm.lr_sched.WarmupSchedualer(args.warmup)))
    trainer.fit_reader(reader)
    common.run(args, trainer, reader, backbone, config, vocab, task_name(args))


if __name__ == "__main__":
    main()
