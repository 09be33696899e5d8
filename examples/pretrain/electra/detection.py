"""Does an ELECTRA checkpoint detect replaced tokens? Held-out figures against the prior.

    python examples/pretrain/electra/detection.py --corpus /work/runs/i26/corpus --hidden 256 \\
        --embedding_size 128 --layers 4 --heads 4 --max_len 128 --whole_word_mask --pack_documents \\
        --checkpoint /work/runs/i26/electra/checkpoints/ckpt.step4100

Takes the same model arguments as ``run.py`` and a checkpoint that run wrote (``--save_steps``).
The generator corrupts the held-out slice (``CORPUS/heldout.txt``, or ``--heldout``) as in
training, with a fixed seed; the discriminator scores every token, dropout off. Prints one JSON
line: the generator's masked-LM loss, and the detection loss beside ``prior_loss``, the loss of
predicting the replaced fraction everywhere (``paddlepalm.head.rtd.detection_metrics``). The
total training loss cannot tell the two apart: a discriminator stuck at the prior still shows a
falling loss while its generator learns.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import paddlepalm as palm  # noqa: E402  (before paddle: sets MKL flags)
import paddle  # noqa: E402
import common  # noqa: E402
import run  # noqa: E402
from paddlepalm import checkpoint  # noqa: E402
from paddlepalm.head.rtd import detection_metrics  # noqa: E402


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = {}
    for name in ("--checkpoint", "--heldout", "--batches"):
        if name in argv:
            i = argv.index(name)
            extra[name[2:]] = argv[i + 1]
            del argv[i:i + 2]
    if "checkpoint" not in extra:
        raise SystemExit("detection.py: --checkpoint DIR is required")
    args = run.parse_args(argv)
    if not args.corpus:
        raise SystemExit("detection.py: --corpus FOLDER is required (its vocab.txt and heldout.txt)")
    vocab = common.vocab_for(args, None)
    heldout = extra.get("heldout") or os.path.join(args.corpus, "heldout.txt")
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    config = {**common.backbone_config(args, "electra", vocab_size), "generator_size": args.generator_size}
    paddle.seed(args.seed)
    reader = palm.reader.MaskedCorpusReader(vocab, args.max_len, lang="cn", seed=args.seed,
                                            whole_word_mask=args.whole_word_mask, pack_documents=args.pack_documents)
    reader.load_data(heldout, batch_size=args.batch_size)
    backbone = palm.backbone.ELECTRA.from_config(config)
    head = palm.head.ReplacedTokenDetection.from_config(config)
    trainer = palm.Trainer("electra")
    model = trainer.build_forward(backbone, head)
    trainer.fit_reader(reader)
    model.set_state_dict(checkpoint.load_model_state(extra["checkpoint"]))
    model.eval()
    logits, labels, generator = [], [], []
    with paddle.no_grad():
        for _ in range(int(extra.get("batches", 8))):
            batch = {k: paddle.to_tensor(v) for k, v in trainer.get_one_batch().items()}
            inputs = head.prepare_inputs(batch, backbone)
            hidden = backbone.task_outputs("electra", backbone(inputs))["encoder_outputs"]
            mask = inputs["input_mask"].numpy().reshape(hidden.shape[:2]) > 0
            logits.append(head.detection_logits(hidden).numpy()[mask])
            labels.append(inputs["rtd_labels"].numpy()[mask])
            generator.append(float(inputs["generator_loss"]))
    report = {"checkpoint": extra["checkpoint"], "generator_loss": float(np.mean(generator)),
              **detection_metrics(np.concatenate(logits), np.concatenate(labels))}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
