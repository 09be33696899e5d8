"""Chinese question matching (AFQMC, pointwise) with paddlepalm; LCQMC as an out-of-domain check.

    python examples/matching/run.py                                   # generated sample
    python examples/matching/run.py --data_dir $PALM_DATA_ROOT/afqmc \\
        --ood_dir $PALM_DATA_ROOT/lcqmc                                 # AFQMC, plus LCQMC dev/test

AFQMC's test split has no labels: the last ``--dev_size`` training pairs are
held out for evaluation during training and AFQMC's dev split is reported as the
test set. LCQMC (another domain, never trained on) is scored with the same model.
The small ERNIE is trained from scratch (no pretrained weights here). Prints
accuracy and macro-F1; the best checkpoint is picked by dev macro-F1 (AFQMC is about
69% negative: compare accuracy with the majority class).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import paddlepalm as palm  # noqa: E402
from paddlepalm import metrics  # noqa: E402
from paddlepalm.reader.errors import DataFormatError  # noqa: E402

import common  # noqa: E402
from make_sample import make_sample  # noqa: E402  (examples/matching/make_sample.py)


def read_pairs(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or fields[2] not in ("0", "1"):
                raise DataFormatError(path, number, f"expected text_a<TAB>text_b<TAB>0|1, got {fields!r}")
            rows.append(fields)
    return rows


def prepare(args, work):
    if args.data_dir:
        rows = read_pairs(os.path.join(args.data_dir, "train.txt"))
        splits = {"train": rows[:-args.dev_size], "dev": rows[-args.dev_size:],
                  "afqmc_test": read_pairs(os.path.join(args.data_dir, "dev.txt"))}
        if args.ood_dir:
            for name in ("dev", "test"):
                splits[f"lcqmc_{name}"] = read_pairs(os.path.join(args.ood_dir, f"{name}.txt"))
    else:
        raw = make_sample(os.path.join(work, "sample_data"))
        splits = {s: read_pairs(os.path.join(raw, f"{s}.txt")) for s in ("train", "dev", "test")}
    if args.max_train:
        splits["train"] = splits["train"][:args.max_train]
    data_dir = os.path.join(work, "data")
    files = {}
    for split, rows in splits.items():
        files[split] = os.path.join(data_dir, f"{split}.tsv")
        common.write_tsv(files[split], ["text_a", "text_b", "label"], rows)
    vocab = os.path.join(data_dir, "vocab.txt")
    return {"train": files["train"], "dev": files["dev"], "vocab": vocab,
            "tests": {s: p for s, p in files.items() if s not in ("train", "dev")},
            "vocab_size": common.make_vocab((t for r in splits["train"] for t in r[:2]), vocab)}


class Matching(common.Task):
    name = "match"
    target_metric = "macro_f1"  # AFQMC is imbalanced: accuracy would favour the majority class

    def reader(self, phase):
        return palm.reader.MatchReader(self.data["vocab"], self.args.max_seqlen, lang="cn", do_lower_case=True,
                                       seed=self.args.seed, learning_strategy="pointwise", phase=phase)

    def head(self, phase):
        return palm.head.Match(2, self.args.hidden, self.args.dropout, learning_strategy="pointwise", phase=phase)

    def score(self, split, predictions):
        gold = common.read_labels(self.data["tests"][split])
        labels = [p["label"] for p in predictions]
        majority = max(gold.count(0), gold.count(1)) / len(gold)
        return {"accuracy": metrics.accuracy(labels, gold), "macro_f1": metrics.macro_f1(labels, gold),
                "majority_class_accuracy": majority}


def main(argv=None):
    parser = common.base_parser(__doc__, epochs=2, max_seqlen=64)
    parser.add_argument("--ood_dir", default=None, help="LCQMC folder (dev.txt, test.txt) for the out-of-domain check")
    parser.add_argument("--dev_size", type=int, default=2000, help="training pairs held out for evaluation")
    args = parser.parse_args(argv)
    work = args.work_dir or os.path.join(HERE, "outputs")
    return common.run(args, Matching(args, prepare(args, work)), HERE)


if __name__ == "__main__":
    main()
