"""``ews evaluate`` (pipelines/commands/evaluate.py) on the simulated warehouse."""

import json
import shutil

import duckdb
import pytest
import typer
import yaml
from typer.testing import CliRunner

from ews.terms import Term
from features.build import build_scoring_features
from models.scoring import score_pupils
from pipelines.commands.evaluate import evaluate

TERM = "2025/26-H1"


@pytest.fixture
def app():
    application = typer.Typer()
    application.command("evaluate")(evaluate)
    application.command("noop")(lambda: None)
    return application


@pytest.fixture
def state(trained, sim_warehouse, sim_config, tmp_path, monkeypatch):
    path, models_dir, bundle = trained
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    shutil.copy(path, state_dir / "warehouse.duckdb")
    shutil.copytree(models_dir, state_dir / "models")
    con = duckdb.connect(str(state_dir / "warehouse.duckdb"))
    features = build_scoring_features(con, sim_config, TERM, sim_config.terms.as_of_date(Term.parse(TERM)))
    score_pupils(con, sim_config, bundle, TERM, features, "run-1")
    con.close()
    config_path = tmp_path / "municipality.yaml"
    config_path.write_text(yaml.safe_dump(sim_config.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    truth = tmp_path / "ground_truth"
    truth.mkdir()
    sim_warehouse[1].rename(columns={"p_true": "p_upv"})[["cpr", "term", "as_of_date", "grade", "p_upv"]].to_csv(
        truth / "asof.csv", sep=";", index=False)
    monkeypatch.setenv("EWS_STATE_DIR", str(state_dir))
    monkeypatch.setenv("EWS_CONFIG_PATH", str(config_path))
    monkeypatch.setenv("EWS_PSEUDONYM_KEY", "test-key-not-secret")
    return state_dir, truth


def test_json_has_model_oracle_and_every_baseline_on_the_same_pupils(app, state):
    _, truth = state
    result = CliRunner().invoke(app, ["evaluate", "--json", "--bootstrap", "3", "--ground-truth", str(truth)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    metrics = {"roc_auc", "average_precision", "brier", "calibration_error", "precision_at_capacity",
               "recall_at_capacity"}
    for entry in (report["model"], report["oracle"], *report["baselines"].values()):
        assert metrics <= set(entry) and entry["rows"] == report["rows"]
    assert report["oracle"]["roc_auc"] > report["baselines"]["fravaer_over_10pct"]["roc_auc"]
    assert "cpr" not in result.stdout.lower()
    selection = report["selection"]
    assert selection["winner"] in selection["candidates"] and selection["criterion"]
    for entry in selection["candidates"].values():
        assert {"roc_auc", "average_precision", "precision_at_capacity"} <= set(entry["mean"])
        assert [o["validation_cohort"] for o in entry["per_origin"]] == ["2019/20", "2020/21", "2021/22"]
    assert {"risk_varies", "better_than_chance"} <= set(report["checks"])


def test_table_output_and_no_oracle_without_ground_truth(app, state):
    result = CliRunner().invoke(app, ["evaluate", "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "fravaer_over_10pct" in result.stdout and "oracle" not in result.stdout
    report = json.loads(CliRunner().invoke(app, ["evaluate", "--json", "--bootstrap", "0"]).stdout)
    assert "oracle" not in report


def test_a_term_without_a_model_is_a_usage_error(app, state):
    result = CliRunner().invoke(app, ["evaluate", "--term", "2019/20-H1"])
    assert result.exit_code == 2
    assert "ews run" in result.output
