"""End to end: the termly run over the small synthetic municipality."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from ews.pseudonym import CPR_LIKE
from ews.warehouse import WarehousePaths, content_digest, open_file_readonly, open_readonly, open_runlog
from pipelines import steps as step_module

from .conftest import PREVIOUS_TERM, TERM, FinishedRun, use_state


def test_manifest_names_what_scripts_rely_on(finished_run):
    manifest = finished_run.manifest
    for key in ("run_id", "term", "as_of_date", "status", "warehouse", "sources", "outputs"):
        assert key in manifest
    assert manifest["term"] == TERM and manifest["status"] == "succeeded"
    assert manifest["as_of_date"] == "2025-11-15"
    assert Path(manifest["warehouse"]) == WarehousePaths(finished_run.state_dir).warehouse.resolve()
    assert {s["name"] for s in manifest["sources"]} >= {"pupils", "absence", "tests", "marks", "contacts"}
    on_disk = json.loads(Path(manifest["outputs"]["manifest"]).read_text(encoding="utf-8"))
    assert on_disk["run_id"] == manifest["run_id"]


def test_every_row_read_is_loaded_or_quarantined(finished_run):
    sources = finished_run.manifest["sources"]
    assert sources and all(s["rows_read"] == s["rows_loaded"] + s["rows_quarantined"] for s in sources)
    assert sum(s["rows_loaded"] for s in sources) > 0
    with open_readonly(finished_run.state_dir) as con:
        pupils_loaded = sum(s["rows_loaded"] for s in sources if s["name"] == "pupils")
        assert con.execute("SELECT count(*) FROM clean_pupils").fetchone()[0] == pupils_loaded


def test_the_run_is_logged_with_counts(finished_run):
    with open_runlog(finished_run.state_dir) as con:
        run = con.execute("SELECT status, term, config_hash, code_version, ended_at FROM runs "
                          "WHERE run_id = $r", {"r": finished_run.manifest["run_id"]}).fetchone()
        files = con.execute("SELECT count(*), sum(rows_read) FROM run_sources WHERE run_id = $r",
                            {"r": finished_run.manifest["run_id"]}).fetchone()
    assert run[0] == "succeeded" and run[1] == TERM and run[2] and run[3] and run[4] is not None
    assert files[0] == len(finished_run.manifest["sources"])
    assert files[1] == sum(s["rows_read"] for s in finished_run.manifest["sources"])


def test_a_run_that_fails_part_way_leaves_the_warehouse_as_before(run_copy, monkeypatch):
    from pipelines.flows import termly_flow

    warehouse = WarehousePaths(run_copy.state_dir).warehouse
    before = content_digest(warehouse)

    def broken_features(session, inputs):
        session.con.execute("DELETE FROM clean_absence")
        raise RuntimeError("injected failure after the ingest")

    monkeypatch.setattr(step_module, "feature_step", broken_features)
    # change the inputs' hash so this is a new run id, as a real next term would be
    (run_copy.synthetic_dir / "exports").touch()
    with pytest.raises(RuntimeError, match="injected failure"):
        termly_flow(TERM)
    assert content_digest(WarehousePaths(run_copy.state_dir).warehouse) == before
    with open_runlog(run_copy.state_dir) as con:
        failed = con.execute("SELECT message, manifest_path FROM runs WHERE status = 'failed'").fetchall()
    assert len(failed) == 1 and "injected failure" in failed[0][0]
    manifest = json.loads(Path(failed[0][1]).read_text(encoding="utf-8"))
    assert manifest["status"] == "failed"
    assert list(manifest["step_seconds"]) == ["ingest", "expiry", "exclusions"]  # the steps that finished


def _descendants(pid: int) -> dict[int, str]:
    """Pid -> start time of every living descendant of a process (from /proc)."""
    found: dict[int, str] = {}
    stack = [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                started = _started(child)
                if started is not None:
                    found[child] = started
                    stack.append(child)
    return found


def _started(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass
class KilledThenRerun:
    """A run killed part way through, and the next run: the current term's again, same files."""

    state_dir: Path
    manifest: dict
    killed_pid: int
    returncode: int | None
    published: tuple[str, str]
    digests: dict[str, dict]
    child_commands: list[str]
    children_left: list[int]
    running_after_kill: list[int]
    partial_left: list[str]


@pytest.fixture(scope="module")
def killed_then_rerun(finished_run: FinishedRun, tmp_path_factory: pytest.TempPathFactory) -> KilledThenRerun:
    """``ews run`` of the previous term killed with SIGKILL while it writes, then the current term
    run again in this process on the same files (the run that marks the killed attempt, and the
    second run of the same term: one re-run of the term serves both tests below)."""
    from pipelines.flows import termly_flow

    state = tmp_path_factory.mktemp("killed") / "state"
    shutil.copytree(finished_run.state_dir, state, ignore=shutil.ignore_patterns("prefect"))
    synthetic = state / finished_run.synthetic_dir.relative_to(finished_run.state_dir)
    paths = WarehousePaths(state)
    digests = {"before": {"warehouse": content_digest(paths.warehouse), "identity": content_digest(paths.identity)}}
    published = paths.published()
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_state(monkeypatch, state, synthetic)
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", "--term", PREVIOUS_TERM],
            env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 180
            while (not list(paths.versions.glob("*.partial")) and process.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(1.0)  # let it write into the new version
            children = _descendants(process.pid)
            commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                        for pid in children]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        after_kill = {"published": paths.published(), "warehouse": content_digest(paths.warehouse),
                      "identity": content_digest(paths.identity)}
        deadline = time.monotonic() + 60
        while ([pid for pid, started in children.items() if _started(pid) == started]
               and time.monotonic() < deadline):
            time.sleep(0.1)
        left = [pid for pid, started in children.items() if _started(pid) == started]
        with open_runlog(state) as con:
            running = [row[0] for row in con.execute("SELECT pid FROM runs WHERE status = 'running'").fetchall()]
        manifest = termly_flow(TERM)  # the next run
    digests["after_kill"] = after_kill
    digests["after_rerun"] = {"warehouse": content_digest(paths.warehouse), "identity": content_digest(paths.identity)}
    return KilledThenRerun(state, manifest, process.pid, process.returncode, published, digests, commands, left,
                           running, [p.name for p in paths.versions.glob("*.partial")])


def test_a_killed_run_leaves_the_warehouse_as_before(killed_then_rerun: KilledThenRerun) -> None:
    """Killed with SIGKILL in the middle: both stores as before, no child process left, and
    the next run marks the attempt 'killed' (issue 17)."""
    run = killed_then_rerun
    assert run.returncode == -signal.SIGKILL
    after_kill, before = run.digests["after_kill"], run.digests["before"]
    assert after_kill["published"] == run.published
    assert after_kill["warehouse"] == before["warehouse"]
    assert after_kill["identity"] == before["identity"]
    # Prefect's temporary server and the watchdog were its children; none outlives it
    commands = run.child_commands
    assert any("uvicorn" in command for command in commands), commands
    assert any("-c" in command.split() for command in commands), commands  # the watchdog
    assert run.children_left == []
    assert run.running_after_kill == [run.killed_pid]

    with open_runlog(run.state_dir) as con:
        rows = con.execute("SELECT term, status, ended_at, message FROM runs WHERE pid = $pid",
                           {"pid": run.killed_pid}).fetchall()
        running = con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]
    assert len(rows) == 1 and rows[0][:3] == (PREVIOUS_TERM, "killed", None)
    assert f"process {run.killed_pid}" in rows[0][3] and "found at" in rows[0][3]
    assert running == 0
    assert run.partial_left == []


def test_a_second_run_of_the_same_term_changes_nothing(killed_then_rerun: KilledThenRerun,
                                                        finished_run: FinishedRun) -> None:
    """The run after the kill is the current term's second run, on the same files (the killed
    attempt, of the previous term, left both stores as they were: the test above)."""
    run = killed_then_rerun
    assert run.manifest["run_id"] == finished_run.manifest["run_id"]
    assert run.digests["after_rerun"] == run.digests["before"]  # the newly published version
    with open_runlog(run.state_dir) as con:
        attempts = con.execute("SELECT attempt, status FROM runs WHERE run_id = $r ORDER BY attempt",
                               {"r": run.manifest["run_id"]}).fetchall()
    assert attempts == [(1, "succeeded"), (2, "succeeded")]


def _text_values(con: duckdb.DuckDBPyConnection) -> list[str]:
    values = []
    columns = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                          "WHERE data_type = 'VARCHAR' AND table_catalog = 'snapshot'").fetchall()
    for table, column in columns:
        values += [r[0] for r in con.execute(
            f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()]
    return values


def test_no_cpr_number_anywhere_in_what_the_system_writes(finished_run, capfd):
    state = finished_run.state_dir
    hits = []
    for path in sorted(state.rglob("*")):
        # the demo keeps the synthetic inputs (which carry CPR numbers) in state/synthetic
        if (not path.is_file() or "prefect" in path.parts or path.name.startswith(".pseudonym")
                or path.is_relative_to(finished_run.synthetic_dir)):
            continue
        if path.suffix == ".duckdb":
            with open_file_readonly(path) as con:
                hits += [(path.name, v) for v in _text_values(con) if CPR_LIKE.search(v)]
        elif path.suffix == ".xlsx":
            from openpyxl import load_workbook

            book = load_workbook(path, read_only=True)
            for sheet in book.worksheets:
                for row in sheet.iter_rows(values_only=True):
                    hits += [(path.name, str(v)) for v in row if v is not None and CPR_LIKE.search(str(v))]
        elif path.suffix in (".json", ".csv", ".html", ".md", ".txt", ".log"):
            text = path.read_text(encoding="utf-8-sig", errors="replace")
            hits += [(path.name, m.group(0)) for m in CPR_LIKE.finditer(text)]
    out, errors = capfd.readouterr()
    hits += [("output", m.group(0)) for m in CPR_LIKE.finditer(out + errors)]
    assert hits == []


def test_the_synthetic_exports_do_carry_cpr_numbers(finished_run):
    """The grep above would find them: the inputs have them, the outputs must not."""
    text = (finished_run.synthetic_dir / "exports").glob("elever_*.csv")
    sample = next(text).read_text(encoding="utf-8-sig")
    assert CPR_LIKE.search(sample)
