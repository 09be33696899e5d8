"""Convert the ATIS/SNIPS joint layout into PALM's TSV files (``paddlepalm.prepare``'s ``seq_in``
kind, in the layout PALM scripts read).

Input: ``{train,valid,test}/seq.in`` (words), ``seq.out`` (BIO tags), ``label`` (intent).
Output in ``out_dir``: ``slot/{train,dev,test}.tsv`` (``text_a<TAB>label``, joined by ``\\x02``),
``intent/{train,dev,test}.tsv`` (``label<TAB>text_a``, the label a class id), ``label_map.json`` (slot
tags), ``intent_map.json``, ``vocab.txt`` (WordPiece-style, built from the training split) and
``word_vocab.txt`` (the training split's lowercased words with ``<S>``, ``</S>``, ``<UNK>``, for the
recurrent backbones' ``tokenizer: whitespace``).

The tag and intent maps hold the training split's labels only. A dev or test intent that training
never saw gets an id past the intent map's (no prediction can equal it), a tag that training never
saw keeps its name (its entity cannot be found): both are scored as wrong, and named on stderr.
"""
import os
from typing import Dict, List

from paddlepalm.prepare import Layout, prepare

SPLITS = {"train": "train", "valid": "dev", "test": "test"}
PALM_LAYOUT = Layout(tags_dir="slot", labels_dir="intent", tag_map="label_map.json", label_map="intent_map.json",
                     label_ids=True)


def convert(raw_dir: str, out_dir: str) -> Dict[str, int]:
    prepared = prepare("seq_in", raw_dir, out_dir, lowercase=True, tokenizer="whitespace", layout=PALM_LAYOUT)
    return {"slot_classes": prepared.tag_classes, "intent_classes": prepared.label_classes,
            **{f"{name}_examples": prepared.splits[name]["examples"] for name in SPLITS.values()}}


def gold(out_dir: str, split: str) -> Dict[str, List]:
    """Gold tag sequences and intent ids of a converted split, in file order."""
    with open(os.path.join(out_dir, "slot", f"{split}.tsv"), encoding="utf-8") as f:
        tags = [line.rstrip("\n").split("\t")[1].split("\x02") for line in f.readlines()[1:]]
    with open(os.path.join(out_dir, "intent", f"{split}.tsv"), encoding="utf-8") as f:
        intents = [int(line.split("\t")[0]) for line in f.readlines()[1:]]
    return {"tags": tags, "intents": intents}


def head(out_dir: str, rows: int = 500, split: str = "train", name: str = "train_head") -> str:
    """``slot/NAME.tsv`` and ``intent/NAME.tsv``: the first ``rows`` sentences of a converted split, the
    same sentences in both. A small training set (tests, benchmarks) must come from the training split:
    dev may hold labels the training label maps lack."""
    for task in ("slot", "intent"):
        with open(os.path.join(out_dir, task, f"{split}.tsv"), encoding="utf-8") as f:
            lines = f.readlines()[:rows + 1]
        with open(os.path.join(out_dir, task, f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.writelines(lines)
    return name
