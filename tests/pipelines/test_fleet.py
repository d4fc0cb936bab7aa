"""A fleet run on Dask (issue 16): tenants kept apart, a broken municipality stops alone.

One fleet run per module, on a local Dask cluster of one worker thread (``processes=False``):

- ``beta``: a fresh municipality with its own key, over a copy of the same exports as the
  session's one-school world (so the same CPR numbers);
- ``gamma``: a copy of the one-school world's state whose newest pupils export lost its CPR
  column.

The one-school world itself (the model matrix's ``small`` world, run once per session through
the whole termly run with its own key) is municipality ``alpha``, run before, outside the
fleet: the isolation test compares every table and file of ``alpha`` and ``beta``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from ews.pseudonym import CPR_LIKE, normalise_cpr, pseudonymise
from ews.warehouse import WarehousePaths, open_readonly, open_runlog
from pipelines.cli import app
from pipelines.fleet import OTHER_STEP, failed_line, line_step_seconds, run_fleet
from pipelines.steps import STEP_NAMES
from tests.pipelines.model_matrix import WorldResult

from .conftest import TERM

#: The key ``tests.pipelines.model_matrix.run_world`` gives every world (alpha's).
ALPHA_KEY = "matrix-key-not-secret"

#: A pupil id: "p" and fifteen letters a-p (``ews.pseudonym.pseudonymise``).
PUPIL_ID = re.compile(r"(?<![a-z])p[a-p]{15}(?![a-z])")
BETA_KEY = "beta-key-not-secret"


@dataclass
class FleetRun:
    """The module's fleet run: the summary, the fleet file and the folders."""

    summary: dict
    fleet_path: Path
    alpha: Path
    beta: Path
    gamma: Path
    gamma_before: dict[str, str]
    operator: Path
    scoring: list[dict]


def _published_digests(state: Path) -> dict[str, str]:
    paths = WarehousePaths(state)
    out = {"CURRENT": paths.pointer.read_text()}
    for path in (paths.warehouse, paths.identity):
        out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def fleet_run(one_school_world: WorldResult, tmp_path_factory: pytest.TempPathFactory) -> FleetRun:
    """The fleet run, with chunks of 100 pupils sent to the cluster (``EWS_COMPUTE_ON_DASK``):
    beta's scoring is several chunks, during which beta's run secedes from the cluster's one
    worker thread, while gamma waits to be handed to the cluster."""
    alpha = one_school_world.state_dir
    alpha_files = alpha.parent / "synthetic"
    root = tmp_path_factory.mktemp("fleet")
    (root / "keys").mkdir()
    (root / "keys" / "beta.key").write_text(BETA_KEY)
    (root / "keys" / "gamma.key").write_text("gamma-key-not-secret")
    no_truth = shutil.ignore_patterns("ground_truth")
    shutil.copytree(alpha_files, root / "beta-files", ignore=no_truth)
    gamma = root / "gamma"
    shutil.copytree(alpha, gamma, ignore=shutil.ignore_patterns("prefect"))
    shutil.copytree(alpha_files, gamma / "synthetic", ignore=no_truth)
    pupils = sorted((gamma / "synthetic" / "exports").glob("elever_2025-26.*"))[0]
    text = pupils.read_text(encoding="utf-8-sig")
    # a shorter header than beta's: the fleet takes the largest export folder first, so beta runs
    # first and gamma waits
    pupils.write_text(text.replace("CPR;", "Nr;", 1), encoding="utf-8-sig")
    fleet = {
        "fleet_version": 1, "operator": "Test operator", "state_dir": "operator",
        "dask": {"processes": False},
        "municipalities": [
            {"id": "beta", "name": "Beta Kommune", "state_dir": "beta", "config_path": "beta-files/municipality.yaml",
             "inbox": "beta-files/exports", "pseudonym_key": {"file": "keys/beta.key"}, "app": {"port": 8102}},
            {"id": "gamma", "name": "Gamma Kommune", "state_dir": "gamma",
             "config_path": "gamma/synthetic/municipality.yaml", "inbox": "gamma/synthetic/exports",
             "pseudonym_key": {"file": "keys/gamma.key"}, "app": {"port": 8103}},
        ],
    }
    fleet_path = root / "fleet.yaml"
    fleet_path.write_text(yaml.safe_dump(fleet), encoding="utf-8")
    before = _published_digests(gamma)
    import models.scoring

    patcher = pytest.MonkeyPatch()
    scoring: list[dict] = []
    real_map_chunks = models.scoring.map_chunks

    def recorded(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - as the original
        mapped = real_map_chunks(*args, **kwargs)
        scoring.append(mapped.describe())
        return mapped

    patcher.setenv("EWS_COMPUTE_CHUNK_PUPILS", "100")  # the least allowed
    patcher.setenv("EWS_COMPUTE_ON_DASK", "1")  # the worker is a thread of this process: it sees it
    patcher.setattr(models.scoring, "map_chunks", recorded)
    try:
        summary = run_fleet(TERM, fleet_path)
    finally:
        patcher.undo()
    return FleetRun(summary=summary, fleet_path=fleet_path, alpha=alpha, beta=root / "beta",
                    gamma=gamma, gamma_before=before, operator=root / "operator", scoring=scoring)


def _ids_in_duckdb(path: Path, scratch: Path) -> set[str]:
    """Every pupil-id-shaped token in any text column of any table of a DuckDB file (read from a copy)."""
    copy = scratch / f"{hashlib.sha256(str(path).encode()).hexdigest()[:12]}.duckdb"
    shutil.copyfile(path, copy)
    found: set[str] = set()
    with duckdb.connect(str(copy), read_only=True) as con:
        columns = con.execute(  # text, and anything that may hold text (lists, structs, maps, JSON)
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_catalog = current_database() "
            "AND regexp_matches(data_type, 'VARCHAR|JSON|\\[|STRUCT|MAP|UNION')"
        ).fetchall()
        for schema, table, column in columns:
            rows = con.execute(
                f'SELECT DISTINCT unnest(regexp_extract_all(CAST("{column}" AS VARCHAR), \'p[a-p]{{15}}\')) '
                f'FROM "{schema}"."{table}"').fetchall()
            found.update(row[0] for row in rows if row[0] is not None)
    copy.unlink()
    return found


def _ids_in_state(state: Path, scratch: Path) -> set[str]:
    """Pupil-id-shaped tokens in every table and file of a state folder (xlsx and other zips opened)."""
    found: set[str] = set()
    for path in state.rglob("*"):
        if not path.is_file() or path.name.startswith(".pseudonym_key"):
            continue
        if path.suffix == ".duckdb":
            found |= _ids_in_duckdb(path, scratch)
            continue
        blobs = [path.read_bytes()]
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                blobs += [archive.read(name) for name in archive.namelist()]
        for blob in blobs:
            found.update(PUPIL_ID.findall(blob.decode("latin-1")))
    return found


def test_a_broken_municipality_stops_alone_with_its_message(fleet_run: FleetRun):
    summary = fleet_run.summary
    lines = {line["id"]: line for line in summary["municipalities"]}
    assert summary["status"] == "partial" and summary["totals"]["failed"] == 1
    beta, gamma = lines["beta"], lines["gamma"]
    assert beta["status"] == "succeeded" and beta["rows_read"] == beta["rows_loaded"] + beta["rows_quarantined"] > 0
    assert beta["pupils_scored"] > 0 and beta["gate"] is not None and beta["run_id"].startswith("2025-26-H1-")
    assert list(beta["step_seconds"]) == [*STEP_NAMES, OTHER_STEP]  # the run's steps in order, then the rest
    assert sum(beta["step_seconds"].values()) == pytest.approx(beta["duration_seconds"], abs=0.1)
    assert gamma["status"] == "failed" and gamma["error_kind"] == "data"
    assert "elever_2025-26" in gamma["message"] and "CPR" in gamma["message"]
    # nothing of gamma's run is half-written: its published version is the one before, byte for byte
    assert _published_digests(fleet_run.gamma) == fleet_run.gamma_before
    assert not list((fleet_run.gamma / "versions").glob("*.partial"))
    with open_runlog(fleet_run.gamma, read_only=True) as con:
        status, message = con.execute("SELECT status, message FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    assert status == "failed" and "elever_2025-26" in message


def test_a_worker_runs_one_municipality_at_a_time_even_with_chunks(fleet_run: FleetRun):
    """Beta's scoring was several chunks on the cluster, so beta's run seceded from the worker
    while it waited. Gamma still started only after beta finished: the fleet hands the cluster
    no more municipalities than it has worker threads (``pipelines.fleet._worker_threads``).
    Queued on the worker, gamma started beside beta, in the same process: what the first
    national-sized fleet ran into (on that code gamma started 2.5 s before beta finished)."""
    lines = {line["id"]: line for line in fleet_run.summary["municipalities"]}
    assert any(call["chunks"] > 1 and call["backend"] == "dask" for call in fleet_run.scoring), fleet_run.scoring
    beta, gamma = lines["beta"], lines["gamma"]
    assert beta["status"] == "succeeded", beta["message"]
    assert beta["started_at"] < beta["finished_at"] <= gamma["started_at"] < gamma["finished_at"]


def test_no_pupil_id_of_one_municipality_is_in_another_s_state(fleet_run: FleetRun, tmp_path: Path):
    alpha = _ids_in_state(fleet_run.alpha, tmp_path)
    beta = _ids_in_state(fleet_run.beta, tmp_path)
    assert len(alpha) > 100 and len(beta) > 100
    assert alpha.isdisjoint(beta)
    # the same CPR number (both read the same exports) is a different pupil in each municipality
    first_row = (fleet_run.beta.parent / "beta-files" / "exports" / "elever_2025-26.csv").read_text(
        encoding="utf-8-sig").splitlines()[1]
    digits = normalise_cpr(first_row.split(";")[0])
    in_alpha, in_beta = pseudonymise(digits, ALPHA_KEY.encode()), pseudonymise(digits, BETA_KEY.encode())
    assert in_alpha != in_beta
    for state, own, other in ((fleet_run.alpha, in_alpha, in_beta), (fleet_run.beta, in_beta, in_alpha)):
        with open_readonly(state) as con:
            ids = {row[0] for row in con.execute("SELECT DISTINCT pupil_id FROM clean_pupils").fetchall()}
        assert own in ids and other not in ids


def test_the_operator_sees_counts_never_pupil_data(fleet_run: FleetRun, tmp_path: Path):
    folder = Path(fleet_run.summary["summary_path"]).parent
    texts = [(folder / name).read_text(encoding="utf-8") for name in ("summary.json", "fleet.html")]
    texts.append((fleet_run.operator / "fleet_runs" / "latest.json").read_text(encoding="utf-8"))
    for text in texts:
        assert not PUPIL_ID.findall(text) and not CPR_LIKE.findall(text)
    assert json.loads(texts[2])["fleet_run_id"] == fleet_run.summary["fleet_run_id"]
    page = texts[1]
    assert "Beta Kommune" in page and "gennemført" in page and "fejlet" in page and "elever_2025-26" in page
    result = CliRunner().invoke(app, ["fleet", "status", "--fleet", str(fleet_run.fleet_path)])
    assert result.exit_code == 8, result.output
    assert "gamma failed (data)" in result.output and "beta" in result.output
    as_json = CliRunner().invoke(app, ["fleet", "status", "--json", "--fleet", str(fleet_run.fleet_path)])
    assert json.loads(as_json.output)["totals"]["succeeded"] == 1


def test_a_failure_message_keeps_no_cpr_number_and_the_page_escapes_it(fleet_run: FleetRun):
    from dashboards.fleet_page import render_fleet_page
    from ews.fleet import load_fleet_config
    from validation.errors import FileLevelError

    entry = load_fleet_config(fleet_run.fleet_path).entry("gamma")
    line = failed_line(entry, TERM, FileLevelError("x.csv, line 2: <b>010203-1234</b> is not a school code"),
                       1.0, "host:1")
    assert "010203-1234" not in line["message"] and "<cpr>" in line["message"]
    page = render_fleet_page({**fleet_run.summary, "municipalities": [line]})
    assert "<b>" not in page and "&lt;b&gt;" in page


def test_a_line_takes_its_step_seconds_from_the_manifest_and_keeps_the_rest_as_other():
    manifest = {"step_seconds": {"ingest": 4.0, "features": 1.5, "model": 3.25}}
    assert line_step_seconds(manifest, 10.0) == {"ingest": 4.0, "features": 1.5, "model": 3.25, OTHER_STEP: 1.25}
    assert line_step_seconds({}, 2.0) == {OTHER_STEP: 2.0}  # a manifest of before step_seconds


def test_fleet_env_points_ews_at_one_municipality_without_printing_its_key(tmp_path):
    (tmp_path / "alpha.key").write_text("alpha-secret-key")
    fleet = {"fleet_version": 1, "operator": "o", "state_dir": "operator", "municipalities": [
        {"id": "alpha", "name": "Alpha", "state_dir": "alpha state", "config_path": "alpha.yaml", "inbox": "in",
         "pseudonym_key": {"file": "alpha.key"}, "app": {"port": 8101}}]}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    result = CliRunner().invoke(app, ["fleet", "env", "alpha", "--fleet", str(path)])
    assert result.exit_code == 0, result.output
    assert f"export EWS_STATE_DIR='{(tmp_path / 'alpha state').resolve()}'" in result.output
    assert f'export EWS_PSEUDONYM_KEY="$(cat {(tmp_path / "alpha.key").resolve()})"' in result.output
    assert "alpha-secret-key" not in result.output and "--port 8101" in result.output
    assert CliRunner().invoke(app, ["fleet", "env", "beta", "--fleet", str(path)]).exit_code == 2


def test_only_os_errors_are_retried():
    from pipelines.fleet import _is_os_error

    class State:
        def __init__(self, exc):
            self.exc = exc

        def result(self):
            raise self.exc

    assert _is_os_error(State(OSError("share away")))
    assert not _is_os_error(State(ValueError("bad config")))


def test_each_municipality_s_artifacts_have_keys_of_their_own(fleet_run: FleetRun):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    beta = next(line for line in fleet_run.summary["municipalities"] if line["id"] == "beta")
    assert beta["status"] == "succeeded"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"beta {TERM}"])))
    keys = {artifact.key for artifact in artifacts}
    assert {"beta-ingest-counts", "beta-validation-report", "beta-run-manifest"} <= keys
    assert all(key.startswith("beta-") for key in keys)
