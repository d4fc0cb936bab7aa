"""Errors that stop a run before anything is written."""

from __future__ import annotations

from ews.pseudonym import mask_cpr


class FileLevelError(Exception):
    """A problem with a whole file or source: the run stops and the warehouse stays as it was.

    The message names the file (and the row and column where there is one) and says what to do.
    Anything shaped like a CPR number in the message or the column (a header line that is
    really a data row, say) is masked: the message goes to the terminal, the run log and the
    manifest.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None, check: str = "file") -> None:
        super().__init__(mask_cpr(message))
        self.file = file
        self.line = line
        self.column = mask_cpr(column) if column is not None else None
        self.check = check
