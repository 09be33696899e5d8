"""Plain text, one sentence per line, from ``<data_root>/zh_raw_corpus``.

zhwiki (WikiExtractor ``<doc>`` lines dropped, paragraphs cut into sentences at
。！？；), FewCLUE TNEWS titles and EPRSTMT reviews (the ``sentence`` field of
each JSON line). The output is derived data written to the work folder.
"""
import json
import os
import re
from typing import Iterator

from paddlepalm.utils.fileio import atomic_open

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")


def _wiki_sentences(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("<doc") or line.startswith("</doc"):
                continue
            for sentence in _SENTENCE_END.split(line):
                if len(sentence.strip()) >= 4:
                    yield sentence.strip()


def _json_sentences(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    text = json.loads(line)["sentence"].strip()
                except (json.JSONDecodeError, KeyError) as err:
                    raise ValueError(f"{path}:{number}: not a JSON line with a 'sentence' field ({err})") from None
                if text:
                    yield text


def prepare_corpus(data_root: str, out_dir: str, dev_lines: int = 1000) -> dict:
    """Write ``train.txt`` and ``dev.txt`` (every 50th sentence, up to ``dev_lines``); return their paths."""
    root = os.path.join(data_root, "zh_raw_corpus")
    sources = [_wiki_sentences(os.path.join(root, "zhwiki", "AA", "wiki_00")),
               _json_sentences(os.path.join(root, "fewclue_tnews", "unlabeled.json")),
               _json_sentences(os.path.join(root, "fewclue_eprstmt", "unlabeled.json"))]
    os.makedirs(out_dir, exist_ok=True)
    paths = {"train": os.path.join(out_dir, "train.txt"), "dev": os.path.join(out_dir, "dev.txt")}
    n = n_dev = 0
    with atomic_open(paths["train"]) as train, atomic_open(paths["dev"]) as dev:
        for source in sources:
            for sentence in source:
                n += 1
                if n % 50 == 0 and n_dev < dev_lines:
                    dev.write(sentence + "\n")
                    n_dev += 1
                else:
                    train.write(sentence + "\n")
    return paths
