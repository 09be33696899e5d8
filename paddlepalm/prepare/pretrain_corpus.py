"""The Chinese pretraining corpus of issue 26, built from the data root with no evaluation text in it.

Sources: ``zh_raw_corpus`` (zhwiki articles, FewCLUE unlabeled TNEWS titles and e-commerce reviews),
``peoples_daily_1998`` (an article is a document), the *training* split of ``online_shopping_10_cats``,
TNEWS, IFLYTEK, AFQMC (each question its own document) and the NER sets (MSRA without the 1000
sentences the suite holds out as its dev set, Weibo, Resume).

Three filters, counted per source in ``stats.json``:
- evaluation text: a sentence is dropped when it shares a window of ``WINDOW`` characters with any
  dev or test text of the suite (TNEWS, IFLYTEK, AFQMC, ChnSentiCorp, online_shopping_10_cats, MSRA,
  Weibo, Resume, CMRC 2018 dev contexts and questions), or equals a shorter one;
- duplicates: a document whose text was seen before is dropped;
- held-out: about ``1/HELDOUT_EVERY`` of the documents (chosen by a hash of their text, so the
  split does not depend on order) go to ``heldout.txt`` for masked-LM accuracy and perplexity.

Output: ``train.txt`` and ``heldout.txt`` (one sentence a line, a blank line after each document,
the layout the corpus readers take), ``vocab.txt`` (characters of ``train.txt``) and ``stats.json``.
"""
import csv
import hashlib
import io
import json
import os
import random
import re
import zipfile
from collections import defaultdict
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from paddlepalm.prepare import conll, rmrb
from paddlepalm.utils import fileio
from paddlepalm.utils.vocab import build_char_vocab, write_vocab

WINDOW = 16
HELDOUT_EVERY = 100
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")
_TAGGED_TOKEN = re.compile(r"/[A-Za-z]+$")

Document = List[str]
Source = Tuple[str, Callable[[], Iterator[Document]]]


def split_sentences(text: str) -> List[str]:
    """``text`` cut after 。！？!?；; with white space inside a sentence removed."""
    return [s for s in ("".join(part.split()) for part in _SENTENCE_END.split(text)) if s]


def _one_doc(text: str) -> Iterator[Document]:
    sentences = split_sentences(text)
    if sentences:
        yield sentences


# ------------------------------------------------------------------ sources
def _zhwiki(path: str) -> Iterator[Document]:
    document: Document = []
    for line in fileio.read_lines(path):
        line = line.strip()
        if line.startswith("<doc"):
            document = []
        elif line.startswith("</doc>"):
            if document:
                yield document
        elif line:
            document.extend(split_sentences(line))


def _json_field(path: str, field: str) -> Iterator[str]:
    for _, record in fileio.json_lines(path):
        yield record[field]


def _rmrb_articles(path: str) -> Iterator[Document]:
    """People's Daily paragraphs grouped by article (the id's first three parts)."""
    article, document = None, []
    with zipfile.ZipFile(path) as archive:
        text = fileio.decode_utf8(f"{path}:RMRB/RMRB.txt", archive.read("RMRB/RMRB.txt"))
    for line in text.split("\n"):
        tokens = line.split()
        if not tokens:
            continue
        key = tokens[0].rsplit("-", 1)[0]
        if key != article and document:
            yield document
            document = []
        article = key
        words = [rmrb.parse_word(path, 0, token)[0] for token in tokens[1:]]
        document.extend(split_sentences("".join(words)))
    if document:
        yield document


def _msra_sentences(path: str, name: str) -> List[str]:
    with zipfile.ZipFile(path) as archive:
        text = fileio.decode_utf8(f"{path}:MSRA/{name}", archive.read(f"MSRA/{name}"))
    return ["".join(_TAGGED_TOKEN.sub("", t) for t in line.split()) for line in text.split("\n") if line.strip()]


def _review_texts(path: str) -> Iterator[str]:
    with io.StringIO(fileio.read_text(path), newline="") as f:
        for row in csv.DictReader(f):
            yield row["review"]


def _tsv_column(path: str, column: int, skip_header: bool = False) -> Iterator[str]:
    for number, line in enumerate(fileio.read_lines(path)):
        if (skip_header and number == 0) or not line.strip():
            continue
        yield line.rstrip("\n").split("\t")[column]


def _conll_texts(path: str) -> Iterator[str]:
    for example in conll.read(path, strip_position="weibo" in os.path.basename(path).lower()):
        yield "".join(example.tokens)


def _each(texts: Iterable[str]) -> Iterator[Document]:
    for text in texts:
        yield from _one_doc(text)


def training_sources(root: str) -> List[Source]:
    """(name, documents) of every source of the corpus, in the order they are written."""
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    zh = j("zh_raw_corpus")
    return [
        ("zhwiki", lambda: _zhwiki(j("zh_raw_corpus", "zhwiki", "AA", "wiki_00"))),
        ("fewclue_unlabeled_reviews", lambda: _each(_json_field(os.path.join(zh, "fewclue_eprstmt", "unlabeled.json"),
                                                                "sentence"))),
        ("fewclue_unlabeled_tnews", lambda: _each(_json_field(os.path.join(zh, "fewclue_tnews", "unlabeled.json"),
                                                              "sentence"))),
        ("peoples_daily_1998", lambda: _rmrb_articles(j("peoples_daily_1998", "RMRB.zip"))),
        ("online_shopping_train", lambda: _each(_review_texts(j("online_shopping_10_cats", "train.csv")))),
        ("tnews_train", lambda: _each(_tsv_column(j("tnews", "train.tsv"), 0))),
        ("iflytek_train", lambda: _each(_json_field(j("iflytek_fewclue", "train_few_all.json"), "sentence"))),
        ("afqmc_train", lambda: _each(q for line in fileio.read_lines(j("afqmc", "train.txt")) if line.strip()
                                      for q in line.rstrip("\n").split("\t")[:2])),
        ("msra_train", lambda: _each(_msra_sentences(j("msra_ner", "MSRA.zip"), "train.txt")[:-1000])),
        ("weibo_train", lambda: _each(_conll_texts(j("weibo_ner", "weiboNER_2nd_conll.train")))),
        ("resume_train", lambda: _each(_conll_texts(j("resume_ner", "train.char.bmes")))),
    ]


def evaluation_texts(root: str) -> Iterator[str]:
    """Every dev and test text of the evaluation suite (what the corpus must not hold)."""
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    yield from _tsv_column(j("tnews", "dev.tsv"), 0)
    for name in ("dev_few_all.json", "test_public.json"):
        yield from _json_field(j("iflytek_fewclue", name), "sentence")
    for name in ("dev.txt", "test.txt"):
        for line in fileio.read_lines(j("afqmc", name)):
            yield from line.rstrip("\n").split("\t")[:2]
    for name in ("dev.tsv", "test.tsv"):
        yield from _tsv_column(j("chnsenticorp", name), -1, skip_header=True)
    for name in ("dev.csv", "test.csv"):
        yield from _review_texts(j("online_shopping_10_cats", name))
    msra = j("msra_ner", "MSRA.zip")
    yield from _msra_sentences(msra, "train.txt")[-1000:]
    yield from _msra_sentences(msra, "test_with_label.txt")
    for name in ("weiboNER_2nd_conll.dev", "weiboNER_2nd_conll.test"):
        yield from _conll_texts(j("weibo_ner", name))
    for name in ("dev.char.bmes", "test.char.bmes"):
        yield from _conll_texts(j("resume_ner", name))
    for article in fileio.read_json(j("cmrc2018", "cmrc2018_dev.json"))["data"]:
        for paragraph in article["paragraphs"]:
            yield paragraph["context"]
            for qa in paragraph["qas"]:
                yield qa["question"]


class EvaluationFilter:
    """Says whether a sentence overlaps the evaluation texts: a shared window of ``WINDOW``
    characters, or equality with an evaluation text (or sentence of one) shorter than that."""

    def __init__(self, texts: Iterable[str]):
        self.windows: Set[int] = set()
        self.short: Set[str] = set()
        for text in texts:
            text = "".join(text.split())
            for piece in [text] + split_sentences(text):
                if len(piece) < WINDOW:
                    self.short.add(piece)
            self.windows.update(hash(text[i:i + WINDOW]) for i in range(len(text) - WINDOW + 1))

    def overlaps(self, sentence: str) -> bool:
        if sentence in self.short:
            return True
        return any(hash(sentence[i:i + WINDOW]) in self.windows for i in range(len(sentence) - WINDOW + 1))


def is_heldout(text: str) -> bool:
    """Whether a document belongs to the held-out slice: by a hash of its text, not its position."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16) % HELDOUT_EVERY == 0


def build(root: str, out: str, vocab_size: int = 8000, min_freq: int = 2, seed: int = 1, log=print,
          sources: Optional[List[Source]] = None, evaluation: Optional[Iterable[str]] = None) -> Dict:
    """Write ``train.txt``, ``heldout.txt`` (documents in an order shuffled with ``seed``),
    ``vocab.txt`` and ``stats.json`` into ``out``; return the stats. ``sources`` and
    ``evaluation`` default to :func:`training_sources` and :func:`evaluation_texts` of ``root``."""
    os.makedirs(out, exist_ok=True)
    log(f"pretrain corpus: reading the evaluation texts under {root}")
    evaluation = EvaluationFilter(evaluation_texts(root) if evaluation is None else evaluation)
    seen: Set[str] = set()
    stats: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    kept_documents: Dict[str, List[str]] = {"train": [], "heldout": []}
    for name, documents in (training_sources(root) if sources is None else sources):
        s = stats[name]
        for document in documents():
            kept = [sentence for sentence in document if not evaluation.overlaps(sentence)]
            s["sentences_dropped_as_evaluation_text"] += len(document) - len(kept)
            text = "\n".join(kept)
            if not kept:
                continue
            if text in seen:
                s["documents_dropped_as_duplicates"] += 1
                continue
            seen.add(text)
            split = "heldout" if is_heldout(text) else "train"
            kept_documents[split].append(text)
            s[f"{split}_documents"] += 1
            s[f"{split}_sentences"] += len(kept)
            s[f"{split}_characters"] += sum(len(sentence) for sentence in kept)
        log(f"  {name}: {dict(s)}")
    for split, texts in kept_documents.items():  # mixed, so that no stretch of training sees one source only
        random.Random(seed).shuffle(texts)
        fileio.write_text(os.path.join(out, f"{split}.txt"), "".join(text + "\n\n" for text in texts))
    totals: Dict[str, int] = defaultdict(int)
    for s in stats.values():
        for key, value in s.items():
            totals[key] += value
    train_lines = fileio.read_lines(os.path.join(out, "train.txt"))
    vocab = build_char_vocab(train_lines, max_size=vocab_size, min_freq=min_freq)
    write_vocab(vocab, os.path.join(out, "vocab.txt"))
    result = {"sources": {k: dict(v) for k, v in stats.items()}, "total": dict(totals), "window": WINDOW,
              "heldout_every": HELDOUT_EVERY, "vocab_size": len(vocab),
              "unknown_rate_train": _unknown_rate(train_lines, set(vocab))}
    fileio.write_json(os.path.join(out, "stats.json"), result)
    return result


def _unknown_rate(lines: Iterable[str], vocab: Set[str]) -> float:
    known = total = 0
    for line in lines:
        for char in line.strip():
            total += 1
            known += char.lower() in vocab or char.isspace()
    return round(1 - known / max(total, 1), 5)


def main(argv=None) -> None:
    import argparse
    import sys

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", default=os.environ.get("PALM_DATA_ROOT"), help="default: $PALM_DATA_ROOT")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab_size", type=int, default=8000)
    a = p.parse_args(argv)
    if not a.data_root:
        raise SystemExit("give --data_root or set PALM_DATA_ROOT")
    stats = build(a.data_root, a.out, a.vocab_size, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(stats["total"] | {"vocab_size": stats["vocab_size"],
                                       "unknown_rate_train": stats["unknown_rate_train"]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
