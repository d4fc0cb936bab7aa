import numpy as np
import pandas as pd
import pytest

from models.fairness import fairness_report


def _frame():
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({
        "pupil_id": [f"p{i % 300}" for i in range(n)],
        "sex": np.where(np.arange(n) % 300 < 150, "F", "M"),
        "area": np.where(np.arange(n) % 300 < 290, "Nord", "Syd"),  # Syd: 10 pupils
        "origin": None,
    })
    risk = rng.random(n)
    y = (rng.random(n) < risk).astype(int)
    flagged = risk > 0.8
    return frame, y, risk, flagged


def test_group_metrics_match_their_definitions():
    frame, y, risk, flagged = _frame()
    report = fairness_report(frame, y, risk, flagged, attributes=["sex"], n_boot=0)
    girls = (frame["sex"] == "F").to_numpy()
    entry = report["sex"]["groups"]["F"]
    assert entry["flag_rate"] == pytest.approx(flagged[girls].mean(), abs=1e-4)
    assert entry["precision"] == pytest.approx(y[girls & flagged].mean(), abs=1e-4)
    assert entry["recall"] == pytest.approx(flagged[girls & (y == 1)].mean(), abs=1e-4)
    assert entry["false_positive_rate"] == pytest.approx(flagged[girls & (y == 0)].mean(), abs=1e-4)
    assert entry["calibration_gap"] == pytest.approx(risk[girls].mean() - y[girls].mean(), abs=1e-4)
    assert entry["pupils"] == 150 and entry["rows"] == 300


def test_small_groups_are_suppressed_and_missing_attributes_reported():
    frame, y, risk, flagged = _frame()
    report = fairness_report(frame, y, risk, flagged, attributes=["area", "origin", "religion"], n_boot=10)
    syd = report["area"]["groups"]["Syd"]
    assert syd["suppressed"] and "flag_rate" not in syd
    nord = report["area"]["groups"]["Nord"]
    low, high = nord["flag_rate_ci"]
    assert low <= nord["flag_rate"] <= high
    assert report["origin"]["available"] is False and report["religion"]["available"] is False


def test_intervals_are_reproducible():
    frame, y, risk, flagged = _frame()
    first = fairness_report(frame, y, risk, flagged, attributes=["sex"], n_boot=10, seed=4)
    assert first == fairness_report(frame, y, risk, flagged, attributes=["sex"], n_boot=10, seed=4)
