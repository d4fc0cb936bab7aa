"""The admin's exclusion page and the consultant's note of a withdrawn flag (issue 15, part 4)."""

from __future__ import annotations

from datetime import date

import httpx
import pandas as pd

from ews.exclusions import ExclusionStore, withdraw_open_flags
from ews.pseudonym import pseudonymise
from ews.warehouse import open_readonly, staged_write
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, csrf_of, login

CPR = "010203-4006"


def test_an_admin_excludes_by_cpr_and_only_the_pseudonym_is_kept_and_audited(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as client:
        login(client, "anne")
        page = client.get("/admin/udtagelser")
        assert page.status_code == 200 and "Tag en elev ud" in page.text
        done = client.post("/admin/udtagelser", data={
            "csrf_token": csrf_of(page.text), "action": "exclude", "cpr": CPR, "reason": "indsigelse",
            "excluded_on": "2026-01-10"}, follow_redirects=True)
        assert done.status_code == 200
        assert CPR not in done.text
        bad = client.post("/admin/udtagelser", data={
            "csrf_token": csrf_of(page.text), "action": "exclude", "cpr": "310299-1234", "reason": "indsigelse"},
            follow_redirects=True)
        assert "Ikke udført" in bad.text and "310299" not in bad.text
    pupil_id = pseudonymise("0102034006", env.settings.key_bytes())
    [entry] = ExclusionStore(env.state_dir).entries()
    assert (entry.pupil_id, entry.reason, entry.excluded_on, entry.excluded_by) == (
        pupil_id, "indsigelse", date(2026, 1, 10), "anne")
    assert [e["outcome"] for e in env.store.read_audit(object_id=pupil_id)] == ["allowed"]
    for path in (env.state_dir / "exclusions.sqlite", env.state_dir / "app.sqlite"):
        assert b"0102034006" not in path.read_bytes() and CPR.encode() not in path.read_bytes()


def test_other_roles_cannot_open_the_exclusion_page(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as client:
        login(client, "vera")
        assert client.get("/admin/udtagelser").status_code == 403


def test_the_consultant_sees_the_flags_withdrawn_at_their_schools(env: AppEnv, live: LiveServer) -> None:
    term, previous = env.sample.terms[-1], env.sample.terms[-2]
    with open_readonly(env.state_dir) as con:
        flagged = con.execute(
            "SELECT pupil_id, school_code FROM flags_pupil_term WHERE term = $t AND status IN ('ny', 'fortsat') "
            "AND school_code = 'S0001' ORDER BY pupil_id LIMIT 1", {"t": term}).fetchone()
    active = pd.DataFrame({"pupil_id": [flagged[0]], "excluded_on": [date(2026, 1, 10)], "reason": ["indsigelse"]})
    with staged_write(env.state_dir) as session:
        assert withdraw_open_flags(session.con, active, "run-next", term, previous) == 1
        assert withdraw_open_flags(session.con, active, "run-next", term, previous) == 0  # once
    with httpx.Client(base_url=live.url) as client:
        login(client, "vera")
        page = client.get("/vejleder")
    assert "Flag trukket tilbage" in page.text
    section = page.text.split("Flag trukket tilbage", 1)[1]
    assert "S0001" in section and "2026-01-10" in section
