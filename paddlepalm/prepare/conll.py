"""CoNLL-style files: one token and its tag per line, a blank line between sentences.

* The token is a line's first field, the tag its last (fields split at a tab, else at spaces, so a
  CJK full-width space can be a token; a plain space cannot: use the JSON-lines token form for that).
* Tags are BIO, BIOES or BMES (``O``, ``B-PER``, ``S-LOC``, ``M-ORG``, ...).
* A sentence may end with a line of one field, its sentence label (the StackPropagation/CAIS
  layout: ``char tag`` lines, then the intent, then a blank line); every sentence of the data set
  then has one.
* ``-DOCSTART-`` lines are skipped; ``strip_position``: a token's trailing digits are its position in
  a word (Weibo NER's ``科0``) and are dropped.
"""
import re
from typing import List, Optional, Sequence, Tuple

from paddlepalm.prepare.common import Example, check_tag
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils.fileio import FileFormatError, read_lines

_POSITION = re.compile(r"(.+?)[0-9]+", re.S)
Line = Tuple[int, List[str]]


def read(path: str, strip_position: bool = False) -> List[Example]:
    """The sentences of one file; a malformed line is an error naming ``file:line``."""
    try:
        lines = read_lines(path)
    except FileFormatError as err:
        raise DataFormatError(err.path, err.line, err.problem) from None
    examples: List[Example] = []
    for block in _blocks(lines):
        example = _sentence(path, block, strip_position)
        if examples and (example.label is None) != (examples[0].label is None):
            first = f"the first sentence ({examples[0].where})"
            problem = (f"no sentence label line ends this sentence, but one ends {first}" if example.label is None
                       else f"a sentence label line ends this sentence, but none ends {first}")
            raise DataFormatError(path, block[0][0], problem)
        examples.append(example)
    return examples


def _blocks(lines: Sequence[str]) -> List[List[Line]]:
    """Non-blank lines grouped into sentences, with their line numbers and fields."""
    blocks: List[List[Line]] = []
    block: List[Line] = []
    for number, line in enumerate(list(lines) + [""], start=1):
        if line.startswith("-DOCSTART-"):
            continue
        if not line.strip(" \t\r"):
            if block:
                blocks.append(block)
            block = []
            continue
        fields = line.split("\t") if "\t" in line else [f for f in line.split(" ") if f]
        block.append((number, [f.strip(" \r") or f for f in fields]))
    return blocks


def _sentence(path: str, block: List[Line], strip_position: bool) -> Example:
    label: Optional[str] = None
    label_where = None
    if len(block[-1][1]) == 1 and len(block) > 1:
        number, fields = block.pop()
        label, label_where = fields[0], f"{path}:{number}"
    tokens, tags = [], []
    for number, fields in block:
        if len(fields) < 2:
            raise DataFormatError(path, number, f"one field {fields[0]!r}: expected a token and its tag "
                                                "(a sentence label line ends its sentence)")
        token, tag = fields[0], fields[-1]
        if strip_position:
            match = _POSITION.fullmatch(token)
            if match is None:
                raise DataFormatError(path, number, f"token {token!r} does not end with a position digit "
                                                    "(strip_position)")
            token = match.group(1)
        check_tag(path, number, tag)
        tokens.append(token)
        tags.append(tag)
    return Example(f"{path}:{block[0][0]}", tokens, tags, label, label_where=label_where)
