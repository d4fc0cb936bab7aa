"""Retention (issue 15, part 2): age a finished state by school years; exactly the expired rows go."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from ews.warehouse import IDENTITY_FILE, WAREHOUSE_FILE, WarehousePaths, open_runlog
from tests.conftest import FinishedRun

runner = CliRunner()
#: Ten school years of exports (2016/17-2025/26); aged to 2026/27 with these settings, files of
#: 2016/17 and 2017/18 go (8 kept), outputs of 2024/25 go (1 kept), and names of pupils with no
#: register row in 2025/26 or later go.
TODAY = "2026-09-01"
RETENTION = {"source_rows_school_years": 8, "outputs_school_years": 1, "identity_after_leaving_school_years": 1}
FILE_YEAR = "coalesce(TRY_CAST(regexp_extract(source_file, '(\\d{4})-\\d{2}', 1) AS INTEGER), 9999)"
OLD_FILE = f"{FILE_YEAR} < 2018"
LEAVERS = ("(SELECT DISTINCT pupil_id FROM bw.raw_rows WHERE enrolled_from IS NOT NULL AND pupil_id NOT IN ("
           f"SELECT pupil_id FROM bw.clean_pupils WHERE left(school_year, 4) >= '2025' AND {FILE_YEAR} >= 2018))")
#: The rows each table must lose, said independently of ews.retention (over the state before).
EXPIRED = {
    **{t: OLD_FILE for t in ("raw_rows", "raw_quarantine", "raw_checks", "raw_pupil_ids", "raw_files",
                             "raw_duplicates", "clean_pupils", "clean_absence", "clean_tests", "clean_marks",
                             "clean_contacts", "clean_support", "clean_outcomes")},
    **{t: "left(term, 4) < '2025'" for t in ("features_pupil_term", "scores_pupil_term", "flags_pupil_term",
                                             "quarantine_rows", "validation_results")},
    "explanations_pupil_term": "run_id IN (SELECT run_id FROM bw.scores_pupil_term WHERE left(term, 4) < '2025')",
    "identity_pupils": f"pupil_id IN {LEAVERS}",
    "identity_rows": (f"{OLD_FILE} OR (source, source_file, source_line) IN (SELECT source, source_file, source_line "
                      f"FROM bw.raw_rows WHERE pupil_id IN {LEAVERS}) OR (source_file, source_line) NOT IN "
                      "(SELECT source_file, source_line FROM bw.clean_pupils)"),
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _apply_as_a_run_does(state: Path, config_path: Path, inbox: Path) -> None:
    """Retention in two halves, as a termly run applies it: the exports' rows right after the
    ingest (before the model), the rest and the expired files at the run's end."""
    from datetime import date

    from ews.config import load_config
    from ews.retention import apply_retention, expire_source_rows, finish_retention
    from ews.warehouse import staged_write

    config, today = load_config(config_path), date.fromisoformat(TODAY)
    with staged_write(state) as session:
        expired = expire_source_rows(session, config, today)
        assert expired.counts and {c.item for c in expired.counts} == {"source_rows_school_years"}
        assert session.con.execute(f"SELECT count(*) FROM raw_files WHERE {OLD_FILE}").fetchall() == [(0,)]
        assert all(p.exists() for p in inbox.iterdir())  # the files go only at the end
        counts = apply_retention(session, config, today, state, inbox, expired)
    finish_retention(state, config, today, counts, "test")


@pytest.mark.parametrize("way", ["command", "run"])
def test_aged_state_loses_exactly_the_expired_rows_files_and_folders_and_logs_counts(
        run_copy: FinishedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    from pipelines.cli import app

    state = run_copy.state_dir
    config_path = run_copy.synthetic_dir / "municipality.yaml"
    document = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    document["retention"] = RETENTION
    config_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("EWS_TODAY", TODAY)
    before = tmp_path / "before"
    before.mkdir()
    published = WarehousePaths(state).published()
    for name in (WAREHOUSE_FILE, IDENTITY_FILE):
        shutil.copy2(published / name, before / name)
    inbox = run_copy.synthetic_dir / "exports"
    files_before = {p.name: _sha(p) for p in inbox.iterdir()}
    runs_before = sorted(p.name for p in (state / "runs").iterdir())

    preview = runner.invoke(app, ["retention", "--json"])
    assert preview.exit_code == 0, preview.output
    assert WarehousePaths(state).published() == published  # a preview changes nothing
    if way == "command":
        result = runner.invoke(app, ["retention", "--apply", "--json"])
        assert result.exit_code == 0, result.output
    else:
        _apply_as_a_run_does(state, config_path, inbox)
    after = WarehousePaths(state).published()
    assert after != published

    con = duckdb.connect()
    con.execute(f"ATTACH '{before / WAREHOUSE_FILE}' AS bw (READ_ONLY)")  # the predicates read it
    deleted: dict[str, int] = {}
    for name, store in ((WAREHOUSE_FILE, "warehouse"), (IDENTITY_FILE, "identity")):
        con.execute(f"ATTACH '{before / name}' AS b (READ_ONLY)")
        con.execute(f"ATTACH '{after / name}' AS a (READ_ONLY)")
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'b'")
                  .fetchall()]
        for table in tables:
            expired = EXPIRED.get(table, "false")
            kept = f"SELECT * FROM b.{table} WHERE NOT coalesce({expired}, false)"
            extra = con.execute(f"SELECT count(*) FROM (SELECT * FROM a.{table} EXCEPT ALL {kept})").fetchone()[0]
            missing = con.execute(f"SELECT count(*) FROM ({kept} EXCEPT ALL SELECT * FROM a.{table})").fetchone()[0]
            assert (extra, missing) == (0, 0), f"{store}.{table}: {missing} rows lost that should stay, {extra} left"
            deleted[f"{store}.{table}"] = con.execute(
                f"SELECT count(*) FROM b.{table} WHERE coalesce({expired}, false)").fetchone()[0]
        con.execute("DETACH a")
        con.execute("DETACH b")
    for target in ("warehouse.raw_rows", "warehouse.clean_absence", "warehouse.scores_pupil_term",
                   "warehouse.flags_pupil_term", "identity.identity_pupils", "identity.identity_rows"):
        assert deleted[target] > 0, f"the aged state expires some of {target}"

    files_after = {p.name: _sha(p) for p in inbox.iterdir()}
    gone = set(files_before) - set(files_after)
    assert gone and all(("2016-17" in n or "2017-18" in n) for n in gone)
    assert all(files_after[n] == files_before[n] for n in files_after)
    assert not [n for n in files_after if "2016-17" in n or "2017-18" in n]
    runs_after = sorted(p.name for p in (state / "runs").iterdir())
    assert runs_after == [n for n in runs_before if not n.startswith("2024-25")] and runs_after

    with open_runlog(state) as log:
        logged = dict(log.execute("SELECT target, sum(rows_deleted) FROM retention_log WHERE today = $d "
                                  "GROUP BY target", {"d": TODAY}).fetchall())
        columns = [r[0] for r in log.execute("DESCRIBE retention_log").fetchall()]
    assert columns == ["deleted_at", "today", "item", "target", "rows_deleted", "triggered_by"]  # counts, no identities
    for target, rows in deleted.items():
        assert logged.get(target, 0) == rows, target
    assert logged["inbox files"] == len(gone)
    assert logged["run folders"] == len(runs_before) - len(runs_after)
