"""Model card sentences follow the checks: a failing model never reads as a good one."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from models.card import _danish_summary, card_context, fairness_findings, write_model_card
from models.evaluation import evaluate_model
from models.training import train_or_load_model

from .conftest import TERM

CALIBRATED = "Risikoen er kalibreret"
BEATS_RULES = "rammer modellen bedre end hver af de enkle regler"


def _failing(metrics: dict) -> dict:
    evaluation = copy.deepcopy(metrics)
    evaluation["model"]["calibration_error"] = 0.051
    evaluation["checks"]["calibration_error"] = {"value": 0.051, "limit": 0.03, "passed": False}
    evaluation["checks"]["beats_abc_regel"] = {"value": 0.40, "limit": 0.62, "passed": False}
    evaluation["checks"]["risk_varies"] = {"value": 0.02, "limit": 0.1, "passed": False}
    evaluation["gate"] = {"passed": False, "published": "rule", "reasons": ["the model does not beat abc_regel"]}
    return evaluation


def test_a_passing_model_says_it_is_calibrated_and_beats_the_rules(trained):
    bundle = trained[2]
    checks = bundle.metrics["checks"]
    text = " ".join(_danish_summary(bundle, bundle.metrics))
    assert (CALIBRATED in text) == checks["calibration_error"]["passed"]
    beats = all(c["passed"] for name, c in checks.items() if name.startswith("beats_"))
    assert (BEATS_RULES in text) == beats
    assert "Modeltypen er valgt blandt 4 kandidater" in text
    html = Path(bundle.card_paths["html"]).read_text(encoding="utf-8")
    markdown = Path(bundle.card_paths["markdown"]).read_text(encoding="utf-8")
    for written in (html, markdown):
        assert "Model selection" in written and f"{bundle.candidate} (chosen)" in written
        assert "ABC-regel / ABC-style rule" in written


def test_no_sentence_of_a_failing_model_claims_calibration_or_beating_the_rules(trained, tmp_path):
    bundle = trained[2]
    evaluation = _failing(bundle.metrics)
    lines = _danish_summary(bundle, evaluation)
    text = " ".join(lines)
    assert CALIBRATED not in text and BEATS_RULES not in text
    assert "Risikoen er ikke kalibreret" in text
    assert "rammer ikke bedre end alle enkle regler" in text
    assert "har ikke lært noget brugbart" in text
    assert "listerne bygger derfor på den bedste enkle regel" in text
    assert "the model does not beat abc_regel" in text
    paths = write_model_card(bundle, evaluation, tmp_path)
    for path in paths.values():
        written = Path(path).read_text(encoding="utf-8")
        assert CALIBRATED not in written and BEATS_RULES not in written
        assert "Risikoen er ikke kalibreret" in written


def test_the_gate_is_stated_when_present_and_passing(trained):
    bundle = trained[2]
    evaluation = copy.deepcopy(bundle.metrics)
    evaluation["gate"] = {"passed": True, "published": "model", "reasons": []}
    assert any("Kontrollen før offentliggørelse er bestået" in line for line in _danish_summary(bundle, evaluation))
    assert card_context(bundle, evaluation)["gate"]["published"] == "model"


def test_the_gate_decision_is_written_into_an_existing_card(trained, tmp_path):
    from models.card import restate_gate

    bundle = copy.deepcopy(trained[2])
    folder = tmp_path / bundle.model_id
    write_model_card(bundle, bundle.metrics, folder)
    bundle.card_paths = {"markdown": str(folder / "card.md"), "html": str(folder / "card.html")}
    paths = restate_gate(bundle, {"passed": False, "published": "none", "reasons": ["calibration 0.05 > 0.03"]})
    text = Path(paths["markdown"]).read_text(encoding="utf-8")
    assert "der offentliggøres ingen liste" in text and "calibration 0.05 > 0.03" in text
    assert bundle.metrics["gate"]["published"] == "none"


def test_fairness_sentence_follows_the_fairness_report(trained):
    bundle = trained[2]
    evaluation = copy.deepcopy(bundle.metrics)
    sex = {"available": True, "max_difference": {}, "groups": {
        "F": {"pupils": 200, "rows": 1000, "suppressed": False, "flag_rate": 0.02, "flag_rate_ci": [0.01, 0.03]},
        "M": {"pupils": 200, "rows": 1000, "suppressed": False, "flag_rate": 0.10, "flag_rate_ci": [0.08, 0.12]},
    }}
    evaluation["fairness"] = {"sex": sex, "origin": {"available": False, "groups": {}, "max_difference": {}}}
    findings = fairness_findings(evaluation)
    assert [f["group"] for f in findings["skewed"]] == ["F", "M"] and findings["unavailable"] == ["origin"]
    assert any(line.startswith("Listerne rammer skævt") for line in _danish_summary(bundle, evaluation))
    even = copy.deepcopy(sex)
    even["groups"]["M"].update(flag_rate=0.021, flag_rate_ci=[0.015, 0.03])
    evaluation["fairness"]["sex"] = even
    text = " ".join(_danish_summary(bundle, evaluation))
    assert "Listerne rammer skævt" not in text and "Ingen gruppe efter køn" in text
    no_interval = copy.deepcopy(sex)
    for group in no_interval["groups"].values():
        group.pop("flag_rate_ci")
    evaluation["fairness"]["sex"] = no_interval
    text = " ".join(_danish_summary(bundle, evaluation))
    assert "Listerne rammer skævt" not in text and "kan ikke afgøres" in text


@pytest.fixture(scope="module")
def shuffled(sim_warehouse, sim_config, tmp_path_factory):
    """The simulated municipality with its outcomes shuffled across pupils: nothing to learn."""
    folder = tmp_path_factory.mktemp("shuffled")
    path = folder / "warehouse.duckdb"
    shutil.copy(sim_warehouse[0], path)
    con = duckdb.connect(str(path))
    try:
        outcomes = con.execute("SELECT pupil_id, outcome FROM clean_outcomes ORDER BY pupil_id").df()
        permuted = pd.DataFrame({"pupil_id": outcomes["pupil_id"],
                                 "shuffled": np.random.default_rng(11).permutation(outcomes["outcome"].to_numpy())})
        con.register("_shuffled", permuted)
        con.execute("UPDATE clean_outcomes SET outcome = s.shuffled FROM _shuffled AS s "
                    "WHERE clean_outcomes.pupil_id = s.pupil_id")
        bundle = train_or_load_model(con, sim_config, TERM, folder / "models", "test-version", fairness_bootstrap=5)
        evaluation = evaluate_model(con, sim_config, bundle, ground_truth=sim_warehouse[1], n_boot=5)
    finally:
        con.close()
    return bundle, evaluation


def test_the_shuffled_label_control_fails_its_checks_and_its_card_says_so(shuffled):
    bundle, evaluation = shuffled
    checks = evaluation["checks"]
    # the oracle is no yardstick here (the true probabilities do not predict shuffled labels)
    assert not checks["risk_varies"]["passed"], evaluation["risk_spread"]
    assert not checks["better_than_chance"]["passed"]
    assert not checks["calibration_error"]["passed"] or not checks["risk_varies"]["passed"]
    assert evaluation["model"]["roc_auc"] < 0.6
    text = Path(bundle.card_paths["markdown"]).read_text(encoding="utf-8")
    assert CALIBRATED not in text and BEATS_RULES not in text
    assert "har ikke lært noget brugbart" in text
