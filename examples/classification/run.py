"""Chinese sentiment classification (ChnSentiCorp) with paddlepalm.

    python examples/classification/run.py                                          # generated sample
    python examples/classification/run.py --data_dir $PALM_DATA_ROOT/chnsenticorp   # ChnSentiCorp

ChnSentiCorp's test split has no labels, so the last ``--dev_size`` training
examples are held out for evaluation during training (best checkpoint, early
stopping) and the official dev split is reported as the test set. The small
ERNIE is trained from scratch (no pretrained weights here). Prints accuracy and
macro-F1.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import paddlepalm as palm  # noqa: E402
from paddlepalm import metrics  # noqa: E402

import common  # noqa: E402
from make_sample import make_sample  # noqa: E402  (examples/classification/make_sample.py)


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    return rows


def prepare(args, work):
    if args.data_dir:
        rows = read_rows(os.path.join(args.data_dir, "train.tsv"))
        train, dev = rows[:-args.dev_size], rows[-args.dev_size:]
        test = read_rows(os.path.join(args.data_dir, "dev.tsv"))
    else:
        raw = make_sample(os.path.join(work, "sample_data"))
        train, dev, test = (read_rows(os.path.join(raw, f"{s}.tsv")) for s in ("train", "dev", "test"))
    train = train[:args.max_train] if args.max_train else train
    data_dir = os.path.join(work, "data")
    files = {}
    for split, rows in (("train", train), ("dev", dev), ("test", test)):
        files[split] = os.path.join(data_dir, f"{split}.tsv")
        common.write_tsv(files[split], ["label", "text_a"], ((r["label"], r["text_a"]) for r in rows))
    vocab = os.path.join(data_dir, "vocab.txt")
    return {"train": files["train"], "dev": files["dev"], "tests": {"test": files["test"]}, "vocab": vocab,
            "vocab_size": common.make_vocab((r["text_a"] for r in train), vocab)}


class Sentiment(common.Task):
    name = "sentiment"
    target_metric = "accuracy"

    def reader(self, phase):
        return palm.reader.ClassifyReader(self.data["vocab"], self.args.max_seqlen, lang="cn", do_lower_case=True,
                                          seed=self.args.seed, phase=phase)

    def head(self, phase):
        return palm.head.Classify(2, self.args.hidden, self.args.dropout, phase=phase)

    def score(self, split, predictions):
        gold = common.read_labels(self.data["tests"][split])
        labels = [p["label"] for p in predictions]
        return {"accuracy": metrics.accuracy(labels, gold), "macro_f1": metrics.macro_f1(labels, gold)}


def main(argv=None):
    parser = common.base_parser(__doc__, epochs=3, max_seqlen=128)
    parser.add_argument("--dev_size", type=int, default=800, help="training examples held out for evaluation")
    args = parser.parse_args(argv)
    work = args.work_dir or os.path.join(HERE, "outputs")
    return common.run(args, Sentiment(args, prepare(args, work)), HERE)


if __name__ == "__main__":
    main()
