"""Chinese named-entity recognition (MSRA NER) with paddlepalm's CRF sequence labeling head.

    python examples/tagging/run.py                                            # generated sample
    python examples/tagging/run.py --data_dir $PALM_DATA_ROOT/msra_ner         # MSRA.zip, read in place

MSRA's ``word/tag`` lines (tags o, nr, ns, nt) become per-character BIO tags
(PER, LOC, ORG). MSRA has no dev split: the last ``--dev_size`` training
sentences are held out for evaluation during training; ``test_with_label.txt``
is the test set. Characters past ``--max_seqlen`` get the ``O`` tag in
prediction (counted against recall). The small ERNIE is trained from scratch (no
pretrained weights here). Prints entity-level precision, recall and F1.
"""
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import paddlepalm as palm  # noqa: E402
from paddlepalm import metrics  # noqa: E402
from paddlepalm.reader.errors import DataFormatError  # noqa: E402

import common  # noqa: E402
from make_sample import make_sample  # noqa: E402  (examples/tagging/make_sample.py)

TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def to_char_bio(line: str, source: str, number: int):
    """``word/tag word/tag ...`` -> (characters, BIO tags)."""
    chars, tags = [], []
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word or tag not in ("o", "nr", "ns", "nt"):
            raise DataFormatError(source, number, f"expected word/tag with tag o|nr|ns|nt, got {token!r}")
        kind = TYPES.get(tag)
        for i, char in enumerate(word):
            chars.append(char)
            tags.append("O" if kind is None else ("B-" if i == 0 else "I-") + kind)
    return chars, tags


def read_msra(lines, source):
    sentences = [to_char_bio(line, source, n) for n, line in enumerate(lines, start=1) if line.strip()]
    return [s for s in sentences if s[0]]


def prepare(args, work):
    if args.data_dir:
        archive = os.path.join(args.data_dir, "MSRA.zip")
        with zipfile.ZipFile(archive) as z:
            train = read_msra(z.read("MSRA/train.txt").decode("utf-8").splitlines(), f"{archive}:MSRA/train.txt")
            test = read_msra(z.read("MSRA/test_with_label.txt").decode("utf-8").splitlines(),
                             f"{archive}:MSRA/test_with_label.txt")
    else:
        raw = make_sample(os.path.join(work, "sample_data"))
        train, test = (read_msra(open(os.path.join(raw, name), encoding="utf-8").read().splitlines(), name)
                       for name in ("train.txt", "test_with_label.txt"))
    train, dev = train[:-args.dev_size], train[-args.dev_size:]
    if args.max_train:
        train = train[:args.max_train]
    data_dir = os.path.join(work, "data")
    files = {}
    for split, sentences in (("train", train), ("dev", dev), ("test", test)):
        files[split] = os.path.join(data_dir, f"{split}.tsv")
        common.write_tsv(files[split], ["text_a", "label"], (("\x02".join(c), "\x02".join(t)) for c, t in sentences))
    vocab = os.path.join(data_dir, "vocab.txt")
    return {"train": files["train"], "dev": files["dev"], "tests": {"test": files["test"]}, "vocab": vocab,
            "gold": {"test": [t for _, t in test]},
            "vocab_size": common.make_vocab(("".join(c) for c, _ in train), vocab)}


class NER(common.Task):
    name = "ner"
    target_metric = "entity_f1"

    def reader(self, phase):
        return palm.reader.SequenceLabelReader(self.data["vocab"], self.args.max_seqlen,
                                               {t: i for i, t in enumerate(LABELS)}, lang="cn",
                                               do_lower_case=True, seed=self.args.seed, phase=phase)

    def head(self, phase):
        return palm.head.SequenceLabel(len(LABELS), self.args.hidden, self.args.dropout,
                                       learning_rate=self.args.crf_lr, phase=phase)

    def score(self, split, predictions):
        scores = metrics.chunk_f1([p["tags"] for p in predictions], self.data["gold"][split])
        return {"entity_f1": scores["f1"], "entity_precision": scores["precision"],
                "entity_recall": scores["recall"], "entities": scores["num_gold"]}


def main(argv=None):
    parser = common.base_parser(__doc__, epochs=3, max_seqlen=160)
    parser.add_argument("--dev_size", type=int, default=1000, help="training sentences held out for evaluation")
    parser.add_argument("--crf_lr", type=float, default=1.0, help="learning-rate multiplier of the CRF transitions")
    args = parser.parse_args(argv)
    work = args.work_dir or os.path.join(HERE, "outputs")
    if not args.data_dir:
        args.dev_size = min(args.dev_size, 150)
    return common.run(args, NER(args, prepare(args, work)), HERE)


if __name__ == "__main__":
    main()
