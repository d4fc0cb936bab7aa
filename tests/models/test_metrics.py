from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.metrics import calibration_error, list_lengths, score_metrics, select_top_k


def _rows(n, network="N1", as_of=date(2024, 11, 15)):
    return pd.DataFrame({"pupil_id": [f"p{i}" for i in range(n)], "as_of_date": as_of, "network_id": network})


def test_calibration_error_is_zero_for_matching_bins_and_large_for_a_shifted_score():
    y = np.array([0, 1] * 50)
    assert calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert calibration_error(y, np.full(100, 0.8)) == pytest.approx(0.3)


def test_list_length_is_the_capacity_pro_rated_to_the_rows_evaluated():
    rows = pd.concat([_rows(40), _rows(10, "N2")])
    population = pd.DataFrame({"as_of_date": [date(2024, 11, 15)] * 2, "network_id": ["N1", "N2"],
                               "pupils": [200, 10]})
    lengths = list_lengths(rows, population, {"N1": 15, "N2": 3}).set_index("network_id")
    assert lengths.loc["N1", "k"] == 3   # 15 * 40 / 200
    assert lengths.loc["N2", "k"] == 3


def test_top_k_takes_the_highest_scores_and_breaks_ties_the_same_way_every_time():
    rows = _rows(10)
    lengths = pd.DataFrame({"as_of_date": [date(2024, 11, 15)], "network_id": ["N1"], "k": [3]})
    score = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.0, 0.0, 0.0, 0.0])
    assert np.flatnonzero(select_top_k(rows, score, lengths)).tolist() == [1, 3, 5]
    ties = np.ones(10)
    first = select_top_k(rows, ties, lengths)
    assert first.sum() == 3
    assert (select_top_k(rows.iloc[::-1].reset_index(drop=True), ties, lengths)[::-1] == first).all()


def test_score_metrics_on_a_known_case():
    rows = _rows(6)
    y = np.array([1, 1, 0, 1, 0, 0])
    risk = np.array([0.9, 0.8, 0.7, 0.4, 0.2, 0.1])
    lengths = pd.DataFrame({"as_of_date": [date(2024, 11, 15)], "network_id": ["N1"], "k": [2]})
    metrics = score_metrics(rows, y, risk, lengths)
    assert metrics["roc_auc"] == pytest.approx(8 / 9, abs=1e-6)
    assert metrics["precision_at_capacity"] == 1.0
    assert metrics["recall_at_capacity"] == pytest.approx(2 / 3, abs=1e-6)
    rule = score_metrics(rows, y, (risk > 0.5).astype(float), lengths, is_probability=False)
    assert rule["brier"] is None and rule["calibration_error"] is None
