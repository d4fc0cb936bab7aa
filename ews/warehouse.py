"""The warehouse module: the only code that opens the DuckDB files.

A run never writes the live files. :func:`staged_write` copies them to staging files, hands
out connections to the copies, and on success swaps them into place with ``os.replace``; on
any failure (or a kill) the live files stay as they were, byte for byte. Readers use
:func:`open_readonly`, which never blocks on a running pipeline.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ews.sql import load_queries, load_sql
from ews.tables import RUN_TABLES, create_tables, store_of

log = logging.getLogger(__name__)

WAREHOUSE_FILE = "warehouse.duckdb"
IDENTITY_FILE = "identity.duckdb"
RUNLOG_FILE = "runs.duckdb"
POINTER_FILE = "CURRENT"
VERSIONS_DIR = "versions"
PARTIAL_SUFFIX = ".partial"

#: Stage prefixes a table name must start with (or be one of the bookkeeping tables).
STAGE_PREFIXES = (
    "raw_", "quarantine_", "clean_", "features_", "scores_", "explanations_", "flags_",
    "reviews_", "models", "identity_",
)
BOOKKEEPING_TABLES = ("validation_results", "models")


class WarehouseBusyError(RuntimeError):
    """Another run holds the write lock."""


class DiskFullError(RuntimeError):
    """The state folder's disk filled up while a run copied or wrote its new version."""


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _is_disk_full(exc: BaseException) -> bool:
    """An ``ENOSPC``, or any DuckDB or OS error saying the same.

    DuckDB's errors have no errno, and more than one of its error classes can carry a full disk
    (an I/O error while spilling, a failed commit).
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, duckdb.Error | OSError) and "No space left on device" in str(exc)


def _disk_full(paths: WarehousePaths, exc: BaseException) -> DiskFullError:
    """The message for a disk that filled up while a run wrote its version (already removed)."""
    return DiskFullError(
        f"{paths.versions}: the disk filled up while the run wrote its new version. The run "
        f"stopped and its version was removed ({_gib(shutil.disk_usage(paths.versions).free)} free "
        f"now); the warehouse is as before. A run needs room for a copy of the warehouse (free on "
        f"a reflink file system) and for what it writes and spills beside it (a complete national "
        f"reload beside a 13 GB warehouse needed more than 41 GB): free disk space or move "
        f"EWS_STATE_DIR to a larger disk. The error: {exc}")


@dataclass(frozen=True)
class WarehousePaths:
    """Where the warehouse files of one state folder live.

    Each published version of the two stores is a folder ``versions/<version>/`` holding
    ``warehouse.duckdb`` and ``identity.duckdb``; the one-line file ``CURRENT`` names the
    published version and is replaced atomically (``os.replace``) to publish the next one. A
    state folder from before versions (the two files directly in it, no ``CURRENT``) is read
    as it is until the first run publishes a version.
    """

    state_dir: Path

    @property
    def pointer(self) -> Path:
        """The file naming the published version."""
        return self.state_dir / POINTER_FILE

    @property
    def versions(self) -> Path:
        """The folder of the versions."""
        return self.state_dir / VERSIONS_DIR

    def published(self) -> Path:
        """The folder of the published version, read once (the state folder before any version).

        Readers that need both stores in one request call this once and open both files of
        the folder it names, so they never mix two versions.
        """
        try:
            name = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return self.state_dir
        if not name or "/" in name or name.startswith("."):
            raise RuntimeError(f"{self.pointer}: does not name a version ({name!r})")
        return self.versions / name

    @property
    def warehouse(self) -> Path:
        """The published analytic warehouse (pseudonyms only)."""
        return self.published() / WAREHOUSE_FILE

    @property
    def identity(self) -> Path:
        """The published identity store (names and classes per pseudonym)."""
        return self.published() / IDENTITY_FILE

    @property
    def runlog(self) -> Path:
        """The run log: one row per execution, apart from the warehouse."""
        return self.state_dir / RUNLOG_FILE

    @property
    def lock(self) -> Path:
        """The writers' lock file."""
        return self.state_dir / ".warehouse.lock"


@dataclass
class WriteSession:
    """Connections to the staged copies of the warehouse and identity store."""

    con: duckdb.DuckDBPyConnection
    identity: duckdb.DuckDBPyConnection
    state_dir: Path | None = None


#: The steps of a publication, in order (a test injects a failure or a kill at each).
PUBLISH_STEPS = ("checkpoint", "close", "fsync", "seal", "pointer_written", "switch", "cleanup")


def _publish_step(step: str) -> None:
    """Mark a step of the publication (a no-op; tests replace it to fail or die there)."""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the warehouse tables every run needs, if missing (``ews.tables.RUN_TABLES``)."""
    create_tables(con, "warehouse", RUN_TABLES)


def ensure_identity_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the identity tables, if missing (``ews/tables_identity.sql``)."""
    create_tables(con, "identity")


@contextmanager
def staged_write(state_dir: Path, memory_limit: str | None = None) -> Iterator[WriteSession]:
    """Open a new version of the warehouse and identity store for one run.

    The published stores are copied into a new folder ``versions/<version>.partial/``; the run
    writes the copies. When the block ends normally both are checkpointed, closed and synced,
    the folder is renamed to ``versions/<version>/`` and the pointer file ``CURRENT`` is
    replaced by one naming it: that one ``os.replace`` publishes both stores together. When
    the block raises (or the process is killed) before that, the published version is
    untouched and the partial folder is removed (by the next run, after a kill). After the
    switch, versions older than the one just replaced are removed; the one just replaced is
    kept for readers that resolved the pointer just before the switch.

    The warehouse connection is capped at ``memory_limit`` (DuckDB's ``memory_limit``; by default
    :func:`default_memory_limit`): above it DuckDB spills joins, aggregates and sorts to
    ``<warehouse>.tmp`` inside the partial folder, which goes with the folder. Without a cap
    DuckDB takes 80 % of the machine, and at national size the checks across files grew the
    process past 20 GiB.

    Args:
        state_dir: The state folder.
        memory_limit: DuckDB's memory limit for the warehouse (``"8GB"``); None for the default.

    Yields:
        Connections to the new version's stores.

    Raises:
        WarehouseBusyError: When another run is writing.
        DiskFullError: When the disk filled up while the stores were copied or the run wrote
            (an ``ENOSPC`` or DuckDB's "No space left on device"), after the new version is
            removed.
    """
    paths = WarehousePaths(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as lock_handle:
        try:
            fcntl.flock(lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise WarehouseBusyError(
                f"{paths.warehouse}: another run is writing the warehouse; wait for it to end"
            ) from exc
        _remove_leftovers(paths)
        previous = paths.published()
        name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        partial = paths.versions / (name + PARTIAL_SUFFIX)
        partial.mkdir(parents=True)
        try:
            for file_name in (WAREHOUSE_FILE, IDENTITY_FILE):
                if (previous / file_name).exists():
                    _copy(previous / file_name, partial / file_name)
            con = duckdb.connect(str(partial / WAREHOUSE_FILE),
                                 config={"memory_limit": memory_limit or default_memory_limit()})
            identity = duckdb.connect(str(partial / IDENTITY_FILE))
        except BaseException as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if _is_disk_full(exc):
                raise _disk_full(paths, exc) from exc
            raise
        try:
            ensure_schema(con)
            ensure_identity_schema(identity)
            yield WriteSession(con=con, identity=identity, state_dir=state_dir)
            _publish_step("checkpoint")
            for connection in (con, identity):
                connection.execute("CHECKPOINT")
            _publish_step("close")
            con.close()
            identity.close()
            _publish_step("fsync")
            for file_name in (WAREHOUSE_FILE, IDENTITY_FILE):
                _fsync(partial / file_name)
            _publish_step("seal")
            version = paths.versions / name
            os.replace(partial, version)
            _fsync(paths.versions)
            _publish_step("pointer_written")
            pending = state_dir / (POINTER_FILE + ".next")
            pending.write_text(name + "\n", encoding="utf-8")
            _fsync(pending)
        except BaseException as exc:
            con.close()
            identity.close()
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(paths.versions / name, ignore_errors=True)
            if _is_disk_full(exc):
                raise _disk_full(paths, exc) from exc
            raise
        _publish_step("switch")
        os.replace(pending, paths.pointer)  # the publication: one atomic rename
        _fsync(state_dir)
        _publish_step("cleanup")
        _remove_old_versions(paths, keep={name, previous.name},
                             keep_unversioned=previous == state_dir)


@contextmanager
def memory_capped(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """Lower a connection's DuckDB memory limit for a while, then restore it.

    Lowering the limit makes DuckDB evict its buffer pool down to it and give the memory back
    at once (the national warehouse's cached pages: from 4.3 GB to 0.1 GB), so a phase that
    needs memory for Python rather than for DuckDB (fitting a model) does not carry the cache of
    the phases before it. Queries in between still run, spilling above ``limit``. A limit
    already at or below ``limit`` is left as it is (the cap never raises it), and when DuckDB
    cannot evict down to ``limit`` the phase runs uncapped.

    Args:
        con: A DuckDB connection.
        limit: DuckDB's memory limit for the while (``"2GiB"``).

    Raises:
        ValueError: When ``limit`` is not a memory size.
    """
    from dask.utils import parse_bytes  # dask's parser reads DuckDB's "7.6 GiB" as well as "2GiB"

    def size(value: str) -> int | None:
        try:
            return int(parse_bytes(value))
        except ValueError:
            return None

    cap = size(limit)
    if cap is None:
        raise ValueError(f"not a memory size: {limit!r}")
    previous = str(fetch_one(con, "SELECT current_setting('memory_limit')")[0])
    before = size(previous)
    lowered = False
    if before is not None and before > cap:  # never raise a limit, nor lower one this cannot restore
        try:
            con.execute(f"SET memory_limit = '{cap}B'")
            lowered = True
        except duckdb.Error as exc:  # pages pinned by an open result: better uncapped than no model
            log.warning("DuckDB's memory limit stays %s (could not lower it to %s: %s)", previous, limit, exc)
    try:
        yield
    finally:
        if lowered:
            con.execute(f"SET memory_limit = '{before}B'")


def default_memory_limit() -> str:
    """The warehouse's memory cap when none is set: 8 GiB, or half the machine's memory when that is less.

    8 GiB leaves room under a 16 GB budget for the reader (capped at 1 GB), the chunk in hand
    and the identity store; half the machine keeps a small municipal server out of swap.
    """
    try:
        machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        machine = 16 * 2**30
    return f"{min(8 * 2**30, machine // 2) // 2**20}MiB"


def _copy(source: Path, target: Path) -> None:
    """Copy a store into a new version: a reflink (free) on a copy-on-write file system."""
    try:
        subprocess.run(["cp", "--reflink=auto", "--preserve=timestamps", str(source), str(target)],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        shutil.copy2(source, target)


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _remove_leftovers(paths: WarehousePaths) -> None:
    """Remove what a killed run left behind: its unpublished version (and the scratch folder of older versions)."""
    for leftover in paths.state_dir.glob(".ingest-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    (paths.state_dir / (POINTER_FILE + ".next")).unlink(missing_ok=True)
    if paths.versions.exists():
        for leftover in paths.versions.glob("*" + PARTIAL_SUFFIX):
            shutil.rmtree(leftover, ignore_errors=True)
    for file_name in (WAREHOUSE_FILE, IDENTITY_FILE):
        # the staging files of the layout before versions
        staging = paths.state_dir / (file_name + ".staging")
        for leftover in (staging, staging.with_name(staging.name + ".wal")):
            leftover.unlink(missing_ok=True)


def _remove_old_versions(paths: WarehousePaths, keep: set[str], keep_unversioned: bool) -> None:
    """Remove every version but ``keep``, and the unversioned stores unless just replaced."""
    for folder in paths.versions.iterdir():
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
    if not keep_unversioned:
        for file_name in (WAREHOUSE_FILE, IDENTITY_FILE):
            for leftover in (paths.state_dir / file_name, paths.state_dir / (file_name + ".wal")):
                leftover.unlink(missing_ok=True)


def _sql(name: str) -> str:
    return load_sql("ews", name)


class RowsWriter:
    """Appends chunks of typed rows to ``raw_rows`` on a thread of its own, one at a time.

    DuckDB releases the GIL while it converts and appends a chunk, so the ingest types and
    checks the next chunk on the other core meanwhile. At most one chunk is being written and
    one prepared: :meth:`add` waits for the previous write first (and raises its error, if it
    failed). The writes go through a cursor of the staged warehouse (a connection of its own,
    the same database and transactions' view), never through the connection the caller uses.

    Args:
        con: The staged warehouse.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._cursor = con.cursor()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ews-raw-rows")
        self._pending: Any = None

    def add(self, frame: pd.DataFrame) -> None:
        """Append a chunk's rows (the columns of ``raw_rows`` they have), in the background."""
        self.wait()
        if len(frame):
            self._pending = self._pool.submit(self._write, frame)

    def _write(self, frame: pd.DataFrame) -> None:
        self._cursor.register("_rows_chunk", pa_table(frame))
        try:
            self._cursor.execute('INSERT INTO "raw_rows" BY NAME SELECT * FROM _rows_chunk')
        finally:
            self._cursor.unregister("_rows_chunk")

    def wait(self) -> None:
        """Wait until the chunk being written is written; raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, raise_errors: bool = True) -> None:
        """Write the last chunk and release the thread and cursor.

        Args:
            raise_errors: Raise the last write's error; False drops it (the caller is already
                raising an error of its own).
        """
        try:
            try:
                self.wait()
            except Exception:
                if raise_errors:
                    raise
            finally:
                self._pool.shutdown(wait=True)
        finally:
            self._cursor.close()


class IngestStore:
    """The ingest's memory in the staged warehouse: what was loaded, from which file bytes.

    Owns the ``raw_*`` tables (see ``tables_warehouse.sql``) and the identity store's
    ``identity_rows``. The ingest asks it which files it loaded before, forgets changed and
    removed files, adds the rows of new ones, evaluates the checks that span files in SQL and
    rebuilds the ``clean_*`` tables from the rows that passed.

    Args:
        session: The run's staged warehouse and identity store.
    """

    def __init__(self, session: WriteSession) -> None:
        self.con = session.con
        self.identity = session.identity
        self.identity.execute(_sql("ingest_identity.sql"))

    def close(self) -> None:
        """Drop the identity store's temporary table."""
        self.identity.execute("DROP TABLE IF EXISTS ingest_valid_pupils")

    def loaded_files(self, source: str) -> pd.DataFrame:
        """The files of a source that earlier runs loaded, one row each (``raw_files``)."""
        return self.con.execute("SELECT * FROM raw_files WHERE source = $source ORDER BY source_file",
                                {"source": source}).df()

    def forget_files(self, source: str, files: Sequence[str]) -> None:
        """Remove every trace of some files of a source (changed or removed files).

        Args:
            source: The source's name.
            files: File names.
        """
        if not files:
            return
        params = {"source": source, "files": list(files)}
        for table in ("raw_files", "raw_rows", "raw_pupil_ids", "raw_checks"):
            self.con.execute(f'DELETE FROM "{table}" WHERE source = $source AND source_file IN '
                             "(SELECT unnest($files::VARCHAR[]))", params)
        self.con.execute("DELETE FROM raw_quarantine WHERE source = $source AND step = 'typing' "
                         "AND source_file IN (SELECT unnest($files::VARCHAR[]))", params)
        self.identity.execute("DELETE FROM identity_rows WHERE source = $source AND source_file IN "
                              "(SELECT unnest($files::VARCHAR[]))", params)

    def forget_outcome(self, source: str) -> None:
        """Forget a source's cross-file verdicts (its contract quarantine and their counts)."""
        params = {"source": source}
        self.con.execute("DELETE FROM raw_quarantine WHERE source = $source AND step = 'contracts'",
                         params)
        self.con.execute("DELETE FROM raw_checks WHERE source = $source AND source_file IS NULL", params)
        self.con.execute("DELETE FROM raw_sources WHERE source = $source", params)

    def add_file(self, record: dict[str, object]) -> None:
        """Record a file as loaded (the columns of ``raw_files``)."""
        self._append("raw_files", pd.DataFrame([record]))

    @contextmanager
    def rows_writer(self) -> Iterator[RowsWriter]:
        """A :class:`RowsWriter` for ``raw_rows``, closed (its last chunk written) at the end.

        When the block raises, the pending write is waited for and its own error, if any, is
        dropped: the block's error (a file's line and column, an interruption) is the one to
        report, and the staged copy is discarded anyway.
        """
        writer = RowsWriter(self.con)
        try:
            yield writer
        except BaseException:
            writer.close(raise_errors=False)
            raise
        writer.close()

    def add_quarantine(self, frame: pd.DataFrame) -> None:
        """Append quarantined rows (the columns of ``raw_quarantine``)."""
        self._append("raw_quarantine", frame)

    def add_pupil_ids(self, frame: pd.DataFrame) -> None:
        """Append ``source``, ``source_file``, ``pupil_id`` rows."""
        self._append("raw_pupil_ids", frame)

    def add_checks(self, frame: pd.DataFrame) -> None:
        """Append check counts (the columns of ``raw_checks``)."""
        self._append("raw_checks", frame)

    def add_names(self, frame: pd.DataFrame) -> None:
        """Store names of typed register rows, in the identity store only.

        Args:
            frame: ``source``, ``source_file``, ``source_line``, ``first_name``, ``last_name``.
        """
        self.identity.register("_names_chunk", frame)
        try:
            self.identity.execute("INSERT INTO identity_rows BY NAME SELECT * FROM _names_chunk")
        finally:
            self.identity.unregister("_names_chunk")

    def _append(self, table: str, frame: pd.DataFrame | Any) -> None:
        if not len(frame):
            return
        self.con.register("_ingest_frame", frame)
        try:
            self.con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _ingest_frame')
        finally:
            self.con.unregister("_ingest_frame")

    def known_fingerprint(self, source: str) -> str | None:
        """The known pupils a source's cross-file checks were last evaluated against."""
        row = fetch_one(self.con, "SELECT known_fingerprint FROM raw_sources WHERE source = $source",
                        {"source": source})
        return None if row is None else str(row[0])

    def set_known_fingerprint(self, source: str, fingerprint: str) -> None:
        """Record the known pupils a source's cross-file checks were evaluated against."""
        self.con.execute("DELETE FROM raw_sources WHERE source = $source", {"source": source})
        self.con.execute("INSERT INTO raw_sources VALUES ($source, $fingerprint)",
                         {"source": source, "fingerprint": fingerprint})

    def build_known(self, pupils_sources: Sequence[str]) -> str:
        """Gather the known pupils of the current pupils files (temporary ``ingest_known``).

        Args:
            pupils_sources: The configured pupils sources.

        Returns:
            A fingerprint of the set (count and an order-free hash).
        """
        self.con.execute(_sql("ingest_known.sql"), {"sources": list(pupils_sources)})
        count, digest = fetch_one(
            self.con, "SELECT count(*), coalesce(bit_xor(hash(pupil_id)), 0) FROM ingest_known") or (0, 0)
        return f"{count}:{digest}"

    def row_count(self, source: str) -> int:
        """Typed rows of a source's current files."""
        row = fetch_one(self.con, "SELECT count(*) FROM raw_rows WHERE source = $source", {"source": source})
        return int(row[0]) if row else 0

    def local_failures(self, source: str) -> pd.DataFrame:
        """Rows that failed a check of one file: file, line, ``_local_reason``, ``_local_column``."""
        return self.con.execute(
            "SELECT source_file, source_line, _local_reason, _local_column FROM raw_rows "
            "WHERE source = $source AND _local_reason IS NOT NULL ORDER BY source_file, source_line",
            {"source": source}).df()

    def forget_duplicates(self, source: str) -> None:
        """Forget a source's duplicate-key verdicts (it has no typed row left)."""
        self.con.execute("DELETE FROM raw_duplicates WHERE source = $source", {"source": source})

    def duplicate_rows(self, source: str, changed: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows repeating an earlier row's key: file, line, ``duplicate_of``, ``duplicate_file``.

        The verdicts are kept in ``raw_duplicates`` between runs (``ews/ingest_duplicates.sql``).

        Args:
            source: The source's name.
            changed: The source's files read or removed in this run, when the verdicts kept
                from earlier runs hold for its other files (they were loaded under the same
                ingest code, which kept them); only the keys whose rows can have changed are
                compared again. None: every key is compared.

        Returns:
            The source's duplicate rows, by file and line.
        """
        queries = load_queries("ews", "ingest_duplicates.sql")
        params = {"source": source}
        try:
            if changed is None:
                self.forget_duplicates(source)
                self.con.execute(queries["every_key"])
            else:
                self.con.execute(queries["keys_to_compare"], {**params, "changed": list(changed)})
                self.con.execute(queries["forget_changed_keys"], params)
                self.con.execute(queries["changed_rows"], params)
                self.con.execute(queries["changed_keys"])
            self.con.execute(queries["compare"], params)
        finally:
            self.con.execute("DROP VIEW IF EXISTS _duplicate_scope")
            self.con.execute("DROP TABLE IF EXISTS _duplicate_rows")
            self.con.execute("DROP TABLE IF EXISTS _duplicate_keys")
        return self.con.execute(queries["verdicts"], params).df()

    def unknown_pupil_rows(self, source: str) -> pd.DataFrame:
        """Rows whose pupil is not known (after :meth:`build_known`): file, line."""
        return self.con.execute(_sql("ingest_unknown_pupils.sql"), {"source": source}).df()

    def typed_rows(self, source: str, where: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
        """Typed values of some rows of a source, in the order of ``where``.

        Args:
            source: The source's name.
            where: ``source_file`` and ``source_line`` of the rows.
            columns: The columns to read (those of the source kind's typed rows).

        Returns:
            One row per row of ``where``.
        """
        for column in columns:
            _check_name_column(column)
        selected = ", ".join(f'r."{c}"' for c in columns)
        keys = where[["source_file", "source_line"]].reset_index(drop=True).assign(
            _order=np.arange(len(where), dtype="int64"))
        self.con.register("_wanted_rows", keys)
        try:
            return self.con.execute(
                f"SELECT {selected} FROM raw_rows AS r JOIN _wanted_rows AS w "
                "USING (source_file, source_line) WHERE r.source = $source ORDER BY w._order",
                {"source": source}).df()
        finally:
            self.con.unregister("_wanted_rows")

    def file_checks(self, source: str) -> pd.DataFrame:
        """Per-file check counts of a source's current files, by file then check position."""
        return self.con.execute(
            "SELECT * FROM raw_checks WHERE source = $source AND source_file IS NOT NULL "
            "ORDER BY source_file, position", {"source": source}).df()

    def source_checks(self, source: str) -> pd.DataFrame:
        """The counts of a source's cross-file checks, by check position."""
        return self.con.execute(
            "SELECT * FROM raw_checks WHERE source = $source AND source_file IS NULL ORDER BY position",
            {"source": source}).df()

    def quarantine(self, source: str) -> pd.DataFrame:
        """A source's quarantined rows (with their ``step``): typing first, then contracts, by file and line."""
        return self.con.execute(
            "SELECT step, source_file, source_line, column_name, reason, raw_values FROM raw_quarantine "
            "WHERE source = $source ORDER BY step = 'contracts', source_file, source_line",
            {"source": source}).df()

    def rebuild_clean(self, table: str, select: str, sources: Sequence[str],
                      where: dict[str, object] | None, files: Collection[str] | None = None) -> None:
        """Replace a slice of a clean table with the passing rows of some sources.

        Args:
            table: The clean table.
            select: The select list mapping ``raw_rows`` columns to the table's (built by the
                ingest from its column lists, never from input data).
            sources: The configured sources whose rows make the slice.
            where: The slice (None: the whole table).
            files: Only the rows of these files (every clean row carries its ``source_file``);
                None: every file of the sources.
        """
        _check_name(table)
        params: dict[str, object] = {"sources": list(sources)}
        only = ""
        if files is not None:
            if not files:
                return
            params["files"] = sorted(files)
            only = " AND rows.source_file IN (SELECT unnest($files::VARCHAR[]))"
            self.con.execute(f'DELETE FROM "{table}" WHERE {_slice_condition(where)} AND source_file IN '
                             "(SELECT unnest($files::VARCHAR[]))", {**(where or {}), "files": params["files"]})
        else:
            delete_rows(self.con, table, where)
        self.con.execute(
            f'INSERT INTO "{table}" BY NAME SELECT {select} FROM raw_rows AS rows '
            f"WHERE rows.source IN (SELECT unnest($sources::VARCHAR[])){only} AND NOT EXISTS ("
            "SELECT 1 FROM raw_quarantine AS q WHERE q.step = 'contracts' AND q.source = rows.source "
            "AND q.source_file = rows.source_file AND q.source_line = rows.source_line) "
            "ORDER BY rows.source_file, rows.source_line", params)

    def outcome_marks(self, source: str) -> dict[str, tuple]:
        """Per file, the lines of a source's cross-file verdicts (contract quarantine) as a mark.

        A count and two order-free hashes of the lines: two marks differ when the file's
        quarantined lines differ (the clean rows of a file whose mark is unchanged stay right).
        """
        rows = self.con.execute(
            "SELECT source_file, count(*), bit_xor(hash(source_line)), sum(hash(source_line)::HUGEINT) "
            "FROM raw_quarantine WHERE source = $source AND step = 'contracts' GROUP BY source_file",
            {"source": source}).fetchall()
        return {str(row[0]): tuple(row[1:]) for row in rows}

    def clean_out_of_step(self, table: str, sources: Sequence[str], where: dict[str, object] | None) -> set[str]:
        """Files of some sources whose clean rows in a slice are not as many as their passing rows.

        A guard for rebuilding only some files: a clean table emptied or changed outside the
        ingest (a schema change, a manual repair) is rebuilt for every file it lost.
        """
        _check_name(table)
        condition = _slice_condition(where)
        rows = self.con.execute(
            "WITH raw AS (SELECT source_file, count(*) AS n FROM raw_rows "
            "  WHERE source IN (SELECT unnest($sources::VARCHAR[])) GROUP BY source_file), "
            "held AS (SELECT source_file, count(DISTINCT source_line) AS n FROM raw_quarantine "
            "  WHERE step = 'contracts' AND source IN (SELECT unnest($sources::VARCHAR[])) GROUP BY source_file), "
            f'clean AS (SELECT source_file, count(*) AS n FROM "{table}" WHERE {condition} GROUP BY source_file) '
            "SELECT coalesce(raw.source_file, clean.source_file) FROM raw "
            "LEFT JOIN held ON held.source_file = raw.source_file "
            "FULL JOIN clean ON clean.source_file = raw.source_file "
            "WHERE coalesce(raw.n, 0) - coalesce(held.n, 0) <> coalesce(clean.n, 0)",
            {**(where or {}), "sources": list(sources)}).fetchall()
        return {str(row[0]) for row in rows}

    def latest_identity(self, sources: Sequence[str]) -> pd.DataFrame:
        """Per pupil, the name and class of the latest valid register row of the sources.

        Latest by enrolment date, then source (in the order given), file and line (see
        ``identity_latest.sql``).

        Args:
            sources: The configured pupils sources, in load order.
        """
        valid = self.con.execute(_sql("ingest_valid_pupils.sql"), {"sources": list(sources)}).df()
        rank = {name: position for position, name in enumerate(sources)}
        valid["source_rank"] = valid["source"].map(rank).astype("int32")
        self.identity.execute("DELETE FROM ingest_valid_pupils")
        self.identity.register("_valid_pupils", valid)
        try:
            self.identity.execute("INSERT INTO ingest_valid_pupils BY NAME SELECT * FROM _valid_pupils")
        finally:
            self.identity.unregister("_valid_pupils")
        return self.identity.execute(_sql("identity_latest.sql")).df()


@contextmanager
def open_readonly(state_dir: Path, identity: bool = False, version: Path | None = None
                  ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the published warehouse (or identity store).

    Args:
        state_dir: The state folder.
        identity: Open the identity store instead of the warehouse.
        version: The version folder to read (``WarehousePaths.published()``, resolved once
            by a reader that opens both stores); default: the published one now.

    Yields:
        A read-only connection; it never blocks a run, which writes a new version.

    Raises:
        FileNotFoundError: When no run has created the file yet.
    """
    folder = version if version is not None else WarehousePaths(state_dir).published()
    path = folder / (IDENTITY_FILE if identity else WAREHOUSE_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no warehouse yet; run 'ews run --term TERM' first")
    with open_file_readonly(path) as con:
        yield con


@contextmanager
def open_file_readonly(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to one DuckDB file, attached as ``snapshot`` to a fresh database.

    A plain ``duckdb.connect(path)`` shares one database instance per path within a process
    while any connection to it is open: it could keep serving a version a run has since
    replaced, and it conflicts with an app in the same process that has the file attached
    ("unique file handle conflict"). Every reader of a store goes through here.

    Args:
        path: A DuckDB file.

    Yields:
        A read-only connection whose default database is the file.
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH $path AS snapshot (READ_ONLY)", {"path": str(path)})
        con.execute("USE snapshot")
        yield con
    finally:
        con.close()


def snapshot_version(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The version folder a connection from :func:`open_readonly` reads (None for another).

    A reader that opened the warehouse and later needs the identity store of the same request
    opens it with ``open_readonly(..., identity=True, version=snapshot_version(con))``.
    """
    row = fetch_one(con, "SELECT path FROM duckdb_databases() WHERE database_name = 'snapshot'")
    return Path(row[0]).parent if row and row[0] else None


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object] | None = None
              ) -> tuple[Any, ...] | None:
    """The first row of a query of at most a few rows (None: no row), its result read to the end.

    DuckDB 2 keeps a result that ``fetchone()`` left unread open on its connection, and the
    connection's next ``register`` then fails ("connection has an unfinished result"); the
    project's DuckDB code calls this instead of ``fetchone()``.

    Args:
        con: A DuckDB connection.
        sql: The query.
        params: Its named parameters.

    Returns:
        The first row, or None.
    """
    rows = con.execute(sql, params or {}).fetchall()
    return rows[0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the table exists in the main schema."""
    row = fetch_one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = $name", {"name": table})
    return bool(row and row[0])


def _check_name(table: str) -> None:
    if not (table.startswith(STAGE_PREFIXES) or table in BOOKKEEPING_TABLES):
        raise ValueError(f"table '{table}' does not name its stage ({', '.join(STAGE_PREFIXES)})")
    if not table.replace("_", "").isalnum():
        raise ValueError(f"table '{table}' is not a plain identifier")


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    where: dict[str, object] | None = None,
) -> int:
    """Replace a slice of a table with a frame (create the table from it if missing).

    Args:
        con: A connection from :func:`staged_write`.
        table: Stage-prefixed table name.
        frame: Rows to insert; its columns must match the table's.
        where: Column -> value of the slice to delete first (e.g. ``{"run_id": ...}``);
            None replaces the whole table.

    Returns:
        Rows inserted.
    """
    _check_name(table)
    if table_exists(con, table):
        delete_rows(con, table, where)
    return append_rows(con, table, frame)


def delete_rows(con: duckdb.DuckDBPyConnection, table: str, where: dict[str, object] | None = None
                ) -> None:
    """Delete a slice of a table (all of it when ``where`` is None); a missing table is empty.

    Args:
        con: A connection from :func:`staged_write`.
        table: Stage-prefixed table name.
        where: Column -> value of the slice to delete.
    """
    _check_name(table)
    if not table_exists(con, table):
        return
    if where is None:
        con.execute(f'DELETE FROM "{table}"')
        return
    con.execute(f'DELETE FROM "{table}" WHERE {_slice_condition(where)}', where)


def _slice_condition(where: dict[str, object] | None) -> str:
    """The SQL condition of a slice (column = $column for each; ``true`` for the whole table)."""
    for column in where or {}:
        _check_name_column(column)
    return " AND ".join(f'"{c}" = ${c}' for c in where or {}) or "true"


def append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Append a frame to a table by column name (create the table from its DDL if missing).

    Args:
        con: A connection from :func:`staged_write`.
        table: Stage-prefixed table name, declared in ``ews/tables_*.sql``.
        frame: Rows to insert; columns the table lacks are added (earlier rows get NULL).

    Returns:
        Rows inserted.

    Raises:
        UndeclaredTableError: When no schema file declares the table.
    """
    _check_name(table)
    store = store_of(table)  # refuses a table without DDL in ews/tables_*.sql
    if not table_exists(con, table):
        create_tables(con, store, [table])
    con.register("_replace_rows_frame", frame)
    try:
        _add_missing_columns(con, table)
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _replace_rows_frame')
    finally:
        con.unregister("_replace_rows_frame")
    return len(frame)


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Give an existing table the frame's new columns (a newer code version adds a column).

    Earlier rows get NULL there; nothing is dropped, so the history of earlier terms stays.
    """
    existing = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $t", {"t": table}).fetchall()}
    for name, column_type, *_ in con.execute("DESCRIBE SELECT * FROM _replace_rows_frame").fetchall():
        if name not in existing:
            _check_name_column(name)
            con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {column_type}')


def _check_name_column(column: str) -> None:
    if not column.replace("_", "").isalnum():
        raise ValueError(f"column '{column}' is not a plain identifier")


@contextmanager
def open_runlog(state_dir: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the run log (``runs`` and ``run_sources``).

    Args:
        state_dir: The state folder.
        read_only: Open for reading only (the dashboards).

    Yields:
        A connection; close it quickly, a writer holds the file while it is open.
    """
    path = WarehousePaths(state_dir).runlog
    state_dir.mkdir(parents=True, exist_ok=True)
    if read_only and not path.exists():
        raise FileNotFoundError(f"{path}: no run has been recorded yet")
    # a run waits out a reader's brief hold; readers retry on their own terms (the app says
    # "busy" rather than keep a page waiting)
    con = _connect_with_retry(path, read_only, seconds=0.0 if read_only else 5.0)
    try:
        if not read_only:
            create_tables(con, "runlog")
        yield con
    finally:
        con.close()


def _connect_with_retry(path: Path, read_only: bool, seconds: float = 5.0) -> duckdb.DuckDBPyConnection:
    """Connect, waiting out another process's brief hold on the file (a reader or writer)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def process_start_ticks(pid: int) -> int | None:
    """When a process started (clock ticks since boot), or None when there is no such process.

    With the pid it tells a process apart from a later one that got the same pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces; the fields after it are plain numbers
    return int(stat.rsplit(")", 1)[1].split()[19])


def mark_killed_runs(state_dir: Path, found_by: str, now: object) -> list[tuple[str, int]]:
    """Mark earlier executions still ``running`` whose process is gone as ``killed``.

    An execution records its pid, host and process start time when it starts; one whose
    process no longer exists on this host (or exists with another start time: a reused pid)
    was killed or crashed before it could log its end. Rows from before pids were recorded
    are marked when no run holds the writers' lock. Executions of other hosts are left alone.

    Args:
        state_dir: The state folder.
        found_by: The run id of the execution that found them (for the message).
        now: The time they were found (kept in the message; ``ended_at`` stays empty because
            the end time is unknown).

    Returns:
        ``(run_id, attempt)`` of the executions marked.
    """
    host = socket.gethostname()
    when = now.strftime("%Y-%m-%d %H:%M:%S") if hasattr(now, "strftime") else str(now)
    with open_runlog(state_dir) as con:
        running = con.execute(
            "SELECT run_id, attempt, pid, host, process_start FROM runs WHERE status = 'running'"
        ).fetchall()
        gone = []
        for run_id, attempt, pid, run_host, started in running:
            if pid is None:
                if _writer_lock_free(state_dir):
                    gone.append((run_id, attempt, "no process id was recorded and no run holds the lock"))
            elif run_host == host and (process_start_ticks(pid) is None
                                       or process_start_ticks(pid) != started):
                gone.append((run_id, attempt, f"its process {pid} on {host} was gone"))
        for run_id, attempt, why in gone:
            con.execute(
                "UPDATE runs SET status = 'killed', message = $message "
                "WHERE run_id = $run_id AND attempt = $attempt AND status = 'running'",
                {"run_id": run_id, "attempt": attempt,
                 "message": f"killed or crashed: {why}; found at {when} UTC by run {found_by}"})
    return [(run_id, attempt) for run_id, attempt, _ in gone]


def _writer_lock_free(state_dir: Path) -> bool:
    """Whether no run holds the writers' lock right now."""
    path = WarehousePaths(state_dir).lock
    if not path.exists():
        return True
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def record_run_start(state_dir: Path, run: dict[str, object]) -> int:
    """Log the start of an execution of a run, with this process's pid, host and start time.

    Earlier executions whose process is gone are first marked ``killed``
    (:func:`mark_killed_runs`).

    Args:
        state_dir: The state folder.
        run: ``run_id``, ``term``, ``as_of_date``, ``config_hash``, ``code_version``,
            ``data_snapshot`` and ``started_at``.

    Returns:
        The attempt number (1 for the first execution of this run id).
    """
    mark_killed_runs(state_dir, str(run["run_id"]), run["started_at"])
    pid = os.getpid()
    with open_runlog(state_dir) as con:
        row = fetch_one(con, "SELECT coalesce(max(attempt), 0) + 1 FROM runs WHERE run_id = $run_id",
                        {"run_id": run["run_id"]})
        attempt = int(row[0]) if row else 1
        con.execute(
            "INSERT INTO runs (run_id, attempt, term, as_of_date, status, started_at, "
            "config_hash, code_version, data_snapshot, pid, host, process_start) VALUES ($run_id, "
            "$attempt, $term, $as_of_date, 'running', $started_at, $config_hash, $code_version, "
            "$data_snapshot, $pid, $host, $process_start)",
            {**run, "attempt": attempt, "pid": pid, "host": socket.gethostname(),
             "process_start": process_start_ticks(pid)},
        )
    return attempt


def record_run_end(
    state_dir: Path,
    run_id: str,
    attempt: int,
    status: str,
    ended_at: object,
    message: str | None,
    manifest_path: str | None,
    sources: pd.DataFrame | None = None,
) -> None:
    """Log the end of an execution, with per-file counts.

    Args:
        state_dir: The state folder.
        run_id: The run.
        attempt: The attempt from :func:`record_run_start`.
        status: ``succeeded`` or ``failed``.
        ended_at: End time.
        message: What went wrong, for a failed run (never pupil data).
        manifest_path: Where the manifest was written.
        sources: Per-file counts (``source``, ``file``, ``file_sha256``, ``rows_read``,
            ``rows_loaded``, ``rows_quarantined``).
    """
    with open_runlog(state_dir) as con:
        con.execute(
            "UPDATE runs SET status = $status, ended_at = $ended_at, message = $message, "
            "manifest_path = $manifest_path WHERE run_id = $run_id AND attempt = $attempt",
            {"status": status, "ended_at": ended_at, "message": message,
             "manifest_path": manifest_path, "run_id": run_id, "attempt": attempt},
        )
        if sources is not None and len(sources):
            frame = sources.assign(run_id=run_id, attempt=attempt)[[
                "run_id", "attempt", "source", "file", "file_sha256", "rows_read", "rows_loaded",
                "rows_quarantined"]]
            con.register("_run_sources_frame", frame)
            con.execute("INSERT INTO run_sources BY NAME SELECT * FROM _run_sources_frame")
            con.unregister("_run_sources_frame")


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    """Run a query with bind parameters and return a frame."""
    return con.execute(sql, params or {}).df()


def content_digest(path: Path) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent content hash of every table in a DuckDB file.

    Used to show that a failed run left the warehouse as it was and that a re-run changed
    nothing.

    Args:
        path: A DuckDB file.

    Returns:
        Table name -> (row count, hash of the sorted rows).
    """
    with open_file_readonly(path) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'snapshot' "
            "ORDER BY table_name").fetchall()]
        digest = {}
        for table in tables:
            rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
            lines = sorted(repr(row) for row in rows)
            digest[table] = (len(rows), hashlib.sha256("\n".join(lines).encode()).hexdigest())
        return digest


def pa_table(frame: pd.DataFrame) -> Any:
    """A frame as an Arrow table, for DuckDB to scan without looking at each Python object."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)
