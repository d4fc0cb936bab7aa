"""Model selection: rolling origins over the training cohorts, a small-data and a large-data world."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ews.config import MODEL_CANDIDATES, ConfigError, ModelSettings
from features.catalogue import FEATURE_NAMES
from models.risk_model import DEFAULT_CANDIDATES, MIN_LEAF_ROWS, OWN_PROBABILITY, PLATT_CV, calibration_for, leaf_rows
from models.selection import select_candidate, validation_origins
from models.training import pinned_candidate

from .conftest import make_config

SIGNAL = ("absence_unauthorised_pct_12m", "notifications_12m", "test_reading_latest_z", "contacts_ppr_12m")
CAPACITY = {"N1": 10, "N2": 10}


def _world(pupils_per_cohort: int, cohorts: int, interaction: bool, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (two as-of dates a pupil) with every catalogue column, and the population.

    ``interaction`` False: the log-odds are additive and linear in the signal features (what a
    logistic regression fits exactly). True: the risk jumps only when two features are both
    high, an interaction no additive model can express.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for c in range(cohorts):
        cohort = f"{2014 + c}/{(15 + c) % 100:02d}"
        n = pupils_per_cohort
        x = rng.normal(size=(n, len(SIGNAL)))
        if interaction:
            logit = -2.2 + 3.5 * ((x[:, 0] > 0.3) & (x[:, 1] > 0.3)) + 0.3 * x[:, 3]
        else:
            logit = -1.0 + 1.2 * x[:, 0] + 0.8 * x[:, 1] - 0.8 * x[:, 2] + 0.5 * x[:, 3]
        outcome = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        for k, as_of in enumerate((date(2010 + c, 11, 15), date(2011 + c, 4, 15))):
            noisy = x + rng.normal(scale=0.3, size=x.shape)
            frame = pd.DataFrame({name: np.nan for name in FEATURE_NAMES}, index=range(n))
            for j, name in enumerate(SIGNAL):
                frame[name] = noisy[:, j]
            frame["grade"] = 6.0 + k
            frames.append(frame.assign(
                pupil_id=[f"p{c:02d}{i:05d}" for i in range(n)], as_of_date=as_of, cohort=cohort,
                outcome=outcome, network_id=np.where(np.arange(n) % 2 == 0, "N1", "N2"),
                school_code=np.where(np.arange(n) % 2 == 0, "S1", "S3")))
    train = pd.concat(frames, ignore_index=True)
    population = train.groupby(["as_of_date", "network_id"]).size().rename("pupils").reset_index()
    return train, population


def test_origins_roll_forward_over_the_training_cohorts_only():
    cohorts = ["2016/17", "2014/15", "2015/16", "2017/18"]
    assert validation_origins(cohorts, 3) == [
        (("2014/15",), "2015/16"), (("2014/15", "2015/16"), "2016/17"),
        (("2014/15", "2015/16", "2016/17"), "2017/18")]
    assert validation_origins(cohorts, 1) == [(("2014/15", "2015/16", "2016/17"), "2017/18")]
    assert validation_origins(["2014/15"], 3) == []


def test_small_additive_world_chooses_a_logistic_regression():
    train, population = _world(pupils_per_cohort=60, cohorts=6, interaction=False, seed=1)
    selection = select_candidate(train, population, CAPACITY, seed=0, origins=3)
    assert selection["winner_kind"] == "logistic", selection["reason"]
    assert [o["validation_cohort"] for o in selection["origins"]] == ["2017/18", "2018/19", "2019/20"]
    for entry in selection["candidates"].values():
        assert len(entry["per_origin"]) == 3
        assert entry["mean"]["roc_auc"] == pytest.approx(np.mean([o["roc_auc"] for o in entry["per_origin"]]),
                                                         abs=1e-6)
    assert set(selection["rules"]) == {"fravaer_over_10pct", "abc_regel", "kun_skole"}
    assert not selection["rule_beats_learned"]


def test_large_world_with_an_interaction_chooses_boosted_trees():
    train, population = _world(pupils_per_cohort=1500, cohorts=4, interaction=True, seed=2)
    selection = select_candidate(train, population, CAPACITY, seed=0, origins=2)
    assert selection["winner_kind"] == "boosting", selection["reason"]
    best_logistic = max(e["mean"]["roc_auc"] for e in selection["candidates"].values() if e["kind"] == "logistic")
    assert selection["candidates"][selection["winner"]]["mean"]["roc_auc"] > best_logistic


def test_a_rule_that_beats_every_learned_candidate_is_recorded():
    train, population = _world(pupils_per_cohort=200, cohorts=4, interaction=False, seed=3)
    # one network, two schools; the outcome follows the school (which no feature shows) and the
    # features are noise: the school-only rule ranks well, no learned candidate can
    rng = np.random.default_rng(0)
    school = np.where(rng.random(len(train)) < 0.5, "S1", "S3")
    pupil_school = pd.Series(school, index=train["pupil_id"]).groupby(level=0).first()
    school = train["pupil_id"].map(pupil_school).to_numpy()
    outcome_of = pd.Series(rng.random(len(pupil_school)) < np.where(pupil_school == "S1", 0.8, 0.1),
                           index=pupil_school.index).astype(int)
    train = train.assign(school_code=school, network_id="N1", outcome=train["pupil_id"].map(outcome_of))
    for name in SIGNAL:
        train[name] = rng.normal(size=len(train))
    population = train.groupby(["as_of_date", "network_id"]).size().rename("pupils").reset_index()
    selection = select_candidate(train, population, {"N1": 20}, seed=0, origins=2)
    assert selection["best_rule"] == "kun_skole"
    assert selection["rule_beats_learned"]


def test_a_pinned_candidate_wins_whatever_the_figures_say():
    train, population = _world(pupils_per_cohort=60, cohorts=4, interaction=False, seed=4)
    config = make_config()
    config = config.model_copy(update={"model": ModelSettings(
        candidate="boosting_8_leaves_0.3pct", candidate_params={"min_samples_leaf_share": 0.05})})
    pinned = pinned_candidate(config)
    assert pinned is not None and pinned.params["min_samples_leaf_share"] == 0.05
    assert pinned.params["max_leaf_nodes"] == 8
    selection = select_candidate(train, population, CAPACITY, seed=0, origins=2, pinned=pinned)
    assert selection["pinned"] and selection["winner"] == "boosting_8_leaves_0.3pct"
    assert list(selection["candidates"]) == ["boosting_8_leaves_0.3pct"]
    assert len(selection["candidates"]["boosting_8_leaves_0.3pct"]["per_origin"]) == 2
    assert pinned_candidate(make_config()) is None


def test_the_config_validates_a_pinned_candidate_and_its_parameters():
    assert MODEL_CANDIDATES == tuple(c.name for c in DEFAULT_CANDIDATES)
    assert ModelSettings(candidate="logistic_c1", candidate_params={"C": 0.5}).candidate_params == {"C": 0.5}
    for bad in ({"candidate": "auto", "candidate_params": {"C": 0.5}},
                {"candidate": "logistic_c1", "candidate_params": {"max_leaf_nodes": 4}},
                {"candidate": "boosting_4_leaves_1pct", "candidate_params": {"min_samples_leaf_share": 0.9}},
                {"candidate": "boosting_4_leaves_1pct", "candidate_params": {"max_leaf_nodes": 2.5}},
                {"candidate": "a_forest"}):
        with pytest.raises((ValueError, ConfigError)):
            ModelSettings(**bad)


def test_leaf_sizes_scale_with_the_rows_and_calibration_falls_back_with_few_outcomes():
    assert leaf_rows(0.01, 50_000) == 500
    assert leaf_rows(0.01, 600) == MIN_LEAF_ROWS
    folds = [(np.arange(0, 200), np.arange(200, 300)), (np.arange(100, 300), np.arange(0, 100))]
    many = np.tile([0, 1], 150)
    few = np.zeros(300, dtype=int)
    few[[5, 150, 250]] = 1
    assert calibration_for(many, folds) == PLATT_CV
    assert calibration_for(few, folds) == OWN_PROBABILITY
