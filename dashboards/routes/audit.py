"""The audit log, for stewards and admins (every view of it is itself logged)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dashboards.deps import AuditReader, Ctx
from dashboards.labels import OUTCOMES
from dashboards.web import ChoiceQuery, PageId, TextQuery, render

router = APIRouter(tags=["audit"])

#: Up to this many rows the page verifies the chains as it opens (about 30 µs a row); beyond
#: it the page shows the last ``ews audit verify`` only, which a scheduler should run.
LIVE_CHECK_ROWS = 50_000


@router.get("/revision", response_class=HTMLResponse)
def audit_log(request: Request, ctx: Ctx, _principal: AuditReader, bruger: TextQuery = None,
              objekt: TextQuery = None, udfald: ChoiceQuery = None, foer: PageId = None) -> Response:
    """The latest 200 entries, filtered; the chain checked now and the last recorded ``ews audit verify``."""
    entries = ctx.store.read_audit(limit=200, username=bruger, object_id=objekt,
                                   outcome=udfald if udfald in OUTCOMES else None, before_id=foer)
    rows = ctx.store.chained_rows()
    report = ctx.store.verify_chains() if rows <= LIVE_CHECK_ROWS else None
    last = ctx.store.last_verification()
    return render(ctx, request, "audit.html", {
        "entries": entries, "bruger": bruger or "", "objekt": objekt or "", "udfald": udfald or "",
        "report": report, "rows": rows,
        "problem": report.first_problem.describe() if report and report.first_problem else None,
        "last_verification": last,
        "older": entries[-1]["audit_id"] if len(entries) == 200 else None})
