"""A pupil who moved school and network between terms: one trajectory row per term, and each
term's page shown to whoever may see that term's flag (issue 13, part 3)."""

from __future__ import annotations

import re

import httpx

from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from ews.warehouse import open_readonly, staged_write
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, csrf_of, login


def _move_a_flagged_pupil(env: AppEnv) -> str:
    """Move a pupil flagged in N001 (school S0001) in the first term to S0003 (network N002).

    In the second term's run the pupil is on N002's list (``ny``) and leaves N001's list
    (``ikke_laengere``, no longer in the network), as the flag lists write a move.
    """
    first, last = env.sample.terms
    with open_readonly(env.state_dir) as con:
        pupil = con.execute(
            "SELECT pupil_id FROM flags_pupil_term WHERE run_id = $run AND school_code = 'S0001' "
            "AND status <> 'ikke_laengere' ORDER BY pupil_id LIMIT 1",
            {"run": env.sample.run_ids[first]}).fetchone()[0]
    run = env.sample.run_ids[last]
    with staged_write(env.state_dir) as session:
        con = session.con
        con.execute("DELETE FROM flags_pupil_term WHERE run_id = $run AND pupil_id = $pupil",
                    {"run": run, "pupil": pupil})
        con.execute("UPDATE scores_pupil_term SET school_code = 'S0003' WHERE run_id = $run AND pupil_id = $pupil",
                    {"run": run, "pupil": pupil})
        template = ("INSERT INTO flags_pupil_term BY NAME SELECT * REPLACE ($run AS run_id, $term AS term, "
                    "$network AS network_id, $school AS school_code, $status AS status, $in_network AS in_network, "
                    "$rank AS list_rank) FROM flags_pupil_term WHERE run_id = $first_run AND pupil_id = $pupil")
        common = {"run": run, "term": last, "first_run": env.sample.run_ids[first], "pupil": pupil}
        con.execute(template, {**common, "network": "N002", "school": "S0003", "status": "ny",
                               "in_network": True, "rank": 1})
        con.execute(template, {**common, "network": "N001", "school": "S0001", "status": "ikke_laengere",
                               "in_network": False, "rank": None})
    return pupil


def _trajectory_rows(html: str) -> list[tuple[str, str]]:
    """(term, on the list) of each row of the trajectory's table."""
    table = html.split('id="h-traj"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td>([^<]+)</td>.*?<td>(ja|nej)</td></tr>", table)


def test_a_pupil_who_moved_network_has_one_row_per_term_and_each_term_for_whoever_may_see_it(env: AppEnv) -> None:
    first, last = env.sample.terms
    pupil = _move_a_flagged_pupil(env)
    env.store.assign("vera", "school", "S0003")  # Vera works with the old and the new school
    app = create_app(env.settings, DashboardSettings(), env.store)
    with LiveServer(app) as live, httpx.Client(base_url=live.url) as vera, \
            httpx.Client(base_url=live.url) as nina, httpx.Client(base_url=live.url) as otto:
        login(vera, "vera")
        before = vera.get(f"/elev/{pupil}?termin={first}")
        assert before.status_code == 200
        vera.post(f"/elev/{pupil}/vurdering", data={"csrf_token": csrf_of(before.text), "term": first,
                                                   "decision": "bekraeftet"})
        now = vera.get(f"/elev/{pupil}?termin={last}")
        assert now.status_code == 200
        # One row per term, on the list in both (first in N001, then in N002), not the term twice.
        assert _trajectory_rows(now.text) == [("forår 2025", "ja"), ("efterår 2025", "ja")]
        # The new network's row: status "Ny" and network N002's school, not the old network's row.
        assert "Ny på listen" in now.text and "Skole 3" in now.text
        # Vera may see both terms: both are in her term picker.
        assert f'<option value="{first}"' in now.text and f'<option value="{last}"' in now.text
        vera.post(f"/elev/{pupil}/vurdering", data={"csrf_token": csrf_of(now.text), "term": last,
                                                   "decision": "bekraeftet"})

        login(otto, "otto")  # the new network (N002)
        otto_now = otto.get(f"/elev/{pupil}?termin={last}")
        assert otto_now.status_code == 200 and "Ny på listen" in otto_now.text
        assert _trajectory_rows(otto_now.text) == [("forår 2025", "ja"), ("efterår 2025", "ja")]
        # The earlier term was on N001's list: not Otto's to see, and not offered in his picker.
        assert f'<option value="{first}"' not in otto_now.text
        assert otto.get(f"/elev/{pupil}?termin={first}").status_code == 403

        login(nina, "nina")  # the old network (N001)
        nina_before = nina.get(f"/elev/{pupil}?termin={first}")
        assert nina_before.status_code == 200
        assert _trajectory_rows(nina_before.text) == [("forår 2025", "ja")]
        # The pupil has left N001: its current term is not Nina's to see.
        assert nina.get(f"/elev/{pupil}?termin={last}").status_code == 403
        assert f'<option value="{last}"' not in nina_before.text
