"""Records of processing (issue 15, part 1): every source column has a legal category and a retention."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ews.config import load_config
from ews.schema import SOURCE_KINDS
from pipelines.records import build_records, missing_entries, render_markdown
from tests.conftest import FinishedRun
from tests.flags.flag_fixtures import pdf_text

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_every_source_column_of_the_demo_config_has_a_category_and_a_retention(synthetic_small: Path) -> None:
    config = load_config(synthetic_small / "municipality.yaml")
    assert missing_entries(config) == []
    for lang in ("da", "en"):
        text = render_markdown(build_records(config, lang))
        table = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
        for source in config.sources:
            for column in SOURCE_KINDS[source.kind]:
                row = next(r for r in table if r[0] == f"| {source.name}" and r[2] == column.name)
                assert row[3] and "MISSING" not in row[3] and "MANGLER" not in row[3]
                assert row[5].rstrip(" |") != "" and (row[5].startswith("-") == (column.category == "cpr"))
        for ignored in {c for s in config.sources for c in s.ignore_columns}:
            assert ignored in text  # free text that is never read is listed as such
    danish = render_markdown(build_records(config, "da"))
    assert "[UDFYLDES AF KOMMUNEN" in danish and "Input til konsekvensanalyse (DPIA)" in danish


def test_a_column_without_a_legal_category_fails_the_check_and_the_command(
        synthetic_small: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines.cli import app

    config = load_config(synthetic_small / "municipality.yaml")
    uncategorised = tuple(replace(c, category=None) if c.name == "late_arrivals" else c
                          for c in SOURCE_KINDS["absence"])
    monkeypatch.setitem(SOURCE_KINDS, "absence", uncategorised)
    assert missing_entries(config) == ["source 'absence' column 'late_arrivals': no legal category (ews/schema.py)"]
    monkeypatch.setenv("EWS_CONFIG_PATH", str(synthetic_small / "municipality.yaml"))
    monkeypatch.setenv("EWS_STATE_DIR", str(tmp_path))
    result = runner.invoke(app, ["records", "--out", str(tmp_path / "records")])
    assert result.exit_code == 3 and "late_arrivals" in result.output
    assert not (tmp_path / "records").exists()


def test_every_table_of_a_finished_run_has_a_retention_and_the_four_files_are_written(
        finished_run: FinishedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ews.warehouse import open_readonly
    from pipelines.cli import app

    config = load_config(finished_run.synthetic_dir / "municipality.yaml")
    tables = []
    for identity in (False, True):
        with open_readonly(finished_run.state_dir, identity=identity) as con:
            tables += [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                                 "WHERE database_name = 'snapshot'").fetchall()]
    assert "raw_rows" in tables and "identity_rows" in tables
    assert missing_entries(config, tables) == []
    assert missing_entries(config, [*tables, "scores_new_thing"]) == [
        "table 'scores_new_thing': no retention rule (ews/retention.py TABLE_RETENTION or KEPT_TABLES)"]
    monkeypatch.setenv("EWS_CONFIG_PATH", str(finished_run.synthetic_dir / "municipality.yaml"))
    result = runner.invoke(app, ["records", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"records-of-processing.{lang}.{ext}" for lang in ("da", "en") for ext in ("md", "pdf")]
    assert "Retention per table" in pdf_text(tmp_path / "records-of-processing.en.pdf")


def test_the_legal_categories_in_the_data_contract_doc_agree_with_the_code() -> None:
    """docs/data-contract.md keeps its readable tables; the category column is checked against ews/schema.py."""
    text = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    checked = 0
    for kind, body in re.findall(r"^### (\w+) \(.*?\n(.*?)(?=^##|\Z)", text, re.S | re.M):
        columns = {c.name: c for c in SOURCE_KINDS[kind]}
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 6 or cells[0] in ("column", "---") or cells[0].startswith("("):
                continue
            said = cells[-1].lower()
            if said.startswith(("as ", "see ")):
                continue  # depends on the values: the code takes the strictest
            expected = ("cpr" if said.startswith("cpr") else "art9" if "art. 9" in said
                        else "confidential" if "confidential" in said else "ordinary")
            for name in (n.strip() for n in cells[0].split(",")):
                if name in columns:
                    assert columns[name].category == expected, f"{kind}.{name}: doc says {said!r}"
                    checked += 1
    assert checked >= 30
