"""Errors raised on malformed input data."""
from typing import Optional


class DataFormatError(ValueError):
    """Malformed input data. The message names where: ``file:line`` for a file, ``row N`` (its
    index) for in-memory data (a list of dicts, a ``datasets.Dataset``), then the problem."""

    def __init__(self, path: str, line: Optional[int], problem: str, row: Optional[int] = None):
        self.path, self.line, self.problem, self.row = path, line, problem, row
        if row is not None:
            where = f"row {row}"
        elif line is not None:
            where = f"{path}:{line}"
        else:
            where = str(path)
        super().__init__(f"{where}: {problem}")
