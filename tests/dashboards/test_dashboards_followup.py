"""Issue 14 in the app: follow-up in the review form, overdue lists, the network's termly summary PDF."""

from __future__ import annotations

import re

import httpx

from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, csrf_of, login, pupil_links
from tests.flags.flag_fixtures import pdf_text


def _confirm_with_follow_up(env: AppEnv, live: LiveServer, client: httpx.Client, due: str) -> str:
    """Vera confirms a flag at one of N001's schools with Nina responsible; returns the pupil."""
    schools = [s for s, n in env.sample.school_network.items() if n == "N001"]
    for pupil in sorted(set(pupil_links(client.get("/vejleder?vis=afventer").text))):
        html = client.get(f"/elev/{pupil}").text
        if any(f"skole {s}" in html for s in schools):
            assert 'value="nina"' in html and 'value="otto"' not in html  # only the pupil's network
            response = client.post(f"/elev/{pupil}/vurdering", data={
                "csrf_token": csrf_of(html), "term": env.sample.terms[-1], "decision": "bekraeftet",
                "responsible": "nina", "next_step_date": due})
            assert response.status_code == 303 and "gemt=1" in response.headers["location"]
            return pupil
    raise AssertionError("no flag awaiting review at N001's schools")


def test_overdue_follow_up_shows_for_consultant_and_network_and_the_summary_pdf_counts_it(
        env: AppEnv, live: LiveServer, tmp_path) -> None:
    with httpx.Client(base_url=live.url) as vera:
        assert login(vera, "vera").status_code == 303
        pupil = _confirm_with_follow_up(env, live, vera, "2025-01-31")  # long passed
        html = vera.get(f"/elev/{pupil}").text
        assert "ansvarlig Nina Netværk, næste skridt senest 2025-01-31" in html
        # a person outside the network cannot be made responsible
        refused = vera.post(f"/elev/{pupil}/vurdering", data={
            "csrf_token": csrf_of(html), "term": env.sample.terms[-1], "decision": "bekraeftet",
            "responsible": "otto", "next_step_date": "2026-01-31"})
        assert "fejl=followup" in refused.headers["location"]
        listing = vera.get("/vejleder").text
        assert "Risikoen er modellens sandsynlighed for udfaldet" in listing and "upv_ikke_uddannelsesparat" in listing
    section = listing[listing.index('id="opfoelgning"'):listing.index("</section>", listing.index('id="opfoelgning"'))]
    assert f"/elev/{pupil}" in section and "Næste skridt er overskredet" in section
    assert "Nina Netværk" in section
    # the sample's as-of dates are long past: every flag nobody reviewed is overdue too
    unreviewed = int(re.search(r"Ikke vurderet inden fristen: <strong>(\d+)</strong>", section).group(1))
    assert unreviewed > 0 and section.count("Ikke vurderet inden fristen") == unreviewed + 1

    with httpx.Client(base_url=live.url) as nina:
        assert login(nina, "nina").status_code == 303
        page = nina.get("/netvaerk/N001").text
        section = page[page.index('id="opfoelgning"'):]
        assert f"/elev/{pupil}" in section and "Næste skridt er overskredet" in section
        hidden = int(re.search(r"<strong>(\d+)</strong> flag er ikke vurderet af UU inden fristen", section).group(1))
        assert hidden > 0
        named = set(pupil_links(section[:section.index("</section>")]))
        assert named == {pupil}  # unreviewed flags are counted, never named, for the network
        response = nina.get(f"/netvaerk/N001/opfoelgning.pdf?termin={env.sample.terms[-1]}")
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        path = tmp_path / "summary.pdf"
        path.write_bytes(response.content)
        text = " ".join(pdf_text(path).split())
        assert "Opfølgning på flag" in text and "screeningssignal" in text
        assert re.search(r"Næste skridt er overskredet 1\b", text)
        assert re.search(rf"Ikke vurderet inden fristen {hidden}\b", text)
        assert re.search(r"Bekræftet \(drøftes.*?\) 1\b", text)
        assert pupil not in text

    with httpx.Client(base_url=live.url) as otto:
        assert login(otto, "otto").status_code == 303
        assert otto.get("/netvaerk/N001/opfoelgning.pdf").status_code == 403
    audits = env.store.read_audit(limit=50, object_id="N001")
    assert any(a["username"] == "nina" and a["outcome"] == "allowed" and "opfølgning" in (a["purpose"] or "")
               for a in audits)
    assert any(a["username"] == "otto" and a["outcome"] == "denied" for a in audits)


def test_the_steward_outcomes_page_shows_the_earlier_models_and_names_the_outcome(run_copy) -> None:
    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from dashboards.store import AppStore
    from ews.settings import get_settings
    from ews.warehouse import open_readonly
    from flags.outcomes import DESCRIPTIVE_NOTE_DA
    from tests.dashboards.dashboard_helpers import FAST_HASHER, PASSWORD

    store = AppStore(run_copy.state_dir / "app.sqlite", hasher=FAST_HASHER)
    store.add_user("stig", "Stig Steward", "steward", PASSWORD)
    store.add_user("nina", "Nina Netværk", "network_member", PASSWORD)
    outcomes = run_copy.manifest["outcomes"]
    with LiveServer(create_app(get_settings(), DashboardSettings(), store)) as live:
        with httpx.Client(base_url=live.url) as stig:
            assert login(stig, "stig").status_code == 303
            page = stig.get("/drift/udfald")
            assert page.status_code == 200
            for entry in outcomes:
                assert entry["model_id"] in page.text and entry["scored_term"] in page.text
            assert "Bro over 2024/25" in page.text and "ikke-uddannelsesparat" in page.text
            assert DESCRIPTIVE_NOTE_DA.split(":")[0] in page.text
            with open_readonly(run_copy.state_dir) as con:
                pupils = [r[0] for r in con.execute("SELECT DISTINCT pupil_id FROM scores_pupil_term").fetchall()]
            assert pupils and not any(p in page.text for p in pupils)  # aggregates only
        with httpx.Client(base_url=live.url) as nina:
            assert login(nina, "nina").status_code == 303
            assert nina.get("/drift/udfald").status_code == 403
    assert any(a["username"] == "nina" and a["outcome"] == "denied" for a in store.read_audit(limit=20))
