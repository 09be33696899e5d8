"""Record (or compare) three small training runs bit for bit: the check that a refactoring of the
training core changed no number.

Runs, on the multi-task example's generated sample, through the public API only:
  single    one Trainer (slot tagging), dropout 0.1, EMA, triangular schedule;
  joint     slot + intent on joint batches (one backbone pass per update);
  dynamic   slot + intent alternating, two tasks per update, a loss-driven Dynamic schedule and
            the PCGrad gradient balancer.
Each run records every logged loss and the SHA-256 of every parameter at the end.

    python tools/reference_runs.py --out /tmp/before.json          # on the code before the change
    python tools/reference_runs.py --compare /tmp/before.json      # after: exit 1 on any difference

Bit-identical holds on one machine with one thread (MKL_NUM_THREADS=1 is set here); references
from another CPU are not comparable.
"""
import argparse
import hashlib
import os
import sys
import tempfile

os.environ.setdefault("MKL_NUM_THREADS", "1")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples", "multi-task"))

import paddle  # noqa: E402

import paddlepalm as palm  # noqa: E402
from paddlepalm.utils.fileio import read_json, write_json  # noqa: E402


class Losses:
    """A sink (``train(sinks=[...])``) keeping the training log records."""

    def __init__(self):
        self.records = []

    def log(self, step, record):
        if record.get("event") == "train":
            self.records.append({"step": step, **{k: v for k, v in record.items()
                                                  if k in ("tasks", "lr")}})


def digest(model) -> dict:
    return {name: hashlib.sha256(value.numpy().tobytes()).hexdigest()[:16]
            for name, value in sorted(model.state_dict().items())}


def tiny_config(vocab_size: int, dropout: float) -> dict:
    return {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "vocab_size": vocab_size, "max_position_embeddings": 128, "type_vocab_size": 2, "hidden_act": "gelu",
            "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout, "initializer_range": 0.02}


def readers(d):
    vocab = os.path.join(d, "vocab.txt")
    slot = palm.reader.SequenceLabelReader(vocab, 32, os.path.join(d, "label_map.json"), seed=1)
    slot.load_data(os.path.join(d, "slot", "train.tsv"), batch_size=16)
    intent = palm.reader.ClassifyReader(vocab, 32, seed=1)
    intent.load_data(os.path.join(d, "intent", "train.tsv"), batch_size=16)
    return vocab, slot, intent


def single(d, sizes):
    paddle.seed(0)
    vocab, slot_reader, _ = readers(d)
    ernie = palm.backbone.ERNIE.from_config(tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")), 0.1))
    slot = palm.Trainer("slot")
    loss = slot.build_forward(ernie, palm.head.SequenceLabel(sizes["slot_classes"], 32, 0.1, learning_rate=1.0))
    slot.build_backward(palm.optimizer.Adam(loss, 1e-3, palm.lr_sched.TriangularSchedualer(3, 24)),
                        weight_decay=0.01, use_ema=True)
    slot.fit_reader(slot_reader)
    sink = Losses()
    slot.train(print_steps=1, sinks=[sink])
    return slot.model, sink


def multi(d, sizes, **options):
    paddle.seed(0)
    vocab, slot_reader, intent_reader = readers(d)
    ernie = palm.backbone.ERNIE.from_config(tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")), 0.1))
    slot, intent = palm.Trainer("slot"), palm.Trainer("intent")
    slot.build_forward(ernie, palm.head.SequenceLabel(sizes["slot_classes"], 32, 0.1, learning_rate=1.0))
    intent.build_forward(ernie, palm.head.Classify(sizes["intent_classes"], 32, 0.1))
    extra = {k: options.pop(k) for k in ("schedule", "balancer") if k in options}
    trainer = palm.MultiHeadTrainer([slot, intent], seed=3, **extra)
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-3,
                                               palm.lr_sched.TriangularSchedualer(3, 24)), weight_decay=0.01)
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1, **options)
    sink = Losses()
    trainer.train(print_steps=1, sinks=[sink])
    return trainer.model, sink


def record() -> dict:
    import prepare_data
    from make_sample import make_sample

    with tempfile.TemporaryDirectory() as tmp:
        raw = make_sample(os.path.join(tmp, "raw"), seed=3, sizes=(192, 32, 48))
        sizes = prepare_data.convert(raw, os.path.join(tmp, "data"))
        d = os.path.join(tmp, "data")
        runs = {"single": single(d, sizes),
                "joint": multi(d, sizes, joint=True),
                "dynamic": multi(d, sizes, tasks_per_update=2,
                                 schedule=palm.sampling.Dynamic(by="loss", every=4),
                                 balancer=palm.balancing.PCGrad(seed=1))}
    return {name: {"losses": sink.records, "parameters": digest(model)} for name, (model, sink) in runs.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--out", help="write the record here")
    which.add_argument("--compare", help="compare with this record; exit 1 on any difference")
    a = p.parse_args()
    now = record()
    if a.out:
        write_json(a.out, now)
        counts = ", ".join(f"{name}: {len(run['losses'])} log lines" for name, run in now.items())
        print(f"recorded {counts} in {a.out}")
        return
    before = read_json(a.compare)
    same = True
    for name in before:
        for part in ("losses", "parameters"):
            equal = before[name][part] == now.get(name, {}).get(part)
            same &= equal
            print(f"{name:<8} {part:<11} {'identical' if equal else 'DIFFERENT'}")
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
