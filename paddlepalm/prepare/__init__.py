"""Converters of common public data set layouts into the files paddlepalm's readers read.

``prepare(kind, source, out, **options)`` (or a config's ``prepare: {kind: ..., source: ...}``, run
by ``palm train``) reads the raw data set folder ``source`` and writes into ``out``:

* ``tags/{train,dev,test}.tsv`` (``text_a<TAB>label``, tokens and tags joined by ``\\x02``) and
  ``tags/label_map.json`` when the data set tags tokens;
* ``labels/{train,dev,test}.tsv`` (``label<TAB>text_a[<TAB>text_b]``, the label a class name) and
  ``labels/label_map.json`` when it labels sentences (a sentence of tagged tokens: the tokens joined
  by spaces);
* ``vocab.txt`` (WordPiece, from the training split), ``word_vocab.txt`` (the training split's
  tokens, for ``tokenizer: whitespace|char|jieba`` readers), ``prepare.json`` (what was written).

Label maps hold the training split's labels only; a dev or test label that training never saw is
counted, named on stderr, and scored as wrong by the readers (docs/data.md).

Kinds:

* ``seq_in``: the ATIS/SNIPS folders ``train|valid|test/seq.in, seq.out, label`` (slots and intent);
* ``conll``: CoNLL-style token-and-tag lines, optionally with a sentence label line per sentence;
* ``clue_json``: CLUE classification or CLUENER JSON lines.

Options: ``files`` (``{train: NAME, dev: NAME, test: NAME}`` in ``source``; default: the file whose
name holds the split's word), ``lowercase`` (of the vocabularies), ``tokenizer`` (how
``word_vocab.txt`` splits sentences without tokens: ``char``, ``jieba``, ``whitespace``),
``strip_position`` (``conll``: drop a token's trailing position digits, Weibo NER).
"""
from typing import Any, Callable, Dict, List, Mapping, Optional

from paddlepalm.prepare import clue, conll, seq_in
from paddlepalm.prepare.common import SPLITS, Example, Layout, Prepared, split_files, write

KINDS = ("seq_in", "conll", "clue_json")


def read_splits(kind: str, source: str, files: Optional[Mapping[str, str]] = None,
                strip_position: bool = False) -> Dict[str, List[Example]]:
    """``{split: examples}`` of a raw data set (splits it lacks are left out)."""
    if kind == "seq_in":
        if files:
            raise ValueError("seq_in reads the folders train/, valid/ (or dev/) and test/: it takes no files")
        return seq_in.read(source)
    if kind == "conll":
        return {split: conll.read(path, strip_position) for split, path in split_files(source, files).items()}
    if kind == "clue_json":
        found = split_files(source, files, extensions=(".json", ".jsonl"))
        read: Dict[str, Any] = {split: clue.read(path) for split, path in found.items()}
        if read["train"] is None:
            raise ValueError(f"{found['train']}: the training split has no labels")
        return {split: examples for split, examples in read.items() if examples is not None}
    raise ValueError(f"unknown prepare kind {kind!r}; kinds: {', '.join(KINDS)}")


def prepare(kind: str, source: str, out: str, files: Optional[Mapping[str, str]] = None, lowercase: bool = False,
            tokenizer: str = "char", strip_position: bool = False, layout: Layout = Layout()) -> Prepared:
    """Convert the data set in ``source`` (a folder) into ``out`` (see the module's docstring)."""
    if strip_position and kind != "conll":
        raise ValueError("strip_position is a conll option")
    splits = read_splits(kind, source, files, strip_position)
    return write(kind, source, {s: splits[s] for s in SPLITS if s in splits}, out, layout, lowercase, tokenizer)


__all__ = ["KINDS", "Example", "Layout", "Prepared", "prepare", "read_splits"]
