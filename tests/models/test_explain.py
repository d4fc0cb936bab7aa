"""SHAP explanations: long form, additivity for every pupil, family totals, storage, reproduction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ews.warehouse import ensure_schema, replace_rows
from features.build import features_table_ddl
from models import explain as explain_module
from models.explain import (
    EXPLANATION_COLUMNS,
    FAMILY_COLUMNS,
    AdditivityError,
    check_additivity,
    check_stored_additivity,
    explain_pupils,
    read_explanation,
    reproduce_explanation,
    require_additivity,
    shap_values,
    store_explanations,
    summarise_families,
)

FEATURES = (
    "absence_unauthorised_pct_6m", "absence_total_pct_12m", "test_reading_latest_z",
    "contacts_ppr_12m", "notifications_12m", "school_moves_ever", "grade", "absence_data_available",
)


@dataclass
class Bundle:
    model_id: str
    feature_names: tuple[str, ...]
    explained_model: HistGradientBoostingClassifier


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    frame = pd.DataFrame({
        "pupil_id": [f"p{seed:03d}{i:012d}" for i in range(n)],
        "as_of_date": date(2025, 11, 15),
        "absence_unauthorised_pct_6m": np.clip(np.exp(z[:, 0]) - 0.5, 0, None),
        "absence_total_pct_12m": 5 + 3 * z[:, 0] + rng.normal(0, 1, n),
        "test_reading_latest_z": -z[:, 1] + rng.normal(0, 0.4, n),
        "contacts_ppr_12m": rng.poisson(np.exp(z[:, 1] - 1)).astype(float),
        "notifications_12m": rng.poisson(np.exp(z[:, 2] - 2)).astype(float),
        "school_moves_ever": rng.poisson(0.4, n).astype(float),
        "grade": rng.integers(5, 10, n).astype(float),
        "absence_data_available": 1.0,
    })
    missing = rng.random(n) < 0.15  # a school without absence reporting: missing, not zero
    frame.loc[missing, ["absence_unauthorised_pct_6m", "absence_total_pct_12m"]] = np.nan
    frame.loc[missing, "absence_data_available"] = 0.0
    frame.loc[rng.random(n) < 0.1, "test_reading_latest_z"] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-(z.sum(axis=1) - 1)))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    frame, y = _frame(1500, seed=1)
    model = HistGradientBoostingClassifier(max_iter=30, max_depth=3, random_state=0)
    model.fit(frame[list(FEATURES)].to_numpy(float), y)
    return Bundle("model-x", FEATURES, model)


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    return _frame(300, seed=2)[0]


@pytest.fixture(scope="module")
def explanations(bundle, scored) -> pd.DataFrame:
    return explain_pupils(bundle, scored, "run-1", term="2025/26-H1")


def test_one_row_per_pupil_and_feature_with_lineage(explanations, scored):
    assert list(explanations.columns) == list(EXPLANATION_COLUMNS)
    assert len(explanations) == len(scored) * len(FEATURES)
    assert not explanations.duplicated(["pupil_id", "feature"]).any()
    assert set(explanations["run_id"]) == {"run-1"} and set(explanations["model_id"]) == {"model-x"}
    assert set(explanations["term"]) == {"2025/26-H1"}
    first = explanations[explanations["pupil_id"] == scored["pupil_id"].iloc[0]]
    assert first.set_index("feature")["feature_value"].loc["grade"] == scored["grade"].iloc[0]


def test_contributions_add_up_to_the_model_output_for_every_pupil(bundle, scored, explanations):
    report = check_additivity(bundle, scored, explanations)
    assert report.ok and report.pupils == len(scored)
    assert report.max_abs_error < 1e-6
    raw = bundle.explained_model.decision_function(scored[list(FEATURES)].to_numpy(float))
    per_pupil = explanations.groupby("pupil_id", sort=False).agg(
        total=("contribution", "sum"), base=("base_value", "first"))
    np.testing.assert_allclose(per_pupil["total"] + per_pupil["base"], raw, atol=1e-8)


def test_a_tampered_contribution_breaks_additivity(bundle, scored, explanations):
    tampered = explanations.copy()
    tampered.loc[5, "contribution"] += 0.2
    report = check_additivity(bundle, scored, tampered)
    assert not report.ok
    assert report.failing_pupils == (tampered.loc[5, "pupil_id"],)
    with pytest.raises(AdditivityError, match="do not add up"):
        require_additivity(report, "run-1")


def test_a_pupil_without_explanation_fails_the_check(bundle, scored, explanations):
    dropped = explanations[explanations["pupil_id"] != scored["pupil_id"].iloc[3]]
    assert not check_additivity(bundle, scored, dropped).ok


def test_missing_values_are_stored_as_missing_and_still_explained(explanations, scored):
    absent = scored.loc[scored["absence_total_pct_12m"].isna(), "pupil_id"]
    rows = explanations[explanations["pupil_id"].isin(absent) & (explanations["feature"] == "absence_total_pct_12m")]
    assert len(rows) == len(absent) > 0
    assert rows["feature_value"].isna().all()
    assert rows["contribution"].notna().all()


def test_family_totals_sum_the_features_and_keep_additivity(explanations):
    families = summarise_families(explanations)
    assert list(families.columns) == list(FAMILY_COLUMNS)
    assert set(families["family"]) == {"fravaer", "laering", "trivsel_stoette", "mobilitet", "kontekst"}
    pupil = explanations["pupil_id"].iloc[0]
    own = explanations[explanations["pupil_id"] == pupil]
    fam = families[families["pupil_id"] == pupil].set_index("family")
    assert fam.loc["fravaer", "contribution"] == pytest.approx(
        own.loc[own["family"] == "fravaer", "contribution"].sum())
    assert fam["contribution"].sum() + fam["base_value"].iloc[0] == pytest.approx(fam["model_output"].iloc[0])
    top = own[own["family"] == "fravaer"].sort_values("contribution").iloc[-1]
    assert fam.loc["fravaer", "top_feature"] == top["feature"]
    actionable = own.set_index("feature")["actionable"]
    assert not actionable["grade"] and actionable["absence_total_pct_12m"]


def test_stored_explanations_pass_the_warehouse_check_and_tampering_is_caught(bundle, scored, explanations):
    con = duckdb.connect()
    ensure_schema(con)
    raw = bundle.explained_model.decision_function(scored[list(FEATURES)].to_numpy(float))
    written = store_explanations(con, explanations, summarise_families(explanations, raw), "run-1")
    assert written == len(explanations)
    report = check_stored_additivity(con, "run-1")
    assert report.ok and report.pupils == len(scored)
    # writing the same run again replaces its rows
    store_explanations(con, explanations, summarise_families(explanations, raw), "run-1")
    assert con.execute("SELECT count(*) FROM explanations_pupil_term").fetchone()[0] == len(explanations)
    con.execute("UPDATE explanations_pupil_term SET contribution = contribution + 0.01 "
                "WHERE pupil_id = $p AND feature = 'grade'", {"p": scored["pupil_id"].iloc[0]})
    broken = check_stored_additivity(con, "run-1")
    assert broken.failing_pupils == (scored["pupil_id"].iloc[0],)
    with pytest.raises(LookupError):
        check_stored_additivity(con, "no-such-run")


def test_one_pupil_is_read_back_and_reproduced_from_model_and_features(bundle, scored, explanations):
    con = duckdb.connect()
    ensure_schema(con)
    store_explanations(con, explanations, summarise_families(explanations), "run-1")
    con.execute(features_table_ddl())  # the features table from its DDL, as the features step makes it
    # the table's key columns (NOT NULL in the DDL) the test frame leaves out
    keyed = scored.assign(term="2025/26-H1", school_code=scored.get("school_code", "S0001"))
    replace_rows(con, "features_pupil_term", keyed)
    pupil = scored["pupil_id"].iloc[7]
    stored = read_explanation(con, "run-1", pupil)
    assert len(stored) == len(FEATURES)
    assert stored["contribution"].is_monotonic_decreasing
    reproduction = reproduce_explanation(con, bundle, "run-1", pupil)
    assert reproduction.ok and reproduction.max_gap < 1e-9
    # a different feature value in the warehouse means the explanation is not reproduced
    con.execute("UPDATE features_pupil_term SET notifications_12m = notifications_12m + 3 WHERE pupil_id = $p",
                {"p": pupil})
    assert not reproduce_explanation(con, bundle, "run-1", pupil).ok
    other = Bundle("model-y", FEATURES, bundle.explained_model)
    with pytest.raises(ValueError, match="model-x"):
        reproduce_explanation(con, other, "run-1", pupil)


def test_duplicated_pupils_are_refused(bundle, scored):
    with pytest.raises(ValueError, match="more than one row"):
        explain_pupils(bundle, pd.concat([scored.head(2), scored.head(1)]), "run-1")


def test_a_missing_model_feature_is_named(bundle, scored):
    with pytest.raises(KeyError, match="notifications_12m"):
        explain_pupils(bundle, scored.drop(columns="notifications_12m"), "run-1")


def test_several_processes_give_the_same_values(bundle, scored):
    values = pd.concat([scored] * 2, ignore_index=True)[list(FEATURES)].to_numpy(float)
    serial, base = shap_values(bundle.explained_model, values, n_jobs=1, chunk_rows=10_000)
    parallel, base_parallel = shap_values(bundle.explained_model, values, n_jobs=2, chunk_rows=50)
    np.testing.assert_array_equal(serial, parallel)
    assert base == base_parallel


def test_chunks_of_pupils_give_the_same_explanation_rows(bundle, scored, explanations):
    whole = explain_pupils(bundle, scored, "run-1", term="2025/26-H1", chunk_pupils=10_000)
    pd.testing.assert_frame_equal(whole, explanations)
    chunked = explain_pupils(bundle, scored, "run-1", term="2025/26-H1", chunk_pupils=7, n_jobs=1)
    pd.testing.assert_frame_equal(chunked, whole)


def _explain_on_a_worker(bundle, scored):
    from ews.compute import dask_worker_address

    con = duckdb.connect()  # the run's own (staged) warehouse: only this task writes it
    ensure_schema(con)
    entry = explain_module.explain_run(con, bundle, scored, "run-d", "2025/26-H1", chunk_pupils=64)
    stored = con.execute("SELECT * FROM explanations_pupil_term ORDER BY pupil_id, feature").df()
    return dask_worker_address(), entry, stored


def test_explanations_inside_a_dask_task_are_computed_by_the_cluster_and_stored_alike(bundle, scored, monkeypatch):
    from distributed import Client, LocalCluster

    monkeypatch.setenv("EWS_COMPUTE_ON_DASK", "1")  # opt-in inside Dask (ews.compute); the worker is a thread here

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        address, entry, stored = client.submit(_explain_on_a_worker, bundle, scored, pure=False).result(timeout=300)
    assert address is not None
    assert entry["compute"] == {"chunks": 5, "backend": "dask", "workers": 1}
    assert entry["pupils"] == len(scored) and entry["additivity_max_error"] < 1e-6
    con = duckdb.connect()
    ensure_schema(con)
    here = explain_module.explain_run(con, bundle, scored, "run-d", "2025/26-H1", chunk_pupils=10_000)
    assert here["compute"] == {"chunks": 1, "backend": "inline", "workers": 1}
    local = con.execute("SELECT * FROM explanations_pupil_term ORDER BY pupil_id, feature").df()
    pd.testing.assert_frame_equal(stored, local)


def test_a_key_column_that_is_also_a_feature_is_read_once(bundle, scored, explanations):
    keys = scored[["pupil_id", "as_of_date", "grade"]]
    doubled = pd.concat([keys, scored.drop(columns=["pupil_id", "as_of_date"])], axis=1)
    assert list(doubled.columns).count("grade") == 2
    again = explain_pupils(bundle, doubled, "run-1", term="2025/26-H1")
    pd.testing.assert_frame_equal(again, explanations)


def test_explain_run_stores_checks_and_reports(bundle, scored):
    con = duckdb.connect()
    ensure_schema(con)
    entry = explain_module.explain_run(con, bundle, scored, "run-9", "2025/26-H1")
    assert entry["pupils"] == len(scored) and entry["rows"] == len(scored) * len(FEATURES)
    assert entry["model_id"] == "model-x" and entry["additivity_max_error"] < 1e-6
    assert con.execute("SELECT count(DISTINCT pupil_id) FROM explanations_family_term WHERE run_id = 'run-9'"
                       ).fetchone()[0] == len(scored)


def test_a_logistic_winner_gets_exact_linear_contributions_with_indicators_credited_to_their_feature():
    from sklearn.linear_model import LogisticRegression

    from models.baselines import logistic_pipeline
    from models.explain import is_linear, linear_contributions

    frame, y = _frame(1200, seed=3)
    pipeline = logistic_pipeline(C=0.5).fit(frame[list(FEATURES)].to_numpy(float), y)
    assert is_linear(pipeline) and not is_linear(HistGradientBoostingClassifier())
    linear = Bundle("model-lr", FEATURES, pipeline)
    scored = _frame(200, seed=4)[0]
    explanations = explain_pupils(linear, scored, "run-lr", term="2025/26-H1")
    report = check_additivity(linear, scored, explanations)
    assert report.ok and report.pupils == len(scored) and report.max_abs_error < 1e-9
    assert len(explanations) == len(scored) * len(FEATURES)
    # the base value is the intercept (scaled columns are centred on the training rows)
    assert explanations["base_value"].iloc[0] == pytest.approx(pipeline.named_steps["model"].intercept_[0])
    # a missing absence value is explained through its indicator, credited to the feature itself
    values = scored[list(FEATURES)].to_numpy(float)
    contributions, _ = linear_contributions(pipeline, values)
    missing = np.flatnonzero(np.isnan(values[:, 1]))[0]
    imputer, scaler = pipeline.named_steps["impute"], pipeline.named_steps["scale"]
    z = scaler.transform(imputer.transform(values[[missing]]))[0]
    coef = pipeline.named_steps["model"].coef_[0]
    indicator = len(FEATURES) + list(imputer.indicator_.features_).index(1)
    assert contributions[missing, 1] == pytest.approx(coef[1] * z[1] + coef[indicator] * z[indicator])
    assert isinstance(pipeline.named_steps["model"], LogisticRegression)
    # an explanation stored and read back reproduces
    con = duckdb.connect()
    ensure_schema(con)
    families = summarise_families(explanations)
    store_explanations(con, explanations, families, "run-lr")
    assert check_stored_additivity(con, "run-lr").ok


@pytest.mark.parametrize("leaves", [4, 8, 31, 90])
def test_trees_run_once_per_distinct_path_give_shaps_own_values(leaves):
    """The deduplicated TreeSHAP equals SHAP's TreeExplainer on every row of the whole model.

    The rows include missing values and values exactly on split thresholds (where ``<=``
    decides the side); 90 leaves take the path for trees of more than 64 splits.
    """
    import shap

    rng = np.random.default_rng(leaves)
    x = rng.normal(size=(3000, 6))
    x[:, 2] = np.round(x[:, 2])
    y = (rng.random(3000) < 1 / (1 + np.exp(-(x[:, 0] + x[:, 1] * x[:, 2])))).astype(int)
    x[rng.random(x.shape) < 0.15] = np.nan
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=leaves, min_samples_leaf=5,
                                           early_stopping=False, random_state=0).fit(x, y)
    rows = rng.normal(size=(2000, 6))
    rows[rng.random(rows.shape) < 0.2] = np.nan
    splits = [(node["feature_idx"], node["num_threshold"]) for predictor in model._predictors
              for node in predictor[0].nodes if not node["is_leaf"]]
    for row, (feature, threshold) in zip(range(0, 2000, 3), splits * 100, strict=False):
        rows[row, feature] = threshold  # exactly on a split: goes left
    explainer = shap.TreeExplainer(model)
    expected = explainer.shap_values(rows, check_additivity=False)
    contributions, base = explain_module._shap_chunk(explain_module.tree_paths(model), rows)
    np.testing.assert_allclose(contributions, expected, rtol=0, atol=1e-12)
    assert base == pytest.approx(float(np.asarray(explainer.expected_value).reshape(-1)[-1]), abs=1e-12)
    np.testing.assert_allclose(contributions.sum(axis=1) + base, model.decision_function(rows), atol=1e-9)
    if leaves == 90:
        assert max(len(p[0].nodes) for p in model._predictors) > 2 * 64
