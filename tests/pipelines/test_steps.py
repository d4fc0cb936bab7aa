"""The typed steps of a termly run (``pipelines.steps``): their order, and one step on its own."""

from __future__ import annotations

from dataclasses import fields

import pandas as pd
import pytest

from ews.settings import get_settings
from ews.warehouse import open_readonly, staged_write
from pipelines.steps import STEP_NAMES, StepResults, feature_step, model_step, steps_to_run
from tests.pipelines.step_inputs import run_inputs

from .conftest import TERM


def test_the_manifest_has_the_seconds_of_every_step_in_data_flow_order(finished_run):
    manifest = finished_run.manifest
    seconds = manifest["step_seconds"]
    assert list(seconds) == list(STEP_NAMES)
    # the exports past their time go before the features and the model see them
    assert STEP_NAMES[:5] == ("ingest", "expiry", "exclusions", "features", "model")
    assert all(value >= 0 for value in seconds.values())
    assert sum(seconds.values()) <= manifest["duration_seconds"] + 0.1
    assert seconds["ingest"] >= sum(manifest["ingest_seconds"].values()) - 0.1  # the ingest's parts are in it


def test_the_results_are_kept_in_data_flow_order():
    assert tuple(f.name for f in fields(StepResults)) == STEP_NAMES


def test_leaving_a_step_out_leaves_out_the_steps_that_need_it():
    assert steps_to_run() == STEP_NAMES
    assert steps_to_run(["explanations"]) == tuple(n for n in STEP_NAMES if n not in ("explanations", "flag_lists"))
    assert "model" not in steps_to_run(["features"]) and "reviews" in steps_to_run(["features"])
    with pytest.raises(ValueError, match="ingest"):
        steps_to_run(["ingest"])
    with pytest.raises(ValueError, match="flags"):
        steps_to_run(["flags"])


def test_the_feature_and_model_steps_run_on_their_own_with_typed_inputs(run_copy, tmp_path):
    """The features step rebuilds what the run stored; the model step scores exactly those rows."""
    run_id = run_copy.manifest["run_id"]
    with open_readonly(run_copy.state_dir) as con:
        stored = con.execute("SELECT * FROM features_pupil_term WHERE term = $t ORDER BY pupil_id", {"t": TERM}).df()
        scores = con.execute("SELECT pupil_id, risk, tier, model_id FROM scores_pupil_term WHERE run_id = $r "
                             "ORDER BY pupil_id", {"r": run_id}).df()
    inputs = run_inputs(get_settings(), TERM, run_id, tmp_path / "run", run_copy.manifest["code_version"])
    with staged_write(run_copy.state_dir) as session:
        features = feature_step(session, inputs)
        model = model_step(session, inputs, features)
    assert features.as_of_date == inputs.as_of_date
    assert str(stored["as_of_date"].iloc[0])[:10] == str(features.as_of_date)
    assert features.rows == features.pupils == len(stored) == len(scores) > 0
    assert set(features.features["grade"]) == {5, 6, 7, 8, 9} and set(features.features["term"]) == {TERM}
    built = features.features.sort_values("pupil_id").reset_index(drop=True)
    numeric = [c for c in stored.columns if c not in ("pupil_id", "as_of_date", "term", "school_code", "network_id")]
    pd.testing.assert_frame_equal(built[numeric], stored[numeric], check_dtype=False)
    assert model.bundle.model_id == run_copy.manifest["model"]["model_id"]  # reused, not retrained
    assert model.gate["published"] == run_copy.manifest["gate"]["published"]
    rescored = model.scores.sort_values("pupil_id").reset_index(drop=True)
    assert rescored["pupil_id"].tolist() == scores["pupil_id"].tolist()
    assert rescored["risk"].tolist() == pytest.approx(scores["risk"].tolist())
    assert features.seconds > 0 and model.seconds > 0


def test_a_training_built_in_batches_of_as_of_dates_is_the_training_built_at_once(finished_run, monkeypatch):
    """Bounded queries (at national size one query spilled its disk full) give the same rows."""
    import features.build as build
    from ews.config import load_config
    from models.training import plan_training

    config = load_config(finished_run.synthetic_dir / "municipality.yaml")
    with open_readonly(finished_run.state_dir) as con:
        dates = list(plan_training(con, config, TERM).as_of_dates)
        at_once = build.build_features(con, config, dates)
        per_date = at_once.groupby("as_of_date").size()
        cap = int(per_date.max()) + 1  # at least one date a batch, at most two
        batches = build.as_of_batches(con, config, dates, build.SCORING_GRADES, max_rows=cap)
        monkeypatch.setattr(build, "MAX_ROWS_PER_QUERY", cap)
        batched = build.build_features(con, config, dates)
    assert len(dates) > 4 and len(dates) // 2 <= len(batches) < len(dates)
    assert [d for batch in batches for d in batch] == sorted(dates)
    assert all(int(per_date.reindex(batch).sum()) <= cap for batch in batches if len(batch) > 1)
    pd.testing.assert_frame_equal(batched, at_once)


def test_a_training_keeps_per_batch_exactly_the_rows_it_would_keep_from_all_dates_at_once(finished_run, monkeypatch):
    """The training keeps only each batch's labelled rows (a national training's memory peak)."""
    import features.build as build
    from ews.config import load_config
    from models.training import assemble_model_data, plan_training

    config = load_config(finished_run.synthetic_dir / "municipality.yaml")
    with open_readonly(finished_run.state_dir) as con:
        plan = plan_training(con, config, TERM)
        monkeypatch.setattr(build, "MAX_ROWS_PER_QUERY", 10**9)
        at_once = assemble_model_data(con, config, TERM, plan=plan)
        monkeypatch.setattr(build, "MAX_ROWS_PER_QUERY", 1)  # every as-of date a batch of its own
        per_date = assemble_model_data(con, config, TERM, plan=plan)
    assert at_once.train["as_of_date"].nunique() > 4 and len(at_once.evaluation)
    pd.testing.assert_frame_equal(per_date.train, at_once.train)
    pd.testing.assert_frame_equal(per_date.evaluation, at_once.evaluation)
    pd.testing.assert_frame_equal(per_date.population, at_once.population)
