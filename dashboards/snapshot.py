"""Read-only snapshots of the live warehouse, one per request.

Why not ``duckdb.connect(path, read_only=True)`` (what :func:`ews.warehouse.open_readonly`
does): the DuckDB client keeps one database instance per file path and process, and hands it
to every new connection while any connection to that path is still open. The pipeline swaps a
new warehouse file in with ``os.replace``; a web server whose requests overlap would keep the
old instance alive and never see the new file. Attaching the file read-only to a fresh
in-memory database bypasses that cache: each request sees the file that is live when it
starts, and keeps that consistent snapshot (the old inode) until it ends, even if a swap
happens meanwhile. Nothing here ever takes a write lock, so a run is never blocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ews.warehouse import WarehousePaths


@contextmanager
def open_snapshot(state_dir: Path, identity: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the live warehouse (or identity store) as it is now.

    Args:
        state_dir: The state folder.
        identity: Open the identity store instead of the warehouse.

    Yields:
        A connection whose default catalog is the attached file.

    Raises:
        FileNotFoundError: When no run has created the file yet.
    """
    paths = WarehousePaths(state_dir)
    path = paths.identity if identity else paths.warehouse
    if not path.exists():
        raise FileNotFoundError(f"{path}: no warehouse yet; run 'ews run --term TERM' first")
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH $path AS snapshot (READ_ONLY)", {"path": str(path)})
        con.execute("USE snapshot")
        yield con
    finally:
        con.close()
