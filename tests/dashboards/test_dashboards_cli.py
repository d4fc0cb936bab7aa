"""``ews users ...``: accounts managed from the command line, changes audited."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dashboards.sample import SampleState
from dashboards.store import AppStore
from pipelines.commands.dashboards import serve, users_app


@pytest.fixture
def cli(sample_template: SampleState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("EWS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("EWS_CONFIG_PATH", str(sample_template.config_path))
    monkeypatch.setenv("NEW_PASSWORD", "a-long-enough-password")
    app = typer.Typer()
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
    return app


def test_users_add_assign_list_disable_passwd(cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["users", "add", "vera", "--role", "consultant", "--name", "Vera V",
                             "--password-env", "NEW_PASSWORD"])
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(cli, ["users", "assign", "vera", "--school", "S0001", "--school", "S0002"]).exit_code == 0
    unknown = runner.invoke(cli, ["users", "assign", "vera", "--school", "S9999"])
    assert unknown.exit_code == 2 and "S9999" in unknown.output
    wrong_kind = runner.invoke(cli, ["users", "assign", "vera", "--network", "N001"])
    assert wrong_kind.exit_code == 2
    listing = runner.invoke(cli, ["users", "list"])
    assert "school:S0001" in listing.output and "consultant" in listing.output
    assert "argon2" not in listing.output
    assert runner.invoke(cli, ["users", "add", "ola", "--role", "steward", "--sso-only"]).exit_code == 0
    assert runner.invoke(cli, ["users", "disable", "vera"]).exit_code == 0
    store = AppStore(tmp_path / "state" / "app.sqlite")
    assert store.get_user("vera").active is False
    assert store.verify_login("vera", "a-long-enough-password") is None
    assert runner.invoke(cli, ["users", "disable", "vera", "--enable"]).exit_code == 0
    assert store.verify_login("vera", "a-long-enough-password") is not None
    short = runner.invoke(cli, ["users", "passwd", "vera", "--password-env", "SHORT"], env={"SHORT": "short"})
    assert short.exit_code == 2 and "12 characters" in short.output
    purposes = [e["purpose"] for e in store.read_audit() if e["action"] == "admin"]
    assert {"add role=consultant", "assign school:S0001", "disable", "enable"} <= set(purposes)


def test_help_explains_the_roles(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["users", "--help"])
    assert result.exit_code == 0 and "network_member" in result.output and "steward" in result.output
    assert "127.0.0.1" in CliRunner().invoke(cli, ["serve", "--help"]).output
