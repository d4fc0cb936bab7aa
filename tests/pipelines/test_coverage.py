"""Absent sources: the features, baselines and outcomes they disable, in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ews.config import MunicipalityConfig, build_config_document
from features.catalogue import FEATURE_NAMES
from models.baselines import ALL_BASELINES, AbcRule, AbsenceRule, SchoolOnly
from pipelines.coverage import BASELINE_PARTS, baseline_effects, source_coverage


def _config(drop: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> MunicipalityConfig:
    document = build_config_document(
        "Testkommune", ["Nord"],
        [{"id": "N1", "name": "Netværk 1", "area": "Nord", "capacity_per_term": 2}],
        [{"code": "S1", "name": "Skole 1", "area": "Nord", "network": "N1"}])
    document["sources"] = [{**s, "required": s["kind"] not in optional}
                           for s in document["sources"] if s["kind"] not in drop]
    return MunicipalityConfig.model_validate(document)


def _files(config: MunicipalityConfig, missing: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    return {s.name: ([] if s.kind in missing else [Path(f"{s.name}.csv")]) for s in config.sources}


def _frame(rng: np.random.Generator, n: int = 200) -> pd.DataFrame:
    frame = pd.DataFrame({name: rng.normal(size=n) for name in FEATURE_NAMES})
    frame["absence_total_pct_12m"] = rng.uniform(0, 20, n)
    frame["notifications_12m"] = rng.poisson(0.3, n).astype(float)
    frame["pupil_id"] = [f"p{i}" for i in range(n)]
    frame["school_code"] = rng.choice(["S1", "S2"], n)
    frame["as_of_date"] = pd.Timestamp("2020-11-15")
    return frame


def test_every_baseline_has_its_inputs_listed():
    assert set(BASELINE_PARTS) == set(ALL_BASELINES)


@pytest.mark.parametrize("rule", [AbsenceRule(), AbcRule()], ids=lambda r: r.name)
def test_rule_inputs_are_exactly_the_listed_features(rule):
    """The rule scores a frame with only its listed features, and fails without any of them."""
    frame = _frame(np.random.default_rng(1))
    listed = [f for part in BASELINE_PARTS[rule.name] for f in part.features]
    assert len(rule.score(frame[listed])) == len(frame)
    for name in listed:
        with pytest.raises(KeyError):
            rule.score(frame[[f for f in listed if f != name]])


def test_school_only_reads_the_school_not_features():
    frame = _frame(np.random.default_rng(2))
    keys = frame[["pupil_id", "as_of_date", "school_code"]]
    scores = SchoolOnly().fit(keys, np.arange(len(frame)) % 2).score(keys)
    assert len(scores) == len(frame)


def test_abc_without_tests_and_notifications_is_the_absence_rule():
    frame = _frame(np.random.default_rng(3))
    empty = frame.assign(notifications_12m=np.nan, test_reading_latest_z=np.nan,
                         test_math_latest_z=np.nan)
    assert np.array_equal(AbcRule().score(empty), AbsenceRule().score(empty))
    assert not np.array_equal(AbcRule().score(frame), AbsenceRule().score(frame))
    effect = baseline_effects({"tests", "contacts"})["abc_regel"]
    assert effect == {"status": "reduced", "lost_parts": ["behaviour", "course performance"],
                      "kept_parts": ["attendance"], "equals": "fravaer_over_10pct"}


def test_sources_not_configured_name_their_features_and_baselines():
    config = _config(drop=("tests", "contacts"))
    coverage = source_coverage(config, _files(config))
    kinds = {e["kind"]: e for e in coverage["absent"]}
    assert set(kinds) == {"tests", "contacts"}
    assert kinds["tests"]["reason"] == "not configured"
    assert "test_reading_latest_z" in kinds["tests"]["features"]
    assert "notifications_12m" in kinds["contacts"]["features"]
    assert kinds["tests"]["baselines"] == ["abc_regel", "logistisk_regression"]
    assert "test_mean_z" in coverage["features_disabled"]
    assert "absence_total_pct_12m" not in coverage["features_disabled"]
    assert coverage["baselines"]["fravaer_over_10pct"]["status"] == "complete"
    assert "baseline abc_regel loses behaviour, course performance: it is the rule fravaer_over_10pct" in (
        coverage["notes"])
    n_tests = len(kinds["tests"]["features"])
    assert any(n.startswith(f"source 'tests' is absent (not configured): {n_tests} features are empty")
               for n in coverage["notes"])


def test_optional_source_without_files_or_rows_is_absent():
    config = _config(optional=("support",))
    assert source_coverage(config, _files(config, missing=("support",)))["absent"][0]["reason"] == "no files"
    rows = {s.name: 10 for s in config.sources}
    support = next(s.name for s in config.sources if s.kind == "support")
    rows[support] = 0
    coverage = source_coverage(config, _files(config), rows)
    assert [(e["kind"], e["reason"]) for e in coverage["absent"]] == [("support", "no rows loaded")]
    assert coverage["baselines"]["abc_regel"]["status"] == "complete"


def test_complete_sources_have_nothing_to_say():
    config = _config()
    coverage = source_coverage(config, _files(config), {s.name: 5 for s in config.sources})
    assert coverage["absent"] == [] and coverage["notes"] == [] and coverage["features_disabled"] == []


def test_an_absent_outcome_source_is_named_when_it_is_the_outcome():
    config = _config(drop=("upv",))
    coverage = source_coverage(config, _files(config))
    assert coverage["absent"][0]["outcomes"] == ["upv_ikke_uddannelsesparat"]
    assert coverage["notes"] == ["source 'upv' is absent (not configured); it carries the labels of the "
                                 "outcome 'upv_ikke_uddannelsesparat'"]
    config = _config(drop=("upv",)).model_copy(update={"outcome": "maalrettet_indsats"})
    assert source_coverage(config, _files(config))["notes"] == []


def test_run_manifest_carries_the_coverage(finished_run):
    coverage = finished_run.manifest["source_coverage"]
    assert coverage["absent"] == []
    assert set(coverage["baselines"]) == set(ALL_BASELINES)


def test_ews_run_prints_the_notes(capsys):
    from pipelines.cli import _report_manifest

    manifest = {"run_id": "r", "term": "2025/26-H1", "as_of_date": "2025-11-15", "sources": [],
                "status": "succeeded", "outputs": {"manifest": "m.json"},
                "warnings": ["baseline abc_regel loses behaviour: x"]}
    _report_manifest(manifest, json_output=False)
    assert "baseline abc_regel loses behaviour" in capsys.readouterr().out
