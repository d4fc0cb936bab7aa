"""Exclusion (issue 15, part 4) and rectification (part 5) end to end, over one re-run of the shared term.

One private copy of the finished state gets both changes before a single run of the term (a
run costs tens of seconds here): a flagged pupil is excluded through ``ews exclude`` and
another pupil's absence row is corrected in the current school year's export.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ews.pseudonym import normalise_cpr, pseudonymise
from ews.warehouse import open_readonly, table_exists
from tests.conftest import TERM, TEST_KEY, FinishedRun, use_state
from tests.pipelines.test_lifecycle_exclusion import cpr_of


@dataclass
class LifecycleRun:
    """The copied state after the re-run, and what was changed before it."""

    state_dir: Path
    synthetic_dir: Path
    manifest: dict
    excluded: str
    excluded_cpr: str
    excluded_name: tuple[str, str]
    flagged_run: str
    network_id: str
    corrected: str
    corrected_file: str
    corrected_line: int


@pytest.fixture(scope="module")
def lifecycle_run(finished_run: FinishedRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LifecycleRun]:
    from pipelines.cli import app
    from pipelines.flows import run_term

    state = tmp_path_factory.mktemp("lifecycle") / "state"
    shutil.copytree(finished_run.state_dir, state, ignore=shutil.ignore_patterns("prefect"))
    synthetic = state / finished_run.synthetic_dir.relative_to(finished_run.state_dir)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_state(monkeypatch, state, synthetic)
        with open_readonly(state) as con:
            excluded, network_id, flagged_run = con.execute(
                "SELECT pupil_id, network_id, run_id FROM flags_pupil_term "
                "WHERE term = $term AND status IN ('ny', 'fortsat') ORDER BY pupil_id LIMIT 1", {"term": TERM}
            ).fetchone()
            scored = {r[0] for r in con.execute("SELECT pupil_id FROM scores_pupil_term WHERE term = $term",
                                                {"term": TERM}).fetchall()}
        with open_readonly(state, identity=True) as identity:
            name = identity.execute("SELECT first_name, last_name FROM identity_pupils WHERE pupil_id = $p",
                                    {"p": excluded}).fetchone()
        cpr = cpr_of(synthetic, excluded)
        result = CliRunner().invoke(app, ["exclude", "--reason", "indsigelse"], input=cpr + "\n")
        assert result.exit_code == 0, result.output
        assert cpr not in result.output and excluded in result.output

        path = synthetic / "exports" / "fravaer_2025-26.csv"
        raw = path.read_bytes()
        lines = raw.decode("utf-8-sig").split("\n")
        def pseudonym(text: str) -> str | None:
            digits = normalise_cpr(text)
            return pseudonymise(digits, TEST_KEY.encode()) if digits else None

        index, fields = next((i, line.split(";")) for i, line in enumerate(lines[1:], start=1)
                             if line.count(";") == 8 and line.split(";")[5] == "0" and line.split(";")[4] == "5"
                             and line.split(";")[0] != cpr and pseudonym(line.split(";")[0]) in scored)
        fields[5] = "2"  # the school corrects two days of illness in one week
        lines[index] = ";".join(fields)
        bom = "\ufeff" if raw.startswith(b"\xef\xbb\xbf") else ""
        path.write_bytes((bom + "\n".join(lines)).encode())
        corrected = pseudonym(fields[0])

        manifest = run_term(TERM)
        yield LifecycleRun(state, synthetic, manifest, excluded, cpr, name, flagged_run, network_id, corrected,
                           path.name, index + 1)


def test_an_excluded_pupil_is_in_no_later_score_explanation_flag_list_or_training_set(
        lifecycle_run: LifecycleRun, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboards.store import AppStore, app_db_path
    from ews.settings import get_settings
    from models.training import assemble_model_data
    from pipelines.flows import load_checked_config

    run, pupil_id = lifecycle_run, lifecycle_run.excluded
    use_state(monkeypatch, run.state_dir, run.synthetic_dir)
    manifest = run.manifest
    assert manifest["exclusions"] == {"pupils_excluded": 1, "flags_withdrawn": 1}
    run_id = manifest["run_id"]
    assert run_id != run.flagged_run  # an exclusion changes the run's inputs, so its id
    with open_readonly(run.state_dir) as con:
        def count(table: str, column: str, value: str) -> int:
            if not table_exists(con, table):  # a rule list has no explanations (the gate's branch)
                return 0
            return con.execute(f"SELECT count(*) FROM {table} WHERE pupil_id = $p AND {column} = $v",
                               {"p": pupil_id, "v": value}).fetchone()[0]

        assert count("scores_pupil_term", "run_id", run_id) == 0
        assert count("explanations_pupil_term", "run_id", run_id) == 0
        assert count("flags_pupil_term", "term", TERM) == 0  # not even "no longer flagged"
        assert count("features_pupil_term", "term", TERM) == 0
        assert con.execute("SELECT count(*) FROM scores_pupil_term WHERE run_id = $r", {"r": run_id}).fetchone()[0] > 0
        withdrawn = con.execute("SELECT flagged_run_id, network_id, reason FROM flags_withdrawn WHERE pupil_id = $p",
                                {"p": pupil_id}).fetchall()
        assert withdrawn == [(run.flagged_run, run.network_id, "indsigelse")]
        config = load_checked_config(get_settings().resolved_config_path)
        data = assemble_model_data(con, config, TERM)
        assert pupil_id not in set(data.train["pupil_id"]) | set(data.evaluation["pupil_id"])
        assert len(data.train) > 0

    worklists = list((run.state_dir / "runs" / run_id / "uu_worklists").glob("*.csv"))
    assert worklists
    first, last = run.excluded_name
    for path in worklists:
        text = path.read_text(encoding="utf-8-sig")
        assert pupil_id not in text
        assert not [line for line in text.splitlines() if first in line and last in line]
    # the CPR number itself is kept nowhere: not in the exclusion store, not in the audit log
    for stored in (run.state_dir / "exclusions.sqlite", run.state_dir / "app.sqlite"):
        assert run.excluded_cpr.encode() not in stored.read_bytes()
        assert normalise_cpr(run.excluded_cpr).encode() not in stored.read_bytes()
    entries = AppStore(app_db_path(run.state_dir), audit_key=get_settings().audit_key_bytes()).read_audit(
        object_id=pupil_id)
    assert [e["action"] for e in entries] == ["exclude"]


def test_a_corrected_export_replaces_the_row_rescores_and_is_recorded_for_that_pupil_only(
        lifecycle_run: LifecycleRun) -> None:
    from pipelines.corrections import corrections_of

    run = lifecycle_run
    assert run.manifest["corrections"] == {"files": 1, "pupils": 1}
    assert run.manifest["files_read"] and all(run.corrected_file in f for f in run.manifest["files_read"])
    [entry] = corrections_of(run.state_dir, run.corrected)
    assert (entry["run_id"], entry["source_file"], entry["rows_replaced"]) == (
        run.manifest["run_id"], run.corrected_file, 1)
    assert corrections_of(run.state_dir, run.excluded) == []
    with open_readonly(run.state_dir) as con:
        illness = con.execute("SELECT illness_days FROM clean_absence WHERE pupil_id = $p AND source_file = $f "
                              "AND source_line = $l", {"p": run.corrected, "f": run.corrected_file,
                                                       "l": run.corrected_line}).fetchone()
        rescored = con.execute("SELECT count(*) FROM scores_pupil_term WHERE run_id = $r AND pupil_id = $p",
                               {"r": run.manifest["run_id"], "p": run.corrected}).fetchone()[0]
    assert illness == (2.0,) and rescored == 1
