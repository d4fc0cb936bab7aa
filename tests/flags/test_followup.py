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


def _flags(rows: list[tuple[str, str]], term: str = "2025/26-H1", as_of: date = date(2025, 11, 15)) -> pd.DataFrame:
    return pd.DataFrame([{"pupil_id": p, "term": term, "status": s, "as_of_date": as_of, "network_id": "N01"}
                         for p, s in rows])


def _r(review_id: int, pupil_id: str, decision: str, term: str = "2025/26-H1", **extra: object) -> dict:
    return {"review_id": review_id, "pupil_id": pupil_id, "term": term, "decision": decision,
            "dismiss_reason": None, "step": None, "responsible": None, "next_step_date": None, **extra}


def test_follow_up_states_counts_and_overdue_list() -> None:
    from flags.followup import follow_up, network_summary

    flags = _flags([("a", "ny"), ("b", "ny"), ("c", "fortsat"), ("d", "fortsat"), ("e", "ny"), ("f", "ny"),
                    ("g", "ikke_laengere"), ("h", "ikke_laengere"), ("i", "ny")])
    reviews = [
        _r(1, "b", "bekraeftet", responsible="nina", next_step_date="2025-12-01"),
        _r(2, "c", "bekraeftet", term="2024/25-H2", responsible="vera", next_step_date="2026-03-01"),
        _r(3, "c", "familie_kontaktet"),  # keeps the earlier plan in force
        _r(4, "d", "afvist", term="2024/25-H2", dismiss_reason="forbigaaende"),
        _r(5, "e", "indsatstrappe", step="Drøftelse i netværket"),
        _r(6, "f", "bekraeftet", term="2024/25-H2", responsible="vera", next_step_date="2026-06-01"),  # back: 'ny'
        _r(7, "g", "bekraeftet", term="2024/25-H2", responsible="nina", next_step_date="2025-11-20"),
        _r(8, "i", "bekraeftet", term="2025/26-H2"),  # a later term's review does not apply
    ]
    within = follow_up(flags, reviews, today=date(2025, 12, 5), review_within_days=21)
    states = {f.pupil_id: f.state for f in within}
    assert states == {"a": "afventer_vurdering", "b": "naeste_skridt_overskredet", "c": "i_gang", "d": "afvist",
                      "e": "uden_naeste_skridt", "f": "afventer_vurdering", "g": "naeste_skridt_overskredet",
                      "i": "afventer_vurdering"}  # h: no longer flagged and never confirmed: no duty
    later = {f.pupil_id: f for f in follow_up(flags, reviews, today=date(2025, 12, 20), review_within_days=21)}
    assert later["a"].state == "ikke_vurderet_i_tide" and later["a"].days_overdue == 14
    assert later["b"].days_overdue == 19 and later["b"].responsible == "nina"
    assert later["c"].family_contacted and later["c"].next_step_date == date(2026, 3, 1)
    overdue = [f.pupil_id for f in later.values() if f.overdue]
    assert sorted(overdue) == ["a", "b", "e", "f", "g", "i"]
    summary = network_summary("N01", "2025/26-H1", flags, list(later.values()))
    assert (summary.flagged, summary.reviewed, summary.confirmed, summary.dismissed) == (7, 4, 3, 1)
    assert summary.dismiss_reasons == {"forbigaaende": 1}
    assert summary.families_contacted == 1 and summary.steps == {"Drøftelse i netværket": 1}
    assert summary.overdue == 6 and summary.continued == 1
    assert summary.states["ikke_vurderet_i_tide"] == 3
