"""What a pretraining checkpoint does on the held-out slice of its corpus.

    python examples/pretrain/heldout.py electra --corpus /work/runs/i26/corpus --objective electra \\
        --hidden 256 --embedding_size 128 --layers 4 --heads 4 --max_len 128 --whole_word_mask \\
        --pack_documents --checkpoint /work/runs/i26/electra/checkpoints/ckpt.step4100
    python examples/pretrain/heldout.py albert --corpus ... --checkpoint ...

The first argument names the pretraining example (``electra``: ``electra/run.py``, either
objective; ``albert``: ``albert/run.py``); the rest are that example's arguments and a checkpoint
its run wrote (``--save_steps``). Each example builds its reader and model (``make_reader``,
``build_model``) and says what to score in a batch (``heldout_outputs``); this script sums them.
The held-out slice (``CORPUS/heldout.txt``, or ``--heldout FILE``) is read and masked as training
did, with a fixed seed, dropout off, over ``--batches`` batches (default 8). Prints one JSON line:

- ``mlm``: the masked-LM loss, accuracy and perplexity at the masked positions (for ELECTRA, its
  generator's);
- ``detection`` (ELECTRA): the discriminator's detection of the generator's replacements
  (``paddlepalm.head.rtd.detection_metrics``), its loss beside ``prior_loss``, the loss of
  predicting the replaced fraction everywhere, with recall, precision and AUC. The training log
  records only the total loss, in which a discriminator stuck at the prior cannot be told from one
  that learns while its generator improves;
- ``sentence_order`` (ALBERT): the accuracy of telling swapped segments from ordered ones.
"""
import importlib.util
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import paddlepalm as palm  # noqa: E402  (before paddle: sets MKL flags)
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
import common  # noqa: E402
from paddlepalm import checkpoint  # noqa: E402
from paddlepalm.head.rtd import detection_metrics  # noqa: E402
from paddlepalm.utils.fileio import read_lines  # noqa: E402

OWN_ARGS = ("--checkpoint", "--heldout", "--batches")
EXAMPLES = ("electra", "albert")


def split_args(argv):
    """(the example's arguments, this script's own)."""
    argv, own = list(argv), {}
    for name in OWN_ARGS:
        if name in argv:
            i = argv.index(name)
            own[name[2:]] = argv[i + 1]
            del argv[i:i + 2]
    return argv, own


def example_module(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_run", os.path.join(HERE, name, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Tally:
    """The held-out figures, summed over batches from each example's ``heldout_outputs``."""

    def __init__(self):
        self.loss, self.correct, self.masked = 0.0, 0, 0
        self.logits, self.labels = [], []
        self.order_correct, self.pairs = 0, 0

    def add(self, outputs: dict) -> None:
        vocab_logits, target = outputs["mlm"]
        self.loss += float(F.cross_entropy(vocab_logits, target.unsqueeze(-1), reduction="sum"))
        self.correct += int((vocab_logits.argmax(-1) == target).sum())
        self.masked += int(target.shape[0])
        if "detection" in outputs:
            logits, labels = outputs["detection"]
            self.logits.append(logits)
            self.labels.append(labels)
        if "sentence_order" in outputs:
            predicted, labels = outputs["sentence_order"]
            self.order_correct += int((predicted == labels).sum())
            self.pairs += int(labels.shape[0])

    def report(self) -> dict:
        loss = self.loss / self.masked
        out = {"mlm": {"masked_tokens": self.masked, "loss": loss, "accuracy": self.correct / self.masked,
                       "perplexity": math.exp(loss)}}
        if self.logits:
            out["detection"] = detection_metrics(np.concatenate(self.logits), np.concatenate(self.labels))
        if self.pairs:
            out["sentence_order"] = {"pairs": self.pairs, "accuracy": self.order_correct / self.pairs}
        return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in EXAMPLES:
        raise SystemExit(f"heldout.py: the first argument is the pretraining example, one of {EXAMPLES}")
    name, (argv, own) = argv[0], split_args(argv[1:])
    if "checkpoint" not in own:
        raise SystemExit("heldout.py: --checkpoint DIR is required")
    run = example_module(name)
    args = run.parse_args(argv)
    if not args.corpus:
        raise SystemExit("heldout.py: --corpus FOLDER is required (its vocab.txt and heldout.txt)")
    objective = run.task_name(args)
    paddle.seed(args.seed)
    vocab = common.vocab_for(args, None)
    reader = run.make_reader(args, vocab)
    reader.load_data(own.get("heldout") or os.path.join(args.corpus, "heldout.txt"), batch_size=args.batch_size)
    _, backbone, head = run.build_model(args, len(read_lines(vocab)))
    trainer = palm.Trainer(objective)
    model = trainer.build_forward(backbone, head)
    trainer.fit_reader(reader)
    model.set_state_dict(checkpoint.load_model_state(own["checkpoint"]))
    model.eval()
    tally = Tally()
    with paddle.no_grad():
        for _ in range(int(own.get("batches", 8))):
            batch = {k: paddle.to_tensor(v) for k, v in trainer.get_one_batch().items()}
            tally.add(run.heldout_outputs(args, batch, backbone, head))
    report = {"checkpoint": own["checkpoint"], "example": name, "objective": objective, **tally.report()}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
