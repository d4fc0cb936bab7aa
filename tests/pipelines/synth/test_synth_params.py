"""The generator's parameters: recorded, re-readable, validated, and doing what they say."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from ews.config import load_config
from pipelines.synth import SynthParams, generate_municipality
from pipelines.synth import model as synth_model
from pipelines.synth.model import DEFAULT_MODEL, GeneratingModel

TINY = SynthParams(seed=3, schools=2, pupils_per_grade=15, first_school_year="2023/24",
                   last_term="2024/25-H1")


def _digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def _latent(gen: GeneratingModel, n: int, seed: int) -> synth_model.Latent:
    rng = np.random.default_rng(seed)
    boy = (rng.random(n) < 0.5).astype(np.int8)
    return synth_model.simulate_latent(rng, boy, np.zeros(n, dtype=np.int8), np.zeros((n, 3)),
                                       np.zeros(n, dtype=np.int64), gen=gen)


def test_defaults_are_the_documented_constants():
    gen = GeneratingModel()
    assert gen == DEFAULT_MODEL
    assert gen.switch_per_term == synth_model.P_SWITCH_PER_TERM
    assert gen.upv_noise_sd == synth_model.UPV_NOISE_SD
    assert gen.effect_mobilitet == synth_model.MOVE_EFFECT
    assert gen.drift_effect == 1.0 and gen.upv_targets() == synth_model.UPV_TARGETS


def test_parameters_are_recorded_with_the_ground_truth_and_reproduce_the_world(tmp_path):
    params = replace(TINY, model=GeneratingModel(upv_share=0.2, effect_fravaer=1.4,
                                                 late_starter_share=0.25),
                     marks_from_grade=6)
    generate_municipality(tmp_path / "a", params)
    recorded = yaml.safe_load((tmp_path / "a" / "ground_truth" / "generator.yaml").read_text())
    assert recorded["model"]["upv_share"] == 0.2 and recorded["marks_from_grade"] == 6
    again = SynthParams.from_document(recorded)
    assert again == params
    generate_municipality(tmp_path / "b", again)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate_municipality(tmp_path / "c", TINY)
    assert _digest(tmp_path / "c") != _digest(tmp_path / "a")


def test_unknown_and_out_of_range_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown generating-model parameter"):
        SynthParams.from_document({"model": {"effect_size": 2}})
    with pytest.raises(ValueError, match="unknown synth parameter"):
        SynthParams.from_document({"pupils": 5})
    with pytest.raises(ValueError, match="upv_share"):
        GeneratingModel(upv_share=1.5)
    with pytest.raises(ValueError, match="upv_noise_sd"):
        GeneratingModel(upv_noise_sd=0.0)
    with pytest.raises(ValueError, match="marks_from_grade"):
        generate_municipality(Path("/nonexistent-never-written"), replace(TINY, marks_from_grade=9))


def test_base_rate_follows_upv_share():
    gen = GeneratingModel(upv_share=0.12)
    ref = synth_model.reference(gen)
    latent = _latent(gen, 60_000, seed=1)
    rng = np.random.default_rng(2)
    threshold = ref.upv_threshold(2016)
    y = latent.liability(synth_model.K_UPV) + gen.upv_noise_sd * rng.standard_normal(60_000) > threshold
    assert abs(y.mean() - 0.12) < 0.01
    assert ref.upv_threshold(2014) == ref.upv_threshold(2022)  # one share for every year


def test_late_starter_share_and_early_starter_scale():
    gen = GeneratingModel(late_starter_share=0.4, early_starter_scale=2.0)
    latent = _latent(gen, 40_000, seed=3)
    assert abs((latent.switch_term >= 0).mean() - 0.4) < 0.01
    assert abs(latent.early.mean() - 2.0 * 0.10) < 0.01  # 8 % of girls, 12 % of boys, doubled


def _oracle_auc(gen: GeneratingModel, k: int, seed: int) -> float:
    latent = _latent(gen, 40_000, seed=seed)
    threshold = np.full(40_000, synth_model.reference(gen).upv_threshold(2020))
    rng = np.random.default_rng(seed + 1)
    y = latent.liability(synth_model.K_UPV) + gen.upv_noise_sd * rng.standard_normal(40_000) > threshold
    return float(roc_auc_score(y, synth_model.upv_probability_asof(latent, k, threshold)))


def test_effect_sizes_and_noise_set_how_predictable_the_outcome_is():
    weak = GeneratingModel(effect_laering=0.5, effect_fravaer=0.5, effect_trivsel=0.5,
                           upv_noise_sd=1.5)
    strong = GeneratingModel(effect_laering=1.5, effect_fravaer=1.5, effect_trivsel=1.5,
                             upv_noise_sd=1.0)
    aucs = [_oracle_auc(gen, 12, seed=5) for gen in (weak, DEFAULT_MODEL, strong)]
    assert aucs == sorted(aucs) and aucs[2] - aucs[0] > 0.1


@pytest.mark.parametrize("gen", [
    GeneratingModel(effect_laering=0.6, effect_fravaer=1.6, effect_trivsel=1.2, late_starter_share=0.3,
                    late_drift_mean=0.6),
    GeneratingModel(effect_mobilitet=0.5, upv_noise_sd=0.9, upv_share=0.15),
], ids=["effects-and-late-starters", "mobility-and-noise"])
def test_asof_probability_stays_calibrated_under_other_parameters(gen):
    """The closed-form oracle must follow the parameters (drift and random walk weighted)."""
    n, k = 60_000, 12
    latent = _latent(gen, n, seed=9)
    threshold = np.full(n, synth_model.reference(gen).upv_threshold(2020))
    rng = np.random.default_rng(10)
    y = latent.liability(synth_model.K_UPV) + gen.upv_noise_sd * rng.standard_normal(n) > threshold
    p = synth_model.upv_probability_asof(latent, k, threshold)
    assert abs(p.mean() - y.mean()) < 0.01
    for chunk in np.array_split(np.argsort(p), 10):
        assert abs(p[chunk].mean() - y[chunk].mean()) < 0.025


def test_earlier_marks_are_exported_and_declared_in_the_config(tmp_path):
    generate_municipality(tmp_path, replace(TINY, marks_from_grade=6))
    from pipelines.synth.xlsx import read_xlsx

    marks = read_xlsx(tmp_path / "exports" / "karakterer_2023-24.xlsx", "Karakterer")
    grades = set(marks["Klassetrin"].astype(int))
    assert {6, 7, 8, 9} <= grades
    config = load_config(tmp_path / "municipality.yaml")
    source = next(s for s in config.sources if s.kind == "marks")
    assert source.grade_range == (6, 10)
    default = tmp_path / "default"
    generate_municipality(default, TINY)
    assert next(s for s in load_config(default / "municipality.yaml").sources
                if s.kind == "marks").grades is None
