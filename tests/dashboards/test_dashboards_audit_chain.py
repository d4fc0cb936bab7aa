"""Issue 12, defect 3: the keyed chain over the audit log and the reviews, its anchor file,
``ews audit verify`` / ``checkpoint``, files written before the key, and the steward page.

Every tampering is done as an attacker with the file would do it: the sqlite3 shell, with the
append-only triggers dropped.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from dashboards.audit_chain import GENESIS, legacy_hash
from dashboards.store import AppStore
from pipelines.commands.audit import audit_app
from tests.dashboards.dashboard_helpers import FAST_HASHER, AppEnv, LiveServer, login

KEY = hashlib.sha256(b"test audit key").digest()


def _store(path: Path, key: bytes = KEY) -> AppStore:
    return AppStore(path / "app.sqlite", hasher=FAST_HASHER, audit_key=key)


def _fill(store: AppStore, rows: int = 5, reviews: int = 2) -> list[int]:
    ids = [store.record_audit(action="view_pupil", outcome="allowed", username="vera", object_id=f"p{i:015d}")
           for i in range(rows)]
    for i in range(reviews):
        store.add_review(pupil_id=f"p{i:015d}", term="2025/26-H1", run_id="r1", network_id="N001",
                         school_code="S0001", decision="bekraeftet", reviewer="vera", reviewer_role="consultant")
    return ids


def _tamper(path: Path, *statements: str) -> None:
    with sqlite3.connect(path / "app.sqlite") as con:
        for trigger in ("audit_no_update", "audit_no_delete", "reviews_no_update", "reviews_no_delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for statement in statements:
            con.execute(statement)


def test_an_untouched_trail_verifies(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _fill(store)
    report = store.verify_chains()
    assert report.ok, report.summary()
    assert report.heads["audit_log"].rows == 5 and report.heads["reviews"].rows == 2
    assert report.anchor_lines == 7  # one checkpoint per write


def test_an_edited_audit_row_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ids = _fill(store)
    _tamper(tmp_path, f"UPDATE audit_log SET object_id = 'p999999999999999' WHERE audit_id = {ids[2]}")
    report = store.verify_chains()
    assert not report.ok
    assert (report.first_problem.table, report.first_problem.row_id) == ("audit_log", ids[2])
    assert store.verify_audit_chain() == ids[2]


def test_an_edited_review_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _fill(store)
    _tamper(tmp_path, "UPDATE reviews SET decision = 'afvist', dismiss_reason = 'kendt' WHERE review_id = 1")
    problem = store.verify_chains().first_problem
    assert (problem.table, problem.row_id) == ("reviews", 1)


def test_the_newest_rows_deleted_are_found_from_the_anchor(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ids = _fill(store)
    _tamper(tmp_path, f"DELETE FROM audit_log WHERE audit_id >= {ids[3]}", "DELETE FROM reviews WHERE review_id = 2")
    report = store.verify_chains()
    found = {(p.table, p.row_id) for p in report.problems}
    assert {("audit_log", ids[3]), ("audit_log", ids[4]), ("reviews", 2)} <= found
    assert "deleted" in report.first_problem.reason


def test_a_rewrite_rechained_without_the_key_is_found(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ids = _fill(store)
    # The attacker edits row 2 and recomputes every later hash: with a key of their own, and
    # with the old unkeyed formula (turning the rows into "old" rows).
    forged = AppStore(tmp_path / "forged" / "app.sqlite", hasher=FAST_HASHER, audit_key=b"guess" * 8)
    with sqlite3.connect(tmp_path / "app.sqlite") as con:
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute("SELECT * FROM audit_log ORDER BY audit_id")]
    rows[2]["object_id"] = "p999999999999999"
    _tamper(tmp_path, "DELETE FROM audit_log")
    prev = GENESIS
    with sqlite3.connect(tmp_path / "app.sqlite") as con:
        for row in rows:
            entry = {k: row[k] for k in ("at", "username", "role", "action", "object_type", "object_id", "run_id",
                                         "purpose", "outcome", "http_status", "path")}
            row_hash = legacy_hash(prev, entry)
            values = {**row, "prev_hash": prev, "row_hash": row_hash, "chain_version": 0}
            con.execute(f"INSERT INTO audit_log ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                        list(values.values()))
            prev = row_hash
    report = store.verify_chains()
    assert not report.ok
    assert ("audit_log", ids[2]) in {(p.table, p.row_id) for p in report.problems}
    assert forged.verify_chains().ok  # the other store (own key, own anchor) is unaffected


def test_a_different_key_or_a_removed_anchor_fails(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _fill(store)
    assert not _store(tmp_path, key=b"another key" * 3).verify_chains().ok
    (tmp_path / "audit-anchor.log").unlink()
    report = store.verify_chains()
    assert not report.ok and "anchor" in report.first_problem.reason


def test_an_older_file_is_verified_from_the_seal_over_its_rows(tmp_path: Path) -> None:
    """A file written before the keyed chain: old schema, unkeyed audit chain, unchained reviews."""
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript("""
            CREATE TABLE reviews (review_id INTEGER PRIMARY KEY, pupil_id TEXT NOT NULL, term TEXT NOT NULL,
                run_id TEXT NOT NULL, network_id TEXT, school_code TEXT, decision TEXT NOT NULL,
                dismiss_reason TEXT, step TEXT, reviewer TEXT NOT NULL, reviewer_role TEXT NOT NULL,
                reviewed_at TEXT NOT NULL);
            CREATE TABLE audit_log (audit_id INTEGER PRIMARY KEY, at TEXT NOT NULL, username TEXT, role TEXT,
                action TEXT NOT NULL, object_type TEXT, object_id TEXT, run_id TEXT, purpose TEXT,
                outcome TEXT NOT NULL, http_status INTEGER, path TEXT, prev_hash TEXT NOT NULL,
                row_hash TEXT NOT NULL);
        """)
        prev = GENESIS
        for i in range(3):
            entry = {"at": f"2025-06-0{i + 1}T10:00:00+00:00", "username": "vera", "role": "consultant",
                     "action": "view_pupil", "object_type": "pupil", "object_id": f"p{i:015d}", "run_id": "r0",
                     "purpose": "old", "outcome": "allowed", "http_status": 200, "path": "/elev"}
            row_hash = legacy_hash(prev, entry)
            con.execute("INSERT INTO audit_log (at, username, role, action, object_type, object_id, run_id, purpose,"
                        " outcome, http_status, path, prev_hash, row_hash) VALUES"
                        " (:at, :username, :role, :action, :object_type, :object_id, :run_id, :purpose, :outcome,"
                        " :http_status, :path, :prev, :hash)", {**entry, "prev": prev, "hash": row_hash})
            prev = row_hash
        con.execute("INSERT INTO reviews (pupil_id, term, run_id, decision, reviewer, reviewer_role, reviewed_at)"
                    " VALUES ('p000000000000001', '2024/25-H2', 'r0', 'bekraeftet', 'vera', 'consultant',"
                    " '2025-06-01T10:00:00+00:00')")
    store = _store(tmp_path)  # migrates: the keyed chain's columns are added
    assert store.verify_chains().ok
    _fill(store, rows=2, reviews=1)
    report = store.verify_chains()
    assert report.ok, report.summary()
    assert report.heads["audit_log"].keyed_rows == 2 and report.heads["reviews"].keyed_rows == 1
    # An older review (no chain of its own) changed later: the first keyed review's seal shows it.
    _tamper(tmp_path, "UPDATE reviews SET decision = 'familie_kontaktet' WHERE review_id = 1")
    problem = store.verify_chains().first_problem
    assert (problem.table, problem.row_id) == ("reviews", 2) and "older rows" in problem.reason


@pytest.fixture
def cli(env: AppEnv, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("EWS_STATE_DIR", str(env.state_dir))
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    return app


def test_ews_audit_verify_exits_0_then_7_naming_the_first_bad_row(env: AppEnv, cli: typer.Typer) -> None:
    ids = _fill(env.store)
    runner = CliRunner()
    intact = runner.invoke(cli, ["audit", "verify"])
    assert intact.exit_code == 0 and "intact" in intact.output
    checkpoint = runner.invoke(cli, ["audit", "checkpoint", "--json"])
    assert checkpoint.exit_code == 0
    heads = {h["table"]: h for h in json.loads(checkpoint.output)}
    assert heads["audit_log"]["head_id"] == ids[-1]  # a verification is kept apart, not in the log
    _tamper(env.state_dir, f"UPDATE audit_log SET purpose = 'nothing to see' WHERE audit_id = {ids[1]}")
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 7
    assert f"audit log row {ids[1]}" in broken.output
    as_json = runner.invoke(cli, ["audit", "verify", "--json"])
    assert as_json.exit_code == 7 and json.loads(as_json.output)["problems"][0]["row_id"] == ids[1]


def test_the_steward_page_shows_the_last_verification(env: AppEnv, cli: typer.Typer, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        assert "endnu ikke kørt" in stig.get("/revision").text
        assert CliRunner().invoke(cli, ["audit", "verify"]).exit_code == 0
        page = stig.get("/revision").text
        assert "Seneste kørsel af" in page and "intakt" in page
        _tamper(env.state_dir, "DELETE FROM audit_log WHERE audit_id = (SELECT max(audit_id) FROM audit_log)")
        assert CliRunner().invoke(cli, ["audit", "verify"]).exit_code == 7
        page = stig.get("/revision").text
    assert "Kæden er brudt" in page and "brudt" in page and "deleted" in page


def test_a_large_log_is_left_to_the_scheduled_verification(env: AppEnv, cli: typer.Typer, live: LiveServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboards.routes import audit as audit_route

    monkeypatch.setattr(audit_route, "LIVE_CHECK_ROWS", 0)
    assert CliRunner().invoke(cli, ["audit", "verify"]).exit_code == 0
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        page = stig.get("/revision").text
    assert "for mange til at kontrollere ved hver visning" in page and "Seneste kørsel af" in page


def test_the_termly_run_checkpoints_the_chains_and_warns_when_they_are_broken(tmp_path: Path) -> None:
    from ews.settings import Settings
    from pipelines.flows import audit_checkpoint

    settings = Settings(state_dir=tmp_path, pseudonym_key="test-key-not-secret")
    assert audit_checkpoint(settings) is None  # no app store yet: nothing to checkpoint
    store = AppStore(tmp_path / "app.sqlite", hasher=FAST_HASHER, audit_key=settings.audit_key_bytes())
    ids = _fill(store)
    checkpoint = audit_checkpoint(settings)
    assert checkpoint["intact"]
    assert checkpoint["heads"]["audit_log"]["rows"] == 5 and checkpoint["heads"]["audit_log"]["head_id"] == ids[-1]
    assert checkpoint["heads"]["reviews"]["rows"] == 2
    _tamper(tmp_path, f"DELETE FROM audit_log WHERE audit_id = {ids[-1]}")
    assert not audit_checkpoint(settings)["intact"]
