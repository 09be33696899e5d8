"""The one place paddlepalm reads and writes files.

Reading: text is UTF-8 with an optional byte-order mark (stripped), JSON is parsed
with errors that name the file and line, and pickled state goes through the
restricted unpickler of :mod:`paddlepalm.utils.safe_pickle` (never plain
``pickle``/``paddle.load``), so no file we read can run code.

Writing: every file is written to a private temporary sibling, flushed to disk
and renamed over its target (``os.replace``), so a reader sees the old file or
the new one, never half of one.
"""
import contextlib
import hashlib
import json
import os
import tempfile
from typing import Any, Callable, IO, Iterator, Tuple

BOM = "\ufeff"


class FileFormatError(ValueError):
    """A file we read is malformed; the message names the file (and line when known)."""

    def __init__(self, path: str, line, problem: str):
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


# ----------------------------------------------------------------------- reading
def strip_bom(text: str) -> str:
    return text[1:] if text.startswith(BOM) else text


def read_text(path: str) -> str:
    """The whole file as text (UTF-8, a leading BOM dropped); bad bytes name the line."""
    with open(path, "rb") as f:
        raw = f.read()
    return strip_bom(decode_utf8(path, raw))


def decode_utf8(path: str, raw: bytes, first_line: int = 1) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + raw.count(b"\n", 0, err.start)
        raise FileFormatError(path, line, f"bytes are not valid UTF-8 (at byte {err.start}: "
                                          f"{raw[err.start:err.start + 4]!r})") from None


def read_lines(path: str) -> list:
    """Lines without their line ends (``\\n`` or ``\\r\\n``), BOM dropped."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_json(path: str) -> Any:
    """Parsed JSON; a syntax error names the file, line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FileFormatError(path, err.lineno, f"invalid JSON at column {err.colno}: {err.msg}") from None


def read_json_lines(path: str) -> list:
    """One parsed JSON value per non-blank line; a bad line names the file and line."""
    return [value for _, value in json_lines(path)]


def json_lines(path: str) -> Iterator[Tuple[int, Any]]:
    """``(line number, parsed value)`` of each non-blank line; a bad line names the file and line."""
    for number, line in enumerate(read_lines(path), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise FileFormatError(path, number, f"invalid JSON at column {err.colno}: {err.msg}") from None


def read_state(path: str) -> Any:
    """A pickled state (``paddle.save`` of a dict of arrays), loaded without running code."""
    from paddlepalm.utils.safe_pickle import safe_load

    return safe_load(path)


# ----------------------------------------------------------------------- writing
def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _replacing(path: str) -> Iterator[str]:
    """Yield a private temporary path beside ``path``; at the end of the block it is flushed to
    disk and renamed over ``path``. An exception (or a kill) leaves ``path`` untouched."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """``with atomic_open(path) as f: f.write(...)``: the file appears whole at the end of
    the block or not at all."""
    with _replacing(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f


def write_with(path: str, writer: Callable[[str], None]) -> None:
    """Atomically write a file produced by ``writer(tmp_path)`` (e.g. ``paddle.save``)."""
    with _replacing(path) as tmp:
        writer(tmp)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: str, data: Any, indent: int = 1) -> None:
    with atomic_open(path) as f:
        json.dump(data, f, indent=indent, ensure_ascii=False)


def write_json_lines(path: str, records) -> None:
    """One JSON value per line, atomically."""
    with atomic_open(path) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
