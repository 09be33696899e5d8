"""A Chinese four-task mixture for the sampling-schedule and loss-balancing comparisons.

    python examples/multi-task-zh/make_data.py --out DIR --source $PALM_DATA_ROOT   # the real data sets
    python examples/multi-task-zh/make_data.py --out DIR                           # a generated sample

``examples/configs/zh-mixture.yaml`` trains on what this writes (``make_data.py zh-mixture`` in its
``prepare`` step). Four tasks whose training sets differ ~40x in size, which is what the schedules
(uniform, proportional, temperature, annealed, dynamic) are compared on:

| task | data set (``--source`` folder) | kind | train | dev / test |
|---|---|---|---|---|
| ``tnews`` | ``tnews/`` | 15-class news-title classification | 53,360 | 600 / 600 from CLUE dev |
| ``afqmc`` | ``afqmc/`` | question-pair matching (binary, ~69% negative) | 34,334 | 600 / 600 from CLUE dev |
| ``senti`` | ``chnsenticorp/`` | review sentiment (binary, balanced) | 9,600 | 600 / 600 from the dev split |
| ``weibo`` | ``weibo_ner/weiboNER_2nd_conll.*`` | char BIO NER, 17 tags | 1,350 | 270 / 270 (as released) |

Training sets keep their natural sizes (``--max_train N`` cuts each to its first N). Evaluation is
kept cheap: TNEWS, AFQMC and ChnSentiCorp have no labelled test split, so their labelled dev split is
shuffled with a fixed seed and its first ``--eval_size`` examples become ``dev``, the next
``--eval_size`` ``test`` (disjoint); Weibo's own dev and test (270 each) are kept. Output in ``--out``:
``<task>/{train,dev,test}.tsv`` in the readers' formats (ClassifyReader ``label<TAB>text_a``,
MatchReader ``text_a<TAB>text_b<TAB>label``, SequenceLabelReader ``text_a<TAB>label`` joined by ``\\x02``),
``tnews/label_map.json`` (class names), ``weibo/label_map.json`` (tags), one character vocabulary
``vocab.txt`` over the four training sets, and ``stats.json`` (examples per split, and the
majority-class accuracy of each labelled split: the level a classifier must beat).

Measured with the config (2026-12-01, 2-core machine, ``MKL_NUM_THREADS=1``, uniform sampling, seed 1,
554 updates, data prepared once): ~86 CPU-s per run (train with two dev evaluations, then
``palm eval --split test``). Dev at the end vs the majority class / chance: TNEWS accuracy 14.0 vs 12.8,
AFQMC macro-F1 41.5 = the all-negative 41.5 (accuracy 70.8 = majority: AFQMC is not learned from scratch at
this budget), ChnSentiCorp accuracy 62.3 vs 54.5, Weibo entity F1 24.4 vs 0. The pretrained
``pretrain_models/electra-zh-tiny`` (4 layers of 128) at the same cost gets 154 updates and ends at the
majority class on every task (Weibo F1 0), so the config trains a small ERNIE from scratch.
"""
import argparse
import collections
import importlib.util
import os
import random
import re
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from paddlepalm.prepare.common import tag_map_of
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils import fileio
from paddlepalm.utils.vocab import build_char_vocab, write_vocab

Row = Tuple[str, ...]
TASKS = ("tnews", "afqmc", "senti", "weibo")
VOCAB_SIZE = 6000  # characters kept (most frequent first); the rest read as [UNK]
_WEIBO_TOKEN = re.compile(r"^(.+?)(\d+)$")


# ----------------------------------------------------------------------- the source formats
def read_tnews(path: str, labels: Sequence[str]) -> List[Row]:
    """``sentence<TAB>label_desc`` -> ``(label id, sentence)``."""
    index = {name: i for i, name in enumerate(labels)}
    rows = []
    for number, line in enumerate(fileio.read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2 or fields[1] not in index:
            raise DataFormatError(path, number, f"expected sentence<TAB>one of {len(index)} label names, "
                                                f"got {fields!r}")
        rows.append((str(index[fields[1]]), fields[0]))
    return rows


def read_afqmc(path: str) -> List[Row]:
    """``sentence1<TAB>sentence2<TAB>0|1``, kept as is."""
    rows = []
    for number, line in enumerate(fileio.read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 3 or fields[2] not in ("0", "1"):
            raise DataFormatError(path, number, f"expected text_a<TAB>text_b<TAB>0|1, got {fields!r}")
        rows.append(tuple(fields))
    return rows


def read_chnsenticorp(path: str) -> List[Row]:
    """A TSV with a header naming ``label`` and ``text_a`` (train: ``label text_a``, dev: ``qid label
    text_a``) -> ``(label, text)``."""
    lines = fileio.read_lines(path)
    header = lines[0].split("\t") if lines else []
    if "label" not in header or "text_a" not in header:
        raise DataFormatError(path, 1, f"expected a header with label and text_a, got {header!r}")
    label, text = header.index("label"), header.index("text_a")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header) or fields[label] not in ("0", "1"):
            raise DataFormatError(path, number, f"expected {len(header)} fields with label 0|1, got {fields!r}")
        rows.append((fields[label], fields[text]))
    return rows


def read_weibo(path: str) -> List[Tuple[List[str], List[str]]]:
    """CoNLL lines ``<char><word position><TAB><tag>``, sentences between blank lines -> (chars, tags).
    The position (one or more digits) is dropped: the token is the shortest prefix that digits follow,
    one character (``110``: ``1`` at position 10) except a few emoji released as two replacement characters."""
    sentences, chars, tags = [], [], []
    for number, line in enumerate(fileio.read_lines(path) + [""], start=1):
        if not line.strip():
            if chars:
                sentences.append((chars, tags))
            chars, tags = [], []
            continue
        fields = line.split("\t")
        match = _WEIBO_TOKEN.match(fields[0]) if len(fields) == 2 else None
        if match is None or not (fields[1] == "O" or fields[1][:2] in ("B-", "I-")):
            raise DataFormatError(path, number, f"expected <char><digits><TAB><BIO tag>, got {line!r}")
        chars.append(match.group(1))
        tags.append(fields[1])
    return sentences


def read_sources(source: str) -> Dict[str, Dict[str, list]]:
    """Each task's labelled splits as found in ``source``: ``{task: {split: rows}}``."""
    tnews = os.path.join(source, "tnews")
    labels = [name for name in fileio.read_lines(os.path.join(tnews, "labels.txt")) if name.strip()]
    weibo = os.path.join(source, "weibo_ner", "weiboNER_2nd_conll.{}")
    return {
        "tnews": {"train": read_tnews(os.path.join(tnews, "train.tsv"), labels),
                  "heldout": read_tnews(os.path.join(tnews, "dev.tsv"), labels), "label_names": labels},
        "afqmc": {"train": read_afqmc(os.path.join(source, "afqmc", "train.txt")),
                  "heldout": read_afqmc(os.path.join(source, "afqmc", "dev.txt"))},
        "senti": {"train": read_chnsenticorp(os.path.join(source, "chnsenticorp", "train.tsv")),
                  "heldout": read_chnsenticorp(os.path.join(source, "chnsenticorp", "dev.tsv"))},
        "weibo": {split: read_weibo(weibo.format(split)) for split in ("train", "dev", "test")},
    }


# ----------------------------------------------------------------------- the mixture
def split_heldout(rows: list, size: int, seed: int) -> Tuple[list, list]:
    """Disjoint dev and test subsets of ``size`` each (fewer when ``rows`` is short), by a seeded shuffle."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    half = min(size, len(rows) // 2)
    return [rows[i] for i in order[:half]], [rows[i] for i in order[half:2 * half]]


def _tsv(header: Sequence[str], rows) -> str:
    lines = ["\t".join(header)]
    for row in rows:
        fields = [str(f).replace("\t", " ").replace("\n", " ") for f in row]
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def _majority(labels: Sequence[str]) -> float:
    return round(collections.Counter(labels).most_common(1)[0][1] / len(labels), 4) if labels else 0.0


def convert(raw: Dict[str, Dict[str, list]], out: str, eval_size: int = 600, max_train: Optional[int] = None,
            seed: int = 1) -> Dict[str, dict]:
    """Write the mixture (see the module docstring) into ``out``; returns what ``stats.json`` holds."""
    splits: Dict[str, Dict[str, list]] = {}
    for task in ("tnews", "afqmc", "senti"):
        dev, test = split_heldout(raw[task]["heldout"], eval_size, seed)
        splits[task] = {"train": raw[task]["train"], "dev": dev, "test": test}
    splits["weibo"] = {split: raw["weibo"][split] for split in ("train", "dev", "test")}
    if max_train:
        for task in TASKS:
            splits[task]["train"] = splits[task]["train"][:max_train]
    stats: Dict[str, dict] = {}
    for task in TASKS:
        stats[task] = {}
        for split, rows in splits[task].items():
            path = os.path.join(out, task, f"{split}.tsv")
            if task == "weibo":
                text = _tsv(["text_a", "label"], (("\x02".join(c), "\x02".join(t)) for c, t in rows))
                stats[task][split] = {"examples": len(rows), "entities": sum(t.startswith("B-") for _, ts in rows
                                                                             for t in ts)}
            elif task == "afqmc":
                text = _tsv(["text_a", "text_b", "label"], rows)
                stats[task][split] = {"examples": len(rows), "majority_accuracy": _majority([r[2] for r in rows])}
            else:
                text = _tsv(["label", "text_a"], rows)
                stats[task][split] = {"examples": len(rows), "majority_accuracy": _majority([r[0] for r in rows])}
            fileio.write_text(path, text)
    fileio.write_json(os.path.join(out, "tnews", "label_map.json"),
                      {name: i for i, name in enumerate(raw["tnews"]["label_names"])})
    fileio.write_json(os.path.join(out, "weibo", "label_map.json"), tag_map_of(ts for _, ts in splits["weibo"]["train"]))
    texts = [r[1] for r in splits["tnews"]["train"]] + [t for r in splits["afqmc"]["train"] for t in r[:2]] \
        + [r[1] for r in splits["senti"]["train"]] + ["".join(c) for c, _ in splits["weibo"]["train"]]
    vocab = build_char_vocab(texts, max_size=VOCAB_SIZE)
    write_vocab(vocab, os.path.join(out, "vocab.txt"))
    stats["vocab_size"] = len(vocab)
    fileio.write_json(os.path.join(out, "stats.json"), stats)
    return stats


def sample_source(work: str) -> str:
    """The generated sample (this folder's ``make_sample.py``, loaded by path: other examples have a
    ``make_sample`` module too), in the source layout, under ``work``."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_sample.py")
    spec = importlib.util.spec_from_file_location("multi_task_zh_make_sample", path)
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    return sample.make_sample(os.path.join(work, "sample_raw"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--source", default=None, help="the data root holding tnews/, afqmc/, chnsenticorp/, weibo_ner/ "
                                                   "(default: a generated sample)")
    p.add_argument("--eval_size", type=int, default=600, help="dev and test examples of the held-out splits")
    p.add_argument("--max_train", type=int, default=None, help="use only the first N training examples of each task")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        stats = convert(read_sources(a.source or sample_source(work)), a.out, a.eval_size, a.max_train)
    print({task: {split: s["examples"] for split, s in stats[task].items()} for task in TASKS})


if __name__ == "__main__":
    main()
