"""Errors that stop a run before anything is written."""

from __future__ import annotations


class FileLevelError(Exception):
    """A problem with a whole file or source: the run stops and the warehouse stays as it was.

    The message names the file (and the row and column where there is one) and says what to do.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None, check: str = "file") -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column
        self.check = check
