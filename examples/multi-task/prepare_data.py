"""Convert the ATIS/SNIPS joint layout into PALM's TSV files.

Input: ``{train,valid,test}/seq.in`` (words), ``seq.out`` (BIO tags), ``label`` (intent).
Output in ``out_dir``: ``slot/{train,dev,test}.tsv`` (``text_a<TAB>label``, joined by ``\\x02``),
``intent/{train,dev,test}.tsv`` (``label<TAB>text_a``), ``label_map.json`` (slot tags),
``intent_map.json``, ``vocab.txt`` (WordPiece-style, built from the training split) and
``word_vocab.txt`` (the training split's lowercased words with ``<S>``, ``</S>``, ``<UNK>``, for the
recurrent backbones' ``tokenizer: whitespace``).
"""
import json
import os
from typing import Dict, List

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.word_tokenizer import build_word_vocab, write_word_vocab
from paddlepalm.utils.vocab import build_vocab, write_vocab

SPLITS = {"train": "train", "valid": "dev", "test": "test"}


def read_split(directory: str):
    paths = {name: os.path.join(directory, name) for name in ("seq.in", "seq.out", "label")}
    lines = {}
    for name, path in paths.items():
        with open(path, encoding="utf-8") as f:
            lines[name] = [line.rstrip("\n") for line in f]
    if not len(lines["seq.in"]) == len(lines["seq.out"]) == len(lines["label"]):
        raise DataFormatError(directory, None, f"seq.in, seq.out and label have different line counts: "
                                               f"{[len(v) for v in lines.values()]}")
    examples = []
    for number, (text, tags, intent) in enumerate(zip(lines["seq.in"], lines["seq.out"], lines["label"]), start=1):
        words, tag_list = text.split(), tags.split()
        if len(words) != len(tag_list):
            raise DataFormatError(paths["seq.out"], number, f"{len(words)} words but {len(tag_list)} tags")
        examples.append((words, tag_list, intent.strip()))
    return examples


def convert(raw_dir: str, out_dir: str) -> Dict[str, str]:
    data = {split: read_split(os.path.join(raw_dir, split)) for split in SPLITS}
    tags = sorted({t for examples in data.values() for _, ts, _ in examples for t in ts} - {"O"})
    tag_map = {"O": 0, **{t: i + 1 for i, t in enumerate(tags)}}
    intents = sorted({intent for examples in data.values() for _, _, intent in examples})
    intent_map = {name: i for i, name in enumerate(intents)}
    for task in ("slot", "intent"):
        os.makedirs(os.path.join(out_dir, task), exist_ok=True)
    for split, name in SPLITS.items():
        with open(os.path.join(out_dir, "slot", f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.write("text_a\tlabel\n")
            for words, tag_list, _ in data[split]:
                f.write("\x02".join(words) + "\t" + "\x02".join(tag_list) + "\n")
        with open(os.path.join(out_dir, "intent", f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.write("label\ttext_a\n")
            for words, _, intent in data[split]:
                f.write(f"{intent_map[intent]}\t{' '.join(words)}\n")
    _write_json(os.path.join(out_dir, "label_map.json"), tag_map)
    _write_json(os.path.join(out_dir, "intent_map.json"), intent_map)
    write_vocab(build_vocab((" ".join(w) for w, _, _ in data["train"]), lowercase=True),
                os.path.join(out_dir, "vocab.txt"))
    write_word_vocab(build_word_vocab([w.lower() for w in words] for words, _, _ in data["train"]),
                     os.path.join(out_dir, "word_vocab.txt"))
    return {"slot_classes": len(tag_map), "intent_classes": len(intent_map),
            **{f"{name}_examples": len(data[split]) for split, name in SPLITS.items()}}


def gold(out_dir: str, split: str) -> Dict[str, List]:
    """Gold tag sequences and intent ids of a converted split, in file order."""
    with open(os.path.join(out_dir, "slot", f"{split}.tsv"), encoding="utf-8") as f:
        tags = [line.rstrip("\n").split("\t")[1].split("\x02") for line in f.readlines()[1:]]
    with open(os.path.join(out_dir, "intent", f"{split}.tsv"), encoding="utf-8") as f:
        intents = [int(line.split("\t")[0]) for line in f.readlines()[1:]]
    return {"tags": tags, "intents": intents}


def _write_json(path: str, value) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)
