"""Exclusion from screening (issue 15, part 4): an excluded pupil is in no later output."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ews.exclusions import ExclusionError, ExclusionStore, pupil_id_from_cpr
from ews.pseudonym import normalise_cpr, pseudonymise
from ews.warehouse import open_readonly, table_exists
from tests.conftest import TERM, TEST_KEY, FinishedRun

runner = CliRunner()


def cpr_of(synthetic_dir: Path, pupil_id: str) -> str:
    """The CPR number of a pseudonym, from the synthetic municipality's pupils exports."""
    for path in sorted((synthetic_dir / "exports").glob("elever_*.csv")):
        frame = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
        column = next(c for c in frame.columns if "cpr" in c.lower())
        for value in frame[column].dropna():
            digits = normalise_cpr(value)
            if digits and pseudonymise(digits, TEST_KEY.encode()) == pupil_id:
                return value
    raise AssertionError(f"no CPR number for {pupil_id}")


def test_a_typed_cpr_becomes_the_ingest_pseudonym_and_a_bad_one_is_refused_without_echo() -> None:
    assert pupil_id_from_cpr("010203-4006", b"k") == pseudonymise("0102034006", b"k")
    with pytest.raises(ExclusionError) as caught:
        pupil_id_from_cpr("310299-1234", b"k")  # 31 February
    assert "310299" not in str(caught.value)


def test_the_store_keeps_one_active_exclusion_per_pupil_and_lifts_it(tmp_path: Path) -> None:
    store = ExclusionStore(tmp_path)
    first = store.add("pabc", "indsigelse", date(2026, 1, 10), "admin")
    again = store.add("pabc", "fejl_i_data", date(2026, 2, 1), "admin")
    assert again.exclusion_id == first.exclusion_id
    with pytest.raises(ExclusionError):
        store.add("pdef", "because I said so", date(2026, 1, 10), "admin")
    assert list(store.active(date(2026, 1, 9))["pupil_id"]) == []  # not yet in effect
    assert list(store.active(date(2026, 1, 10))["pupil_id"]) == ["pabc"]
    store.lift(first.exclusion_id, date(2026, 3, 1), "admin")
    assert list(store.active(date(2026, 3, 1))["pupil_id"]) == []
    with pytest.raises(ExclusionError):
        store.lift(first.exclusion_id, date(2026, 3, 2), "admin")


def test_an_excluded_pupil_is_in_no_later_score_explanation_flag_list_or_training_set(run_copy: FinishedRun) -> None:
    from dashboards.store import AppStore, app_db_path
    from ews.settings import get_settings
    from models.training import assemble_model_data
    from pipelines.cli import app
    from pipelines.flows import load_checked_config, run_term

    state = run_copy.state_dir
    with open_readonly(state) as con:
        flagged = con.execute(
            "SELECT pupil_id, network_id, run_id FROM flags_pupil_term "
            "WHERE term = $term AND status IN ('ny', 'fortsat') ORDER BY pupil_id LIMIT 1", {"term": TERM}).fetchone()
    assert flagged is not None, "the shared run flags somebody"
    pupil_id, network_id, old_run = flagged
    with open_readonly(state, identity=True) as identity:
        first, last = identity.execute("SELECT first_name, last_name FROM identity_pupils WHERE pupil_id = $p",
                                       {"p": pupil_id}).fetchone()
    cpr = cpr_of(run_copy.synthetic_dir, pupil_id)

    result = runner.invoke(app, ["exclude", "--reason", "indsigelse"], input=cpr + "\n")
    assert result.exit_code == 0, result.output
    assert cpr not in result.output and pupil_id in result.output

    manifest = run_term(TERM)
    assert manifest["exclusions"] == {"pupils_excluded": 1, "flags_withdrawn": 1}
    run_id = manifest["run_id"]
    assert run_id != old_run  # an exclusion changes the run's inputs, so its id

    with open_readonly(state) as con:
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
        assert withdrawn == [(old_run, network_id, "indsigelse")]
        config = load_checked_config(get_settings().resolved_config_path)
        data = assemble_model_data(con, config, TERM)
        assert pupil_id not in set(data.train["pupil_id"]) | set(data.evaluation["pupil_id"])
        assert len(data.train) > 0

    worklists = list((state / "runs" / run_id / "uu_worklists").glob("*.csv"))
    assert worklists
    for path in worklists:
        text = path.read_text(encoding="utf-8-sig")
        assert pupil_id not in text
        assert not [line for line in text.splitlines() if first in line and last in line]
    # the CPR number itself is kept nowhere: not in the exclusion store, not in the audit log
    assert cpr.encode() not in (state / "exclusions.sqlite").read_bytes()
    assert normalise_cpr(cpr).encode() not in (state / "exclusions.sqlite").read_bytes()
    entries = AppStore(app_db_path(state), audit_key=get_settings().audit_key_bytes()).read_audit(object_id=pupil_id)
    assert [e["action"] for e in entries] == ["exclude"]
