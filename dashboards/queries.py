"""Named SQL queries kept in ``.sql`` files beside the app's code (``-- name: <query>`` blocks)."""

from __future__ import annotations

from ews.sql import load_queries as _load_queries


def load_queries(filename: str) -> dict[str, str]:
    """Read a file of named queries from this package (through the one loader, ``ews.sql``).

    Args:
        filename: File name inside ``dashboards/`` (e.g. ``store.sql``).

    Returns:
        Query name -> SQL text. Text before the first ``-- name:`` line is kept under
        ``"_preamble"``.
    """
    return _load_queries("dashboards", filename)
