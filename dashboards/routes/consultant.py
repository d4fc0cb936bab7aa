"""The UU consultant's list: every flag at the schools assigned to them, with review state."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dashboards import reads, views
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
    if chosen is not None and not flags.empty:
        latest = ctx.store.latest_reviews(chosen.term)
        identities = names(ctx, flags["pupil_id"].tolist(), con)
        rows = views.list_rows(flags, latest, identities, ctx.require_review())
        if vis == "afventer":
            rows = [r for r in rows if r["review"] is None and r["status"] != "ikke_laengere"]
    withdrawn = _withdrawn_flags(ctx, con, sorted(principal.schools))
    audit(ctx, request, principal, "view_list", True, object_type="school",
          object_id=",".join(sorted(principal.schools)), run_id=chosen.run_id if chosen else None,
          purpose="UU-vejleders flag for tildelte skoler")
    return render(ctx, request, "consultant_list.html", {
        "term_run": chosen, "terms": terms, "rows": rows, "vis": vis, "schools": sorted(principal.schools),
        "withdrawn": withdrawn})


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
