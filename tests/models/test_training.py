import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ews.terms import Term
from features.build import build_scoring_features
from models.registry import read_registered
from models.scoring import SCORE_COLUMNS, manifest_entry, score_pupils
from models.training import (
    assemble_model_data,
    load_bundle,
    model_identity,
    plan_training,
    sample_training_rows,
    train_or_load_model,
    training_fingerprint,
)

TERM = "2025/26-H1"


@pytest.fixture
def copy_of(tmp_path):
    def make(path: Path) -> duckdb.DuckDBPyConnection:
        target = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}.duckdb"
        shutil.copy(path, target)
        return duckdb.connect(str(target))
    return make


def test_training_registers_the_model_with_its_window_and_card(trained, copy_of):
    path, models_dir, bundle = trained
    con = copy_of(path)
    row = read_registered(con, bundle.model_id)
    assert row is not None
    assert row["outcome_definition"] == "upv_ikke_uddannelsesparat@v1"
    assert json.loads(row["evaluation_cohorts"]) == ["2022/23", "2023/24"]
    assert row["training_last_cohort"] == "2021/22" and row["code_version"] == "test-version"
    assert row["metrics"]["model"]["roc_auc"] == bundle.metrics["model"]["roc_auc"]
    html = Path(row["card_html"]).read_text(encoding="utf-8")
    assert "Sammenfatning" in html and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html  # self-contained
    markdown = Path(row["card_markdown"]).read_text(encoding="utf-8")
    assert "## Fairness" in markdown and "![calibration](calibration.png)" in markdown
    assert (Path(row["card_markdown"]).parent / "calibration.png").exists()
    for name in bundle.feature_names:
        assert name not in ("sex", "origin")


def test_the_model_beats_every_rule_at_the_same_list_length(trained):
    metrics = trained[2].metrics
    model = metrics["model"]
    for name in ("fravaer_over_10pct", "abc_regel", "kun_skole"):
        assert model["precision_at_capacity"] > metrics["baselines"][name]["precision_at_capacity"], name
        assert model["roc_auc"] > metrics["baselines"][name]["roc_auc"], name
    assert set(metrics["per_grade"]) == {"5", "6", "7", "8"}
    assert metrics["checks"]["beats_abc_regel"]["passed"]


def test_risk_is_a_calibrated_probability_increasing_in_the_explained_log_odds(trained, copy_of, sim_config):
    path, _, bundle = trained
    con = copy_of(path)
    data = assemble_model_data(con, sim_config, TERM)
    risk = bundle.predict_risk(data.evaluation)
    assert ((risk > 0) & (risk < 1)).all()
    log_odds = bundle.log_odds(data.evaluation)
    a, b = bundle.calibration_map
    assert np.allclose(risk, 1 / (1 + np.exp(a * log_odds + b)))
    matrix = bundle.design_matrix(data.evaluation)
    assert list(matrix.columns) == bundle.feature_names
    assert np.allclose(bundle.explained_model.decision_function(matrix.to_numpy()), log_odds)


def test_a_registered_model_is_reused_not_retrained(trained, copy_of, sim_config, monkeypatch):
    path, models_dir, bundle = trained
    con = copy_of(path)
    import models.training as training

    monkeypatch.setattr(training, "fit_bundle", lambda *a, **k: pytest.fail("retrained a registered model"))
    monkeypatch.setattr(training, "feature_batches", lambda *a, **k: pytest.fail("built training features"))
    again = train_or_load_model(con, sim_config, TERM, models_dir, "test-version")
    assert again.model_id == bundle.model_id
    fingerprint = training_fingerprint(con, plan_training(con, sim_config, TERM))
    assert model_identity(fingerprint, sim_config, "another-version") != bundle.model_id


def test_retraining_with_the_same_data_config_and_seed_gives_the_same_model_and_scores(
        trained, copy_of, sim_config, tmp_path):
    path, _, bundle = trained
    con = copy_of(path)
    fresh = train_or_load_model(con, sim_config, TERM, tmp_path / "other-models", "test-version",
                                fairness_bootstrap=5)
    assert fresh.model_id == bundle.model_id
    features = build_scoring_features(con, sim_config, TERM, sim_config.terms.as_of_date(Term.parse(TERM)))
    first = score_pupils(con, sim_config, bundle, TERM, features, "run-a")
    second = score_pupils(con, sim_config, fresh, TERM, features, "run-a")
    assert first["risk"].tolist() == second["risk"].tolist()
    assert first["pupil_id"].tolist() == second["pupil_id"].tolist()
    changed = sim_config.model_copy(update={"model": sim_config.model.model_copy(update={"seed": 5})})
    fingerprint = training_fingerprint(con, plan_training(con, sim_config, TERM))
    assert model_identity(fingerprint, changed, "test-version") != bundle.model_id


def test_scoring_gives_every_pupil_in_grades_5_to_9_a_risk_and_a_tier(trained, copy_of, sim_config):
    path, models_dir, bundle = trained
    con = copy_of(path)
    as_of = sim_config.terms.as_of_date(Term.parse(TERM))
    features = build_scoring_features(con, sim_config, TERM, as_of)
    scores = score_pupils(con, sim_config, load_bundle(models_dir, bundle.model_id), TERM, features, "run-1")
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert set(scores["grade"]) == {5, 6, 7, 8, 9}
    assert scores["pupil_id"].is_unique and (scores["model_id"] == bundle.model_id).all()
    steps = {t.name: t.step for t in sim_config.tiers}
    for tier, step, risk in zip(scores["tier"], scores["tier_step"], scores["risk"], strict=True):
        assert sim_config.tier_for(risk).name == tier and steps[tier] == step
    for _, group in scores.groupby("network_id"):
        ordered = group.sort_values("rank_in_network")
        assert ordered["rank_in_network"].tolist() == list(range(1, len(group) + 1))
        assert ordered["risk"].is_monotonic_decreasing
    # a re-run of the term replaces its rows
    score_pupils(con, sim_config, bundle, TERM, features, "run-2")
    assert con.execute("SELECT DISTINCT run_id FROM scores_pupil_term").fetchall() == [("run-2",)]
    features = con.execute("SELECT count(*) FROM features_pupil_term WHERE as_of_date = $d", {"d": as_of}).fetchone()
    assert features[0] == len(scores)
    entry = manifest_entry(bundle, scores)
    assert entry["model"]["model_id"] == bundle.model_id
    assert set(entry["model"]["metrics"]) == {"roc_auc", "average_precision", "brier", "calibration_error",
                                              "precision_at_capacity", "recall_at_capacity"}
    json.dumps(entry)


def test_large_training_sets_are_sampled_by_whole_pupils_the_same_way_every_time():
    train = pd.DataFrame({"pupil_id": [f"p{i // 4}" for i in range(4000)], "outcome": 0})
    assert sample_training_rows(train, max_rows=5000) is train
    sample = sample_training_rows(train, max_rows=1000)
    assert 600 < len(sample) < 1400
    assert (sample.groupby("pupil_id").size() == 4).all()
    assert sample.equals(sample_training_rows(train.sample(frac=1, random_state=1), max_rows=1000)
                         .sort_values("pupil_id", key=lambda s: s.str[1:].astype(int), kind="stable")
                         .reset_index(drop=True))


def test_the_reuse_key_ignores_current_year_data_and_follows_training_cohorts_data(sim_con, sim_config):
    before = training_fingerprint(sim_con, plan_training(sim_con, sim_config, TERM))
    # this school year's absence (after every training as-of date), and a re-export under
    # another file name, change nothing the model learns from
    sim_con.execute("""INSERT INTO clean_absence SELECT * REPLACE (DATE '2025-10-01' AS period_start,
                       DATE '2025-10-31' AS period_end, 9.0 AS unauthorised_days) FROM clean_absence LIMIT 5""")
    sim_con.execute("UPDATE clean_absence SET source_file = 'reexport.csv'")
    assert training_fingerprint(sim_con, plan_training(sim_con, sim_config, TERM)) == before
    # one absence row of a training cohort's year changes the key
    changed = sim_con.execute("""UPDATE clean_absence SET unauthorised_days = unauthorised_days + 1
                       WHERE rowid = (SELECT min(rowid) FROM clean_absence WHERE period_end < DATE '2019-01-01')
                       RETURNING pupil_id""").fetchall()
    assert len(changed) == 1
    assert training_fingerprint(sim_con, plan_training(sim_con, sim_config, TERM)) != before


def test_the_reuse_key_follows_the_labels_of_the_cohorts_used(sim_con, sim_config):
    before = training_fingerprint(sim_con, plan_training(sim_con, sim_config, TERM))
    sim_con.execute("""UPDATE clean_outcomes SET outcome = NOT outcome
                       WHERE pupil_id = (SELECT min(pupil_id) FROM clean_outcomes WHERE school_year = '2016/17')""")
    assert training_fingerprint(sim_con, plan_training(sim_con, sim_config, TERM)) != before


def test_the_fingerprint_sees_exactly_what_the_look_ahead_cut_keeps(sim_con):
    from datetime import date

    from features.leakage import CLEAN_TABLES, warehouse_cut_at
    from models.training import clean_table_hashes

    cut = date(2020, 11, 15)
    full = clean_table_hashes(sim_con, cut)
    assert sorted(full["table_name"]) == sorted(CLEAN_TABLES)
    with warehouse_cut_at(sim_con, cut):
        copy = clean_table_hashes(sim_con, cut)
    pd.testing.assert_frame_equal(full, copy)
    later = clean_table_hashes(sim_con, date(2022, 11, 15))
    assert (later["row_count"] > full["row_count"]).any()


def test_the_bundle_records_the_selection_and_the_registry_keeps_it(trained, copy_of):
    path, _, bundle = trained
    selection = bundle.selection
    assert selection["winner"] == bundle.candidate
    assert selection["origins"] and all(o["validation_cohort"] in bundle.split.training_cohorts
                                        for o in selection["origins"])
    assert not set(bundle.split.evaluation_cohorts) & {c for o in selection["origins"] for c in o["fit_cohorts"]}
    assert set(selection["candidates"]) == {"logistic_c0.1", "logistic_c1", "boosting_4_leaves_1pct",
                                            "boosting_8_leaves_0.3pct"}
    row = read_registered(copy_of(path), bundle.model_id)
    assert row["selection"] == json.loads(json.dumps(selection))
    assert row["candidate"] == bundle.candidate and row["calibration"] == bundle.calibration
    assert bundle.metrics["selection"]["winner"] == bundle.candidate
    assert bundle.metrics["checks"]["risk_varies"]["passed"]


def test_a_bundle_saved_before_model_selection_still_loads(trained):
    import copy

    bundle = trained[2]
    old_state = {k: v for k, v in copy.copy(bundle.__dict__).items()
                 if k not in ("estimator", "candidate", "calibration", "selection", "row_counts")}
    old_state["boosted"] = bundle.estimator
    revived = object.__new__(type(bundle))
    revived.__setstate__(old_state)
    assert revived.explained_model is bundle.estimator and revived.selection == {}
    assert revived.calibration == "platt_cv" and revived.candidate


def test_every_term_with_the_same_known_cohorts_reuses_one_model(sim_con, sim_config):
    spring = plan_training(sim_con, sim_config, "2024/25-H2")
    autumn = plan_training(sim_con, sim_config, TERM)
    assert spring.split.training_cohorts == autumn.split.training_cohorts
    assert training_fingerprint(sim_con, spring) == training_fingerprint(sim_con, autumn)
    earlier = plan_training(sim_con, sim_config, "2023/24-H1")  # before the 2023/24 outcomes (1 Dec)
    assert training_fingerprint(sim_con, earlier) != training_fingerprint(sim_con, autumn)
