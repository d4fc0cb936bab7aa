"""``ews explain PUPIL --run RUN``: shows the stored explanation and reproduces it."""

from __future__ import annotations

import io

import duckdb
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from ews.pseudonym import pseudonymise
from ews.settings import Settings
from ews.warehouse import WarehousePaths
from pipelines.commands import explain as command
from tests.flags.flag_fixtures import CUR_RUN, build_two_runs, make_config


@pytest.fixture(scope="module")
def warehouse(bundle, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    runs = build_two_runs(bundle, make_config(), state_dir=state)
    runs.con.close()
    runs.identity.close()
    return state, runs


def _run(state, pupil, run=CUR_RUN, bundle=None, lang="da", recompute=True):
    out = io.StringIO()
    code = command.explain_pupil(pupil, run, lang=lang, recompute=recompute,
                                 settings=Settings(state_dir=state, pseudonym_key="k"),
                                 bundle_loader=lambda _s, _m, _c: bundle, console=Console(file=out, width=220))
    return code, out.getvalue()


def _flagged(runs):
    flags = runs.flags[CUR_RUN]
    return flags[flags["status"] != "ikke_laengere"].iloc[0]


def test_a_flagged_pupil_is_explained_in_danish_and_reproduced(warehouse, bundle):
    state, runs = warehouse
    row = _flagged(runs)
    code, text = _run(state, row["pupil_id"], bundle=bundle)
    assert code == 0
    assert f"Pupil {row['pupil_id']}" in text and CUR_RUN in text and "model-test-1" in text
    assert "Screeningssignal til faglig vurdering" in text
    assert "Årsager" in text and "kommunens median" in text
    assert "reproduced" in text and "NOT" not in text
    assert "= model output" in text
    assert "Fornavn" not in text  # never names


def test_english_reasons_for_documentation(warehouse, bundle):
    state, runs = warehouse
    code, text = _run(state, _flagged(runs)["pupil_id"], bundle=bundle, lang="en")
    assert code == 0 and "Reasons" in text and "municipal median" in text


def test_without_the_model_the_stored_explanation_is_still_shown(warehouse):
    state, runs = warehouse
    code, text = _run(state, _flagged(runs)["pupil_id"], bundle=None)
    assert code == 0 and "not recomputed" in text


def test_unknown_run_or_pupil_gives_usage_exit_code(warehouse, bundle):
    state, runs = warehouse
    code, text = _run(state, _flagged(runs)["pupil_id"], run="no-such-run", bundle=bundle)
    assert code == command.EXIT_USAGE and "no explanations" in text
    code, text = _run(state, "p999999999999999", bundle=bundle)
    assert code == command.EXIT_USAGE and "was not scored" in text


def test_a_changed_explanation_is_not_reproduced(warehouse, bundle):
    state, runs = warehouse
    pupil = _flagged(runs)["pupil_id"]
    path = str(WarehousePaths(state).warehouse)
    change = ("UPDATE explanations_pupil_term SET contribution = contribution + $d "
              "WHERE pupil_id = $p AND run_id = $r AND feature = 'grade'")
    with duckdb.connect(path) as con:
        con.execute(change, {"d": 0.3, "p": pupil, "r": CUR_RUN})
    try:
        code, text = _run(state, pupil, bundle=bundle)
        assert code == command.EXIT_MISMATCH and "NOT reproduced" in text
    finally:
        with duckdb.connect(path) as con:
            con.execute(change, {"d": -0.3, "p": pupil, "r": CUR_RUN})


def test_a_cpr_number_is_pseudonymised_and_never_echoed():
    settings = Settings(state_dir="unused", pseudonym_key="k")
    assert command.resolve_pupil("010112-1234", settings) == pseudonymise("0101121234", b"k")
    assert command.resolve_pupil(" p000000000000007 ", settings) == "p000000000000007"


def test_the_typer_command_reads_the_state_folder_and_sets_the_exit_code(warehouse, monkeypatch):
    state, runs = warehouse
    monkeypatch.setenv("EWS_STATE_DIR", str(state))
    app = typer.Typer()
    app.command("explain")(command.explain)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    result = runner.invoke(app, ["explain", _flagged(runs)["pupil_id"], "--run", CUR_RUN, "--no-recompute"])
    assert result.exit_code == 0, result.output
    assert "Årsager" in result.output
    result = runner.invoke(app, ["explain", "p999999999999999", "--run", CUR_RUN])
    assert result.exit_code == command.EXIT_USAGE
    help_text = runner.invoke(app, ["explain", "--help"]).output
    assert "--run" in help_text and "pseudonym" in help_text


def test_the_warehouse_file_is_only_read(warehouse, bundle):
    state, runs = warehouse
    before = WarehousePaths(state).warehouse.stat().st_mtime_ns
    _run(state, _flagged(runs)["pupil_id"], bundle=bundle)
    assert WarehousePaths(state).warehouse.stat().st_mtime_ns == before
    duckdb.connect(str(WarehousePaths(state).warehouse), read_only=True).close()


def test_the_default_loader_finds_no_bundle_where_none_was_saved(warehouse):
    state, _ = warehouse
    with duckdb.connect(str(WarehousePaths(state).warehouse), read_only=True) as con:
        assert command.default_bundle_loader(Settings(state_dir=state), "model-test-1", con) is None
