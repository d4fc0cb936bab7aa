"""Rectification (GDPR art. 16): which pupils' rows a corrected export replaced.

A municipality corrects data in its own system and exports the file again; the incremental
ingest replaces exactly that file's rows and the run re-scores every pupil. To show in a
pupil's history that a correction happened, the run hashes the rows of every file that changed
since it was loaded, before the ingest (:func:`rows_before`), and compares them with the rows
loaded from the new version after it (:func:`replaced_rows`): a pupil with a row that is gone
or different had data corrected (rows only added, as when a term's weeks are appended, are
not a correction). The run keeps the result in the run log (``corrections``: run, file, pupil
pseudonym, rows replaced), apart from the warehouse, which stays what an empty warehouse would
get from the same files.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from ews.sql import load_queries
from ews.tables import create_tables
from ews.warehouse import open_runlog, table_exists
from pipelines.ingest import SourceFiles


def _queries() -> dict[str, str]:
    return load_queries("pipelines", "corrections.sql")


def changed_files(con: duckdb.DuckDBPyConnection, sources: list[SourceFiles],
                  hashes: dict[Path, str]) -> pd.DataFrame:
    """Files loaded before whose content in the inbox differs now, or that are gone (``source``, ``source_file``)."""
    if not table_exists(con, "raw_files"):
        return pd.DataFrame(columns=["source", "source_file"])
    loaded = con.execute("SELECT source, source_file, file_sha256 FROM raw_files").df()
    now = {(entry.source.name, path.name): hashes[path] for entry in sources for path in entry.files}
    changed = [(s, f) for s, f, sha in loaded.itertuples(index=False) if now.get((s, f)) != sha]
    return pd.DataFrame(changed, columns=["source", "source_file"])


def _keep_hashes(con: duckdb.DuckDBPyConnection, files: pd.DataFrame, table: str) -> int:
    """Keep the row hashes of some files in a temporary table of this connection; its row count.

    The hashes stay in DuckDB (which spills to the staged version's folder above its memory
    cap): a corrected national absence export is some 27 M rows, too many for pandas twice.
    """
    con.execute(f"DROP TABLE IF EXISTS {table}")  # table: a module constant, never data
    if files.empty:
        return 0
    con.register("changed_files", files)
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS " + _queries()["row_hashes"].strip().rstrip(";"))
    finally:
        con.unregister("changed_files")
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def rows_before(con: duckdb.DuckDBPyConnection, files: pd.DataFrame) -> int:
    """Keep the pupils' row hashes of the changed files before the ingest replaces them.

    Returns:
        The rows kept (in the connection's temporary table ``before_rows``).
    """
    return _keep_hashes(con, files, "before_rows")


def replaced_rows(con: duckdb.DuckDBPyConnection, files: pd.DataFrame, before: int) -> pd.DataFrame:
    """Per changed file and pupil, the rows the new version no longer has (``rows_replaced``).

    Args:
        con: The connection :func:`rows_before` kept the hashes in.
        files: The changed files.
        before: What :func:`rows_before` returned.
    """
    if not before:
        return pd.DataFrame(columns=["source", "source_file", "pupil_id", "rows_replaced"])
    _keep_hashes(con, files, "after_rows")
    try:
        return con.execute(_queries()["replaced"]).df()
    finally:
        con.execute("DROP TABLE IF EXISTS before_rows")
        con.execute("DROP TABLE IF EXISTS after_rows")


def record_corrections(state_dir: Path, run_id: str, term: str, corrections: pd.DataFrame) -> None:
    """Append a run's corrections to the run log's ``corrections`` (pseudonyms and counts only)."""
    with open_runlog(state_dir) as con:
        create_tables(con, "runlog", ["corrections"])
        con.execute("DELETE FROM corrections WHERE run_id = $run_id", {"run_id": run_id})
        if len(corrections):
            con.register("_corrections", corrections.assign(run_id=run_id, term=term)[
                ["run_id", "term", "source", "source_file", "pupil_id", "rows_replaced"]])
            con.execute("INSERT INTO corrections SELECT * FROM _corrections")
            con.unregister("_corrections")


def corrections_of(state_dir: Path, pupil_id: str) -> list[dict[str, object]]:
    """The corrections recorded for one pupil (for the subject-access report), oldest first."""
    try:
        with open_runlog(state_dir, read_only=True) as con:
            if not table_exists(con, "corrections"):
                return []
            rows = con.execute("SELECT c.run_id, c.term, c.source, c.source_file, c.rows_replaced, r.ended_at "
                               "FROM corrections c LEFT JOIN (SELECT run_id, max(ended_at) AS ended_at FROM runs "
                               "GROUP BY run_id) r USING (run_id) WHERE c.pupil_id = $p ORDER BY r.ended_at, 1, 3, 4",
                               {"p": pupil_id}).df()
    except FileNotFoundError:
        return []
    rows = rows.astype(object).where(rows.notna(), None)
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in rows.to_dict("records")]
