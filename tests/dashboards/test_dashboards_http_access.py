"""Access control over real HTTP (uvicorn on 127.0.0.1): refusals and views are all audited."""

from __future__ import annotations

import httpx

from ews.warehouse import open_readonly
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, csrf_of, login, pupil_links


def _audit(env: AppEnv, username: str) -> list[dict]:
    return env.store.read_audit(limit=1000, username=username)


def _confirm_all(env: AppEnv, live: LiveServer, network: str) -> list[str]:
    """Log in as the consultant and confirm every flag of a network's schools; return the pupils."""
    schools = [s for s, n in env.sample.school_network.items() if n == network]
    with httpx.Client(base_url=live.url) as vera:
        assert login(vera, "vera").status_code == 303
        page = vera.get("/vejleder?vis=afventer")
        pupils = sorted(set(pupil_links(page.text)))
        confirmed = []
        for pupil in pupils:
            if len(confirmed) == 3:
                break
            html = vera.get(f"/elev/{pupil}").text
            if not any(f"skole {s}" in html for s in schools):
                continue
            response = vera.post(f"/elev/{pupil}/vurdering", data={
                "csrf_token": csrf_of(html), "term": env.sample.terms[-1], "decision": "bekraeftet"})
            assert response.status_code == 303
            confirmed.append(pupil)
    return confirmed


def test_network_member_is_refused_other_networks_and_everything_is_audited(env: AppEnv, live: LiveServer) -> None:
    confirmed = _confirm_all(env, live, "N001")
    assert confirmed, "the consultant's schools S0001/S0002 belong to network N001 and have flags"
    with httpx.Client(base_url=live.url) as otto:  # member of N002 only
        assert login(otto, "otto").status_code == 303
        assert otto.get("/netvaerk/N001").status_code == 403
        assert otto.get("/netvaerk/N001/eksport.csv").status_code == 403
        assert otto.get(f"/elev/{confirmed[0]}").status_code == 403
        own = otto.get("/netvaerk/N002")
        assert own.status_code == 200
    with httpx.Client(base_url=live.url) as nina:  # member of N001: the same pupil is allowed
        assert login(nina, "nina").status_code == 303
        listing = nina.get("/netvaerk/N001")
        assert listing.status_code == 200 and confirmed[0] in listing.text
        assert nina.get(f"/elev/{confirmed[0]}").status_code == 200
        export = nina.get("/netvaerk/N001/eksport.csv")
        # The network's file names the pupil, without the pseudonym (issue 13, part 2).
        with open_readonly(env.state_dir, identity=True) as con:
            first, last = con.execute("SELECT first_name, last_name FROM identity_pupils WHERE pupil_id = $p",
                                      {"p": confirmed[0]}).fetchone()
        assert export.status_code == 200 and f"{first} {last}" in export.text
        assert confirmed[0] not in export.text

    otto_log = _audit(env, "otto")
    denied = {(e["action"], e["object_id"]) for e in otto_log if e["outcome"] == "denied"}
    assert ("view_list", "N001") in denied
    assert ("export", "N001") in denied
    assert ("view_pupil", confirmed[0]) in denied
    assert all(e["http_status"] == 403 for e in otto_log if e["outcome"] == "denied")
    assert ("view_list", "N002") in {(e["action"], e["object_id"]) for e in otto_log if e["outcome"] == "allowed"}

    nina_log = _audit(env, "nina")
    allowed = {(e["action"], e["object_id"]) for e in nina_log if e["outcome"] == "allowed"}
    assert {("view_list", "N001"), ("export", "N001"), ("view_pupil", confirmed[0])} <= allowed
    pupil_view = next(e for e in nina_log if e["action"] == "view_pupil")
    assert pupil_view["role"] == "network_member" and "N001" in pupil_view["purpose"]
    assert pupil_view["run_id"] == env.sample.run_ids[env.sample.terms[-1]]


def test_steward_is_refused_every_pupil_page_and_it_is_audited(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        pupils = pupil_links(vera.get("/vejleder").text)
    with httpx.Client(base_url=live.url) as stig:
        assert login(stig, "stig").status_code == 303
        for pupil in pupils[:3]:
            assert stig.get(f"/elev/{pupil}").status_code == 403
        assert stig.get("/netvaerk/N001").status_code == 403
        runs = stig.get("/drift")
        assert runs.status_code == 200
        assert not any(p in runs.text for p in pupils)
    denied = [e for e in _audit(env, "stig") if e["outcome"] == "denied" and e["action"] == "view_pupil"]
    assert [e["object_id"] for e in reversed(denied)] == pupils[:3]
    assert all(e["role"] == "steward" for e in denied)


def test_unreviewed_flag_is_hidden_from_the_network_until_confirmed(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        waiting = pupil_links(vera.get("/vejleder?vis=afventer").text)
    pupil = waiting[0]
    with httpx.Client(base_url=live.url) as nina:
        login(nina, "nina")
        assert pupil not in nina.get("/netvaerk/N001").text
        assert nina.get(f"/elev/{pupil}").status_code == 403
        with httpx.Client(base_url=live.url) as vera:
            login(vera, "vera")
            html = vera.get(f"/elev/{pupil}").text
            vera.post(f"/elev/{pupil}/vurdering", data={
                "csrf_token": csrf_of(html), "term": env.sample.terms[-1], "decision": "henvist_netvaerksmoede"})
        assert pupil in nina.get("/netvaerk/N001").text
        assert nina.get(f"/elev/{pupil}").status_code == 200


def test_forms_without_the_session_csrf_token_are_refused(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        pupil = pupil_links(vera.get("/vejleder").text)[0]
        response = vera.post(f"/elev/{pupil}/vurdering", data={
            "csrf_token": "forged", "term": env.sample.terms[-1], "decision": "bekraeftet"})
        assert response.status_code == 403
        assert vera.post("/logout", data={}).status_code == 403
    assert env.store.reviews_of_pupil(pupil) == []
    with httpx.Client(base_url=live.url) as stranger:
        stranger.get("/login")
        response = stranger.post("/login", data={"username": "vera", "password": "korrekt-hest-batteri-42",
                                                 "login_csrf": "forged"})
        assert response.status_code == 403


def test_login_failures_and_anonymous_requests(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as client:
        response = client.get("/elev/0123456789abcdef")
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
        assert login(client, "vera", "wrong-password-123").status_code == 401
        assert client.get("/vejleder").status_code == 303
    failures = [e for e in env.store.read_audit(username="vera") if e["action"] == "login"]
    assert failures[0]["outcome"] == "denied"
