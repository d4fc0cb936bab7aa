"""The app store: hashed passwords, expiring sessions, append-only reviews and audit log."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboards.store import AppStore, StoreError, read_reviews
from tests.dashboards.dashboard_helpers import FAST_HASHER


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> AppStore:
    store = AppStore(tmp_path / "app.sqlite", clock=clock, hasher=FAST_HASHER)
    store.add_user("vera", "Vera Vejleder", "consultant", "a-long-password-1")
    store.assign("vera", "school", "S0001")
    return store


def _review(store: AppStore, **overrides: object) -> int:
    fields = {"pupil_id": "p1", "term": "2025/26-H1", "run_id": "r1", "network_id": "N001",
              "school_code": "S0001", "decision": "bekraeftet", "reviewer": "vera", "reviewer_role": "consultant"}
    return store.add_review(**{**fields, **overrides})


def test_passwords_are_stored_as_argon2id_hashes_and_verified(store: AppStore, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "app.sqlite") as con:
        stored = con.execute("SELECT password_hash FROM users WHERE username = 'vera'").fetchone()[0]
    assert stored.startswith("$argon2id$") and "a-long-password-1" not in stored
    assert store.verify_login("vera", "a-long-password-1") is not None
    assert store.verify_login("vera", "a-long-password-2") is None
    assert store.verify_login("nobody", "a-long-password-1") is None
    store.set_active("vera", False)
    assert store.verify_login("vera", "a-long-password-1") is None


def test_short_passwords_unknown_roles_and_wrong_assignments_are_refused(store: AppStore) -> None:
    with pytest.raises(StoreError, match="12 characters"):
        store.add_user("kim", "Kim", "consultant", "short")
    with pytest.raises(StoreError, match="role"):
        store.add_user("kim", "Kim", "superuser", "a-long-password-1")
    with pytest.raises(StoreError, match="exists"):
        store.add_user("vera", "Vera", "consultant", "a-long-password-1")
    with pytest.raises(StoreError, match="schools, not 'network'"):
        store.assign("vera", "network", "N001")
    store.add_user("stig", "Stig", "steward", None)
    with pytest.raises(StoreError, match="sees no pupils"):
        store.assign("stig", "school", "S0001")
    assert store.assignments(store.get_user("vera").user_id)["school"] == frozenset({"S0001"})


def test_sessions_expire_when_idle_and_after_their_maximum_age(store: AppStore, clock: Clock) -> None:
    idle, max_age = timedelta(minutes=30), timedelta(hours=8)
    user_id = store.get_user("vera").user_id
    token, session = store.create_session(user_id, "local")
    assert store.load_session(token, idle, max_age).csrf_token == session.csrf_token
    clock.now += timedelta(minutes=29)
    assert store.load_session(token, idle, max_age) is not None
    clock.now += timedelta(minutes=31)
    assert store.load_session(token, idle, max_age) is None
    assert store.load_session(token, idle, max_age) is None  # deleted, not just refused

    token, _ = store.create_session(user_id, "local")
    for _ in range(17):  # active every 29 minutes, still ends after 8 hours
        clock.now += timedelta(minutes=29)
        alive = store.load_session(token, idle, max_age)
    assert alive is None


def test_password_change_and_disabling_end_sessions(store: AppStore) -> None:
    idle, max_age = timedelta(minutes=30), timedelta(hours=8)
    user_id = store.get_user("vera").user_id
    token, _ = store.create_session(user_id, "local")
    store.set_password("vera", "another-long-password")
    assert store.load_session(token, idle, max_age) is None
    token, _ = store.create_session(user_id, "local")
    store.set_active("vera", False)
    assert store.load_session(token, idle, max_age) is None


def test_reviews_are_append_only(store: AppStore, tmp_path: Path, clock: Clock) -> None:
    first = _review(store)
    clock.now += timedelta(days=1)
    second = _review(store, decision="afvist", dismiss_reason="datafejl")
    history = store.reviews_of_pupil("p1")
    assert [r["review_id"] for r in history] == [second, first]
    assert history[1]["decision"] == "bekraeftet"
    with sqlite3.connect(tmp_path / "app.sqlite") as con:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("UPDATE reviews SET decision = 'afvist' WHERE review_id = ?", (first,))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM reviews")
    assert len(store.reviews_of_pupil("p1")) == 2


def test_review_decisions_need_their_reason_or_step(store: AppStore) -> None:
    with pytest.raises(StoreError, match="dismissal needs"):
        _review(store, decision="afvist")
    with pytest.raises(StoreError, match="only a dismissal"):
        _review(store, decision="bekraeftet", dismiss_reason="datafejl")
    with pytest.raises(StoreError, match="indsatstrappe"):
        _review(store, decision="indsatstrappe", step="Et trin, der ikke findes", allowed_steps=["Trin A"])
    with pytest.raises(StoreError, match="decision"):
        _review(store, decision="maybe")
    assert _review(store, decision="indsatstrappe", step="Trin A", allowed_steps=["Trin A"]) > 0


def test_latest_review_is_per_pupil_and_never_from_a_later_term(store: AppStore) -> None:
    _review(store, term="2024/25-H2", decision="bekraeftet")
    _review(store, term="2025/26-H1", decision="familie_kontaktet")
    _review(store, pupil_id="p2", term="2025/26-H2", decision="bekraeftet")
    assert store.latest_reviews("2025/26-H1")["p1"]["decision"] == "familie_kontaktet"
    assert store.latest_reviews("2024/25-H2")["p1"]["decision"] == "bekraeftet"
    assert "p2" not in store.latest_reviews("2025/26-H1")


def test_the_pipeline_reads_reviews_without_reviewer_names(store: AppStore, tmp_path: Path) -> None:
    _review(store)
    frame = read_reviews(tmp_path)
    assert list(frame["decision"]) == ["bekraeftet"]
    assert "reviewer" not in frame.columns and frame["reviewer_role"].iloc[0] == "consultant"
    assert read_reviews(tmp_path / "elsewhere").empty


def test_audit_log_is_append_only_and_chained(store: AppStore, tmp_path: Path) -> None:
    ids = [store.record_audit(action="view_pupil", outcome="allowed", username="vera", object_id=f"p{i}")
           for i in range(3)]
    assert store.verify_audit_chain() is None
    with sqlite3.connect(tmp_path / "app.sqlite") as con:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("UPDATE audit_log SET username = 'someone' WHERE audit_id = ?", (ids[1],))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM audit_log WHERE audit_id = ?", (ids[1],))
        # Someone with the file and the sqlite3 shell drops the trigger: the chain shows it.
        con.execute("DROP TRIGGER audit_no_update")
        con.execute("UPDATE audit_log SET object_id = 'p9' WHERE audit_id = ?", (ids[1],))
    assert store.verify_audit_chain() == ids[1]
    assert [e["audit_id"] for e in store.read_audit(object_id="p9")] == [ids[1]]


def test_failed_logins_are_counted_within_the_window(store: AppStore, clock: Clock) -> None:
    for _ in range(3):
        store.record_audit(action="login", outcome="denied", username="vera")
    assert store.failed_logins_since("vera", clock.now - timedelta(minutes=15)) == 3
    assert store.failed_logins_since("vera", clock.now + timedelta(seconds=1)) == 0


def test_a_follow_up_is_kept_in_the_keyed_chain_and_copied_without_names(store: AppStore, tmp_path: Path) -> None:
    from datetime import date

    store.add_user("nina", "Nina Netværk", "network_member", "a-long-password-2")
    _review(store, decision="bekraeftet", responsible="nina", next_step_date=date(2026, 2, 1),
            allowed_responsible=["nina", "vera"])
    _review(store, pupil_id="p2", decision="afvist", dismiss_reason="datafejl")
    assert store.verify_chains().ok
    frame = read_reviews(tmp_path)
    assert frame["responsible_role"].iloc[0] == "network_member" and pd.isna(frame["responsible_role"].iloc[1])
    assert frame["next_step_date"].iloc[0] == "2026-02-01" and pd.isna(frame["next_step_date"].iloc[1])
    assert "nina" not in frame.astype(str).to_numpy().ravel().tolist()
    with sqlite3.connect(tmp_path / "app.sqlite") as con:
        con.execute("DROP TRIGGER reviews_no_update")
        con.execute("UPDATE reviews SET next_step_date = '2026-06-01' WHERE review_id = 1")
    assert not store.verify_chains().ok  # the next-step date is part of the keyed hash


def test_a_follow_up_needs_an_active_decision_a_person_and_a_date(store: AppStore) -> None:
    from datetime import date

    with pytest.raises(StoreError, match="both"):
        _review(store, responsible="vera")
    with pytest.raises(StoreError, match="only a confirmed flag"):
        _review(store, decision="afvist", dismiss_reason="datafejl", responsible="vera",
                next_step_date=date(2026, 2, 1))
    with pytest.raises(StoreError, match="member of the pupil's network"):
        _review(store, responsible="mallory", next_step_date=date(2026, 2, 1), allowed_responsible=["vera"])
