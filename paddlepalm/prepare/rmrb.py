"""People's Daily 1998 (the PKU segmented and POS-tagged corpus, ``RMRB.txt``) as character tagging
data: word segmentation (BMES over characters) and POS tagging (``B-pos``/``I-pos`` over characters).

One paragraph a line: an id token ``19980101-01-001-001/m``, then ``word/POS`` tokens separated by
spaces; a compound entity is bracketed, ``[中央/n  人民/n  广播/vn  电台/n]nt`` (its inner words are
kept, the bracket's tag dropped). Paragraphs are cut into sentences after 。！？； so a sentence fits
a tagger's window, and split by date (the corpus has no split of its own): days 1-27 train, 28-29
dev, 30-31 test.
"""
import os
import re
import zipfile
from typing import Dict, Iterator, List, Tuple

from paddlepalm.prepare.common import Example
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils import fileio

_ID = re.compile(r"(\d{8})-\d+-\d+-\d+/m$")
SENTENCE_END = frozenset("。！？；")
SPLIT_BY_DAY = (("train", 1, 27), ("dev", 28, 29), ("test", 30, 31))

Word = Tuple[str, str]  # (word, POS tag)


def read_paragraphs(path: str) -> Iterator[Tuple[str, int, List[Word]]]:
    """(date ``YYYYMMDD``, line number, words) of every non-empty line of ``RMRB.txt``, or of
    ``RMRB/RMRB.txt`` inside ``RMRB.zip``. A line that does not parse raises
    :class:`DataFormatError` naming the file and the line."""
    if path.endswith(".zip"):
        where = f"{path}:RMRB/RMRB.txt"
        with zipfile.ZipFile(path) as archive:
            text = fileio.decode_utf8(where, archive.read("RMRB/RMRB.txt"))
    else:
        where, text = path, fileio.read_text(path)
    for number, line in enumerate(text.split("\n"), 1):
        tokens = line.split()
        if not tokens:
            continue
        date = _ID.match(tokens[0])
        if date is None:
            raise DataFormatError(where, number, "expected an id token like 19980101-01-001-001/m first, "
                                  f"found {tokens[0]!r}")
        yield date.group(1), number, [parse_word(where, number, token) for token in tokens[1:]]


def parse_word(where: str, number: int, token: str) -> Word:
    """``(word, POS)`` of one ``word/POS`` token (a bracketed entity's brackets dropped); a token
    that is not one raises :class:`DataFormatError` naming ``where`` and the line ``number``."""
    if token.startswith("[") and len(token) > 1:
        token = token[1:]
    if "]" in token[1:]:  # the end of a bracketed entity: word/pos]nt
        token = token[:token.rindex("]")]
    word, slash, pos = token.rpartition("/")
    if not slash or not word or not pos:
        raise DataFormatError(where, number, f"expected word/POS, found {token!r}")
    return word, pos


def sentences(words: List[Word]) -> Iterator[List[Word]]:
    """The paragraph cut after each word that ends a sentence."""
    current: List[Word] = []
    for word in words:
        current.append(word)
        if word[0] in SENTENCE_END:
            yield current
            current = []
    if current:
        yield current


def segmentation_tags(words: List[Word]) -> List[str]:
    """BMES over the characters: ``S`` a one-character word, else ``B M... E``."""
    tags: List[str] = []
    for word, _ in words:
        tags += ["S"] if len(word) == 1 else ["B"] + ["M"] * (len(word) - 2) + ["E"]
    return tags


def pos_tags(words: List[Word]) -> List[str]:
    """``B-pos`` on a word's first character, ``I-pos`` on the rest."""
    tags: List[str] = []
    for word, pos in words:
        tags += [f"B-{pos}"] + [f"I-{pos}"] * (len(word) - 1)
    return tags


def read_splits(path: str, task: str = "segmentation") -> Dict[str, List[Example]]:
    """train/dev/test sentences as character :class:`Example` rows tagged for ``task``
    (``segmentation`` or ``pos``)."""
    tagger = {"segmentation": segmentation_tags, "pos": pos_tags}[task]
    splits: Dict[str, List[Example]] = {name: [] for name, _, _ in SPLIT_BY_DAY}
    for date, number, words in read_paragraphs(path):
        day = int(date[6:])
        split = next((name for name, first, last in SPLIT_BY_DAY if first <= day <= last), None)
        if split is None:
            raise DataFormatError(path, number, f"day {date} is not in January 1998")
        for sentence in sentences(words):
            splits[split].append(Example(where=f"{os.path.basename(path)}:{number}",
                                         tokens=[c for word, _ in sentence for c in word], tags=tagger(sentence)))
    return splits
