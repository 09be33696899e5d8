"""CLUE JSON-lines files, one object per line.

* Classification: ``{"sentence": ..., "label": ...}`` (TNEWS, IFLYTEK, ...), or a pair
  ``{"sentence1": ..., "sentence2": ..., "label": ...}`` (AFQMC, ...); ``text`` is taken for
  ``sentence`` too. The label (a string or an integer) is kept as a class name.
* CLUENER: ``{"text": ..., "label": {type: {entity: [[start, end], ...]}}}`` with inclusive
  character offsets, written as one BIO tag per character.

A split without any label (CLUE's test sets are unlabelled) is left out; a split where only some
rows have one is an error.
"""
from typing import Any, Dict, List, Mapping, Optional

from paddlepalm.prepare.common import Example
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils.fileio import FileFormatError, json_lines


def read(path: str) -> Optional[List[Example]]:
    """The examples of one file, or None when it has no labels at all."""
    try:
        records = list(json_lines(path))
    except FileFormatError as err:
        raise DataFormatError(err.path, err.line, err.problem) from None
    examples = [_example(path, number, record) for number, record in records]
    labelled = [e.label is not None or e.tags is not None for e in examples]
    if not any(labelled):
        return None
    if not all(labelled):
        number = records[labelled.index(False)][0]
        raise DataFormatError(path, number, "no 'label' (other rows of this file have one)")
    return examples


def _example(path: str, number: int, record: Any) -> Example:
    where = f"{path}:{number}"
    if not isinstance(record, Mapping):
        raise DataFormatError(path, number, f"expected a JSON object, got {type(record).__name__}")
    label = record.get("label")
    if isinstance(label, Mapping):
        return _entities(path, number, record)
    if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
        raise DataFormatError(path, number, f"'label' must be a string or an integer, got {label!r:.80}")
    text_a = _text(path, number, record, "sentence1" if "sentence1" in record else
                   "sentence" if "sentence" in record else "text")
    text_b = _text(path, number, record, "sentence2") if "sentence1" in record else None
    return Example(where, label=None if label is None else str(label), text_a=text_a, text_b=text_b,
                   label_where=where)


def _text(path: str, number: int, record: Mapping, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        keys = "'sentence', 'sentence1' and 'sentence2', or 'text'"
        raise DataFormatError(path, number, f"{key!r} must be a string, got {value!r:.80} (a row has {keys})")
    return value


def _entities(path: str, number: int, record: Mapping) -> Example:
    """CLUENER: BIO tags of the characters from the entities' ``[start, end]`` offsets."""
    text = _text(path, number, record, "text")
    tags = ["O"] * len(text)
    for kind, entities in record["label"].items():
        if not isinstance(entities, Mapping):
            raise DataFormatError(path, number, f"label {kind!r}: expected {{entity: [[start, end]]}}")
        for entity, spans in entities.items():
            for span in spans if isinstance(spans, list) else [spans]:
                start, end = _span(path, number, entity, span, len(text))
                if text[start:end + 1] != entity:
                    raise DataFormatError(path, number, f"entity {entity!r} at [{start}, {end}] does not match "
                                                        f"the text there, {text[start:end + 1]!r}")
                if any(t != "O" for t in tags[start:end + 1]):
                    raise DataFormatError(path, number, f"entity {entity!r} at [{start}, {end}] overlaps another")
                tags[start:end + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start)
    return Example(f"{path}:{number}", list(text), tags)


def _span(path: str, number: int, entity: str, span: Any, length: int):
    ok = isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in span)
    if not ok or not 0 <= span[0] <= span[1] < length:
        raise DataFormatError(path, number, f"entity {entity!r}: offsets {span!r} are not [start, end] "
                                            f"inside the text (0..{length - 1})")
    return span[0], span[1]
