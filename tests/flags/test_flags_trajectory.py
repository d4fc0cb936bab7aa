"""Trajectory since last term and the early / late starter reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flags.trajectory import classify_trend, drift_signals, path_pattern, trajectories


@pytest.mark.parametrize(("risk", "previous", "expected"), [
    (0.40, 0.30, "stigende"),
    (0.30, 0.40, "faldende"),
    (0.32, 0.30, "stabil"),
    (0.35, 0.30, "stigende"),  # exactly one step counts
    (0.30, None, "ingen_tidligere"),
    (0.30, float("nan"), "ingen_tidligere"),
])
def test_trend_since_last_term(risk, previous, expected):
    assert classify_trend(risk, previous) == expected


def _history(rows):
    return pd.DataFrame(rows, columns=["term", "grade", "risk"])


def test_an_elevated_risk_in_grade_5_or_6_is_an_early_start():
    early = _history([("2023/24-H1", 5, 0.45), ("2023/24-H2", 5, 0.5)])
    assert path_pattern(early, risk=0.6, grade=7, risk_families=2, elevated=0.3, trend="stigende") == "tidlig_starter"
    assert path_pattern(_history([]), risk=0.5, grade=5, risk_families=2, elevated=0.3, trend="ingen_tidligere") \
        == "tidlig_starter"
    # one family alone is not "many risk factors"
    assert path_pattern(early, risk=0.6, grade=7, risk_families=1, elevated=0.3, trend="stigende") is None


def test_many_risk_families_is_an_early_start_whatever_the_grade():
    assert path_pattern(_history([]), risk=0.6, grade=8, risk_families=3, elevated=0.3,
                        trend="ingen_tidligere") == "tidlig_starter"


def test_low_then_rising_with_few_factors_is_a_late_start():
    history = _history([("2022/23-H1", 5, 0.10), ("2023/24-H1", 6, 0.12), ("2024/25-H2", 7, 0.25)])
    assert path_pattern(history, risk=0.45, grade=8, risk_families=2, elevated=0.3, trend="stigende") == "sen_starter"
    # not rising this term: no label
    assert path_pattern(history, risk=0.45, grade=8, risk_families=2, elevated=0.3, trend="stabil") is None
    # too little history: no label
    assert path_pattern(history.tail(1), risk=0.45, grade=8, risk_families=2, elevated=0.3,
                        trend="stigende") is None


def test_trajectories_compare_with_last_term_only():
    current = pd.DataFrame({"pupil_id": ["a", "b", "c"], "risk": [0.5, 0.2, 0.4], "grade": [7, 7, 7],
                            "risk_families": [1, 1, 1]})
    history = pd.DataFrame({
        "pupil_id": ["a", "a", "b", "c"],
        "term": ["2024/25-H1", "2024/25-H2", "2024/25-H2", "2023/24-H2"],
        "grade": [6, 6, 6, 5],
        "risk": [0.2, 0.3, 0.35, 0.1],
    })
    out = trajectories(current, history, elevated=0.3, previous_term="2024/25-H2").set_index("pupil_id")
    assert out.loc["a", "trajectory"] == "stigende" and out.loc["a", "risk_change"] == pytest.approx(0.2)
    assert out.loc["b", "trajectory"] == "faldende" and out.loc["b", "previous_risk"] == pytest.approx(0.35)
    assert out.loc["c", "trajectory"] == "ingen_tidligere"  # scored two terms ago, not last term
    assert pd.isna(out.loc["c", "risk_change"])


def test_a_recent_absence_drift_in_adolescence_with_little_early_support_is_a_late_start():
    none = _history([])
    assert path_pattern(none, risk=0.6, grade=8, risk_families=3, elevated=0.3, trend="ingen_tidligere",
                        early_support=2.0, drift=True) == "sen_starter"
    # much early support: the many risk factors read as an early start
    assert path_pattern(none, risk=0.6, grade=8, risk_families=3, elevated=0.3, trend="ingen_tidligere",
                        early_support=25.0, drift=True) == "tidlig_starter"
    # before grade 7 a drift is not read as a late start
    assert path_pattern(none, risk=0.6, grade=6, risk_families=3, elevated=0.3, trend="ingen_tidligere",
                        early_support=2.0, drift=True) == "tidlig_starter"
    # no early support at all and no drift: no label
    assert path_pattern(none, risk=0.6, grade=8, risk_families=3, elevated=0.3, trend="stabil",
                        early_support=0.0, drift=False) is None


def test_drift_signals_read_the_stored_feature_values():
    rows = []
    values = {
        "a": {"contacts_ppr_ever": 2, "absence_trend_pp": 0.2, "absence_total_pct_6m": 8, "absence_total_pct_all": 7},
        "b": {"contacts_ppr_ever": 0, "contacts_talehoerelaerer_ever": 1, "absence_total_pct_6m": 22,
              "absence_total_pct_all": 9},
        "c": {"absence_total_pct_6m": 12.0},
        "d": {"absence_trend_pp": 3.5},
    }
    for pupil, features in values.items():
        rows += [{"pupil_id": pupil, "feature": f, "feature_value": float(v)} for f, v in features.items()]
    signals = drift_signals(pd.DataFrame(rows)).set_index("pupil_id")
    assert signals.loc["a", "early_support"] == 2 and not signals.loc["a", "drift"]
    assert signals.loc["b", "early_support"] == 1 and signals.loc["b", "drift"]  # 13 points above own level
    assert pd.isna(signals.loc["c", "early_support"]) and not signals.loc["c", "drift"]  # unknown is no drift
    assert signals.loc["d", "drift"]


def test_trajectories_give_every_pupil_the_pattern_of_its_own_history():
    """The pupils' histories summarised once for all (``trajectories``) against ``path_pattern``
    over each pupil's own rows, on random pupils with 0-5 earlier terms in any order."""
    rng = np.random.default_rng(3)
    terms = ["2022/23-H1", "2022/23-H2", "2023/24-H1", "2023/24-H2", "2024/25-H1"]
    history, current = [], []
    for i in range(400):
        pupil = f"p{i:03d}"
        taken = rng.choice(len(terms), size=rng.integers(0, 6), replace=False)
        for t in taken:  # in random order
            history.append({"pupil_id": pupil, "term": terms[t], "grade": 5 + t // 2, "risk": float(rng.random())})
        support = float(rng.integers(0, 14)) if rng.random() < 0.8 else np.nan
        current.append({"pupil_id": pupil, "risk": float(rng.random()), "grade": int(rng.integers(5, 10)),
                        "risk_families": int(rng.integers(0, 5)), "early_support": support,
                        "drift": bool(rng.random() < 0.3)})
    history_frame = pd.DataFrame(history, columns=["pupil_id", "term", "grade", "risk"])
    current_frame = pd.DataFrame(current)
    got = trajectories(current_frame, history_frame, elevated=0.3, previous_term="2024/25-H1")
    for record, row in zip(current, got.to_dict("records"), strict=True):
        own = history_frame[history_frame["pupil_id"] == record["pupil_id"]]
        support = record["early_support"]
        want = path_pattern(own, record["risk"], record["grade"], record["risk_families"], 0.3, row["trajectory"],
                            early_support=None if np.isnan(support) else support, drift=record["drift"])
        pattern = row["path_pattern"] if isinstance(row["path_pattern"], str) else None  # None or NaN
        assert pattern == want, (record, own)
    assert set(got["path_pattern"].dropna()) == {"tidlig_starter", "sen_starter"}
