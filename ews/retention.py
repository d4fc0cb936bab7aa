"""Retention: what is deleted when, per data item (the config's ``retention``, issue 15 part 2).

Ages are counted in school years back from the current one (the school year of the settings'
today): with ``outputs_school_years: 3`` in 2026/27, the outputs of 2023/24 and later stay and
those of 2022/23 and earlier go. Each data item names the tables (and files) it covers and a
condition on their rows; :func:`plan_retention` counts what would go, :func:`apply_retention`
deletes it inside one :func:`ews.warehouse.staged_write` (both stores published together, or
neither) and writes the counts, never an identity, to the run log's ``retention_log``.

What is not deleted here: the run log (counts only), the model registry and model files
(pseudonymised aggregates; a model is retrained when its data go), and the review app's
reviews and audit log, whose keyed hash chains a deletion would break: ``ews retention``
shows how many of their rows are past their time so that the municipality can archive the
file (``docs/data-life-cycle.md``).
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from ews.config import MunicipalityConfig
from ews.terms import school_year_label, school_year_of
from ews.warehouse import WriteSession, open_runlog, table_exists

#: The retention item of the exports' rows (raw and clean tables, names per row, export files).
SOURCE_ROWS_ITEM = "source_rows_school_years"
#: Output tables keyed by term (the term's first four characters are its school year's start).
OUTPUT_TABLES_BY_TERM = ("features_pupil_term", "scores_pupil_term", "flags_pupil_term", "quarantine_rows",
                         "validation_results")
#: Tables of the ingest's memory, keyed by (source, source_file).
RAW_TABLES = ("raw_rows", "raw_quarantine", "raw_checks", "raw_pupil_ids", "raw_files", "raw_duplicates")
#: Clean tables, keyed by source_file.
CLEAN_TABLES = ("clean_pupils", "clean_absence", "clean_tests", "clean_marks", "clean_contacts", "clean_support",
                "clean_outcomes")

#: The retention item (config key) that covers each table, for the records of processing
#: (``ews records``); a test checks that every table a run writes is here or in KEPT_TABLES.
TABLE_RETENTION: dict[str, tuple[str, ...]] = {
    **{table: ("source_rows_school_years",) for table in RAW_TABLES + CLEAN_TABLES},
    **{table: ("outputs_school_years",) for table in (*OUTPUT_TABLES_BY_TERM, "explanations_pupil_term",
                                                      "flags_withdrawn")},
    "identity_pupils": ("identity_after_leaving_school_years",),
    "identity_rows": ("source_rows_school_years", "identity_after_leaving_school_years",
                      "keep_names_of_quarantined_rows"),
    "corrections": ("outputs_school_years",),
    "reviews": ("reviews_and_audit_years",),
    "audit_log": ("reviews_and_audit_years",),
}
#: Tables kept without a retention period, and why (no pupil-level data, or rebuilt every run).
KEPT_TABLES: dict[str, str] = {
    "models": "the model registry: aggregate metrics and a training fingerprint, no pupil-level rows",
    "raw_sources": "one fingerprint per source (which pupils the cross-file checks saw), no pupil-level rows",
    "clean_exclusions": "rebuilt by every run from the exclusion store (kept while an exclusion stands)",
    "ingest_valid_pupils": "a working table of the identity store, emptied and refilled by every ingest",
    "reviews_decisions": "replaced by every run from the review app's reviews (pseudonyms and codes), so it "
                         "holds what the app holds under the reviews' own retention",
    "scores_outcome_evaluation": "aggregate figures per model and term (AUC, precision, calibration), no "
                                 "pupil-level rows",
    "flags_outcomes": "counts per group of pupils (flagged, confirmed, dismissed), no pupil-level rows",
}

# The school year a loaded file holds: from its name (``fravaer_2018-19.csv``), else from its
# latest event date.
_FILE_YEAR = ("coalesce(TRY_CAST(regexp_extract(source_file, '(\\d{4})-\\d{2}', 1) AS INTEGER), "
              "CASE WHEN month(max_event_date) >= 8 THEN year(max_event_date) ELSE year(max_event_date) - 1 END)")


@dataclass(frozen=True)
class RetentionCount:
    """Rows (or files) of one target that are past their time.

    Attributes:
        item: The config key (``source_rows_school_years``, ...).
        target: The table (``warehouse.raw_rows``, ``identity.identity_rows``) or files
            (``inbox files``, ``run folders``), or ``app.reviews`` (shown, not deleted).
        rows: How many rows or files.
        keep_from: The oldest school year (or date) kept.
        applied: Whether ``--apply`` deletes them.
    """

    item: str
    target: str
    rows: int
    keep_from: str
    applied: bool = True


#: A helper set of rows: a pandas frame, or an Arrow table straight from DuckDB.
Frame = pd.DataFrame | pa.Table


@dataclass
class _Scope:
    """The helper sets that say which rows are past their time (no identities in them)."""

    current_year: int
    expired_files: pd.DataFrame
    leaver_ids: Frame
    leaver_lines: Frame
    loaded_register_lines: Frame


def _start(config_years: int, current_year: int) -> int:
    return current_year - config_years


def _scope(con: duckdb.DuckDBPyConnection, config: MunicipalityConfig, today: date) -> _Scope:
    retention = config.retention
    current = school_year_of(today)
    files = pd.DataFrame(columns=["source", "source_file"])
    if table_exists(con, "raw_files"):
        files = con.execute(f"SELECT source, source_file FROM raw_files WHERE {_FILE_YEAR} < $keep",
                            {"keep": _start(retention.source_rows_school_years, current)}).df()
    leavers: Frame = pd.DataFrame(columns=["pupil_id"])
    lines: Frame = pd.DataFrame(columns=["source", "source_file", "source_line"])
    register: Frame = pd.DataFrame(columns=["source_file", "source_line"])
    if table_exists(con, "clean_pupils") and table_exists(con, "raw_rows"):
        keep_identity = _start(retention.identity_after_leaving_school_years, current)
        # the sets stay in DuckDB and come back as Arrow tables (the identity store, another
        # database, is given them too): at national size they are 0.7 M leavers, 3.8 M register
        # lines of theirs and every loaded register line, which as pandas strings took seconds
        con.register("expired_files", files)
        try:
            # leavers: pupils of the register with no register row in a school year kept (in a
            # file that is kept)
            leavers = con.sql(
                "SELECT DISTINCT pupil_id FROM raw_rows WHERE pupil_id IS NOT NULL AND enrolled_from IS NOT NULL "
                "EXCEPT SELECT pupil_id FROM clean_pupils WHERE CAST(left(school_year, 4) AS INTEGER) >= $keep "
                "AND source_file NOT IN (SELECT source_file FROM expired_files)", params={"keep": keep_identity}
            ).to_arrow_table()
        finally:
            con.unregister("expired_files")
        # only the register's rows have names (identity_rows); the leavers' other rows (absence,
        # tests, ...) are hundreds of millions at national size and are not looked up
        named = [source.name for source in config.sources if source.kind == "pupils"]
        con.register("leaver_ids", leavers)
        try:
            lines = con.sql("SELECT source, source_file, source_line FROM raw_rows "
                            "WHERE source IN (SELECT unnest($named)) "
                            "AND pupil_id IN (SELECT pupil_id FROM leaver_ids)", params={"named": named}
                            ).to_arrow_table()
        finally:
            con.unregister("leaver_ids")
        register = con.sql("SELECT source_file, source_line FROM clean_pupils").to_arrow_table()
    return _Scope(current, files, leavers, lines, register)


def _targets(config: MunicipalityConfig, scope: _Scope) -> list[tuple[str, str, str, str, str]]:
    """(item, store, table, condition, keep_from) for every table a retention item covers."""
    retention = config.retention
    keep_sources = school_year_label(_start(retention.source_rows_school_years, scope.current_year))
    keep_outputs_year = _start(retention.outputs_school_years, scope.current_year)
    keep_outputs = school_year_label(keep_outputs_year)
    keep_identity = school_year_label(_start(retention.identity_after_leaving_school_years, scope.current_year))
    expired = "(source, source_file) IN (SELECT source, source_file FROM expired_files)"
    by_term = "CAST(left(term, 4) AS INTEGER) < $keep_outputs"
    targets = [("source_rows_school_years", "warehouse", table, expired, keep_sources) for table in RAW_TABLES]
    targets += [("source_rows_school_years", "warehouse", table,
                 "source_file IN (SELECT source_file FROM expired_files)", keep_sources) for table in CLEAN_TABLES]
    targets.append(("source_rows_school_years", "identity", "identity_rows", expired, keep_sources))
    # explanations first: they are found through the scores and flags of the expired terms
    targets.append(("outputs_school_years", "warehouse", "explanations_pupil_term",
                    f"run_id IN (SELECT run_id FROM scores_pupil_term WHERE {by_term})", keep_outputs))
    targets += [("outputs_school_years", "warehouse", table, by_term, keep_outputs)
                for table in OUTPUT_TABLES_BY_TERM]
    targets.append(("outputs_school_years", "warehouse", "flags_withdrawn",
                    "CAST(left(withdrawn_term, 4) AS INTEGER) < $keep_outputs", keep_outputs))
    targets.append(("identity_after_leaving_school_years", "identity", "identity_pupils",
                    "pupil_id IN (SELECT pupil_id FROM leaver_ids)", keep_identity))
    targets.append(("identity_after_leaving_school_years", "identity", "identity_rows",
                    "(source, source_file, source_line) IN (SELECT source, source_file, source_line FROM leaver_lines)",
                    keep_identity))
    if not retention.keep_names_of_quarantined_rows:
        targets.append(("keep_names_of_quarantined_rows", "identity", "identity_rows",
                        "(source_file, source_line) NOT IN (SELECT source_file, source_line FROM register_lines)",
                        "names of loaded rows only"))
    return targets


def _bind(con: duckdb.DuckDBPyConnection, scope: _Scope) -> None:
    con.register("expired_files", scope.expired_files)
    con.register("leaver_ids", scope.leaver_ids)
    con.register("leaver_lines", scope.leaver_lines)
    con.register("register_lines", scope.loaded_register_lines)


def _unbind(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("expired_files", "leaver_ids", "leaver_lines", "register_lines"):
        con.unregister(name)


def _table_counts(con: duckdb.DuckDBPyConnection, identity: duckdb.DuckDBPyConnection | None,
                  config: MunicipalityConfig, scope: _Scope, delete: bool,
                  items: Collection[str] | None = None) -> list[RetentionCount]:
    counts = []
    for item, store, table, condition, keep in _targets(config, scope):
        if items is not None and item not in items:
            continue
        target_con = con if store == "warehouse" else identity
        if target_con is None or not table_exists(target_con, table):
            counts.append(RetentionCount(item, f"{store}.{table}", 0, keep))
            continue
        # table names and conditions are code constants (above), never data; values are bound
        params = {"keep_outputs": _start(config.retention.outputs_school_years, scope.current_year)}
        bound = {name: value for name, value in params.items() if f"${name}" in condition}
        rows = target_con.execute(f"SELECT count(*) FROM {table} WHERE {condition}", bound).fetchall()[0][0]
        if delete and rows:
            target_con.execute(f"DELETE FROM {table} WHERE {condition}", bound)
        counts.append(RetentionCount(item, f"{store}.{table}", int(rows), keep))
    return counts


def _expired_inbox_files(inbox: Path | None, scope: _Scope) -> list[Path]:
    if inbox is None or not inbox.exists() or scope.expired_files.empty:
        return []
    names = set(scope.expired_files["source_file"])
    return sorted(p for p in inbox.rglob("*") if p.is_file() and p.name in names)


def _expired_run_folders(runs_dir: Path, config: MunicipalityConfig, scope: _Scope) -> list[Path]:
    keep = _start(config.retention.outputs_school_years, scope.current_year)
    if not runs_dir.exists():
        return []
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name[:4].isdigit() and int(p.name[:4]) < keep)


def _app_counts(state_dir: Path, config: MunicipalityConfig, today: date) -> list[RetentionCount]:
    path = state_dir / "app.sqlite"
    years = config.retention.reviews_and_audit_years
    cut = date(today.year - years, today.month, min(today.day, 28)).isoformat()
    counts = []
    if not path.exists():
        return counts
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for table, column in (("reviews", "reviewed_at"), ("audit_log", "at")):
            rows = con.execute(f"SELECT count(*) FROM {table} WHERE {column} < ?", (cut,)).fetchone()[0]
            counts.append(RetentionCount("reviews_and_audit_years", f"app.{table}", int(rows), cut, applied=False))
    finally:
        con.close()
    return counts


def plan_retention(con: duckdb.DuckDBPyConnection, identity: duckdb.DuckDBPyConnection | None,
                   config: MunicipalityConfig, today: date, state_dir: Path, inbox: Path | None
                   ) -> list[RetentionCount]:
    """What retention would delete now (nothing is changed).

    Args:
        con: The published warehouse (read-only).
        identity: The identity store of the same version (None when absent).
        config: The municipality config (its ``retention``).
        today: The day (its school year is the current one).
        state_dir: The state folder (run folders, the app's store).
        inbox: The export folder.

    Returns:
        One count per table or kind of file.
    """
    scope = _scope(con, config, today)
    for connection in (con, identity):
        if connection is not None:
            _bind(connection, scope)
    try:
        counts = _table_counts(con, identity, config, scope, delete=False)
    finally:
        for connection in (con, identity):
            if connection is not None:
                _unbind(connection)
    return counts + _file_counts(config, scope, state_dir, inbox) + _app_counts(state_dir, config, today)


def _file_counts(config: MunicipalityConfig, scope: _Scope, state_dir: Path, inbox: Path | None
                 ) -> list[RetentionCount]:
    keep_sources = school_year_label(_start(config.retention.source_rows_school_years, scope.current_year))
    keep_outputs = school_year_label(_start(config.retention.outputs_school_years, scope.current_year))
    return [RetentionCount("source_rows_school_years", "inbox files", len(_expired_inbox_files(inbox, scope)),
                           keep_sources),
            RetentionCount("outputs_school_years", "run folders",
                           len(_expired_run_folders(state_dir / "runs", config, scope)), keep_outputs)]


@dataclass(frozen=True)
class SourceExpiry:
    """What :func:`expire_source_rows` deleted early in a run, for :func:`apply_retention` to finish.

    Attributes:
        scope: Which files, pupils and lines were past their time before anything was deleted.
        counts: The rows of the exports deleted (item :data:`SOURCE_ROWS_ITEM`).
    """

    scope: _Scope
    counts: list[RetentionCount]


def _delete(session: WriteSession, config: MunicipalityConfig, scope: _Scope,
            items: Collection[str] | None) -> list[RetentionCount]:
    for connection in (session.con, session.identity):
        _bind(connection, scope)
    try:
        return _table_counts(session.con, session.identity, config, scope, delete=True, items=items)
    finally:
        for connection in (session.con, session.identity):
            _unbind(connection)


def expire_source_rows(session: WriteSession, config: MunicipalityConfig, today: date) -> SourceExpiry:
    """Delete the exports' rows past their time (:data:`SOURCE_ROWS_ITEM`) in a staged version.

    A termly run does this right after its ingest, before its features and its model, so that no
    model is trained on rows the same run deletes (and the next run, finding the same rows,
    reuses the model instead of training again). The rest of retention, and the removal of the
    expired export files from the inbox, waits for :func:`apply_retention` at the run's end: the
    outcome evaluation still needs the outputs of the school year that is about to go.

    Args:
        session: From ``ews.warehouse.staged_write``.
        config: The municipality config.
        today: The day.

    Returns:
        The scope (computed before this deletion) and the counts deleted.
    """
    scope = _scope(session.con, config, today)
    return SourceExpiry(scope=scope, counts=_delete(session, config, scope, {SOURCE_ROWS_ITEM}))


def apply_retention(session: WriteSession, config: MunicipalityConfig, today: date, state_dir: Path,
                    inbox: Path | None, expired: SourceExpiry | None = None) -> list[RetentionCount]:
    """Delete what is past its time, in a staged version (published by the caller's ``staged_write``).

    The tables are changed in the new version only; the expired export files are removed from
    the inbox at the end of the block (so a run that sees them gone forgets no more than this
    did); the run folders are removed by :func:`remove_expired_run_folders` after publication.

    Args:
        session: From ``ews.warehouse.staged_write``.
        config: The municipality config.
        today: The day.
        state_dir: The state folder.
        inbox: The export folder.
        expired: When :func:`expire_source_rows` already deleted the exports' rows in this
            session: the rest is deleted with its scope (computed before that deletion, so
            that the pupils of the deleted files are still known as leavers).

    Returns:
        The counts deleted (and the app's, not deleted).
    """
    if expired is None:
        scope = _scope(session.con, config, today)
        counts = _delete(session, config, scope, None)
    else:
        scope = expired.scope
        others = {item for item, *_rest in _targets(config, scope)} - {SOURCE_ROWS_ITEM}
        counts = [*expired.counts, *_delete(session, config, scope, others)]
    removed = _expired_inbox_files(inbox, scope)
    for path in removed:
        path.unlink()
    keep_sources = school_year_label(_start(config.retention.source_rows_school_years, scope.current_year))
    counts.append(RetentionCount("source_rows_school_years", "inbox files", len(removed), keep_sources))
    return counts + _app_counts(state_dir, config, today)


def remove_expired_run_folders(config: MunicipalityConfig, today: date, state_dir: Path) -> RetentionCount:
    """Remove the run folders (manifests, validation reports, UU working lists) of expired terms."""
    scope = _Scope(school_year_of(today), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    folders = _expired_run_folders(state_dir / "runs", config, scope)
    for folder in folders:
        shutil.rmtree(folder)
    keep = school_year_label(_start(config.retention.outputs_school_years, scope.current_year))
    return RetentionCount("outputs_school_years", "run folders", len(folders), keep)


def log_retention(state_dir: Path, today: date, counts: list[RetentionCount], triggered_by: str) -> None:
    """Write the counts deleted to the run log's ``retention_log`` (no identities)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [(now, today, c.item, c.target, c.rows, triggered_by) for c in counts if c.applied]
    if not rows:
        return
    with open_runlog(state_dir) as con:
        con.executemany("INSERT INTO retention_log VALUES (?, ?, ?, ?, ?, ?)", rows)


def run_retention(state_dir: Path, config: MunicipalityConfig, today: date, inbox: Path | None,
                  triggered_by: str) -> list[RetentionCount]:
    """Apply retention end to end: delete in a new version, publish it, remove folders, log counts.

    Args:
        state_dir: The state folder.
        config: The municipality config.
        today: The day.
        inbox: The export folder.
        triggered_by: Who or what asked (``cli:<user>`` or the run id), for the log.

    Returns:
        The counts (the app's rows are shown, not deleted).
    """
    from ews.warehouse import staged_write

    with staged_write(state_dir) as session:
        counts = apply_retention(session, config, today, state_dir, inbox)
    return finish_retention(state_dir, config, today, counts, triggered_by)


def finish_retention(state_dir: Path, config: MunicipalityConfig, today: date, counts: list[RetentionCount],
                     triggered_by: str) -> list[RetentionCount]:
    """After the publication of :func:`apply_retention`: remove expired run folders and corrections, log.

    Args:
        state_dir: The state folder.
        config: The municipality config.
        today: The day retention counted from.
        counts: What :func:`apply_retention` deleted.
        triggered_by: Who or what asked, for the log.

    Returns:
        All counts.
    """
    counts = [*counts, remove_expired_run_folders(config, today, state_dir),
              _remove_expired_corrections(config, today, state_dir)]
    log_retention(state_dir, today, counts, triggered_by)
    return counts


def _remove_expired_corrections(config: MunicipalityConfig, today: date, state_dir: Path) -> RetentionCount:
    """Remove the run log's record of corrections (``pipelines.corrections``) of expired terms."""
    keep_year = _start(config.retention.outputs_school_years, school_year_of(today))
    rows = 0
    with open_runlog(state_dir) as con:
        if table_exists(con, "corrections"):
            rows = con.execute("SELECT count(*) FROM corrections WHERE CAST(left(term, 4) AS INTEGER) < $keep",
                               {"keep": keep_year}).fetchall()[0][0]
            con.execute("DELETE FROM corrections WHERE CAST(left(term, 4) AS INTEGER) < $keep", {"keep": keep_year})
    return RetentionCount("outputs_school_years", "runlog.corrections", int(rows), school_year_label(keep_year))


def retention_summary(counts: list[RetentionCount]) -> dict[str, object]:
    """Counts per item and target, for a manifest or ``--json`` (no identities)."""
    return {"deleted": {f"{c.item}:{c.target}": c.rows for c in counts if c.applied and c.rows},
            "past_retention_not_deleted": {c.target: c.rows for c in counts if not c.applied and c.rows}}
