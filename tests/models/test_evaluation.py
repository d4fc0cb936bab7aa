import json

import duckdb
import pytest

from models.evaluation import evaluate_model

METRICS = {"roc_auc", "average_precision", "brier", "calibration_error", "precision_at_capacity",
           "recall_at_capacity"}


@pytest.fixture(scope="module")
def evaluation(trained, sim_warehouse, sim_config):
    path, _, bundle = trained
    con = duckdb.connect(str(path), read_only=True)
    try:
        return evaluate_model(con, sim_config, bundle, ground_truth=sim_warehouse[1], n_boot=5)
    finally:
        con.close()


def test_model_oracle_and_baselines_are_measured_on_the_same_rows(evaluation):
    assert {"model", "oracle", "baselines", "per_grade", "fairness", "checks"} <= set(evaluation)
    entries = [evaluation["model"], evaluation["oracle"], *evaluation["baselines"].values()]
    assert set(evaluation["baselines"]) == {"fravaer_over_10pct", "abc_regel", "kun_skole", "logistisk_regression"}
    for entry in entries:
        assert METRICS <= set(entry)
        assert entry["rows"] == evaluation["rows"] and entry["positives"] == evaluation["positives"]
        assert entry["list_length"] == evaluation["model"]["list_length"]
    for grade, entry in evaluation["per_grade"].items():
        assert METRICS <= set(entry["oracle"]) and int(grade) in (5, 6, 7, 8)
    json.dumps(evaluation, default=str)


def test_the_oracle_ranks_at_least_as_well_as_the_model_and_the_checks_say_so(evaluation):
    model, oracle = evaluation["model"], evaluation["oracle"]
    assert oracle["roc_auc"] >= model["roc_auc"] - 0.01
    gap = evaluation["checks"]["auc_gap_to_oracle"]
    assert gap["value"] == pytest.approx(oracle["roc_auc"] - model["roc_auc"], abs=1e-6)
    assert gap["passed"] == (gap["value"] <= 0.02)


def test_without_ground_truth_there_is_no_oracle(trained, sim_config):
    path, _, bundle = trained
    con = duckdb.connect(str(path), read_only=True)
    try:
        result = evaluate_model(con, sim_config, bundle, n_boot=0)
    finally:
        con.close()
    assert "oracle" not in result and "auc_gap_to_oracle" not in result["checks"]
    assert result["model"] == bundle.metrics["model"]


def test_fairness_covers_sex_area_school_and_origin(evaluation):
    fairness = evaluation["fairness"]
    assert set(fairness) == {"sex", "area", "school_code", "origin"}
    assert fairness["origin"]["available"] and {"F", "M"} == set(fairness["sex"]["groups"])
