"""The keyed hash chain over the audit log and the reviews, and its anchor outside ``app.sqlite``.

Every row of ``audit_log`` and ``reviews`` written by this version carries ``prev_hash`` (the
``row_hash`` of the row before it) and ``row_hash`` = HMAC-SHA256 under a key that comes from
the settings, never from the database (:meth:`ews.settings.Settings.audit_key_bytes`). Without
the key nobody can recompute the chain after an edit, so an edited row and a rewritten,
re-chained log both show. The head of each chain is also appended, with its own HMAC, to an
anchor file beside the database (``state_dir/audit-anchor.log``) after every write; deleting
the newest rows of the database then leaves checkpoints that point past the end.

Older files (before the keyed chain) are verified from a documented starting point: their
audit rows keep the old unkeyed SHA-256 chain (``chain_version`` 0), their reviews have none,
and the first keyed row of each table links to a *seal*: the HMAC of a digest of every older
row. Changing an older row after that changes the digest, so the seal no longer matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
ANCHOR_FILE = "audit-anchor.log"

#: The fields of an audit row hashed by the old unkeyed chain (chain_version 0).
AUDIT_LEGACY_FIELDS = ("at", "username", "role", "action", "object_type", "object_id", "run_id", "purpose",
                       "outcome", "http_status", "path")
AUDIT_FIELDS = ("audit_id", *AUDIT_LEGACY_FIELDS, "client")
REVIEW_FIELDS = ("review_id", "pupil_id", "term", "run_id", "network_id", "school_code", "decision",
                 "dismiss_reason", "step", "reviewer", "reviewer_role", "reviewed_at")
#: Fields added later (issue 14: the follow-up's responsible person and next-step date): hashed
#: only when set, so rows written before them keep their keyed hash.
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"reviews": ("responsible", "next_step_date")}
#: Chained table -> (id column, fields hashed by the keyed chain).
CHAINED_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "audit_log": ("audit_id", AUDIT_FIELDS),
    "reviews": ("review_id", REVIEW_FIELDS),
}
TABLE_LABELS = {"audit_log": "audit log", "reviews": "reviews"}


def _canonical(entry: Mapping[str, Any]) -> str:
    return json.dumps(dict(entry), sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))


def legacy_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """The old, unkeyed chain hash of an audit row (kept to verify files written before the key)."""
    canonical = json.dumps(dict(entry), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def row_mac(key: bytes, table: str, prev_hash: str, entry: Mapping[str, Any]) -> str:
    """The keyed hash of a row: HMAC-SHA256 over the table, the previous hash and the row."""
    message = f"{table}\n{prev_hash}\n{_canonical(entry)}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def legacy_seal(key: bytes, table: str, digest: str) -> str:
    """The ``prev_hash`` of a table's first keyed row: a keyed seal over its older rows."""
    return hmac.new(key, f"{table}\nlegacy\n{digest}".encode(), hashlib.sha256).hexdigest()


def entry_of(row: Mapping[str, Any], table: str) -> dict[str, Any]:
    """The hashed fields of a row of a chained table (optional fields only when set)."""
    entry = {name: row[name] for name in CHAINED_TABLES[table][1]}
    for name in OPTIONAL_FIELDS.get(table, ()):
        value = row[name] if name in row.keys() else None  # noqa: SIM118 - sqlite3.Row has no __contains__ by key
        if value is not None:
            entry[name] = value
    return entry


class LegacyDigest:
    """A running digest over a table's rows written before the keyed chain (chain_version 0).

    For the audit log this is the old chain itself (its head); the reviews had no chain, so
    their content is hashed in order. Either way a changed older row changes the digest.
    """

    def __init__(self, table: str) -> None:
        self.table = table
        self.value = GENESIS

    def add(self, row: Mapping[str, Any]) -> str | None:
        """Add an older row; returns a reason when the row breaks the old audit chain."""
        if self.table == "audit_log":
            entry = {name: row[name] for name in AUDIT_LEGACY_FIELDS}
            expected = legacy_hash(self.value, entry)
            if row["prev_hash"] != self.value or row["row_hash"] != expected:
                return "does not match the old (unkeyed) chain: edited, inserted or its predecessor removed"
            self.value = expected
        else:
            self.value = hashlib.sha256((self.value + _canonical(entry_of(row, "reviews"))).encode()).hexdigest()
        return None


def next_link(con: sqlite3.Connection, key: bytes, table: str) -> tuple[int, str]:
    """The id and ``prev_hash`` of the next row of a table (call inside the write transaction).

    Returns:
        (new id, previous hash): the id follows the newest row; the previous hash is that row's
        keyed hash, or the seal over the older rows when no keyed row exists yet.
    """
    id_column = CHAINED_TABLES[table][0]
    last = con.execute(
        f"SELECT {id_column} AS id, row_hash, chain_version FROM {table} ORDER BY {id_column} DESC LIMIT 1"  # noqa: S608 - fixed names
    ).fetchone()
    new_id = int(last["id"]) + 1 if last else 1
    if last is not None and last["chain_version"] == 1:
        return new_id, str(last["row_hash"])
    digest = LegacyDigest(table)
    for row in con.execute(f"SELECT * FROM {table} ORDER BY {id_column}"):  # noqa: S608 - fixed names
        digest.add(row)
    return new_id, legacy_seal(key, table, digest.value)


@dataclass(frozen=True)
class ChainHead:
    """The newest row of a chained table: its id, keyed hash and the number of rows."""

    table: str
    rows: int
    keyed_rows: int
    head_id: int | None
    head_hash: str | None


@dataclass(frozen=True)
class Problem:
    """One finding of a verification: where, and what is wrong."""

    table: str
    row_id: int | None
    reason: str

    def describe(self) -> str:
        """A sentence for the steward."""
        where = f"{TABLE_LABELS.get(self.table, self.table)} row {self.row_id}" if self.row_id is not None \
            else TABLE_LABELS.get(self.table, self.table)
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    """The result of :func:`verify_chains`.

    Attributes:
        heads: The head of each chained table.
        problems: Everything found, in table and row order (empty when intact).
        anchor_lines: Checkpoints read from the anchor file.
        checked_at: When the verification ran (UTC).
    """

    heads: dict[str, ChainHead]
    problems: list[Problem]
    anchor_lines: int
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The first bad row (or the first problem when no row is named)."""
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        """One line: intact with the row counts, or the first problem and how many there are."""
        counts = ", ".join(f"{TABLE_LABELS[t]} {h.rows} rows" for t, h in self.heads.items())
        if self.ok:
            return f"intact ({counts}; {self.anchor_lines} checkpoints)"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"BROKEN at {self.problems[0].describe()}{more}"


def _verify_table(con: sqlite3.Connection, key: bytes, table: str) -> tuple[ChainHead, list[Problem], dict[int, str]]:
    id_column = CHAINED_TABLES[table][0]
    digest = LegacyDigest(table)
    prev: str | None = None
    problems: list[Problem] = []
    hashes: dict[int, str] = {}
    rows = keyed = 0
    head_id: int | None = None
    head_hash: str | None = None
    for row in con.execute(f"SELECT * FROM {table} ORDER BY {id_column}"):  # noqa: S608 - fixed names
        rows += 1
        row_id = int(row[id_column])
        head_id, head_hash = row_id, row["row_hash"]
        hashes[row_id] = str(row["row_hash"])
        if row["chain_version"] != 1:
            if prev is not None:
                problems.append(Problem(table, row_id, "an unkeyed row after the keyed chain began: rewritten "
                                                       "without the key"))
                continue
            reason = digest.add(row)
            if reason:
                problems.append(Problem(table, row_id, reason))
            continue
        keyed += 1
        expected_prev = prev if prev is not None else legacy_seal(key, table, digest.value)
        if row["prev_hash"] != expected_prev:
            reason = ("does not link to the older rows (an older row was changed or removed)" if prev is None
                      else "does not link to the row before it (a row was removed or inserted)")
            problems.append(Problem(table, row_id, reason))
        elif row["row_hash"] != row_mac(key, table, row["prev_hash"], entry_of(row, table)):
            problems.append(Problem(table, row_id, "its content does not match its keyed hash (edited, or the "
                                                   "chain was recomputed without the key)"))
        prev = str(row["row_hash"])
    return ChainHead(table, rows, keyed, head_id, head_hash), problems, hashes


def anchor_mac(key: bytes, line: Mapping[str, Any]) -> str:
    """The HMAC of an anchor line (every field but ``mac``)."""
    body = {k: v for k, v in line.items() if k != "mac"}
    return hmac.new(key, ("anchor\n" + _canonical(body)).encode(), hashlib.sha256).hexdigest()


def append_anchor(path: Path, key: bytes, heads: Iterable[tuple[str, int, str]], kind: str = "write") -> None:
    """Append checkpoints (table, row id, row hash) to the anchor file, one signed JSON line each.

    The file is opened for appending and each line is written with one ``write`` call, so the
    app's threads and a command line process can append at the same time.
    """
    at = datetime.now(UTC).isoformat(timespec="seconds")
    lines = []
    for table, row_id, row_hash in heads:
        line = {"at": at, "kind": kind, "table": table, "id": row_id, "hash": row_hash}
        lines.append(json.dumps({**line, "mac": anchor_mac(key, line)}, separators=(",", ":")) + "\n")
    if not lines:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(lines).encode())
    finally:
        os.close(fd)


def _check_anchor(path: Path, key: bytes, hashes: dict[str, dict[int, str]],
                  heads: dict[str, ChainHead]) -> tuple[int, list[Problem]]:
    problems: list[Problem] = []
    count = 0
    latest: dict[str, int] = {}
    if path.exists():
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            count += 1
            try:
                line = json.loads(text)
                valid = isinstance(line, dict) and hmac.compare_digest(str(line.get("mac", "")),
                                                                       anchor_mac(key, line))
            except (json.JSONDecodeError, TypeError):
                valid = False
            if not valid or line.get("table") not in hashes:
                problems.append(Problem("anchor", None, f"line {number} of {path.name} was altered or not "
                                                         "signed with this key"))
                continue
            table, row_id = line["table"], int(line["id"])
            latest[table] = max(latest.get(table, 0), row_id)
            stored = hashes[table].get(row_id)
            if stored is None:
                problems.append(Problem(table, row_id, f"is missing, though checkpointed at {line['at']} "
                                                       "(rows were deleted)"))
            elif stored != line["hash"]:
                problems.append(Problem(table, row_id, f"differs from its checkpoint of {line['at']} "
                                                       "(rewritten after it was written)"))
    for table, head in heads.items():
        if head.keyed_rows and table not in latest:
            problems.append(Problem(table, None, f"has {head.keyed_rows} keyed rows but {path.name} has no "
                                                 "checkpoint of it (the anchor file was removed or truncated)"))
    return count, problems


def verify_chains(con: sqlite3.Connection, key: bytes, anchor: Path) -> ChainReport:
    """Verify the keyed chains of the audit log and the reviews against the anchor file.

    Args:
        con: A connection to ``app.sqlite`` (rows as :class:`sqlite3.Row`).
        key: The chain key (:meth:`ews.settings.Settings.audit_key_bytes`).
        anchor: The anchor file.

    Returns:
        The heads and every problem found: an edited row, a row removed or inserted, a
        rewritten and re-chained log, checkpointed rows that are gone, or an altered anchor.
    """
    heads: dict[str, ChainHead] = {}
    problems: list[Problem] = []
    hashes: dict[str, dict[int, str]] = {}
    for table in CHAINED_TABLES:
        head, found, hashes[table] = _verify_table(con, key, table)
        heads[table] = head
        problems += found
    count, anchor_problems = _check_anchor(anchor, key, hashes, heads)
    ordered = sorted(problems + anchor_problems,
                     key=lambda p: (list(CHAINED_TABLES).index(p.table) if p.table in CHAINED_TABLES else 9,
                                    p.row_id if p.row_id is not None else 0))
    unique: list[Problem] = []
    for problem in ordered:
        if problem not in unique:
            unique.append(problem)
    return ChainReport(heads, unique, count)
