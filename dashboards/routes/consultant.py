"""The UU consultant's list: every flag at the schools assigned to them, with review state."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dashboards import followup, reads, views
from dashboards.deps import Consultant, Ctx, Warehouse
from dashboards.web import ChoiceQuery, TermQuery, audit, audited_term_run, names, render

router = APIRouter(tags=["consultant"])


@router.get("/vejleder", response_class=HTMLResponse)
def consultant_list(request: Request, ctx: Ctx, principal: Consultant, con: Warehouse, termin: TermQuery = None,
                    vis: ChoiceQuery = "alle") -> Response:
    """The flags of the consultant's schools (``vis=afventer``: those awaiting review)."""
    chosen, terms = audited_term_run(ctx, request, principal, con, termin, action="view_list", object_type="school",
                                     object_id=",".join(sorted(principal.schools)))
    flags = (reads.school_flags(con, chosen.run_id, sorted(principal.schools))
             if chosen and principal.schools else pd.DataFrame())
    rows: list[dict[str, Any]] = []
    states: list[Any] = []
    overdue: list[dict[str, Any]] = []
    counts = review_counts([])
    if chosen is not None and not flags.empty:
        latest = ctx.store.latest_reviews(chosen.term)
        identities = names(ctx, flags["pupil_id"].tolist(), con)
        rows = views.list_rows(flags, latest, identities, ctx.require_review())
        counts = review_counts(rows)
        if vis == "afventer":
            rows = [r for r in rows if r["review"] is None and r["status"] != "ikke_laengere"]
        states = followup.follow_ups(ctx, flags)
        users = {str(u["username"]): str(u["display_name"]) for u in ctx.store.list_users()}
        overdue = followup.overdue_rows(states, flags, identities, users)
        if vis == "afventer":  # the filter shows only flags awaiting review, overdue ones too
            overdue = [r for r in overdue if r["state"] == "ikke_vurderet_i_tide"]
    withdrawn = _withdrawn_flags(ctx, con, sorted(principal.schools))
    audit(ctx, request, principal, "view_list", True, object_type="school",
          object_id=",".join(sorted(principal.schools)), run_id=chosen.run_id if chosen else None,
          purpose="UU-vejleders flag for tildelte skoler")
    return render(ctx, request, "consultant_list.html", {
        "term_run": chosen, "terms": terms, "rows": rows, "vis": vis, "schools": sorted(principal.schools),
        "risk_outcome": views.risk_outcome(con, flags),
        "overdue": overdue, "followup_counts": followup.state_counts(states), "hidden_overdue": 0,
        "review_days": followup.review_within_days(ctx), "followup_day": followup.today(ctx).strftime("%d-%m-%Y"),
        "counts": counts, "withdrawn": withdrawn})


def review_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Flags on the list by review state.

    Returns:
        ``afventer`` (awaiting review), ``bekraeftet`` (any active decision), ``afvist`` and
        ``ikke_laengere`` (pupils no longer flagged).
    """
    on_list = [r for r in rows if r["status"] != "ikke_laengere"]
    return {
        "afventer": sum(r["review"] is None for r in on_list),
        "bekraeftet": sum(r["review"] is not None and r["review"]["active"] for r in on_list),
        "afvist": sum(r["review"] is not None and not r["review"]["active"] for r in on_list),
        "ikke_laengere": len(rows) - len(on_list),
    }


def _withdrawn_flags(ctx: Ctx, con: Warehouse, schools: list[str]) -> list[dict[str, Any]]:
    """Flags withdrawn because the pupil was taken out of screening (``ews.exclusions``), newest first."""
    from ews.exclusions import WITHDRAWN_TABLE
    from ews.warehouse import table_exists

    if con is None or not schools or not table_exists(con, WITHDRAWN_TABLE):
        return []
    frame = con.execute(
        f"SELECT pupil_id, flagged_term, withdrawn_term, school_code, excluded_on FROM {WITHDRAWN_TABLE} "
        "WHERE list_contains($schools, school_code) ORDER BY withdrawn_term DESC, excluded_on DESC, pupil_id",
        {"schools": schools}).df()
    if frame.empty:
        return []
    identities = names(ctx, frame["pupil_id"].tolist(), con)
    return [{**row, "name": identities.get(row["pupil_id"], {}).get("name")} for row in frame.to_dict("records")]
