"""Issue 14: the reviews in the warehouse and the follow-up duty (counts, overdue lists)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from dashboards.store import AppStore, read_reviews
from flags.followup import REVIEWS_TABLE, copy_reviews
from tests.dashboards.dashboard_helpers import FAST_HASHER


def _store(tmp_path: Path) -> AppStore:
    store = AppStore(tmp_path / "app.sqlite", clock=lambda: datetime(2025, 12, 1, 9, tzinfo=UTC),
                     hasher=FAST_HASHER, audit_key=b"k" * 32)
    store.add_user("vera", "Vera Vejleder", "consultant", "a-long-password-1")
    store.add_user("nina", "Nina Netværk", "network_member", "a-long-password-2")
    return store


def _review(store: AppStore, pupil_id: str, decision: str, **extra: object) -> int:
    return store.add_review(pupil_id=pupil_id, term="2025/26-H1", run_id="r1", network_id="N01",
                            school_code="S01", decision=decision, reviewer="vera", reviewer_role="consultant",
                            **extra)


def test_the_copy_holds_decisions_steps_and_dates_but_no_names(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _review(store, "p1", "bekraeftet", responsible="nina", next_step_date=date(2026, 1, 10))
    _review(store, "p2", "afvist", dismiss_reason="forbigaaende")
    _review(store, "p3", "indsatstrappe", step="Drøftelse i netværket")
    con = duckdb.connect()
    entry = copy_reviews(con, read_reviews(tmp_path))
    assert entry == {"reviews": 3, "pupils": 3, "last_review_id": 3}
    rows = con.execute(f"SELECT pupil_id, decision, dismiss_reason, step, responsible_role, next_step_date, "
                       f"reviewed_at FROM {REVIEWS_TABLE} ORDER BY review_id").fetchall()
    assert rows[0][:6] == ("p1", "bekraeftet", None, None, "network_member", date(2026, 1, 10))
    assert rows[1][:3] == ("p2", "afvist", "forbigaaende")
    assert rows[2][3] == "Drøftelse i netværket"
    assert rows[0][6] == datetime(2025, 12, 1, 9)
    text = " ".join(str(v) for row in con.execute(f"SELECT * FROM {REVIEWS_TABLE}").fetchall() for v in row)
    assert "vera" not in text and "nina" not in text and "Vejleder" not in text
    # a second copy replaces, never duplicates
    _review(store, "p2", "bekraeftet")
    assert copy_reviews(con, read_reviews(tmp_path))["reviews"] == 4
    assert con.execute(f"SELECT count(*) FROM {REVIEWS_TABLE}").fetchone()[0] == 4


def test_an_app_that_was_never_used_gives_an_empty_table(tmp_path: Path) -> None:
    con = duckdb.connect()
    assert copy_reviews(con, read_reviews(tmp_path))["reviews"] == 0
    assert con.execute(f"SELECT count(*) FROM {REVIEWS_TABLE}").fetchone()[0] == 0
    assert isinstance(read_reviews(tmp_path), pd.DataFrame)
