"""The publication gate: a useless model is stopped, a good one passes, a constant one learnt nothing."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.gate import (
    MAX_CONSTANT_RISK_SHARE,
    bootstrap_precision_differences,
    gate_decision,
    gate_evaluation,
    gate_warning,
    largest_share_within,
    published,
)
from models.metrics import list_lengths, score_metrics

LIMIT = 0.03


def _world(seed: int = 0, pupils: int = 3000, rows_per_pupil: int = 2) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Pupils with a latent risk; the outcome follows it; a rule sees a coarse, noisy part of it."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal(pupils)
    p_true = 1 / (1 + np.exp(-(-1.0 + 1.8 * latent)))
    y_pupil = rng.random(pupils) < p_true
    ids = np.array([f"p{i:05d}" for i in range(pupils)])
    rows = pd.DataFrame({
        "pupil_id": np.repeat(ids, rows_per_pupil),
        "as_of_date": np.tile([date(2023, 11, 15), date(2024, 4, 15)][:rows_per_pupil], pupils),
        "network_id": np.where(np.repeat(np.arange(pupils), rows_per_pupil) % 2 == 0, "N1", "N2"),
    })
    y = np.repeat(y_pupil, rows_per_pupil).astype(int)
    noisy = np.repeat(latent, rows_per_pupil) + 1.5 * rng.standard_normal(len(rows))
    scores = {
        "good": np.repeat(p_true, rows_per_pupil),
        "rule": (noisy > 1.0).astype(float),
        "shuffled": rng.permutation(np.repeat(p_true, rows_per_pupil)),
    }
    return rows, y, scores


def _evaluate(rows: pd.DataFrame, y: np.ndarray, risk: np.ndarray, rules: dict, n_boot: int = 200) -> dict:
    population = rows.groupby(["as_of_date", "network_id"]).size().rename("pupils").reset_index()
    lengths = list_lengths(rows, population, {"N1": 150, "N2": 150})
    overall = {"model": score_metrics(rows, y, risk, lengths, True),
               "baselines": {name: score_metrics(rows, y, s, lengths, False) for name, s in rules.items()}}
    return gate_evaluation(rows, y, risk, rules, lengths, overall, LIMIT, n_boot=n_boot, seed=5)


def test_a_good_calibrated_model_passes_with_an_interval_above_zero():
    rows, y, scores = _world()
    gate = _evaluate(rows, y, scores["good"], {"abc_regel": scores["rule"]})
    assert gate["passed"], gate["reasons"]
    entry = gate["figures"]["precision_at_capacity"]["rules"]["abc_regel"]
    assert entry["difference_ci"][0] > 0
    assert entry["difference_ci"][0] <= entry["difference"] <= entry["difference_ci"][1]
    assert gate["reasons"] == [] and gate_warning({**gate, **published(gate, "rule_list")}) is None


def test_a_model_with_shuffled_scores_is_stopped_and_gives_way_to_the_best_rule():
    rows, y, scores = _world()
    weak_rule = (scores["rule"] * np.random.default_rng(1).random(len(rows)) > 0.9).astype(float)
    gate = _evaluate(rows, y, scores["shuffled"], {"fravaer_over_10pct": weak_rule, "abc_regel": scores["rule"]})
    assert not gate["passed"]
    assert gate["best_rule"] == "abc_regel"
    assert not gate["checks"]["beats_best_rule"]
    assert "best rule abc_regel" in gate["reasons"][0]
    outcome = {**gate, **published(gate, "rule_list")}
    assert outcome["published"] == "rule_list" and outcome["list_basis"] == "regel:abc_regel"
    assert "rule list of abc_regel" in gate_warning(outcome)
    assert published(gate, "no_list") == {"published": "no_list", "list_basis": None}


def test_a_constant_risk_is_reported_as_learnt_nothing():
    rows, y, scores = _world(pupils=800)
    constant = np.full(len(rows), y.mean())
    gate = _evaluate(rows, y, constant, {"abc_regel": scores["rule"]}, n_boot=50)
    assert not gate["passed"] and gate["learnt_nothing"]
    assert gate["figures"]["constant_risk"]["largest_share"] == 1.0
    assert any("learnt nothing" in reason for reason in gate["reasons"])
    assert any("ikke lært noget" in reason for reason in gate["reasons_da"])


def test_a_risk_that_is_the_same_for_most_pupils_also_learnt_nothing():
    risk = np.r_[np.full(700, 0.281), np.full(100, 0.2815), np.linspace(0.05, 0.9, 200)]
    assert largest_share_within(risk) > MAX_CONSTANT_RISK_SHARE
    assert largest_share_within(np.linspace(0.05, 0.9, 1000)) < 0.05
    assert largest_share_within(np.array([])) == 0.0


def test_an_uncalibrated_model_fails_even_when_it_ranks_well():
    rows, y, scores = _world()
    too_high = np.clip(scores["good"] + 0.2, 0, 1)
    gate = _evaluate(rows, y, too_high, {"abc_regel": scores["rule"]}, n_boot=50)
    assert gate["checks"]["beats_best_rule"] and not gate["checks"]["calibration"]
    assert not gate["passed"]
    assert "calibration error" in gate["reasons"][0]


def test_the_bootstrap_resamples_pupils_and_is_reproducible():
    pupils = pd.Series(["a", "a", "b", "b", "c", "c"])
    y = np.array([1, 1, 0, 0, 1, 0])
    chosen = {"model": np.array([1, 1, 0, 0, 1, 0], bool), "rule": np.array([0, 0, 1, 1, 1, 0], bool)}
    first = bootstrap_precision_differences(pupils, y, chosen, "model", n_boot=40, seed=3)["rule"]
    again = bootstrap_precision_differences(pupils, y, chosen, "model", n_boot=40, seed=3)["rule"]
    np.testing.assert_array_equal(first, again)
    finite = first[~np.isnan(first)]
    # the model's list is all outcomes and the rule's list is a third of them in every draw
    # that has both lists: the difference is never below zero
    assert len(finite) > 20 and (finite >= 0).all() and finite.max() == pytest.approx(1.0)


def test_the_decision_needs_rows_to_compare():
    figures = {
        "precision_at_capacity": {"model": None, "rules": {"abc_regel": {"precision_at_capacity": None,
                                                                         "difference": None,
                                                                         "difference_ci": [None, None]}}},
        "calibration_error": {"value": 0.01, "limit": LIMIT},
        "constant_risk": {"largest_share": 0.02, "window": 0.01, "limit": MAX_CONSTANT_RISK_SHARE},
    }
    gate = gate_decision(figures)
    assert not gate["passed"] and gate["best_rule"] is None
    assert published(gate, "rule_list")["published"] == "no_list"


def test_the_evaluation_of_a_trained_model_carries_the_gate(trained, sim_config):
    import duckdb

    from models.evaluation import evaluate_model

    path, _models, bundle = trained
    assert set(bundle.metrics["gate"]) >= {"passed", "figures", "reasons", "published", "list_basis"}
    con = duckdb.connect(str(path), read_only=True)
    try:
        result = evaluate_model(con, sim_config, bundle, n_boot=0, gate_boot=30)
    finally:
        con.close()
    gate = result["gate"]
    rules = gate["figures"]["precision_at_capacity"]["rules"]
    assert set(rules) == {"fravaer_over_10pct", "abc_regel", "kun_skole"}
    for name, entry in rules.items():
        assert entry["precision_at_capacity"] == result["baselines"][name]["precision_at_capacity"]
    assert gate["figures"]["precision_at_capacity"]["model"] == result["model"]["precision_at_capacity"]
    assert gate["figures"]["calibration_error"]["value"] == result["model"]["calibration_error"]


def test_the_calibration_noise_floor_shrinks_with_the_held_out_size():
    from models.gate import calibration_noise

    rng = np.random.default_rng(2)
    small = rng.uniform(0.05, 0.8, 300)
    large = rng.uniform(0.05, 0.8, 30000)
    noise_small = calibration_noise(small, pd.Series([f"p{i}" for i in range(300)]), n_draws=100)
    noise_large = calibration_noise(large, pd.Series([f"p{i}" for i in range(30000)]), n_draws=100)
    assert noise_small > 0.03 > noise_large > 0
    assert calibration_noise(np.array([]), pd.Series([], dtype=str)) is None


def test_the_gate_and_the_card_agree_on_a_model_that_learnt_nothing():
    """The evaluation's own checks (risk spread, AUC above chance) stop the gate too."""
    rows, y, scores = _world()
    population = rows.groupby(["as_of_date", "network_id"]).size().rename("pupils").reset_index()
    lengths = list_lengths(rows, population, {"N1": 150, "N2": 150})
    rules = {"abc_regel": scores["rule"]}
    overall = {"model": score_metrics(rows, y, scores["good"], lengths, True),
               "baselines": {"abc_regel": score_metrics(rows, y, scores["rule"], lengths, False)}}
    fine = {"risk_varies": {"value": 0.5, "limit": 0.1, "passed": True},
            "better_than_chance": {"value": 0.8, "limit": 0.5, "passed": True}}
    assert gate_evaluation(rows, y, scores["good"], rules, lengths, overall, LIMIT, n_boot=50, seed=5,
                           learnt_checks=fine)["passed"]
    chance = {**fine, "better_than_chance": {"value": 0.48, "limit": 0.5, "passed": False}}
    gate = gate_evaluation(rows, y, scores["good"], rules, lengths, overall, LIMIT, n_boot=50, seed=5,
                           learnt_checks=chance)
    assert not gate["passed"] and gate["learnt_nothing"] and not gate["checks"]["varied_risk"]
    assert any("not above 0.5" in reason for reason in gate["reasons"])
    assert any("ikke lært noget" in reason for reason in gate["reasons_da"])
