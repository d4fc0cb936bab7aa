"""The command line: help, and exit codes that mean something."""

from __future__ import annotations

import shutil

import yaml
from typer.testing import CliRunner

from pipelines.cli import EXIT_CONFIG, EXIT_DATA, EXIT_USAGE, app

from .conftest import use_state

runner = CliRunner()


def test_help_explains_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("synth", "run", "demo", "schedule", "check-config"):
        assert command in result.output
    assert "screening signal" in result.output


def test_an_invalid_config_exits_3_and_says_where(tmp_path, synthetic_small, monkeypatch):
    document = yaml.safe_load((synthetic_small / "municipality.yaml").read_text(encoding="utf-8"))
    document["networks"][0]["capacity_per_term"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    result = runner.invoke(app, ["check-config", str(bad)])
    assert result.exit_code == EXIT_CONFIG
    assert "networks.0.capacity_per_term" in result.output


def test_a_malformed_term_exits_2(state_dir):
    result = runner.invoke(app, ["run", "--term", "2025-26"])
    assert result.exit_code == EXIT_USAGE
    assert "not a term" in result.output


def test_a_missing_source_exits_4_and_writes_nothing(tmp_path, synthetic_small, monkeypatch):
    exports = tmp_path / "exports"
    shutil.copytree(synthetic_small / "exports", exports)
    for path in exports.glob("fravaer_*"):
        path.unlink()
    state = tmp_path / "state"
    use_state(monkeypatch, state, synthetic_small)
    monkeypatch.setenv("EWS_INBOX", str(exports))
    result = runner.invoke(app, ["run", "--term", "2025/26-H1"])
    assert result.exit_code == EXIT_DATA
    assert "fravaer_*.csv" in result.output and "absence" in result.output
    assert "Traceback" not in result.output
    assert not (state / "warehouse.duckdb").exists() and not (state / "CURRENT").exists()


def test_an_exit_4_says_its_message_alone_on_stderr(tmp_path, synthetic_small):
    """No interpreter-shutdown noise from the duckdb binding after the message (issue 17)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    exports = tmp_path / "exports"
    shutil.copytree(synthetic_small / "exports", exports)
    # a renamed column in the last absence file: the run stops in the ingest, after DuckDB
    # has read the other files (where the binding's shutdown noise used to follow)
    last = sorted(exports.glob("fravaer_*.csv"))[-1]
    data = last.read_bytes()
    header_end = data.index(b"\n")
    last.write_bytes(data[:header_end].replace(b"Skoledage", b"Skoledag") + data[header_end:])
    # as a steward's shell has it: no PREFECT_LOGGING_LEVEL from the test session
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_LEVEL"}
    env |= {"EWS_STATE_DIR": str(tmp_path / "state"), "EWS_INBOX": str(exports),
           "EWS_CONFIG_PATH": str(synthetic_small / "municipality.yaml"),
           "EWS_PSEUDONYM_KEY": "test-key-not-secret", "COLUMNS": "500"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--term", "2025/26-H1"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == EXIT_DATA
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and last.name in lines[0] and "'Skoledage'" in lines[0]
    assert lines[1:] == ["Nothing was written; the warehouse is as before."]
    assert "nanobind" not in done.stderr


def test_a_bad_setting_exits_3_naming_the_variable(monkeypatch, capsys):
    import pytest

    from pipelines.cli import main

    monkeypatch.setenv("EWS_INGEST_CHUNK_ROWS", "lots")
    monkeypatch.setattr("sys.argv", ["ews", "check-config"])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == EXIT_CONFIG
    message = capsys.readouterr().err
    assert "EWS_INGEST_CHUNK_ROWS" in message and "Traceback" not in message
