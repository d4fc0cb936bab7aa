"""Values bound for a spreadsheet cell (CSV or Excel), made safe against formula injection.

A text cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) is read
by Excel, LibreOffice and Google Sheets as a formula when the file is opened; a name or class
label from a source system could then run a formula on the reader's machine (OWASP "CSV
injection"). Every export that writes cells passes its values through :func:`spreadsheet_cell`,
which prefixes such text with a single quote, as OWASP recommends, so it is shown as text.
Numbers, dates and ``None`` are left as they are: they are typed cells, never formulas.
"""

from __future__ import annotations

from typing import Any

#: First characters that make a spreadsheet read a text cell as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """A value safe to write into a CSV or Excel cell.

    Args:
        value: Anything a cell may hold.

    Returns:
        Text beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, prefixed
        with ``'``; any other value unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value
