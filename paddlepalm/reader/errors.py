"""Errors raised on malformed input data."""
from typing import Optional


class DataFormatError(ValueError):
    """A data file is malformed. The message names the file, the line and the problem."""

    def __init__(self, path: str, line: Optional[int], problem: str):
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
