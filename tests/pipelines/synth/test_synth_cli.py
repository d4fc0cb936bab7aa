"""``ews synth`` takes the generator's parameters as options and as a YAML file."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from pipelines.cli import app

SMALL = ["--schools", "1", "--pupils-per-grade", "10", "--first-school-year", "2024/25",
         "--last-term", "2024/25-H1"]


def _recorded(out) -> dict:  # noqa: ANN001
    return yaml.safe_load((out / "ground_truth" / "generator.yaml").read_text(encoding="utf-8"))


def test_options_and_model_settings_are_recorded(tmp_path, state_dir):
    out = tmp_path / "w"
    result = CliRunner().invoke(app, ["synth", "--out", str(out), *SMALL, "--seed", "5",
                                      "--model", "upv_share=0.15", "--model", "effect_fravaer=1.5",
                                      "--marks-from-grade", "7"])
    assert result.exit_code == 0, result.output
    recorded = _recorded(out)
    assert recorded["seed"] == 5 and recorded["schools"] == 1 and recorded["marks_from_grade"] == 7
    assert recorded["model"]["upv_share"] == 0.15 and recorded["model"]["effect_fravaer"] == 1.5
    assert recorded["model"]["effect_laering"] == 1.0  # the rest: defaults


def test_a_params_file_is_read_and_options_win(tmp_path, state_dir):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 9, "schools": 2, "pupils_per_grade": 10,
                                      "first_school_year": "2024/25", "last_term": "2024/25-H1",
                                      "model": {"late_starter_share": 0.3}}), encoding="utf-8")
    out = tmp_path / "w"
    result = CliRunner().invoke(app, ["synth", "--out", str(out), "--params", str(params),
                                      "--schools", "1", "--model", "upv_noise_sd=1.0"])
    assert result.exit_code == 0, result.output
    recorded = _recorded(out)
    assert recorded["seed"] == 9 and recorded["schools"] == 1
    assert recorded["model"]["late_starter_share"] == 0.3 and recorded["model"]["upv_noise_sd"] == 1.0


def test_bad_parameters_are_a_usage_error(tmp_path, state_dir):
    runner = CliRunner()
    for extra, message in ((["--model", "effect=2"], "unknown generating-model parameter"),
                           (["--model", "upv_share"], "expected NAME=VALUE"),
                           (["--model", "upv_share=2"], "upv_share must be within")):
        result = runner.invoke(app, ["synth", "--out", str(tmp_path / "w"), *SMALL, *extra])
        assert result.exit_code == 2, result.output
        assert message in result.output
