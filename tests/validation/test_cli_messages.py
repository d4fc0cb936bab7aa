"""A file-level problem reaches the user as one message naming file, line and column: no traceback.

Runs the termly run as the ``ews run`` command does (``pipelines.cli.run_guarded`` around
``pipelines.flows.run_term``), without the Prefect server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from ews.settings import Settings
from ews.warehouse import WarehousePaths, content_digest
from pipelines.cli import EXIT_DATA, run_guarded
from pipelines.flows import run_term
from tests.validation.validation_corpus import TODAY, build_inbox, corpus_cases, make_config

CASES = {c["case"]: c for c in corpus_cases()}


def settings_for(tmp_path: Path, case: dict[str, Any]) -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "municipality.yaml"
    config.write_text(yaml.safe_dump(make_config(case.get("severity"), {case["kind"]}, case.get("config"))
                                     .model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    return Settings(state_dir=tmp_path / "state", config_path=config,
                    inbox=build_inbox(case, tmp_path / "inbox"), pseudonym_key="cli-test-key",
                    today=TODAY)


@pytest.mark.parametrize("name", ["pupils_windows1252_for_utf8", "pupils_renamed_column",
                                  "marks_sheet_missing", "marks_severity_file",
                                  "contacts_source_missing", "absence_all_rows_outside_school_year",
                                  "absence_current_year_missing", "tests_unclosed_quote_mid_file"])
def test_file_level_error_is_one_message_and_exit_code_4(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    settings = settings_for(tmp_path, case)
    with pytest.raises(typer.Exit) as caught:
        run_guarded(lambda: run_term("2025/26-H1", settings=settings))
    assert caught.value.exit_code == EXIT_DATA
    captured = capsys.readouterr()
    output = " ".join((captured.err + captured.out).split())
    assert "Traceback" not in output and 'File "' not in output
    wanted = case["expect"]["error"]
    for text in wanted["contains"]:
        assert " ".join(text.split()) in output, output
    if wanted.get("file"):
        assert wanted["file"] in output
    if "line" in wanted:
        assert f"line {wanted['line']}" in output
    assert "Nothing was written; the warehouse is as before." in output
    assert not WarehousePaths(settings.state_dir).warehouse.exists()
    manifests = list((settings.state_dir / "runs").glob("*/manifest.json"))
    assert len(manifests) <= 1  # a missing source stops the run before it has an id
    for path in manifests:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        assert manifest["status"] == "failed" and wanted["contains"][0] in manifest["message"]


def test_failed_run_after_a_good_one_leaves_the_warehouse_content_as_it_was(tmp_path: Path) -> None:
    from pipelines.steps import STEP_NAMES

    # the corpus has a few rows, not the years of history a model needs: ingest and validation only
    after_ingest = [name for name in STEP_NAMES if name != "ingest"]
    good = dict(CASES["pupils_without_bom_absence_with_bom"])
    settings = settings_for(tmp_path, good)
    run_term("2025/26-H1", settings=settings, skip=after_ingest)
    before = content_digest(WarehousePaths(settings.state_dir).warehouse)
    assert before["clean_absence"][0] == 10
    bad = CASES["absence_exceeds_school_days"] | {"severity": {"absence": {
        "absence_exceeds_school_days": "file"}}}
    bad_settings = settings_for(tmp_path / "bad", bad).model_copy(update={"state_dir": settings.state_dir})
    with pytest.raises(typer.Exit):
        run_guarded(lambda: run_term("2025/26-H1", settings=bad_settings, skip=after_ingest))
    assert content_digest(WarehousePaths(settings.state_dir).warehouse) == before


def test_a_full_disk_is_one_message_without_a_traceback(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run that fills the disk names the state folder and its free space, and keeps no traceback."""
    import errno

    from ews.warehouse import staged_write
    from pipelines.cli import EXIT_ERROR

    def run() -> None:
        with staged_write(state_dir):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(typer.Exit) as caught:
        run_guarded(run)
    assert caught.value.exit_code == EXIT_ERROR
    captured = capsys.readouterr()
    output = " ".join((captured.err + captured.out).split())
    assert "the disk filled up" in output and str(state_dir / "versions") in output
    assert "GiB free now" in output and "move EWS_STATE_DIR" in output
    assert "Details for developers" not in output and not (state_dir / "logs").exists()
