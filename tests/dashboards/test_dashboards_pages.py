"""What the pages show, per role, over real HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime

import httpx
import numpy as np
import pytest
import yaml

from dashboards.app import create_app
from dashboards.reads import population_stability_index
from dashboards.settings import DashboardSettings
from ews.warehouse import WarehousePaths, open_readonly, staged_write
from flags.labels import DISCLAIMER_DA
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, csrf_of, login, pupil_links


def _names(env: AppEnv) -> list[str]:
    with open_readonly(env.state_dir, identity=True) as con:
        return [f"{first} {last}" for first, last in con.execute(
            "SELECT first_name, last_name FROM identity_pupils").fetchall()]


def _all_pupils(env: AppEnv) -> list[str]:
    with open_readonly(env.state_dir) as con:
        return [r[0] for r in con.execute("SELECT DISTINCT pupil_id FROM scores_pupil_term").fetchall()]


def test_consultant_pupil_page_explains_in_danish_with_lineage(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        listing = vera.get("/vejleder").text
        pupil = pupil_links(listing)[0]
        page = vera.get(f"/elev/{pupil}")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="da">' in html
    assert "<svg" in html and "Hvad trækker risikoen op og ned" in html  # the waterfall, titled in Danish
    assert "Udgangspunkt: gennemsnitlig elev" in html and "Modellens samlede vurdering" in html
    assert "Risikoens udvikling over terminer" in html
    assert "sammenlignet med skolen og kommunen" in html and "Kommunen (" in html
    assert env.sample.run_ids[env.sample.terms[-1]] in html and "sample-model-1" in html
    assert 'name="decision"' in html  # the review form
    assert "no-store" in page.headers["cache-control"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"https?://", html), "no CDN or external resource"


def test_network_member_sees_reasons_but_not_the_full_explanation(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        pupil = pupil_links(vera.get("/vejleder?vis=afventer").text)[0]
        html = vera.get(f"/elev/{pupil}").text
        vera.post(f"/elev/{pupil}/vurdering", data={"csrf_token": csrf_of(html), "term": env.sample.terms[-1],
                                                   "decision": "indsatstrappe",
                                                   "step": "Drøftelse i netværket"})
    with httpx.Client(base_url=live.url) as nina:
        login(nina, "nina")
        page = nina.get(f"/elev/{pupil}").text
    assert "Årsager" in page and "Hvad trækker risikoen op og ned" not in page
    assert 'name="decision"' not in page  # no review form for the network
    assert "Trin på indsatstrappen" in page and "Drøftelse i netværket" in page


def test_steward_pages_show_aggregates_and_no_pupil(env: AppEnv, live: LiveServer) -> None:
    pupils, names = _all_pupils(env), _names(env)
    run_id = env.sample.run_ids[env.sample.terms[-1]]
    pages = ["/drift", f"/drift/koersel/{run_id}", "/drift/kvalitet", "/drift/stabilitet", "/drift/model",
             f"/drift/rapport/{run_id}/validation_report.html", "/drift/udfald"]
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        bodies = {path: stig.get(path) for path in pages}
    for path, response in bodies.items():
        assert response.status_code == 200, path
        assert not any(p in response.text for p in pupils), path
        assert not any(n in response.text for n in names), path
    assert "Gennemført" in bodies["/drift"].text and run_id in bodies["/drift"].text
    assert "i karantæne" in bodies["/drift/kvalitet"].text
    assert "PSI" in bodies["/drift/stabilitet"].text and "Fordeling af risiko" in bodies["/drift/stabilitet"].text
    assert "Modelkort: sample-model-1" in bodies["/drift/model"].text
    assert "Valideringsrapport" in bodies[f"/drift/rapport/{run_id}/validation_report.html"].text


def test_steward_page_says_so_when_the_pipeline_holds_the_run_log(env: AppEnv, live: LiveServer) -> None:
    # Another process holds the run log for writing, as a run does for a moment at its start.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.readline()", str(WarehousePaths(env.state_dir).runlog)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with httpx.Client(base_url=live.url) as stig:
            login(stig, "stig")
            busy = stig.get("/drift")
    finally:
        holder.communicate("\n", timeout=30)
    assert busy.status_code == 200 and "optaget af en kørsel" in busy.text
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        free = stig.get("/drift")
    assert "optaget af en kørsel" not in free.text and env.sample.run_ids[env.sample.terms[-1]] in free.text


def test_audit_log_is_readable_by_stewards_and_admins_only(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        assert vera.get("/revision").status_code == 403
    for user in ("stig", "anne"):
        with httpx.Client(base_url=live.url) as client:
            login(client, user)
            page = client.get("/revision")
            assert page.status_code == 200 and "Loggens kontrolsummer er intakte" in page.text
            assert "vera" in page.text
            assert client.post("/revision", data={}).status_code == 405  # no way to change it


def test_reviews_carry_over_to_the_next_terms_list(env: AppEnv, live: LiveServer) -> None:
    first, last = env.sample.terms
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        earlier = set(pupil_links(vera.get(f"/vejleder?termin={first}").text))
        now = vera.get(f"/vejleder?termin={last}").text
        still = [p for p in pupil_links(now) if p in earlier and f"/elev/{p}" in now]
        pupil = still[0]
        html = vera.get(f"/elev/{pupil}?termin={first}").text
        vera.post(f"/elev/{pupil}/vurdering", data={"csrf_token": csrf_of(html), "term": first,
                                                   "decision": "bekraeftet"})
        current = vera.get(f"/elev/{pupil}?termin={last}").text
    assert "overført fra forår 2025" in current  # the term as Danish users name it ({first})
    with httpx.Client(base_url=live.url) as nina:
        login(nina, "nina")
        assert pupil in nina.get(f"/netvaerk/N001?termin={last}").text


def test_without_required_review_the_network_sees_unreviewed_flags(env: AppEnv) -> None:
    # A run made with flagging.require_review = false records it on every flag.
    document = yaml.safe_load(env.sample.config_path.read_text(encoding="utf-8"))
    document["flagging"]["require_review"] = False
    env.sample.config_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with staged_write(env.state_dir) as session:
        session.con.execute("UPDATE flags_pupil_term SET review_required = false")
    with LiveServer(create_app(env.settings, DashboardSettings(), env.store)) as live:
        with httpx.Client(base_url=live.url) as nina:
            login(nina, "nina")
            listing = nina.get("/netvaerk/N001").text
            pupil = pupil_links(listing)[0]
            assert nina.get(f"/elev/{pupil}").status_code == 200


def test_sso_mode_trusts_the_proxy_header_only_with_the_proxy_secret(env: AppEnv) -> None:
    settings = DashboardSettings(auth_mode="sso", sso_header="X-Remote-User", sso_proxy_secret="proxy-secret")
    with LiveServer(create_app(env.settings, settings, env.store)) as live:
        with httpx.Client(base_url=live.url, headers={"X-Remote-User": "vera",
                                                      "X-EWS-Proxy-Secret": "proxy-secret"}) as proxied:
            listing = proxied.get("/vejleder")
            assert listing.status_code == 200
            pupil = pupil_links(listing.text)[0]
            html = proxied.get(f"/elev/{pupil}").text
            stored = proxied.post(f"/elev/{pupil}/vurdering", data={
                "csrf_token": csrf_of(html), "term": env.sample.terms[-1], "decision": "bekraeftet"})
            assert stored.status_code == 303
        with httpx.Client(base_url=live.url, headers={"X-Remote-User": "vera"}) as spoofed:
            assert spoofed.get("/vejleder").status_code == 401
        with httpx.Client(base_url=live.url, headers={"X-Remote-User": "mallory",
                                                      "X-EWS-Proxy-Secret": "proxy-secret"}) as unknown:
            assert unknown.get("/vejleder").status_code == 401
    assert env.store.reviews_of_pupil(pupil)[0]["reviewer"] == "vera"


def test_admin_manages_users_through_audited_forms(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as anne:
        login(anne, "anne")
        page = anne.get("/admin/brugere").text
        token = csrf_of(page)
        anne.post("/admin/brugere", data={"csrf_token": token, "action": "add", "username": "kim",
                                          "display_name": "Kim", "role": "network_member",
                                          "password": "kims-long-password"})
        anne.post("/admin/brugere", data={"csrf_token": token, "action": "assign", "username": "kim",
                                          "target": "network:N003"})
        anne.post("/admin/brugere", data={"csrf_token": token, "action": "disable", "username": "nina"})
        assert anne.get("/elev/0123456789abcdef").status_code == 403
        # A refused change is explained in Danish, not in the store's English (issue 13, part 2).
        short = anne.post("/admin/brugere", follow_redirects=True, data={
            "csrf_token": token, "action": "add", "username": "lea", "display_name": "Lea",
            "role": "consultant", "password": "kort"})
        assert "Adgangskoden skal have mindst 12 tegn." in short.text and "at least" not in short.text
        twice = anne.post("/admin/brugere", follow_redirects=True, data={
            "csrf_token": token, "action": "assign", "username": "kim", "target": "school:S0001"})
        assert "Tildelingen passer ikke til rollen" in twice.text and "which is assigned" not in twice.text
    assert env.store.assignments(env.store.get_user("kim").user_id)["network"] == frozenset({"N003"})
    assert env.store.get_user("nina").active is False
    actions = [e["purpose"] for e in env.store.read_audit(username="anne") if e["action"] == "admin"]
    assert {"add", "assign network:N003", "disable"} <= set(actions)
    with httpx.Client(base_url=live.url) as nina:
        assert login(nina, "nina").status_code == 401


def test_csv_export_is_for_excel_and_holds_only_the_networks_active_flags(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as nina:
        login(nina, "nina")
        empty = nina.get("/netvaerk/N001/eksport.csv")
    lines = empty.text.lstrip("\ufeff").strip().splitlines()
    assert empty.status_code == 200 and empty.text.startswith("\ufeff")
    assert lines[0] == DISCLAIMER_DA and lines[1].startswith("Nr.;Status;Navn")
    assert len(lines) == 2  # nothing confirmed yet
    assert "attachment" in empty.headers["content-disposition"]


def test_population_stability_index() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=20_000)
    assert population_stability_index(reference, rng.normal(size=20_000)) < 0.01
    assert population_stability_index(reference, rng.normal(loc=1.0, size=20_000)) > 0.25
    with_missing = np.where(rng.random(20_000) < 0.3, np.nan, rng.normal(size=20_000))
    assert population_stability_index(reference, with_missing) > 0.25  # missing is not zero
    flags = (rng.random(20_000) < 0.2).astype(float)
    assert population_stability_index(flags, (rng.random(20_000) < 0.2).astype(float)) < 0.01


@pytest.mark.parametrize("value", [datetime(2026, 1, 5, 9, 0), "2026-07-01T10:00:00+00:00"])
def test_times_are_shown_in_danish_local_time(value: object) -> None:
    from dashboards.app import local_time

    shown = local_time(value)
    assert shown in ("05-01-2026 10:00", "01-07-2026 12:00")


def test_what_a_user_typed_is_escaped_in_the_audit_log(env: AppEnv, live: LiveServer) -> None:
    # Issue 12: a malformed pupil id is refused before any lookup (400, audited without the
    # value); the text a user types that does reach the log is a login name.
    with httpx.Client(base_url=live.url) as nina:
        login(nina, "nina")
        assert nina.get("/elev/%3Csvg%20onload%3Dalert(1)%3E").status_code == 400
    with httpx.Client(base_url=live.url) as mallory:
        assert login(mallory, "<svg onload=alert(1)>", "wrong-password-123").status_code == 401
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        page = stig.get("/revision").text
    assert "<svg onload=alert(1)>" not in page and "&lt;svg onload=alert(1)&gt;" in page


def test_the_steward_run_page_lists_the_run_warnings(env: AppEnv, live: LiveServer) -> None:
    """Warnings the manifest carries (e.g. an optional school year's file missing, an absent
    source) are shown to the steward, escaped."""
    import json

    run_id = env.sample.run_ids[env.sample.terms[-1]]
    path = env.state_dir / "runs" / run_id / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"run_id": run_id}
    manifest["warnings"] = ["source 'tests' has no file for school year 2025/26 <optional>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        page = stig.get(f"/drift/koersel/{run_id}")
    assert page.status_code == 200
    assert "Advarsler fra kørslen (1)" in page.text
    assert "no file for school year 2025/26 &lt;optional&gt;" in page.text


def test_a_refused_review_keeps_the_choices_and_the_list_counts_each_state(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        listing = vera.get("/vejleder").text
        pending = re.search(r"<strong>(\d+)</strong> afventer vurdering · (\d+) bekræftet · (\d+) afvist", listing)
        assert pending is not None and pending.group(2) == "0" and pending.group(3) == "0"
        pupil = pupil_links(vera.get("/vejleder?vis=afventer").text)[0]
        html = vera.get(f"/elev/{pupil}").text
        step = "Drøftelse i netværket"
        # A step with the decision "afvist": refused, and the form comes back as it was filled in.
        refused = vera.post(f"/elev/{pupil}/vurdering", follow_redirects=True, data={
            "csrf_token": csrf_of(html), "term": env.sample.terms[-1], "decision": "afvist",
            "dismiss_reason": "datafejl", "step": step})
        assert "Vælg et trin på indsatstrappen, når beslutningen er et trin (og kun da)." in refused.text
        assert 'value="afvist" required checked' in refused.text
        assert 'value="datafejl" selected' in refused.text and f'value="{step}" selected' in refused.text
        assert env.store.reviews_of_pupil(pupil) == []
        saved = vera.post(f"/elev/{pupil}/vurdering", follow_redirects=True, data={
            "csrf_token": csrf_of(html), "term": env.sample.terms[-1], "decision": "afvist",
            "dismiss_reason": "datafejl"})
        assert str(saved.url).endswith("#vurdering") and "Vurderingen er gemt." in saved.text
        after = vera.get("/vejleder").text
    counts = re.search(r"<strong>(\d+)</strong> afventer vurdering · (\d+) bekræftet · (\d+) afvist", after)
    assert int(counts.group(1)) == int(pending.group(1)) - 1 and counts.group(3) == "1"
