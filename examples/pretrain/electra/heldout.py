"""What a pretraining checkpoint of ``run.py`` does on the held-out slice of the corpus.

    python examples/pretrain/electra/heldout.py --corpus /work/runs/i26/corpus --objective electra \\
        --hidden 256 --embedding_size 128 --layers 4 --heads 4 --max_len 128 --whole_word_mask \\
        --pack_documents --checkpoint /work/runs/i26/electra/checkpoints/ckpt.step4100

Takes the same arguments as ``run.py`` and a checkpoint that run wrote (``--save_steps``), and
masks the held-out slice (``CORPUS/heldout.txt``, or ``--heldout FILE``) as training did, with a
fixed seed, dropout off, over ``--batches`` batches (default 8). Prints one JSON line:

- the masked-LM loss, accuracy and perplexity at the masked positions (for ``--objective electra``
  those of the generator);
- for ELECTRA, the discriminator's detection of the generator's replacements
  (``paddlepalm.head.rtd.detection_metrics``): its loss beside ``prior_loss``, the loss of
  predicting the replaced fraction everywhere, with recall, precision and AUC. The training log
  records only the total loss, in which a discriminator stuck at the prior cannot be told from
  one that learns while its generator improves.
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import paddlepalm as palm  # noqa: E402  (before paddle: sets MKL flags)
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
import common  # noqa: E402
import run  # noqa: E402
from paddlepalm import checkpoint  # noqa: E402
from paddlepalm.head.rtd import detection_metrics  # noqa: E402

OWN_ARGS = ("--checkpoint", "--heldout", "--batches")


def split_args(argv):
    """(run.py's arguments, this script's own)."""
    argv, own = list(argv), {}
    for name in OWN_ARGS:
        if name in argv:
            i = argv.index(name)
            own[name[2:]] = argv[i + 1]
            del argv[i:i + 2]
    return argv, own


def build(args):
    vocab = common.vocab_for(args, None)
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    config = {**common.backbone_config(args, "electra", vocab_size), "generator_size": args.generator_size}
    backbone = palm.backbone.ELECTRA.from_config(config)
    if args.objective == "electra":
        head = palm.head.ReplacedTokenDetection.from_config(config)
    else:
        head = palm.head.MaskLM(args.hidden, vocab_size, "gelu", embedding_size=args.embedding_size)
    return vocab, backbone, head


def main(argv=None):
    argv, own = split_args(sys.argv[1:] if argv is None else argv)
    if "checkpoint" not in own:
        raise SystemExit("heldout.py: --checkpoint DIR is required")
    args = run.parse_args(argv)
    if not args.corpus:
        raise SystemExit("heldout.py: --corpus FOLDER is required (its vocab.txt and heldout.txt)")
    paddle.seed(args.seed)
    vocab, backbone, head = build(args)
    reader = palm.reader.MaskedCorpusReader(vocab, args.max_len, lang="cn", seed=args.seed,
                                            whole_word_mask=args.whole_word_mask, pack_documents=args.pack_documents)
    reader.load_data(own.get("heldout") or os.path.join(args.corpus, "heldout.txt"), batch_size=args.batch_size)
    trainer = palm.Trainer(args.objective)
    model = trainer.build_forward(backbone, head)
    trainer.fit_reader(reader)
    model.set_state_dict(checkpoint.load_model_state(own["checkpoint"]))
    model.eval()
    mlm_loss, mlm_correct, masked, logits, labels = 0.0, 0, 0, [], []
    with paddle.no_grad():
        for _ in range(int(own.get("batches", 8))):
            batch = {k: paddle.to_tensor(v) for k, v in trainer.get_one_batch().items()}
            if args.objective == "electra":
                vocab_logits = head.generator_logits(batch, backbone)
                inputs = head.prepare_inputs(batch, backbone)
                hidden = backbone.task_outputs(args.objective, backbone(inputs))["encoder_outputs"]
                mask = inputs["input_mask"].numpy().reshape(hidden.shape[:2]) > 0
                logits.append(head.detection_logits(hidden).numpy()[mask])
                labels.append(inputs["rtd_labels"].numpy()[mask])
            else:
                outputs = backbone.task_outputs(args.objective, backbone(batch))
                vocab_logits = head.logits(outputs["encoder_outputs"], batch["mask_pos"], outputs.get("embedding_table"))
            target = batch["mask_label"]
            mlm_loss += float(F.cross_entropy(vocab_logits, target.unsqueeze(-1), reduction="sum"))
            mlm_correct += int((vocab_logits.argmax(-1) == target).sum())
            masked += int(target.shape[0])
    loss = mlm_loss / masked
    report = {"checkpoint": own["checkpoint"], "objective": args.objective, "masked_tokens": masked,
              "mlm_loss": loss, "mlm_accuracy": mlm_correct / masked, "mlm_perplexity": math.exp(loss)}
    if logits:
        report["detection"] = detection_metrics(np.concatenate(logits), np.concatenate(labels))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
