"""The one loader of the project's ``.sql`` files.

SQL lives in ``.sql`` files beside the Python that runs it (``CONVENTIONS.md``). A file is
either one statement (or script), read whole with :func:`load_sql`, or a file of named blocks
(``-- name: <query>`` lines), read with :func:`load_queries`. Both read a file once per process.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([\w.]+)\s*$", re.MULTILINE)


@cache
def load_sql(package: str, filename: str) -> str:
    """The text of one ``.sql`` file of a package.

    Args:
        package: The package the file sits in (``"models"``, ``"pipelines.commands"``).
        filename: The file name inside it (``"registry_read.sql"``).

    Returns:
        The file's text.

    Raises:
        ValueError: When the name is not a ``.sql`` file.
    """
    if not filename.endswith(".sql"):
        raise ValueError(f"'{filename}' is not a .sql file")
    return resources.files(package).joinpath(filename).read_text(encoding="utf-8")


def load_queries(package: str, filename: str) -> dict[str, str]:
    """The named queries of a ``.sql`` file of a package (``-- name: <query>`` blocks).

    Args:
        package: The package the file sits in.
        filename: The file name inside it (e.g. ``"store.sql"``).

    Returns:
        Query name -> SQL text. Text before the first ``-- name:`` line is kept under
        ``"_preamble"``.

    Raises:
        ValueError: When a name is defined twice.
    """
    return dict(_parse_queries(package, filename))  # a copy: callers may keep or change it


@cache
def _parse_queries(package: str, filename: str) -> dict[str, str]:
    parts = _NAME.split(load_sql(package, filename))
    queries = {"_preamble": parts[0].strip()}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{package}/{filename}: query '{name}' is defined twice")
        queries[name] = body.strip()
    return queries
