"""Issue 14 end to end: scripted reviews reach the warehouse and the outcomes of the flagged pupils.

The finished run's second term sees the first term's grade-9 pupils sit the leaving exam. On a
copy of its state, a UU consultant's scripted reviews of the first term's flags are recorded in
the app, then the run's review-copy and outcome steps run again on a staged version: the
reviews land in ``reviews_decisions`` and the descriptive outcome counts per group follow them.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from dashboards.store import AppStore, app_db_path
from ews.config import load_config
from ews.settings import get_settings
from ews.warehouse import open_readonly, staged_write
from flags.followup import follow_up, network_summary
from models.outcomes import load_labels
from pipelines.steps import outcome_step, review_copy_step
from tests.conftest import PREVIOUS_TERM, TERM
from tests.dashboards.dashboard_helpers import FAST_HASHER
from tests.pipelines.step_inputs import run_inputs


def test_scripted_reviews_reach_the_warehouse_and_the_outcomes_of_flagged_pupils(run_copy, tmp_path) -> None:
    settings = get_settings()
    config = load_config(settings.resolved_config_path)
    with open_readonly(run_copy.state_dir) as con:
        flagged = con.execute(
            "SELECT f.pupil_id, f.run_id, f.network_id, f.school_code, s.grade, s.as_of_date FROM flags_pupil_term f "
            "JOIN scores_pupil_term s USING (run_id, pupil_id) WHERE f.term = $t AND f.status IN ('ny', 'fortsat') "
            "ORDER BY s.grade DESC, f.pupil_id", {"t": PREVIOUS_TERM}).df()
        scored = con.execute("SELECT pupil_id FROM scores_pupil_term WHERE term = $t", {"t": PREVIOUS_TERM}).df()
        labels = load_labels(con, "afgangsproeve_krav_ikke_opfyldt")
    store = AppStore(app_db_path(run_copy.state_dir), hasher=FAST_HASHER)
    script = {"bekraeftet": list(flagged["pupil_id"][:3]), "afvist": list(flagged["pupil_id"][3:5])}
    for decision, pupils in script.items():
        for pupil in pupils:
            row = flagged[flagged["pupil_id"] == pupil].iloc[0]
            extra = ({"dismiss_reason": "faglig_vurdering"} if decision == "afvist"
                     else {"responsible": "vera", "next_step_date": date(2025, 5, 1)})
            store.add_review(pupil_id=pupil, term=PREVIOUS_TERM, run_id=row["run_id"], network_id=row["network_id"],
                             school_code=row["school_code"], decision=decision, reviewer="vera",
                             reviewer_role="consultant", **extra)
    # the follow-up duty on the first term's lists: three plans due 1 May, two dismissals
    with open_readonly(run_copy.state_dir) as con:
        all_flags = con.execute("SELECT pupil_id, term, status, as_of_date, network_id FROM flags_pupil_term "
                                "WHERE term = $t", {"t": PREVIOUS_TERM}).df()
    due = flagged["as_of_date"].iloc[0] + pd.Timedelta(days=config.followup.review_within_days)
    early = {f.pupil_id: f for f in follow_up(all_flags, store.all_reviews(), date(2025, 5, 2), 21)}
    late = follow_up(all_flags, store.all_reviews(), (due + pd.Timedelta(days=1)).date(), 21)
    assert {p for p, f in early.items() if f.overdue} == set(script["bekraeftet"])
    assert all(early[p].state == "afvist" for p in script["afvist"])
    unreviewed = set(flagged["pupil_id"]) - set(script["bekraeftet"]) - set(script["afvist"])
    assert {f.pupil_id for f in late if f.state == "ikke_vurderet_i_tide"} == unreviewed
    summary = network_summary("alle", PREVIOUS_TERM, all_flags, late)
    assert (summary.flagged, summary.reviewed, summary.confirmed, summary.dismissed) == (len(flagged), 5, 3, 2)
    assert summary.dismiss_reasons == {"faglig_vurdering": 2} and summary.overdue == len(unreviewed) + 3

    inputs = run_inputs(settings, TERM, run_copy.manifest["run_id"], tmp_path / "run")
    with staged_write(run_copy.state_dir) as session:
        reviews = review_copy_step(session, inputs)
        outcomes = outcome_step(session, inputs)
    assert reviews.entry["reviews"] == 5
    assert outcomes.card_section == tmp_path / "run" / "model_card_outcomes.md" and outcomes.card_section.exists()

    with open_readonly(run_copy.state_dir) as con:
        copied = con.execute("SELECT pupil_id, decision, dismiss_reason, responsible_role, next_step_date "
                             "FROM reviews_decisions ORDER BY review_id").fetchall()
        counts = con.execute("SELECT pupil_group, pupils, adverse FROM flags_outcomes WHERE term = $t AND "
                             "scored_term = $s AND outcome_definition = 'afgangsproeve_krav_ikke_opfyldt@v1'",
                             {"t": TERM, "s": PREVIOUS_TERM}).df()
    assert [c[1] for c in copied] == ["bekraeftet"] * 3 + ["afvist"] * 2
    assert copied[0][3] is None and copied[0][4] == date(2025, 5, 1)  # 'vera' has no account: no role, no name
    assert copied[3][2] == "faglig_vurdering"

    scored_as_of = pd.Timestamp(flagged["as_of_date"].iloc[0]).date()
    arrived = labels[(labels["assessed_date"] > scored_as_of) & (labels["assessed_date"] <= inputs.as_of_date)]
    outcome = dict(zip(arrived["pupil_id"], arrived["outcome"], strict=True))

    def expected(pupils: list[str]) -> tuple[int, int]:
        known = [p for p in pupils if p in outcome]
        return len(known), sum(bool(outcome[p]) for p in known)

    flagged_ids = list(flagged["pupil_id"])
    groups = {
        "flaget": flagged_ids,
        "ikke_flaget": [p for p in scored["pupil_id"] if p not in set(flagged_ids)],
        "bekraeftet": script["bekraeftet"], "afvist": script["afvist"],
        "ikke_vurderet": [p for p in flagged_ids if p not in set(script["bekraeftet"] + script["afvist"])],
    }
    got = {r["pupil_group"]: (r["pupils"], r["adverse"]) for r in counts.to_dict("records")}
    want = {group: expected(pupils) for group, pupils in groups.items() if expected(pupils)[0]}
    assert got == want and got["bekraeftet"][0] > 0
