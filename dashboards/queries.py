"""Named SQL queries kept in ``.sql`` files beside the code (``-- name: <query>`` blocks)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def load_queries(filename: str) -> dict[str, str]:
    """Read a file of named queries from this package.

    Args:
        filename: File name inside ``dashboards/`` (e.g. ``store.sql``).

    Returns:
        Query name -> SQL text. Text before the first ``-- name:`` line is kept under
        ``"_preamble"``.
    """
    text = resources.files("dashboards").joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries = {"_preamble": parts[0].strip()}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{filename}: query '{name}' is defined twice")
        queries[name] = body.strip()
    return queries
