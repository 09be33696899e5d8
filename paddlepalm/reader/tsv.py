"""Strict TSV reading: every problem is reported with its file and line number."""
from typing import Dict, Iterator, List, Sequence, Tuple

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils.fileio import BOM

_BOM = BOM.encode("utf-8")


def read_tsv(path: str, required: Sequence[str], optional: Sequence[str] = ()) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Yield ``(line_number, row)`` for each data line of a TSV file with a header.

    ``required`` columns must be in the header; ``optional`` ones are kept when
    present. Blank lines are skipped. Raises :class:`DataFormatError` naming the
    file and line for a missing file content, a missing header column, a wrong
    column count, bytes that are not UTF-8 or a NUL byte. A UTF-8 byte-order mark
    at the start of the file is dropped.
    """
    with open(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    if raw_lines and raw_lines[0].startswith(_BOM):
        raw_lines[0] = raw_lines[0][len(_BOM):]
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    if not any(line.strip() for line in raw_lines):
        raise DataFormatError(path, None, "file is empty")
    header = _decode(path, 1, raw_lines[0]).rstrip("\r").split("\t")
    absent = [c for c in required if c not in header]
    if absent:
        raise DataFormatError(path, 1, f"header lacks column(s) {absent}; header is {header}")
    wanted: List[str] = [c for c in list(required) + list(optional) if c in header]
    positions = {c: header.index(c) for c in wanted}
    for number, raw in enumerate(raw_lines[1:], start=2):
        line = _decode(path, number, raw).rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataFormatError(path, number, f"expected {len(header)} tab-separated columns "
                                                f"({', '.join(header)}), found {len(fields)}")
        yield number, {c: fields[i] for c, i in positions.items()}


def _decode(path: str, number: int, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, number, f"bytes are not valid UTF-8 (at byte {err.start}: "
                                            f"{raw[err.start:err.start + 4]!r})") from None
    check_no_nul(path, number, text)
    return text


def check_no_nul(path: str, number, text: str) -> None:
    """A NUL byte in text is corruption (a binary file, a bad export), never data."""
    position = text.find("\x00")
    if position >= 0:
        raise DataFormatError(path, number, f"NUL byte in the text (at character {position})")


def parse_int(path: str, number: int, column: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataFormatError(path, number, f"column '{column}' must be an integer, got {value!r}") from None
