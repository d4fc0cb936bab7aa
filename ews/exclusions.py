"""Exclusion from screening (GDPR art. 21 objection and the municipality's own decisions).

An admin excludes a pupil by typing the CPR number (``ews exclude`` or the app's admin page):
it is hashed with the pseudonymisation key at once (:func:`pupil_id_from_cpr`) and only the
pseudonym is kept, with a reason code (never free text about the child), the date the
exclusion takes effect and who made it. The store is its own small SQLite file in the state
folder (``exclusions.sqlite``), written by the CLI and the app, read by the termly run.

From the next run the pupil is neither scored, flagged, explained nor used for training: the
run copies the active exclusions into the warehouse table ``clean_exclusions`` (pseudonyms and
dates only) and ``features.build.build_features`` leaves those pupils out of every feature row,
which every later stage starts from; a flag the pupil still had is withdrawn and recorded in
``flags_withdrawn`` for the UU consultant (:func:`withdraw_open_flags`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from ews.pseudonym import normalise_cpr, pseudonymise
from ews.tables import create_tables
from ews.warehouse import fetch_one

EXCLUSIONS_FILE = "exclusions.sqlite"
#: The warehouse table of the active exclusions of a run (pseudonyms and dates only).
EXCLUSIONS_TABLE = "clean_exclusions"
#: The warehouse table of the flags withdrawn because their pupil was excluded.
WITHDRAWN_TABLE = "flags_withdrawn"

#: Reason codes and their Danish wording. A code, not free text: nothing about the child's
#: circumstances is written down here; the case itself lives in the municipality's records.
REASONS: dict[str, str] = {
    "indsigelse": "Forældrenes indsigelse mod screeningen (databeskyttelsesforordningens art. 21)",
    "uden_for_maalgruppen": "Uden for screeningens målgruppe (fx specialskole eller anden særlig ordning)",
    "fejl_i_data": "Fejl i elevens data, indtil de er rettet i kildesystemet",
    "kommunens_afgoerelse": "Anden afgørelse truffet af kommunen (se kommunens sag)",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exclusions (
    exclusion_id INTEGER PRIMARY KEY,
    pupil_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    excluded_on TEXT NOT NULL,
    excluded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    lifted_on TEXT,
    lifted_by TEXT
);
CREATE INDEX IF NOT EXISTS exclusions_by_pupil ON exclusions (pupil_id);
"""


class ExclusionError(ValueError):
    """An exclusion cannot be recorded; the message never repeats the CPR number."""

    code = "exclusion_invalid"


@dataclass(frozen=True)
class Exclusion:
    """One recorded exclusion (pseudonym only)."""

    exclusion_id: int
    pupil_id: str
    reason: str
    excluded_on: date
    excluded_by: str
    recorded_at: str
    lifted_on: date | None


def pupil_id_from_cpr(cpr: str, key: bytes) -> str:
    """The pupil's pseudonym from a typed CPR number; the number itself is not kept.

    Args:
        cpr: The CPR number as typed (``ddmmyy-xxxx`` or ten digits).
        key: The pseudonymisation key (the same as the ingest's).

    Returns:
        The pseudonym the warehouse knows the pupil by.

    Raises:
        ExclusionError: When the text is not a valid CPR number (the message does not echo it).
    """
    digits = normalise_cpr(cpr.strip()) if isinstance(cpr, str) else None
    if digits is None:
        raise ExclusionError("not a valid CPR number (ddmmyy-xxxx or ten digits, a real date of birth)")
    return pseudonymise(digits, key)


def exclusions_path(state_dir: Path) -> Path:
    """The exclusion store of a state folder."""
    return state_dir / EXCLUSIONS_FILE


class ExclusionStore:
    """The exclusions of one state folder (SQLite, written by the CLI and the app).

    Args:
        state_dir: The state folder.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = exclusions_path(state_dir)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=10)
        try:
            con.executescript(_SCHEMA)
            with con:
                yield con
        finally:
            con.close()

    def add(self, pupil_id: str, reason: str, excluded_on: date, by: str) -> Exclusion:
        """Record an exclusion (a pupil already excluded keeps the first, active one).

        Args:
            pupil_id: The pseudonym (from :func:`pupil_id_from_cpr`).
            reason: A code of :data:`REASONS`.
            excluded_on: The day it takes effect (the next run after it leaves the pupil out).
            by: Who excluded (user name).

        Returns:
            The active exclusion of the pupil.

        Raises:
            ExclusionError: For an unknown reason code.
        """
        if reason not in REASONS:
            raise ExclusionError(f"unknown reason '{reason}'; one of {sorted(REASONS)}")
        existing = [e for e in self.entries() if e.pupil_id == pupil_id and e.lifted_on is None]
        if existing:
            return existing[0]
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as con:
            cursor = con.execute(
                "INSERT INTO exclusions (pupil_id, reason, excluded_on, excluded_by, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)", (pupil_id, reason, excluded_on.isoformat(), by, now))
            new_id = int(cursor.lastrowid or 0)
        return next(e for e in self.entries() if e.exclusion_id == new_id)

    def lift(self, exclusion_id: int, lifted_on: date, by: str) -> None:
        """End an exclusion (the pupil is screened again from the next run).

        Raises:
            ExclusionError: When there is no active exclusion with that id.
        """
        with self._connect() as con:
            changed = con.execute(
                "UPDATE exclusions SET lifted_on = ?, lifted_by = ? WHERE exclusion_id = ? AND lifted_on IS NULL",
                (lifted_on.isoformat(), by, exclusion_id)).rowcount
        if not changed:
            raise ExclusionError(f"no active exclusion with id {exclusion_id}")

    def entries(self) -> list[Exclusion]:
        """Every exclusion, oldest first."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            rows = con.execute(
                "SELECT exclusion_id, pupil_id, reason, excluded_on, excluded_by, recorded_at, lifted_on "
                "FROM exclusions ORDER BY exclusion_id").fetchall()
        return [Exclusion(int(r[0]), r[1], r[2], date.fromisoformat(r[3]), r[4], r[5],
                          date.fromisoformat(r[6]) if r[6] else None) for r in rows]

    def active(self, on: date) -> pd.DataFrame:
        """The exclusions in effect on a day: ``pupil_id``, ``excluded_on``, ``reason``.

        Args:
            on: The day (the run's today).
        """
        rows = [(e.pupil_id, e.excluded_on, e.reason) for e in self.entries()
                if e.excluded_on <= on and (e.lifted_on is None or e.lifted_on > on)]
        frame = pd.DataFrame(rows, columns=["pupil_id", "excluded_on", "reason"])
        return frame.drop_duplicates("pupil_id").sort_values("pupil_id").reset_index(drop=True)


def exclusions_digest(active: pd.DataFrame) -> str | None:
    """A hash of the active exclusions (part of the run's data snapshot); None when there are none."""
    if active.empty:
        return None
    text = ",".join(f"{p}@{d}" for p, d in zip(active["pupil_id"], active["excluded_on"], strict=True))
    return hashlib.sha256(text.encode()).hexdigest()


def write_exclusions(con: duckdb.DuckDBPyConnection, active: pd.DataFrame) -> int:
    """Replace ``clean_exclusions`` with the active exclusions (pseudonym and date, no reason).

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        active: From :meth:`ExclusionStore.active`.

    Returns:
        Pupils excluded.
    """
    create_tables(con, "warehouse", [EXCLUSIONS_TABLE])
    con.execute(f"DELETE FROM {EXCLUSIONS_TABLE}")
    if len(active):
        con.register("_exclusions", active[["pupil_id", "excluded_on"]])
        try:
            con.execute(f"INSERT INTO {EXCLUSIONS_TABLE} SELECT pupil_id, CAST(excluded_on AS DATE) FROM _exclusions")
        finally:
            con.unregister("_exclusions")
    return len(active)


def excluded_pupils(con: duckdb.DuckDBPyConnection, database: str | None = None) -> set[str]:
    """The pseudonyms in ``clean_exclusions`` (empty when neither a table nor a view of that name exists).

    Args:
        con: A warehouse connection.
        database: The attached database to read (default: the connection's current one).
    """
    if database is None:
        row = fetch_one(con, "SELECT current_database()")
        database = str(row[0]) if row else "memory"
    # a table or a view (the look-ahead check's cut shows the register as a view)
    exists = fetch_one(con, "SELECT count(*) FROM information_schema.tables WHERE table_catalog = $db "
                       "AND table_schema = 'main' AND table_name = $t", {"db": database, "t": EXCLUSIONS_TABLE})
    if not exists or not exists[0]:
        return set()
    quoted = database.replace('"', '""')
    return {row[0] for row in con.execute(f'SELECT pupil_id FROM "{quoted}".main.{EXCLUSIONS_TABLE}').fetchall()}


def withdraw_open_flags(con: duckdb.DuckDBPyConnection, active: pd.DataFrame, run_id: str, term: str,
                        previous_term: str) -> int:
    """Record the open flags of excluded pupils as withdrawn (``flags_withdrawn``), once each.

    An open flag is a ``ny`` or ``fortsat`` row of an excluded pupil in the latest run of the
    term or, when the term has none yet, of the term before. The withdrawal keeps the pupil,
    the run that flagged them, their network and school, the reason code and the run that
    withdrew it; the consultant's page shows it ("trukket tilbage"). Rows accumulate: a later
    run does not remove them (retention does).

    Args:
        con: A connection from ``ews.warehouse.staged_write`` (earlier runs' flags in it).
        active: The active exclusions.
        run_id: The run that withdraws.
        term: Its term.
        previous_term: The term before.

    Returns:
        Flags newly withdrawn.
    """
    create_tables(con, "warehouse", [WITHDRAWN_TABLE])
    has_flags = fetch_one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'flags_pupil_term'")
    if active.empty or not has_flags or not has_flags[0]:
        return 0
    runs = con.execute(
        "SELECT term, run_id FROM (SELECT term, run_id, row_number() OVER (PARTITION BY term ORDER BY "
        "max(as_of_date) DESC, run_id) AS n FROM flags_pupil_term WHERE term IN ($term, $previous) "
        "GROUP BY term, run_id) WHERE n = 1",
        {"term": term, "previous": previous_term}).fetchall()
    by_term = dict(runs)
    flagged_run = by_term.get(term) or by_term.get(previous_term)
    if flagged_run is None:
        return 0
    con.register("excluded", active[["pupil_id", "excluded_on", "reason"]])
    before = con.execute(f"SELECT count(*) FROM {WITHDRAWN_TABLE}").fetchall()[0][0]
    con.execute(
        f"INSERT INTO {WITHDRAWN_TABLE} "
        "SELECT f.pupil_id, f.run_id, f.term, f.network_id, f.school_code, e.reason, $run_id, $term, "
        "CAST(e.excluded_on AS DATE) FROM flags_pupil_term f JOIN excluded e USING (pupil_id) "
        "WHERE f.run_id = $flagged AND f.status IN ('ny', 'fortsat') "
        f"AND NOT EXISTS (SELECT 1 FROM {WITHDRAWN_TABLE} w "
        "WHERE w.pupil_id = f.pupil_id AND w.flagged_run_id = f.run_id)",
        {"run_id": run_id, "term": term, "flagged": flagged_run})
    con.unregister("excluded")
    return int(con.execute(f"SELECT count(*) FROM {WITHDRAWN_TABLE}").fetchall()[0][0] - before)
