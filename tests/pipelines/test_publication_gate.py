"""The publication gate in the termly run, on a synthetic municipality of one school.

A model made useless by shuffling the outcome labels is stopped: the run succeeds, publishes
the best rule's list (labelled in every file), warns with the figures, and ``ews run`` exits 6.
With ``publication.on_gate_failure: no_list`` no list is written. On the unshuffled school the
run either publishes a model that passed or the rule list with the warning, never a
constant-risk list.

The school is the model matrix's one-school world (``one_school_world`` in ``conftest.py``): its
unshuffled run is the matrix's, and the shuffled runs start from a copy of its files. The
shuffled runs are the worlds where the model fails its gate (``shuffled_run``, and the
``no_list`` run, which reuses the shuffled run's trained model: same files, same model
configuration). The session's ``finished_run`` is the world where it passes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pytest
import yaml
from typer.testing import CliRunner

from ews.warehouse import open_readonly
from flags.labels import DISCLAIMER_DA
from tests.pipelines.model_matrix import WorldResult

from .conftest import TERM, use_state


@pytest.fixture(scope="module")
def one_school(one_school_world: WorldResult) -> Path:
    """The one-school municipality's files (read-only: the shuffles copy them)."""
    return one_school_world.state_dir.parent / "synthetic"


def shuffle_outcomes(synthetic: Path, target: Path, seed: int = 0) -> Path:
    """A copy of a synthetic municipality whose UPV outcomes are shuffled among the pupils."""
    shutil.copytree(synthetic, target)
    rng = np.random.default_rng(seed)
    files = sorted((target / "exports").glob("upv_*.xlsx"))
    assert files, "the synthetic municipality has no UPV export"
    for path in files:
        workbook = openpyxl.load_workbook(path)
        sheet = workbook["UPV"]
        header = [cell.value for cell in sheet[1]]
        column = header.index("Vurdering") + 1
        cells = [sheet.cell(row=r, column=column) for r in range(2, sheet.max_row + 1)]
        values = [cell.value for cell in cells]
        for cell, value in zip(cells, rng.permutation(np.array(values, dtype=object)), strict=True):
            cell.value = value
        workbook.save(path)
    return target


def run_state(monkeypatch: pytest.MonkeyPatch, state: Path, synthetic: Path) -> dict:
    from pipelines.flows import run_term

    use_state(monkeypatch, state, synthetic)
    return run_term(TERM)


@pytest.fixture(scope="module")
def shuffled_run(one_school: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("shuffled")
    synthetic = shuffle_outcomes(one_school, base / "synthetic")
    with pytest.MonkeyPatch.context() as monkeypatch:
        manifest = run_state(monkeypatch, base / "state", synthetic)
    return base / "state", manifest


def test_a_model_trained_on_shuffled_labels_is_stopped_and_the_rule_list_published(shuffled_run):
    state, manifest = shuffled_run
    gate = manifest["gate"]
    assert manifest["status"] == "succeeded"
    assert gate["passed"] is False and gate["published"] == "rule_list"
    assert gate["list_basis"] == f"regel:{gate['best_rule']}"
    assert not gate["checks"]["beats_best_rule"] or gate["learnt_nothing"] or not gate["checks"]["calibration"]
    warnings = [w for w in manifest["warnings"] if w.startswith("publication gate:")]
    assert len(warnings) == 1 and gate["best_rule"] in warnings[0]
    assert manifest["explanations"] == {"skipped": "the model did not pass the publication gate"}
    with open_readonly(state) as con:
        rows = con.execute("SELECT list_basis, risk, tier, reasons_da, selection, status FROM flags_pupil_term "
                           "WHERE run_id = $r", {"r": manifest["run_id"]}).fetchall()
        explained = con.execute("SELECT count(*) FROM explanations_pupil_term WHERE run_id = $r",
                                {"r": manifest["run_id"]}).fetchone()[0] if con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'explanations_pupil_term'").fetchone()[0] else 0
    assert rows and explained == 0
    on_list = [r for r in rows if r[5] != "ikke_laengere"]
    assert on_list
    for basis, risk, tier, _reasons, selection, _status in rows:
        assert basis == gate["list_basis"] and risk is None and tier is None
        assert selection.startswith(f"regel:{gate['best_rule']}:capacity:")
    for row in on_list:  # every flagged pupil meets a criterion of the rule, named with its value
        texts = [r["text_da"] for r in json.loads(row[3])]
        assert texts and all("reglens grænse" in t or "reglen rangerer" in t for t in texts)


def test_every_file_of_a_rule_list_says_it_is_a_rule_list(shuffled_run):
    from tests.flags.flag_fixtures import pdf_text

    _state, manifest = shuffled_run
    run_dir = Path(manifest["outputs"]["manifest"]).parent
    entries = manifest["outputs"]["uu_worklists"]
    assert entries
    for entry in entries:
        files = {ext: Path(entry[ext]) if Path(entry[ext]).is_absolute() else run_dir / entry[ext]
                 for ext in ("xlsx", "pdf", "csv")}
        first_line = files["csv"].read_text(encoding="utf-8-sig").splitlines()[0]
        assert first_line.startswith(DISCLAIMER_DA) and "REGELLISTE" in first_line
        workbook = openpyxl.load_workbook(files["xlsx"])
        assert "REGELLISTE" in workbook["Flagliste"].cell(row=1, column=1).value
        assert "REGELLISTE" in pdf_text(files["pdf"])


def test_ews_run_prints_the_warning_and_exits_6(shuffled_run, monkeypatch):
    from pipelines import cli

    _state, manifest = shuffled_run
    monkeypatch.setattr(cli, "_run_with_progress", lambda term: manifest)
    result = CliRunner().invoke(cli.app, ["run", "--term", TERM])
    assert result.exit_code == cli.EXIT_GATE == 6
    assert "publication gate: the model did not pass" in result.output
    help_text = CliRunner().invoke(cli.app, ["--help"]).output
    assert "6 run succeeded but" in " ".join(help_text.split())


def test_no_list_writes_no_list(shuffled_run, tmp_path, monkeypatch):
    shuffled_state, _manifest = shuffled_run
    synthetic = tmp_path / "synthetic"
    shutil.copytree(shuffled_state.parent / "synthetic", synthetic)
    # the shuffled run's model: same files and model configuration, so it is reused, not retrained
    shutil.copytree(shuffled_state / "models", tmp_path / "state" / "models")
    config = synthetic / "municipality.yaml"
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["publication"] = {"on_gate_failure": "no_list"}
    config.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    manifest = run_state(monkeypatch, tmp_path / "state", synthetic)
    assert manifest["gate"]["passed"] is False and manifest["gate"]["published"] == "no_list"
    assert manifest["outputs"]["uu_worklists"] == []
    assert any("no flag list was written" in w for w in manifest["warnings"])
    assert not (Path(manifest["outputs"]["manifest"]).parent / "uu_worklists").exists()
    with open_readonly(tmp_path / "state") as con:
        count = con.execute("SELECT count(*) FROM flags_pupil_term WHERE term = $t", {"t": TERM}).fetchone()[0]
    assert count == 0


def test_one_school_publishes_a_model_that_passed_or_the_rule_list_never_a_constant_risk(one_school_world):
    manifest = one_school_world.manifest
    gate = manifest["gate"]
    with open_readonly(one_school_world.state_dir) as con:
        bases = {r[0] for r in con.execute("SELECT DISTINCT list_basis FROM flags_pupil_term WHERE run_id = $r",
                                           {"r": manifest["run_id"]}).fetchall()}
    if gate["passed"]:
        assert not gate["learnt_nothing"] and bases == {"model"}
        assert gate["figures"]["precision_at_capacity"]["rules"][gate["best_rule"]]["difference_ci"][0] > 0
    else:
        assert bases == {gate["list_basis"]} and gate["list_basis"].startswith("regel:")
        assert any(w.startswith("publication gate:") for w in manifest["warnings"])
