"""The review app's own state in ``state_dir/app.sqlite``: users, sessions, reviews, audit log.

SQLite in WAL mode: readers never block the one writer, and the pipeline, which only reads
reviews from this file, never locks it. Reviews and the audit log are append-only (triggers
reject UPDATE and DELETE), and every row of both carries a keyed hash (HMAC) of itself and the
row before it, with the head of each chain appended to an anchor file outside the database
(:mod:`dashboards.audit_chain`). A change made behind the app's back (with the sqlite3 shell,
say), the newest rows deleted, or a log rewritten and re-chained without the key shows in
:meth:`AppStore.verify_chains` (``ews audit verify``).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dashboards.audit_chain import (
    ANCHOR_FILE,
    OPTIONAL_FIELDS,
    ChainHead,
    ChainReport,
    append_anchor,
    next_link,
    row_mac,
    verify_chains,
)
from dashboards.labels import ACTIVE_DECISIONS, DECISIONS, DISMISS_REASONS, ROLES
from dashboards.queries import load_queries

APP_DB_FILE = "app.sqlite"
ASSIGNMENT_KINDS = ("network", "school")
#: The longest user name and display name accepted (the app's forms say so too).
MAX_USERNAME = 100
MAX_DISPLAY_NAME = 200


class StoreError(ValueError):
    """A request to the store that cannot be carried out.

    The message (English) is for the command line and logs; ``code`` names the problem so that
    the app can say it in Danish (``dashboards.labels.STORE_ERRORS_DA``) without reading the text.

    Args:
        message: What went wrong, in English.
        code: The problem's code.
    """

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class User:
    """An account of the review app."""

    user_id: int
    username: str
    display_name: str
    role: str
    active: bool


@dataclass(frozen=True)
class Session:
    """A logged-in session (the cookie holds the token; only its hash is stored)."""

    token_hash: str
    user_id: int
    csrf_token: str
    auth_mode: str
    created_at: datetime
    last_seen: datetime


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def app_db_path(state_dir: Path) -> Path:
    """Where the review app keeps its state."""
    return state_dir / APP_DB_FILE


class AppStore:
    """Access to ``app.sqlite``; one short connection per call, safe from many threads.

    Args:
        path: The SQLite file (created with its schema on first use).
        clock: Returns the current time; tests pass a fake clock to expire sessions.
        hasher: The Argon2id password hasher (default parameters of argon2-cffi; tests pass
            a cheaper one). Hashes carry their parameters, so a change re-hashes at next login.
        audit_key: The key of the chain over the audit log and the reviews (default: from the
            settings of the state folder that holds ``path``, see
            :meth:`ews.settings.Settings.audit_key_bytes`); never stored in the database.
        anchor_path: The anchor file (default: ``audit-anchor.log`` beside ``path``).
    """

    def __init__(self, path: Path, clock: Callable[[], datetime] = utc_now,
                 hasher: PasswordHasher | None = None, audit_key: bytes | None = None,
                 anchor_path: Path | None = None) -> None:
        self.path = path
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._sql = load_queries("store.sql")
        path.parent.mkdir(parents=True, exist_ok=True)
        if audit_key is None:
            from ews.settings import Settings

            audit_key = Settings(state_dir=path.parent).audit_key_bytes()
        self._audit_key = audit_key
        self.anchor_path = anchor_path or path.parent / ANCHOR_FILE
        with self._connect() as con:
            con.execute("PRAGMA journal_mode = WAL")
            con.executescript(self._sql["schema"])
            self._migrate(con)
            con.executescript(self._sql["indexes"])

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Add later columns (keyed chain, follow-up) to a file written before them (rows stay as they were)."""
        for statement in (self._sql["migrate_chain"] + ";" + self._sql["migrate_followup"]).split(";"):
            words = statement.split()
            if "ALTER" not in words:
                continue
            table, column = words[words.index("TABLE") + 1], words[words.index("COLUMN") + 1]
            existing = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
            if column not in existing:
                con.execute(statement)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("PRAGMA busy_timeout = 10000")
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _now(self) -> str:
        return _iso(self.clock())

    # ---- users -------------------------------------------------------------------------

    def add_user(self, username: str, display_name: str, role: str, password: str | None) -> int:
        """Create an account.

        Args:
            username: Login name (in SSO mode: the name the proxy's header carries).
            display_name: Name shown in the app and in review histories.
            role: ``network_member``, ``consultant``, ``steward`` or ``admin``.
            password: The password (hashed with Argon2id); None for an SSO-only account.

        Returns:
            The new user id.

        Raises:
            StoreError: For an unknown role, a taken user name or a too short password.
        """
        if role not in ROLES:
            raise StoreError(f"role '{role}' is not one of {', '.join(ROLES)}", "unknown_role")
        username = username.strip()
        if not username:
            raise StoreError("the user name is empty", "empty_username")
        if len(username) > MAX_USERNAME or any(not ch.isprintable() for ch in username):
            raise StoreError(f"a user name has at most {MAX_USERNAME} printable characters", "bad_username")
        if len(display_name) > MAX_DISPLAY_NAME:
            raise StoreError(f"a display name has at most {MAX_DISPLAY_NAME} characters", "long_display_name")
        password_hash = self._hash_password(password) if password is not None else None
        now = self._now()
        try:
            with self._transaction() as con:
                row = con.execute(self._sql["insert_user"], {
                    "username": username, "display_name": display_name.strip() or username,
                    "role": role, "password_hash": password_hash, "now": now,
                    "password_changed_at": now if password_hash else None,
                }).fetchone()
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"user '{username}' exists already", "user_exists") from exc
        return int(row[0])

    def get_user(self, username: str) -> User | None:
        """The account with this user name, or None."""
        with self._connect() as con:
            row = con.execute(self._sql["user_by_name"], {"username": username}).fetchone()
        return _user(row) if row else None

    def get_user_by_id(self, user_id: int) -> User | None:
        """The account with this id, or None."""
        with self._connect() as con:
            row = con.execute(self._sql["user_by_id"], {"user_id": user_id}).fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[dict[str, object]]:
        """Every account with its assignments (no password hashes)."""
        with self._connect() as con:
            return [dict(row) for row in con.execute(self._sql["list_users"])]

    def set_password(self, username: str, password: str) -> None:
        """Give an account a new password and end its sessions.

        Raises:
            StoreError: For an unknown user or a too short password.
        """
        user = self._require_user(username)
        with self._transaction() as con:
            con.execute(self._sql["set_password"], {
                "password_hash": self._hash_password(password), "now": self._now(), "username": username})
            con.execute(self._sql["delete_user_sessions"], {"user_id": user.user_id})

    def set_active(self, username: str, active: bool) -> None:
        """Enable or disable an account; disabling ends its sessions.

        Raises:
            StoreError: For an unknown user.
        """
        user = self._require_user(username)
        with self._transaction() as con:
            con.execute(self._sql["set_active"], {"active": int(active), "username": username})
            if not active:
                con.execute(self._sql["delete_user_sessions"], {"user_id": user.user_id})

    def assign(self, username: str, kind: str, target: str) -> None:
        """Assign a network (network member) or a school (UU consultant) to an account.

        Raises:
            StoreError: For an unknown user, or a kind that does not fit the user's role.
        """
        user = self._require_user(username)
        expected = {"network_member": "network", "consultant": "school"}.get(user.role)
        if kind not in ASSIGNMENT_KINDS or kind != expected:
            raise StoreError(
                f"user '{username}' has role '{user.role}', which is assigned "
                + (f"{expected}s, not '{kind}'" if expected else "nothing (it sees no pupils)"),
                "wrong_assignment",
            )
        with self._transaction() as con:
            con.execute(self._sql["insert_assignment"], {
                "user_id": user.user_id, "kind": kind, "target": target, "now": self._now()})

    def unassign(self, username: str, kind: str, target: str) -> None:
        """Remove an assignment (nothing happens when it does not exist)."""
        user = self._require_user(username)
        with self._transaction() as con:
            con.execute(self._sql["delete_assignment"],
                        {"user_id": user.user_id, "kind": kind, "target": target})

    def assignments(self, user_id: int) -> dict[str, frozenset[str]]:
        """``{"network": {...}, "school": {...}}`` for an account."""
        with self._connect() as con:
            rows = con.execute(self._sql["assignments_of"], {"user_id": user_id}).fetchall()
        return {kind: frozenset(r["target"] for r in rows if r["kind"] == kind) for kind in ASSIGNMENT_KINDS}

    def verify_login(self, username: str, password: str) -> User | None:
        """The active account whose password this is, or None (same work either way)."""
        with self._connect() as con:
            row = con.execute(self._sql["user_by_name"], {"username": username}).fetchone()
        if self._dummy_hash is None:
            # Verified against when the user name is unknown, so that both cases take as long.
            self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        stored = row["password_hash"] if row and row["password_hash"] else self._dummy_hash
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or not row["password_hash"] or not row["active"]:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self._transaction() as con:
                con.execute(self._sql["set_password"], {
                    "password_hash": self.hasher.hash(password), "now": self._now(), "username": username})
        return _user(row)

    def _hash_password(self, password: str) -> str:
        if len(password) < 12:
            raise StoreError("a password must have at least 12 characters", "short_password")
        return self.hasher.hash(password)

    def _require_user(self, username: str) -> User:
        user = self.get_user(username)
        if user is None:
            raise StoreError(f"no user '{username}'; see 'ews users list'", "unknown_user")
        return user

    # ---- sessions ----------------------------------------------------------------------

    def create_session(self, user_id: int, auth_mode: str) -> tuple[str, Session]:
        """Start a session.

        Returns:
            The cookie token (only its hash is stored) and the session.
        """
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        with self._transaction() as con:
            con.execute(self._sql["insert_session"], {
                "token_hash": _token_hash(token), "user_id": user_id, "csrf_token": csrf,
                "auth_mode": auth_mode, "now": _iso(now)})
        return token, Session(_token_hash(token), user_id, csrf, auth_mode, now, now)

    def load_session(self, token: str, idle: timedelta, max_age: timedelta) -> Session | None:
        """The live session for a cookie token, or None when unknown or expired.

        An expired session is deleted. A live one has its last-seen time moved on (at most
        once a minute, to keep writes few).

        Args:
            token: The cookie value.
            idle: Time without requests after which a session ends.
            max_age: Time after login after which a session ends.
        """
        token_hash = _token_hash(token)
        with self._connect() as con:
            row = con.execute(self._sql["session_by_hash"], {"token_hash": token_hash}).fetchone()
        if row is None:
            return None
        session = Session(row["token_hash"], row["user_id"], row["csrf_token"], row["auth_mode"],
                          datetime.fromisoformat(row["created_at"]), datetime.fromisoformat(row["last_seen"]))
        now = self.clock()
        if now - session.last_seen > idle or now - session.created_at > max_age:
            self.end_session(token)
            return None
        if now - session.last_seen > timedelta(minutes=1):
            with self._transaction() as con:
                con.execute(self._sql["touch_session"], {"token_hash": token_hash, "now": _iso(now)})
        return session

    def end_session(self, token: str) -> None:
        """Delete a session (logout or expiry)."""
        with self._transaction() as con:
            con.execute(self._sql["delete_session"], {"token_hash": _token_hash(token)})

    def purge_sessions(self, idle: timedelta, max_age: timedelta) -> None:
        """Delete every expired session."""
        now = self.clock()
        with self._transaction() as con:
            con.execute(self._sql["delete_stale_sessions"], {
                "idle_before": _iso(now - idle), "created_before": _iso(now - max_age)})

    # ---- reviews -----------------------------------------------------------------------

    def add_review(
        self,
        *,
        pupil_id: str,
        term: str,
        run_id: str,
        network_id: str | None,
        school_code: str | None,
        decision: str,
        reviewer: str,
        reviewer_role: str,
        dismiss_reason: str | None = None,
        step: str | None = None,
        allowed_steps: list[str] | None = None,
        responsible: str | None = None,
        next_step_date: date | None = None,
        allowed_responsible: list[str] | None = None,
    ) -> int:
        """Append a review of a flag; earlier reviews stay as they were.

        Args:
            pupil_id: The pupil's pseudonym.
            term: The term of the flag list reviewed.
            run_id: The run that made the flag.
            network_id: The pupil's network.
            school_code: The pupil's school.
            decision: A code of :data:`dashboards.labels.DECISIONS`.
            reviewer: User name of the reviewer.
            reviewer_role: The reviewer's role.
            dismiss_reason: A code of :data:`dashboards.labels.DISMISS_REASONS`; required
                for ``afvist`` and only then.
            step: The step on the indsatstrappe; required for ``indsatstrappe`` and only then.
            allowed_steps: The municipality's steps; when given, ``step`` must be one of them.
            responsible: The user name of the person responsible for the follow-up (a member of
                the pupil's network or the UU consultant); only with a decision that keeps the
                flag active (:data:`dashboards.labels.ACTIVE_DECISIONS`), and only with
                ``next_step_date``.
            next_step_date: When the next step is due (follow-up duty, issue 14).
            allowed_responsible: When given, ``responsible`` must be one of these user names.

        Returns:
            The review id.

        Raises:
            StoreError: When the decision and its reason, step or follow-up do not fit together.
        """
        if decision not in DECISIONS:
            raise StoreError(f"decision '{decision}' is not one of {', '.join(DECISIONS)}", "decision")
        dismiss_reason = dismiss_reason or None
        step = step or None
        if decision == "afvist":
            if dismiss_reason not in DISMISS_REASONS:
                raise StoreError("a dismissal needs one of the listed reasons", "reason")
        elif dismiss_reason is not None:
            raise StoreError("only a dismissal carries a reason", "reason")
        if decision == "indsatstrappe":
            if step is None or (allowed_steps is not None and step not in allowed_steps):
                raise StoreError("choose a step of the municipality's indsatstrappe", "step")
        elif step is not None:
            raise StoreError("only the decision 'indsatstrappe' carries a step", "step")
        responsible = (responsible or "").strip() or None
        if (responsible is None) != (next_step_date is None):
            raise StoreError("a follow-up needs both a responsible person and a next-step date", "followup")
        if responsible is not None:
            if decision not in ACTIVE_DECISIONS:
                raise StoreError("only a confirmed flag gets a follow-up (responsible person and next step)",
                                 "followup")
            if allowed_responsible is not None and responsible not in allowed_responsible:
                raise StoreError("the responsible person must be a member of the pupil's network or the UU consultant",
                                 "followup")
        entry = {
            "pupil_id": pupil_id, "term": term, "run_id": run_id, "network_id": network_id,
            "school_code": school_code, "decision": decision, "dismiss_reason": dismiss_reason,
            "step": step, "reviewer": reviewer, "reviewer_role": reviewer_role, "reviewed_at": self._now(),
            "responsible": responsible,
            "next_step_date": next_step_date.isoformat() if next_step_date is not None else None,
        }
        return self._append_chained("reviews", "review_id", "insert_review", entry)

    def _append_chained(self, table: str, id_column: str, query: str, entry: dict[str, object]) -> int:
        """Insert a row of a chained table with its keyed hash, then checkpoint it in the anchor file."""
        with self._transaction() as con:
            new_id, prev_hash = next_link(con, self._audit_key, table)
            row = {id_column: new_id, **entry}
            optional = OPTIONAL_FIELDS.get(table, ())
            hashed = {k: v for k, v in row.items() if not (k in optional and v is None)}
            row_hash = row_mac(self._audit_key, table, prev_hash, hashed)
            con.execute(self._sql[query], {**row, "prev_hash": prev_hash, "row_hash": row_hash}).fetchone()
        append_anchor(self.anchor_path, self._audit_key, [(table, new_id, row_hash)])
        return new_id

    def reviews_of_pupil(self, pupil_id: str) -> list[dict[str, object]]:
        """Every review of a pupil, newest first."""
        with self._connect() as con:
            return [dict(r) for r in con.execute(self._sql["reviews_of_pupil"], {"pupil_id": pupil_id})]

    def all_reviews(self) -> list[dict[str, object]]:
        """Every review, oldest first, with the responsible person (the follow-up pages)."""
        with self._connect() as con:
            return [dict(r) for r in con.execute(self._sql["all_reviews_named"])]

    def latest_reviews(self, term: str) -> dict[str, dict[str, object]]:
        """Pupil id -> the latest review made for this term or an earlier one."""
        with self._connect() as con:
            return {r["pupil_id"]: dict(r) for r in con.execute(self._sql["latest_reviews"], {"term": term})}

    # ---- audit -------------------------------------------------------------------------

    def record_audit(
        self,
        *,
        action: str,
        outcome: str,
        username: str | None = None,
        role: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        run_id: str | None = None,
        purpose: str | None = None,
        http_status: int | None = None,
        path: str | None = None,
        client: str | None = None,
    ) -> int:
        """Append one entry to the audit log (chained to the entry before it, keyed).

        Args:
            action: What was done (``view_pupil``, ``export``, ``view_list``, ``review``,
                ``login``, ...).
            outcome: ``allowed`` or ``denied``.
            username: Who (None when nobody was logged in).
            role: The user's role at the time.
            object_type: ``pupil``, ``network``, ``school``, ``user``, ...
            object_id: The pupil's pseudonym, network id, ... (never a CPR number or name).
            run_id: The run whose data was shown.
            purpose: Why, from the role and assignment (e.g. the consultant's school).
            http_status: The status code answered.
            path: The request path (pseudonyms only).
            client: The client's address (per-client login throttling and forensics).

        Returns:
            The entry's id.
        """
        entry = {
            "at": self._now(), "username": _clip(username, MAX_USERNAME), "role": role, "action": action,
            "object_type": object_type, "object_id": _clip(object_id, 200), "run_id": run_id,
            "purpose": _clip(purpose, 500), "outcome": outcome, "http_status": http_status,
            "path": _clip(path, 300), "client": _clip(client, 100),
        }
        return self._append_chained("audit_log", "audit_id", "insert_audit", entry)

    def read_audit(
        self,
        limit: int = 200,
        username: str | None = None,
        object_id: str | None = None,
        outcome: str | None = None,
        before_id: int | None = None,
    ) -> list[dict[str, object]]:
        """Audit entries, newest first, optionally filtered."""
        with self._connect() as con:
            return [dict(r) for r in con.execute(self._sql["read_audit"], {
                "limit": limit, "username": username or None, "object_id": object_id or None,
                "outcome": outcome or None, "before_id": before_id})]

    def verify_chains(self) -> ChainReport:
        """Verify the keyed chains of the audit log and the reviews against the anchor file.

        Returns:
            The report: every edited, removed, inserted or re-chained row, and checkpoints that
            point at rows which are gone (see :func:`dashboards.audit_chain.verify_chains`).
        """
        with self._connect() as con:
            return verify_chains(con, self._audit_key, self.anchor_path)

    def chained_rows(self) -> int:
        """Rows of the audit log and the reviews together (what a verification reads)."""
        with self._connect() as con:
            return int(con.execute("SELECT (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM reviews)"
                                   ).fetchone()[0])

    def verify_audit_chain(self) -> int | None:
        """The id of the first bad row of the audit log, or None when the audit log is intact.

        A missing anchor file is not counted here; :meth:`verify_chains` reports it.
        """
        for problem in self.verify_chains().problems:
            if problem.table == "audit_log" and problem.row_id is not None:
                return problem.row_id
        return None

    def checkpoint(self) -> list[ChainHead]:
        """Append the current head of each chain to the anchor file and return the heads.

        ``ews audit checkpoint`` calls this (e.g. at the end of each termly run), and prints the
        heads so that they can also be kept outside the machine.
        """
        report = self.verify_chains()
        heads = [h for h in report.heads.values() if h.head_id is not None and h.keyed_rows]
        append_anchor(self.anchor_path, self._audit_key,
                      [(h.table, int(h.head_id), str(h.head_hash)) for h in heads], kind="checkpoint")
        return list(report.heads.values())

    def record_verification(self, report: ChainReport, by: str) -> None:
        """Keep the result of a verification for the steward page (``/revision``)."""
        with self._transaction() as con:
            con.execute(self._sql["insert_verification"], {
                "at": _iso(report.checked_at), "ok": int(report.ok), "summary": report.summary(),
                "audit_rows": report.heads["audit_log"].rows, "review_rows": report.heads["reviews"].rows,
                "checkpoints": report.anchor_lines, "by": by})

    def last_verification(self) -> dict[str, object] | None:
        """The latest recorded verification, or None."""
        with self._connect() as con:
            row = con.execute(self._sql["last_verification"]).fetchone()
        return dict(row) if row else None

    def unlock(self, username: str, by: str) -> None:
        """Lift the lockout of a user name: failed logins before now no longer count.

        The unlock is an audit row of its own (action ``unlock``), so the count of failures
        starts again from it and the log shows who unlocked whom.

        Raises:
            StoreError: For an unknown user.
        """
        self._require_user(username)
        self.record_audit(action="unlock", outcome="allowed", username=by, role="admin", object_type="user",
                          object_id=username, purpose="Spærring efter fejlede login ophævet", path="ews users")

    def failed_logins_since(self, username: str, since: datetime) -> int:
        """Failed logins of a user name since a moment (and since its latest unlock)."""
        with self._connect() as con:
            row = con.execute(self._sql["failed_logins"], {"username": username, "since": _iso(since)}).fetchone()
        return int(row[0])

    def failed_logins_of_client(self, client: str, since: datetime) -> int:
        """Failed logins from one client address since a moment, whatever the user names."""
        with self._connect() as con:
            row = con.execute(self._sql["failed_logins_of_client"], {"client": client, "since": _iso(since)}
                              ).fetchone()
        return int(row[0])


def _clip(value: str | None, limit: int) -> str | None:
    """A text value cut to ``limit`` characters (the audit log never stores unbounded input)."""
    if value is None:
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _user(row: sqlite3.Row) -> User:
    return User(int(row["user_id"]), row["username"], row["display_name"], row["role"], bool(row["active"]))


def read_reviews(state_dir: Path) -> pd.DataFrame:
    """Every review, read-only, for the pipeline (carry-over and flags-versus-outcomes).

    The reviewer's name is left out; the role is kept, and of the person responsible for the
    follow-up only the role. The file is opened read-only (``mode=ro``), so the copy never
    blocks the app, which writes it in WAL mode meanwhile.

    Args:
        state_dir: The state folder.

    Returns:
        Columns :data:`REVIEW_COPY_COLUMNS` (``review_id``, ``pupil_id``, ``term``, ``run_id``,
        ``network_id``, ``school_code``, ``decision``, ``dismiss_reason``, ``step``,
        ``reviewer_role``, ``reviewed_at``, ``responsible_role``, ``next_step_date``); empty
        when the app has not been used yet.
    """
    path = app_db_path(state_dir)
    if not path.exists():
        return pd.DataFrame({column: pd.Series(dtype="object") for column in REVIEW_COPY_COLUMNS})
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        columns = {row[1] for row in con.execute("PRAGMA table_info(reviews)")}
        if not columns:
            return pd.DataFrame({column: pd.Series(dtype="object") for column in REVIEW_COPY_COLUMNS})
        # a file the app has not opened since the follow-up columns came has none yet
        query = "all_reviews" if "responsible" in columns else "all_reviews_before_followup"
        frame = pd.read_sql_query(load_queries("store.sql")[query], con)
    finally:
        con.close()
    return frame[list(REVIEW_COPY_COLUMNS)]


#: The columns of :func:`read_reviews` (the pipeline's copy into ``reviews_decisions``).
REVIEW_COPY_COLUMNS = ("review_id", "pupil_id", "term", "run_id", "network_id", "school_code", "decision",
                       "dismiss_reason", "step", "reviewer_role", "reviewed_at", "responsible_role",
                       "next_step_date")
