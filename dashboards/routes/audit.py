"""The audit log, for stewards and admins (every view of it is itself logged)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dashboards.deps import AuditReader, Ctx
from dashboards.labels import OUTCOMES
from dashboards.web import render

router = APIRouter(tags=["audit"])


@router.get("/revision", response_class=HTMLResponse)
def audit_log(request: Request, ctx: Ctx, _principal: AuditReader, bruger: str | None = None,
              objekt: str | None = None, udfald: str | None = None, foer: int | None = None) -> Response:
    """The latest 200 entries, filtered by user, object and outcome, and whether the chain is intact."""
    entries = ctx.store.read_audit(limit=200, username=bruger, object_id=objekt,
                                   outcome=udfald if udfald in OUTCOMES else None, before_id=foer)
    return render(ctx, request, "audit.html", {
        "entries": entries, "bruger": bruger or "", "objekt": objekt or "", "udfald": udfald or "",
        "chain_broken_at": ctx.store.verify_audit_chain(),
        "older": entries[-1]["audit_id"] if len(entries) == 200 else None})
