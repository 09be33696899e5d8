"""Raw text into the units a tagger labels, with character offsets into the raw string.

Every path that sees raw text (``Trainer.predict(inputs=...)``, ``Predictor``, ``palm predict``,
``palm serve``) splits it here, by the model's own tokenizer, so that raw text and the same text
given pre-tokenized (a list of its units) get the same features and the same answer. Spans are
offsets into the raw string, whatever spaces it has or lacks: Chinese is typed without spaces.

The units, by tokenizer kind:

* ``wordpiece``: whitespace separates, every CJK character is a unit of its own, and any other
  run of characters is one unit (``Taylor``, ``2024``, ``d.c.``, ``，``), cut into word pieces of
  which the first is tagged: what BERT-style Chinese data sets and whitespace-tokenized English
  ones (ATIS, SNIPS) tag;
* ``char``: every non-space character is a unit (``T``, ``a``, ... too), as character-level
  Chinese data sets (MSRA, Resume, Weibo, CLUENER, CAIS) tag Latin letters and digits one by one;
* ``jieba``: jieba's words (``jieba.tokenize``), spaces dropped;
* ``whitespace``: runs of non-space characters (text already segmented: Chinese without spaces
  is one unit, see :func:`unspaced_cjk`).
"""
import re
import unicodedata
from typing import List, Sequence, Tuple

Unit = Tuple[str, int, int]  # (text, start, end): ``raw[start:end] == text``

_WHITESPACE_RUN = re.compile(r"\S+")


def is_cjk(char: str) -> bool:
    """A CJK ideograph (the ranges BERT's Chinese tokenization splits apart)."""
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B820 <= code <= 0x2CEAF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def is_space(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Zs"


def fold_width(text: str) -> str:
    """Full-width letters, digits and symbols folded to their half-width forms (``１`` -> ``1``,
    ``Ａ`` -> ``A``), one character for one so that offsets stay those of the raw text; a
    character whose NFKC form is longer or a space is kept."""
    return "".join(_fold_char(c) for c in text)


def _fold_char(char: str) -> str:
    if char.isascii():
        return char
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 and not folded.isspace() else char


def split_units(text: str, kind: str) -> List[Unit]:
    """The units of ``text`` for a tokenizer ``kind`` (see the module docstring)."""
    if kind == "whitespace":
        return [(m.group(), m.start(), m.end()) for m in _WHITESPACE_RUN.finditer(text)]
    if kind == "jieba":
        import jieba

        return [(word, start, end) for word, start, end in jieba.tokenize(text) if word.strip()]
    if kind == "char":
        return [(char, index, index + 1) for index, char in enumerate(text) if not is_space(char)]
    if kind == "wordpiece":
        return _split_runs(text)
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def _split_runs(text: str) -> List[Unit]:
    """CJK characters alone; runs of other non-space characters together."""
    units: List[Unit] = []
    start = None
    for index, char in enumerate(text):
        alone = is_cjk(char)
        if is_space(char) or alone:
            if start is not None:
                units.append((text[start:index], start, index))
                start = None
            if alone:
                units.append((char, index, index + 1))
        elif start is None:
            start = index
    if start is not None:
        units.append((text[start:], start, len(text)))
    return units


def units_of_tokens(tokens: Sequence[str]) -> Tuple[str, List[Unit]]:
    """Pre-tokenized input: the text its offsets refer to (the tokens joined by one space) and
    one unit per token."""
    units: List[Unit] = []
    position = 0
    for index, token in enumerate(tokens):
        if not isinstance(token, str) or not token.strip():
            raise ValueError(f"token {index} must be a non-empty string, got {token!r:.40}")
        units.append((token, position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), units


def unspaced_cjk(text: str) -> bool:
    """Whether ``text`` has two CJK characters in a row (what a whitespace tokenizer takes for
    one word)."""
    return any(is_cjk(a) and is_cjk(b) for a, b in zip(text, text[1:]))
