"""Chinese extractive reading comprehension (CMRC 2018) with paddlepalm.

    python examples/mrc/run.py                                           # generated sample
    python examples/mrc/run.py --data_dir $PALM_DATA_ROOT/cmrc2018        # CMRC 2018 (trial + dev)
    python examples/mrc/run.py --data_dir $PALM_DATA_ROOT/drcd            # DRCD (traditional Chinese)

CMRC 2018's training split is not available here, so the articles of
``cmrc2018_dev.json`` are split by position: the first ``--train_part`` (default
50%) are used for training together with all of ``cmrc2018_trial.json`` (first
gold answer of each question), the next ``--eval_part`` (10%) for evaluation
during training (best checkpoint, early stopping), and the rest (40%) is the
test set, scored with the official CMRC 2018 metric (EM, F1). DRCD (a folder with
``DRCD_dev.json`` and ``DRCD_test.json``, no train split here either) trains on the
first ``--train_part + 0.4`` of the dev articles, evaluates during training on the
next ``--eval_part`` and is tested on all of ``DRCD_test.json``. Training answers
whose ``answer_start`` is off (a few in the upstream data) are moved to the
nearest occurrence of the answer text; questions whose text is empty are left
out (the reader rejects them). The small ERNIE is trained from scratch
(no pretrained weights here), so expect low scores.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import paddlepalm as palm  # noqa: E402
from paddlepalm.metrics.mrc import gold_answers, mrc_scores  # noqa: E402

import common  # noqa: E402
from make_sample import make_sample  # noqa: E402  (examples/mrc/make_sample.py)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def training_version(articles):
    """Keep the first gold answer of each question; fix answer_start where it is off."""
    moved = 0
    out = []
    for article in articles:
        paragraphs = []
        for p in article["paragraphs"]:
            qas = []
            for qa in p["qas"]:
                answer = dict(qa["answers"][0])
                context, text = p["context"], answer["text"]
                if context[answer["answer_start"]:answer["answer_start"] + len(text)] != text:
                    hits = [i for i in range(len(context)) if context.startswith(text, i)]
                    if not hits:
                        continue
                    answer["answer_start"] = min(hits, key=lambda i: abs(i - answer["answer_start"]))
                    moved += 1
                qas.append(dict(qa, answers=[answer]))
            paragraphs.append(dict(p, qas=qas))
        out.append(dict(article, paragraphs=paragraphs))
    return out, moved


def drop_empty_questions(splits):
    """The reader rejects an empty question (one such in cmrc2018_trial.json); leave them out."""
    dropped = {}
    for split, articles in splits.items():
        dropped[split] = 0
        for article in articles:
            for p in article["paragraphs"]:
                kept = [qa for qa in p["qas"] if qa.get("question", "").strip()]
                dropped[split] += len(p["qas"]) - len(kept)
                p["qas"] = kept
    return splits, dropped


def prepare(args, work):
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    if args.data_dir and os.path.exists(os.path.join(args.data_dir, "DRCD_dev.json")):
        dev = load(os.path.join(args.data_dir, "DRCD_dev.json"))["data"]
        cut1 = int(len(dev) * (args.train_part + 0.4))
        cut2 = int(len(dev) * (args.train_part + 0.4 + args.eval_part))
        splits = {"train": dev[:cut1], "dev": dev[cut1:cut2],
                  "test": load(os.path.join(args.data_dir, "DRCD_test.json"))["data"]}
    elif args.data_dir:
        dev = load(os.path.join(args.data_dir, "cmrc2018_dev.json"))["data"]
        trial = load(os.path.join(args.data_dir, "cmrc2018_trial.json"))["data"]
        cut1 = int(len(dev) * args.train_part)
        cut2 = int(len(dev) * (args.train_part + args.eval_part))
        splits = {"train": trial + dev[:cut1], "dev": dev[cut1:cut2], "test": dev[cut2:]}
    else:
        raw = make_sample(os.path.join(work, "sample_data"))
        splits = {s: load(os.path.join(raw, f"{s}.json"))["data"] for s in ("train", "dev", "test")}
    splits, empty = drop_empty_questions(splits)
    splits["train"], moved = training_version(splits["train"])
    if args.max_train:
        splits["train"] = splits["train"][:args.max_train]
    files = {}
    for split, articles in splits.items():
        files[split] = os.path.join(data_dir, f"{split}.json")
        with open(files[split], "w", encoding="utf-8") as f:
            json.dump({"version": split, "data": articles}, f, ensure_ascii=False)
    counts = {s: sum(len(p["qas"]) for a in v for p in a["paragraphs"]) for s, v in splits.items()}
    print(f"questions per split: {counts}; training answers moved to the right offset: {moved}; "
          f"questions dropped for an empty question text: {empty}", flush=True)
    vocab = os.path.join(data_dir, "vocab.txt")
    texts = [p["context"] for a in splits["train"] for p in a["paragraphs"]]
    texts += [qa["question"] for a in splits["train"] for p in a["paragraphs"] for qa in p["qas"]]
    return {"train": files["train"], "dev": files["dev"], "tests": {"test": files["test"]}, "vocab": vocab,
            "gold": {"test": gold_answers({"data": splits["test"]})},
            "vocab_size": common.make_vocab(texts, vocab)}


class ReadingComprehension(common.Task):
    name = "mrc"
    target_metric = "f1"

    def reader(self, phase):
        a = self.args
        return palm.reader.MRCReader(self.data["vocab"], a.max_seqlen, a.max_query_len, a.doc_stride, lang="cn",
                                     do_lower_case=True, seed=a.seed, phase=phase)

    def head(self, phase):
        return palm.head.MRC(self.args.max_query_len, self.args.hidden, max_ans_len=self.args.max_ans_len,
                             phase=phase)

    def score(self, split, predictions):
        scores = mrc_scores(self.data["gold"][split], {p["id"]: p["answer"] for p in predictions}, lang="cn")
        return {"em": scores["em"] / 100, "f1": scores["f1"] / 100, "questions": scores["total"]}


def main(argv=None):
    parser = common.base_parser(__doc__, epochs=2, max_seqlen=256, batch_size=16, eval_steps=200)
    parser.add_argument("--max_query_len", type=int, default=32)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_ans_len", type=int, default=50, help="longest answer in tokens (characters)")
    parser.add_argument("--train_part", type=float, default=0.5)
    parser.add_argument("--eval_part", type=float, default=0.1)
    args = parser.parse_args(argv)
    work = args.work_dir or os.path.join(HERE, "outputs")
    return common.run(args, ReadingComprehension(args, prepare(args, work)), HERE)


if __name__ == "__main__":
    main()
