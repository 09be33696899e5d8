"""Paddle ELMo's LAC experiment in small: a BiGRU + CRF tagger whose input is its own
character embedding, with or without frozen ELMo features concatenated to it.

    python examples/elmo-transfer/run.py                                   # generated sample, quick
    MKL_NUM_THREADS=1 python examples/elmo-transfer/run.py --data_root $PALM_DATA_ROOT --seeds 1,2,3

Data: Weibo NER, revised release (``<data_root>/weibo_ner/weiboNER_2nd_conll.{train,test}``:
one character, its jieba-position digit and its BIO tag per line, blank lines
between sentences; the original release has bytes that are not UTF-8), converted to
PALM's sequence-labeling TSV. The tagger is ``palm.backbone.BiGRU``; with ELMo, its
``elmo`` config key names the package written by ``examples/pretrain/elmo/run.py --save_to``
(default: the shipped ``pretrain_models/elmo-zh-tiny``), loaded by ``ELMo.from_pretrained``
in feature mode (``elmo_frozen``: the biLM is fixed, the tagger learns its scalar mix).
Both taggers use the ELMo vocabulary for their own embeddings
(characters outside it are ``<UNK>``), the same sizes, epochs and seeds.
Prints the entity F1 (``paddlepalm.metrics.chunk_f1``) of every run and the
mean and standard deviation per setting.
"""
import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

import paddlepalm as palm  # noqa: E402  (first: sets threads and quiet flags before paddle loads)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from paddlepalm import metrics  # noqa: E402
from paddlepalm.prepare.common import tag_map_of  # noqa: E402
from paddlepalm.reader.errors import DataFormatError  # noqa: E402


# ------------------------------------------------------------------- data
def read_conll(path, strip_position=False):
    """Sentences of ``(chars, tags)`` from a two-column CoNLL file.

    ``strip_position`` drops the jieba-position digit that the revised Weibo files
    append to every character (``科0<TAB>O``).
    """
    sentences, chars, tags = [], [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataFormatError(path, number, f"bytes are not valid UTF-8 (at byte {err.start})") from None
            if not line.strip():
                if chars:
                    sentences.append((chars, tags))
                chars, tags = [], []
                continue
            fields = line.split()
            if len(fields) != 2 or (strip_position and (len(fields[0]) < 2 or not fields[0][-1].isdigit())):
                raise DataFormatError(path, number, f"expected 'character{'<digit>' if strip_position else ''}"
                                                    f"<TAB>tag', got {line!r}")
            chars.append(fields[0][:-1] if strip_position else fields[0])
            tags.append(fields[1])
    if chars:
        sentences.append((chars, tags))
    if not sentences:
        raise DataFormatError(path, None, "no sentences")
    return sentences


def write_tsv(sentences, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("text_a\tlabel\n")
        for chars, tags in sentences:
            f.write("\x02".join(chars) + "\t" + "\x02".join(tags) + "\n")


def make_sample(rng):
    """A generated NER sample: place names tagged LOC in template sentences."""
    places = ["北京", "上海", "广州", "深圳", "南京", "杭州", "成都", "武汉", "西安", "天津"]
    people = ["老师", "学生", "记者", "医生", "朋友", "孩子"]
    verbs = ["喜欢", "访问", "研究", "支持", "参观", "报道"]
    sentences = []
    for _ in range(400):
        place, person = rng.choice(places), rng.choice(people)
        text = [person, "在", place, rng.choice(verbs), "了", "。"]
        tags = [["O"] * len(person), ["O"], ["B-LOC"] + ["I-LOC"] * (len(place) - 1), ["O"] * 2, ["O"], ["O"]]
        sentences.append(([c for w in text for c in w], [t for ts in tags for t in ts]))
    return sentences[:320], sentences[320:]


def prepare(args):
    out = os.path.join(args.work_dir, "data")
    os.makedirs(out, exist_ok=True)
    if args.data_root:
        folder = os.path.join(args.data_root, "weibo_ner")
        train = read_conll(os.path.join(folder, "weiboNER_2nd_conll.train"), strip_position=True)
        test = read_conll(os.path.join(folder, "weiboNER_2nd_conll.test"), strip_position=True)
    else:
        train, test = make_sample(random.Random(0))
    label_map = tag_map_of(ts for _, ts in train)  # the training split's tags only: no test leak
    with open(os.path.join(out, "label_map.json"), "w", encoding="utf-8") as f:
        json.dump(label_map, f, ensure_ascii=False)
    write_tsv(train, os.path.join(out, "train.tsv"))
    write_tsv(test, os.path.join(out, "test.tsv"))
    return out, label_map, [ts for _, ts in test]


# ------------------------------------------------------------------ model
def tagger_config(args, vocab_size, use_elmo):
    """The BiGRU tagger (``palm.backbone.BiGRU``): own embedding (+ the frozen ELMo features of the
    package, the task's scalar mix) -> dropout -> BiGRU; ``encoder_outputs`` feed the CRF head."""
    config = {"vocab_size": vocab_size, "embedding_size": args.embedding_dim, "hidden_size": 2 * args.hidden,
              "dropout": args.dropout}
    if use_elmo:
        config.update(elmo=args.elmo, elmo_frozen=True)  # ELMo.from_pretrained(args.elmo): config, ckpt/
    return config


def run_once(args, data_dir, label_map, gold, use_elmo, seed):
    paddle.seed(seed)
    np.random.seed(seed)
    vocab = os.path.join(args.elmo, "vocab.txt")
    config = tagger_config(args, sum(1 for _ in open(vocab, encoding="utf-8")), use_elmo)
    reader = palm.reader.SequenceLabelReader(vocab, args.max_len, os.path.join(data_dir, "label_map.json"),
                                             tokenizer="char", seed=seed)
    reader.load_data(os.path.join(data_dir, "train.tsv"), batch_size=args.batch_size, num_epochs=args.epochs)
    trainer = palm.Trainer("ner")
    backbone = palm.backbone.BiGRU.from_config(config)
    model = trainer.build_forward(backbone, palm.head.SequenceLabel(len(label_map), backbone.hidden_size,
                                                                    learning_rate=1.0))
    trainer.build_backward(palm.optimizer.Adam(model, args.lr))
    trainer.fit_reader(reader)
    start = time.time()
    trainer.train(print_steps=0)

    pred_reader = palm.reader.SequenceLabelReader(vocab, args.max_len, os.path.join(data_dir, "label_map.json"),
                                                  tokenizer="char", phase="predict")
    pred_reader.load_data(os.path.join(data_dir, "test.tsv"), batch_size=64)
    pred_backbone = palm.backbone.BiGRU.from_config(config, phase="predict")
    trainer.build_predict_forward(pred_backbone, palm.head.SequenceLabel(len(label_map), pred_backbone.hidden_size,
                                                                         phase="predict"))
    trainer.pred_model.set_state_dict(trainer.model.state_dict())
    trainer.fit_reader(pred_reader, phase="predict")
    results = trainer.predict(print_steps=0)
    scores = metrics.chunk_f1([r["tags"] for r in results], gold)
    scores["minutes"] = (time.time() - start) / 60
    return scores


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=None, help="shared data root with weibo_ner/ (default: generated sample)")
    p.add_argument("--elmo", default=os.path.join(REPO, "pretrain_models", "elmo-zh-tiny"))
    p.add_argument("--work_dir", default=os.path.join(HERE, "outputs"))
    p.add_argument("--seeds", default="1")
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_len", type=int, default=160)
    p.add_argument("--embedding_dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--lr", type=float, default=3e-3)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data_dir, label_map, gold = prepare(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {"without ELMo": [], "with ELMo": []}
    for seed in seeds:
        for name, use_elmo in (("without ELMo", False), ("with ELMo", True)):
            scores = run_once(args, data_dir, label_map, gold, use_elmo, seed)
            runs[name].append(scores["f1"])
            print(f"seed {seed}, {name}: entity F1 {100 * scores['f1']:.2f} (P {100 * scores['precision']:.2f}, "
                  f"R {100 * scores['recall']:.2f}), {scores['minutes']:.1f} min", flush=True)
    summary = {name: {"f1": [round(100 * f, 2) for f in f1s], "mean": round(100 * float(np.mean(f1s)), 2),
                      "std": round(100 * float(np.std(f1s)), 2)} for name, f1s in runs.items()}
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return summary


if __name__ == "__main__":
    main()
