"""The model on several worlds: sizes and generator settings other than the default.

Each world: synth -> the termly run (ingest, validation, features, model) -> held-out AUC
against the oracle (``tests/pipelines/model_matrix.py`` says how, and when a 0.02 margin is
asserted). The figures of every world are printed (``pytest -s``) and recorded as test
properties; set ``EWS_MODEL_MATRIX_OUT`` to a file to also get them as JSON. Larger worlds:
``bench/model_matrix.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.pipelines.model_matrix import MAX_ORACLE_GAP, WorldResult, ci_worlds, run_world

WORLDS = {world.name: world for world in ci_worlds()}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, one_school_world: WorldResult) -> dict[str, WorldResult]:
    """Every CI world, run once for the module (the one-school world is the session's, shared
    with the publication-gate tests)."""
    results = {}
    for name, world in WORLDS.items():
        if name == one_school_world.world.name:
            results[name] = one_school_world
            continue
        results[name] = run_world(world, tmp_path_factory.mktemp(f"matrix_{name}"))
    figures = [r.figures for r in results.values()]
    print("\nmodel matrix:\n" + "\n".join(json.dumps(f) for f in figures))
    target = os.environ.get("EWS_MODEL_MATRIX_OUT")
    if target:
        Path(target).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return results


@pytest.mark.parametrize("name", list(WORLDS))
def test_model_against_the_oracle(matrix, name, record_property):
    result = matrix[name]
    for key, value in result.figures.items():
        record_property(key, value)
    assert result.manifest["status"] == "succeeded"
    assert result.evaluation["rows"] > 0 and "oracle" in result.evaluation
    gate = result.gate
    if gate is not None:
        # the publication gate exists: the model is near the oracle, or it was not published
        assert result.within_oracle or not gate["passed"], result.figures
    elif result.data_allow:
        assert result.gap <= MAX_ORACLE_GAP, result.figures
    # never a list filled by the tie-break: a published model has learnt something. Without
    # the gate nothing stops such a model yet: that is recorded as an expected failure, and
    # the check holds in full once the gate exists.
    learnt = result.evaluation["model"]["roc_auc"] > 0.55
    if gate is None and not learnt:
        pytest.xfail(f"no publication gate yet and the model learnt nothing here: {result.figures}")
    assert learnt or not gate["passed"], result.figures


def test_generator_settings_change_how_predictable_the_worlds_are(matrix):
    oracle = {name: r.evaluation["oracle"]["roc_auc"] for name, r in matrix.items()}
    weak, strong = oracle["weak_signal_low_base_rate"], oracle["strong_signal_late_starters_sparse"]
    assert weak < oracle["small"] < strong
    assert strong - weak > 0.1


def test_low_base_rate_reaches_the_labels(matrix):
    share = matrix["weak_signal_low_base_rate"].figures["positive_share"]
    default = matrix["small"].figures["positive_share"]
    assert share < 0.2 < default


def test_a_world_without_tests_and_contacts(matrix):
    """The manifest names what is missing; the ABC rule is then the absence rule."""
    from ews.warehouse import open_readonly

    result = matrix["strong_signal_late_starters_sparse"]
    coverage = result.manifest["source_coverage"]
    assert {e["kind"] for e in coverage["absent"]} == {"tests", "contacts"}
    assert coverage["baselines"]["abc_regel"]["equals"] == "fravaer_over_10pct"
    assert any("abc_regel" in warning for warning in result.manifest["warnings"])
    baselines = result.evaluation["baselines"]
    assert baselines["abc_regel"]["roc_auc"] == baselines["fravaer_over_10pct"]["roc_auc"]
    # marks from grade 6 pass the contract (the config declares them) and reach the features
    assert sum(s["rows_quarantined"] for s in result.manifest["sources"] if s["name"] == "marks") == 0
    with open_readonly(result.state_dir) as con:
        known = con.execute("SELECT count(*) FROM features_pupil_term WHERE grade = 7 "
                            "AND marks_mean_first IS NOT NULL AND marks_change IS NOT NULL").fetchone()[0]
    assert known > 0
