"""Issue 14, part 3: earlier models against the outcomes that arrived; concept drift warns."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ews.warehouse import append_rows, ensure_schema, open_readonly, replace_rows
from models.outcomes import load_labels
from models.prospective import (
    PROSPECTIVE_TABLE,
    drop_warnings,
    evaluate_earlier_models,
    evaluate_scored_term,
    judge,
)
from models.registry import ensure_registry


def test_the_prospective_auc_of_each_earlier_model_is_the_direct_computation(finished_run) -> None:
    with open_readonly(finished_run.state_dir) as con:
        rows = con.execute(f"SELECT * FROM {PROSPECTIVE_TABLE}").df()
        assert len(rows), "the demo's second term sees the first term's grade-9 pupils sit the leaving exam"
        overall = rows[rows["grade"].isna()]
        for row in overall.to_dict("records"):
            definition = row["outcome_definition"].split("@")[0]
            labels = load_labels(con, definition)
            scored_as_of, as_of = pd.Timestamp(row["scored_as_of"]).date(), pd.Timestamp(row["as_of_date"]).date()
            arrived = (labels["assessed_date"] > scored_as_of) & (labels["assessed_date"] <= as_of)
            labels = labels[arrived]
            query = "SELECT pupil_id, risk, grade FROM scores_pupil_term WHERE term = $t AND model_id = $m"
            scores = con.execute(query, {"t": row["scored_term"], "m": row["model_id"]}).df()
            joined = scores.merge(labels, on="pupil_id")
            assert row["rows"] == len(joined) and row["positives"] == int(joined["outcome"].sum())
            assert row["roc_auc"] == pytest.approx(roc_auc_score(joined["outcome"], joined["risk"]), abs=1e-6)
            assert row["roc_auc_low"] <= row["roc_auc"] <= row["roc_auc_high"]
            grades = rows[(rows["model_id"] == row["model_id"]) & (rows["scored_term"] == row["scored_term"])
                          & (rows["outcome_definition"] == row["outcome_definition"]) & rows["grade"].notna()]
            assert grades["rows"].sum() == row["rows"]
            for grade in grades.to_dict("records"):
                part = joined[joined["grade"] == grade["grade"]]
                if 0 < part["outcome"].sum() < len(part):
                    assert grade["roc_auc"] == pytest.approx(roc_auc_score(part["outcome"], part["risk"]), abs=1e-6)
        # the model was trained on UPV; outcomes after 2023/24 are another definition: a bridge, never judged
        model_outcomes = set(overall["model_outcome"])
        assert model_outcomes == {"upv_ikke_uddannelsesparat@v1"}
        assert not overall["own_definition"].any() and overall["dropped"].isna().all()
    manifest = finished_run.manifest
    assert len(manifest["outcomes"]) == len(overall)
    section = (finished_run.state_dir / "runs" / manifest["run_id"] / "model_card_outcomes.md").read_text()
    assert all(m in section for m in overall["model_id"]) and "(bridge)" in section


def _world(drift: bool, seed: int = 5, pupils: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two cohorts of a synthetic world: grade 8 in 2020/21 (before) and 2023/24 (after 2022/23).

    Returns each cohort's pupils with the risk the data give at grade 8 (``p_upv``, the pupils'
    state) and the UPV outcome the generator drew.
    """
    from pipelines.synth import model
    from pipelines.synth.population import build_cohort, build_schools

    gen = model.GeneratingModel(concept_drift_from="2022/23" if drift else None)
    ref = model.reference(gen)
    schools = build_schools(2, pupils, np.random.default_rng(seed))
    frames = []
    for start in (2012, 2015):
        cohort = build_cohort(start, pupils, schools, seed, ref)
        frames.append(pd.DataFrame({"pupil_id": cohort.cpr, "risk": cohort.p_upv, "outcome": cohort.y_upv,
                                    "grade": 8, "network_id": "N01"}))
    return frames[0], frames[1]


def _warehouse_with_model(before: pd.DataFrame, after: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """A warehouse where a model promised its figures on ``before`` and scored ``after`` in 2023/24-H1."""
    con = duckdb.connect()
    ensure_schema(con)
    ensure_registry(con)
    capacity = {"N01": 24}
    held_out = before.assign(as_of_date=date(2020, 11, 15))
    promised = evaluate_scored_term(held_out, held_out.assign(assessed_date=date(2020, 12, 1)), capacity, n_boot=0)[0]
    metrics = {"model": {k: promised[k] for k in ("roc_auc", "precision_at_capacity", "calibration_error")}}
    con.execute("INSERT INTO models (model_id, term, as_of_date, outcome_definition, training_first_cohort, "
                "training_last_cohort, training_cohorts, evaluation_cohorts, label_cutoff, training_rows, "
                "training_pupils, evaluation_rows, model_config_hash, code_version, data_snapshot, seed, "
                "feature_names, metrics_json) VALUES ('m1', '2023/24-H1', DATE '2023-11-15', "
                "'upv_ikke_uddannelsesparat@v1', '2016/17', '2020/21', '[]', '[]', DATE '2023-06-30', 0, 0, 0, "
                "'x', 'x', 'x', 0, '[]', $metrics)", {"metrics": json.dumps(metrics)})
    scores = after.drop(columns="outcome").assign(
        run_id="r1", term="2023/24-H1", as_of_date=date(2023, 11, 15), model_id="m1", school_code="S01", tier="lav",
        tier_step="Almen indsats", rank_in_network=0)
    replace_rows(con, "scores_pupil_term", scores)
    outcomes = after[["pupil_id", "outcome"]].assign(
        outcome_definition="upv_ikke_uddannelsesparat", school_year="2023/24", assessed_date=date(2023, 12, 1),
        source_file="upv.xlsx", source_line=2)
    append_rows(con, "clean_outcomes", outcomes)
    return con


@pytest.mark.parametrize("drift", [True, False], ids=["concept-drift", "unchanged"])
def test_a_concept_drift_world_raises_the_warning_and_an_unchanged_one_does_not(drift: bool) -> None:
    before, after = _world(drift)
    con = _warehouse_with_model(before, after)
    evaluation = evaluate_earlier_models(con, {"N01": 24}, "2024/25-H1", date(2024, 11, 15), "r2", n_boot=200)
    overall = evaluation[evaluation["grade"].isna() & evaluation["own_definition"]].iloc[0]
    assert overall["pupils"] == len(after) and overall["roc_auc"] == pytest.approx(
        roc_auc_score(after["outcome"], after["risk"]), abs=1e-6)
    warnings = drop_warnings(evaluation)
    if drift:
        assert overall["roc_auc_high"] < overall["promised_roc_auc"]
        assert "roc_auc" in overall["dropped"].split(",")
        assert len(warnings) == 1 and "model m1" in warnings[0] and "concept drift" in warnings[0]
    else:
        assert overall["roc_auc_low"] <= overall["promised_roc_auc"] <= overall["roc_auc_high"]
        assert pd.isna(overall["dropped"]) and warnings == []


def test_outcomes_assessed_before_the_scoring_or_after_the_run_have_not_arrived() -> None:
    before, after = _world(False, pupils=60)
    con = _warehouse_with_model(before, after)
    assert evaluate_earlier_models(con, {"N01": 4}, "2023/24-H2", date(2023, 11, 30), "r2").empty
    con.execute("UPDATE clean_outcomes SET assessed_date = DATE '2023-11-01'")  # before the scoring
    assert evaluate_earlier_models(con, {"N01": 4}, "2024/25-H1", date(2024, 11, 15), "r2").empty


def test_too_few_pupils_are_not_judged() -> None:
    entry = {"roc_auc": 0.4, "roc_auc_low": None, "roc_auc_high": None, "precision_at_capacity": 0.1,
             "precision_at_capacity_low": 0.0, "precision_at_capacity_high": 0.3}
    assert judge(entry, {"roc_auc": 0.8, "precision_at_capacity": 0.6}) == ["precision_at_capacity"]
    assert judge(entry, {"roc_auc": 0.8, "precision_at_capacity": 0.2}) == []


def test_the_weighted_auc_of_the_bootstrap_is_sklearns() -> None:
    from models.prospective import weighted_auc

    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    score = np.round(rng.random(300) + y * 0.3, 1)  # many ties
    weight = rng.integers(0, 4, 300)
    _, groups = np.unique(score, return_inverse=True)
    assert weighted_auc(groups, y, weight) == pytest.approx(roc_auc_score(y, score, sample_weight=weight), abs=1e-12)
    assert weighted_auc(groups, np.zeros(300, dtype=int), weight) is None
