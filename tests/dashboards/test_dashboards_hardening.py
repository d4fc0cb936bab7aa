"""Issue 12 (the app's parts): single sign-on refusal, attempts audited before lookups, bounded
inputs, Danish error pages with the security headers, per-client login throttling and unlock.

Each test names the defect of the issue it covers; each failed on main before the change.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from dashboards.app import create_app
from dashboards.sample import SampleState
from dashboards.settings import DashboardConfigError, DashboardSettings
from dashboards.store import StoreError
from pipelines.commands.dashboards import serve, users_app
from tests.dashboards.dashboard_helpers import PASSWORD, AppEnv, LiveServer, csrf_of, login, pupil_links

SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")


def _denied(env: AppEnv, **match: object) -> list[dict]:
    return [e for e in env.store.read_audit(limit=1000)
            if e["outcome"] == "denied" and all(e[k] == v for k, v in match.items())]


def _n001_pupil(live: LiveServer) -> str:
    """A flagged pupil at the consultant's schools (network N001)."""
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        return pupil_links(vera.get("/vejleder").text)[0]


def _assert_danish_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="da">' in response.text and '"detail"' not in response.text
    for header in SECURITY_HEADERS:
        assert header in response.headers, header


# ---- defect 1: single sign-on without a proxy secret -------------------------------------------


def test_sso_without_a_proxy_secret_refuses_to_start(env: AppEnv) -> None:
    with pytest.raises(DashboardConfigError, match="EWS_DASHBOARD_SSO_PROXY_SECRET"):
        create_app(env.settings, DashboardSettings(auth_mode="sso"), env.store)
    with pytest.raises(DashboardConfigError):
        create_app(env.settings, DashboardSettings(auth_mode="sso", sso_proxy_secret="  "), env.store)


def test_sso_with_an_explicit_trusted_proxy_starts_and_trusts_the_header(env: AppEnv) -> None:
    settings = DashboardSettings(auth_mode="sso", sso_trusted_proxy=True)
    with LiveServer(create_app(env.settings, settings, env.store)) as live:
        with httpx.Client(base_url=live.url, headers={"X-Remote-User": "vera"}) as proxied:
            assert proxied.get("/vejleder").status_code == 200


@pytest.fixture
def cli(sample_template: SampleState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("EWS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("EWS_CONFIG_PATH", str(sample_template.config_path))
    started: list[dict] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: started.append(kwargs))
    app = typer.Typer()
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
    app.started = started  # type: ignore[attr-defined]
    return app


def test_serve_in_sso_mode_without_a_secret_exits_3_and_says_what_to_set(
        cli: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EWS_DASHBOARD_AUTH_MODE", "sso")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 3
    assert "EWS_DASHBOARD_SSO_PROXY_SECRET" in result.output and "EWS_DASHBOARD_SSO_TRUSTED_PROXY" in result.output
    assert cli.started == []  # type: ignore[attr-defined]
    monkeypatch.setenv("EWS_DASHBOARD_SSO_TRUSTED_PROXY", "true")
    elsewhere = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])  # noqa: S104 - the refusal is tested
    assert elsewhere.exit_code == 3 and "loopback" in elsewhere.output
    assert CliRunner().invoke(cli, ["serve"]).exit_code == 0
    assert len(cli.started) == 1  # type: ignore[attr-defined]


def test_the_warning_for_a_non_loopback_address_names_the_auth_mode(
        cli: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EWS_DASHBOARD_AUTH_MODE", "sso")
    monkeypatch.setenv("EWS_DASHBOARD_SSO_PROXY_SECRET", "a-proxy-secret")
    result = CliRunner().invoke(cli, ["serve", "--host", "10.0.0.5"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "authentication mode 'sso'" in result.output


# ---- defect 4: every attempt on a pupil is audited, whatever fails -----------------------------


def test_an_unknown_term_on_another_networks_pupil_is_audited(env: AppEnv, live: LiveServer) -> None:
    pupil = _n001_pupil(live)
    with httpx.Client(base_url=live.url) as otto:  # member of N002 only
        login(otto, "otto")
        assert otto.get(f"/elev/{pupil}?termin=1999/00-H1").status_code == 404
        assert otto.get("/netvaerk/N001?termin=1999/00-H1").status_code == 403
        assert otto.get("/netvaerk/N001/eksport.exe").status_code == 403
    attempts = _denied(env, username="otto")
    assert ("view_pupil", pupil, 404) in {(e["action"], e["object_id"], e["http_status"]) for e in attempts}
    assert {("view_list", "N001"), ("export", "N001")} <= {(e["action"], e["object_id"]) for e in attempts}


def test_a_consultants_unknown_term_is_audited_too(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        assert vera.get("/vejleder?termin=1999/00-H1").status_code == 404
        pupil = pupil_links(vera.get("/vejleder").text)[0]
        html = vera.get(f"/elev/{pupil}").text
        assert vera.post(f"/elev/{pupil}/vurdering", data={
            "csrf_token": csrf_of(html), "term": "1999/00-H1", "decision": "bekraeftet"}).status_code == 404
    actions = {(e["action"], e["http_status"]) for e in _denied(env, username="vera")}
    assert {("view_list", 404), ("review", 404)} <= actions


def test_anonymous_and_csrf_refused_attempts_are_counted_in_the_log(env: AppEnv, live: LiveServer) -> None:
    pupil = _n001_pupil(live)
    with httpx.Client(base_url=live.url) as anonymous:
        assert anonymous.get(f"/elev/{pupil}").status_code == 303
        assert anonymous.post(f"/elev/{pupil}/vurdering", data={"decision": "bekraeftet"}).status_code == 401
    anonymous_rows = _denied(env, action="anonymous")
    assert {e["object_id"] for e in anonymous_rows} == {pupil} and len(anonymous_rows) == 2
    assert sorted((e["username"] or "", e["path"]) for e in anonymous_rows) == [
        ("", "/elev/{pupil_id}"), ("", "/elev/{pupil_id}/vurdering")]
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        assert vera.post(f"/elev/{pupil}/vurdering", data={
            "csrf_token": "forged", "term": env.sample.terms[-1], "decision": "bekraeftet"}).status_code == 403
        vera.cookies.delete("ews_login_csrf")
        assert vera.post("/login", data={"username": "vera", "password": PASSWORD,
                                         "login_csrf": "forged"}).status_code == 403
    csrf = _denied(env, action="csrf")
    assert [(e["username"], e["object_id"], e["http_status"]) for e in csrf] == [("vera", pupil, 403)]
    assert any(e["action"] == "login" and e["purpose"] == "CSRF-token mangler eller er forkert"
               for e in _denied(env, username="vera"))


# ---- defect 5: bounded inputs, Danish error pages with the headers, throttling ---------------


def test_a_huge_page_number_gets_a_danish_400_not_a_500(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        _assert_danish_page(stig.get("/revision?foer=" + "9" * 40), 400)
        _assert_danish_page(stig.get("/revision?foer=abc"), 400)
        _assert_danish_page(stig.get("/revision?bruger=" + "x" * 5000), 400)
        _assert_danish_page(stig.get("/drift/kvalitet?termin=" + "x" * 5000), 400)
    assert {e["path"] for e in _denied(env, action="invalid_request", username="stig")} == {
        "/revision", "/drift/kvalitet"}


def test_every_error_status_gets_the_danish_page_with_the_headers(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as nina:
        _assert_danish_page(nina.get("/findes-ikke"), 404)
        login(nina, "nina")
        _assert_danish_page(nina.get("/logout"), 405)
        _assert_danish_page(nina.get("/elev/0101011234"), 400)
        _assert_danish_page(nina.get("/netvaerk/" + "N" * 500), 400)
    # A CPR-shaped value typed into the address never reaches the log.
    assert not any("0101011234" in str(e["path"]) + str(e["object_id"]) for e in env.store.read_audit(limit=1000))


def test_an_unexpected_error_gets_a_danish_500_with_the_headers(env: AppEnv) -> None:
    def broken(**_kwargs: object) -> list:
        raise RuntimeError("disk on fire")

    app = create_app(env.settings, DashboardSettings(), env.store)
    with LiveServer(app) as live, httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        app.state.ctx.store.read_audit = broken
        response = stig.get("/revision")
    _assert_danish_page(response, 500)
    assert "disk on fire" not in response.text


def test_an_overlong_user_name_is_refused_by_the_store_and_the_admin_form(env: AppEnv, live: LiveServer) -> None:
    with pytest.raises(StoreError, match="at most 100"):
        env.store.add_user("x" * 100_000, "X", "steward", None)
    with httpx.Client(base_url=live.url) as anne:
        login(anne, "anne")
        token = csrf_of(anne.get("/admin/brugere").text)
        response = anne.post("/admin/brugere", data={"csrf_token": token, "action": "add", "username": "y" * 100_000,
                                                     "display_name": "Y", "role": "steward"})
        assert response.status_code == 400
    assert all(len(str(u["username"])) <= 100 for u in env.store.list_users())


def test_logins_are_throttled_per_client_whatever_the_user_names(env: AppEnv) -> None:
    settings = DashboardSettings(login_max_failures_per_client=3)
    with LiveServer(create_app(env.settings, settings, env.store)) as live:
        with httpx.Client(base_url=live.url) as mallory:
            for name in ("vera", "nina", "otto"):
                assert login(mallory, name, "not-the-password").status_code == 401
            refused = login(mallory, "stig")  # the right password, from the same client
            assert refused.status_code == 429 and "For mange fejlede forsøg" in refused.text
    assert _denied(env, action="login", username="stig")[0]["client"] == "127.0.0.1"


def test_a_locked_account_is_unlocked_from_the_command_line(env: AppEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DashboardSettings(login_max_failures=2)
    with LiveServer(create_app(env.settings, settings, env.store)) as live:
        with httpx.Client(base_url=live.url) as client:
            for _ in range(2):
                assert login(client, "vera", "not-the-password").status_code == 401
            assert login(client, "vera").status_code == 401  # locked
            monkeypatch.setenv("EWS_STATE_DIR", str(env.state_dir))
            app = typer.Typer()
            app.add_typer(users_app, name="users")
            assert CliRunner().invoke(app, ["users", "unlock", "nobody"]).exit_code == 2
            result = CliRunner().invoke(app, ["users", "unlock", "vera"])
            assert result.exit_code == 0, result.output
            assert login(client, "vera").status_code == 303
    unlocks = [e for e in env.store.read_audit(limit=1000) if e["action"] == "unlock"]
    assert [e["object_id"] for e in unlocks] == ["vera"]
