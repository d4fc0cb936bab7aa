"""A network member's lists: the page of each network and its PDF, Excel and CSV.

The network sees only the flags a UU consultant has confirmed (or, with
``flagging.require_review: false``, every flag not dismissed); the files hold exactly the rows
of the page. Membership is checked per network, and every view and download is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import duckdb
import pandas as pd
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashboards import followup, reads, views
from dashboards.access import Decision, Principal, may_view_network
from dashboards.deps import Ctx, NetworkExporter, NetworkMember, Warehouse
from dashboards.labels import DISMISS_REASONS, FLAG_STATUSES
from dashboards.network_files import MEDIA_TYPES, network_file
from dashboards.web import (
    ID_PATTERN,
    AppContext,
    Forbidden,
    NotFound,
    TermQuery,
    audit,
    audited_term_run,
    local_time,
    names,
    render,
)
from ews.config import safe_file_stem
from flags.followup import network_summary
from flags.followup_pdf import followup_pdf

router = APIRouter(prefix="/netvaerk", tags=["network"])

NetworkId = Annotated[str, Path(max_length=100, pattern=ID_PATTERN)]


@dataclass(frozen=True)
class NetworkRows:
    """What a network member may see of a network's list in a term (after the access check).

    Attributes:
        chosen: The term and run shown (None before any run).
        terms: Every term with a list.
        flags: The network's flag rows of the run (all of them; filter by ``rows``).
        rows: The rows the member may see, with names, classes and the review in force.
        waiting: Flags hidden because they await a UU review.
    """

    chosen: reads.TermRun | None
    terms: list[reads.TermRun]
    flags: pd.DataFrame
    rows: list[dict[str, Any]]
    waiting: int


def network_rows(ctx: AppContext, con: duckdb.DuckDBPyConnection | None, request: Request, principal: Principal,
                 network_id: str, termin: str | None, action: str, detail: str = "") -> NetworkRows:
    """Check membership (auditing a refusal), then the rows of the network's list the member may see.

    Args:
        ctx: The app context.
        con: The read-only warehouse (None before any run).
        request: The request (for the audit log).
        principal: A network member.
        network_id: The network asked for.
        termin: The term asked for (default: the latest).
        action: ``view_list`` or ``export`` (audit).
        detail: Added to the audited purpose (e.g. the file format).

    Returns:
        The rows and counts; the allowed view is audited.

    Raises:
        Forbidden: When the member is not in the network.
    """
    decision = require_member(ctx, request, principal, network_id, action, detail)
    chosen, terms = audited_term_run(ctx, request, principal, con, termin, action=action, object_type="network",
                                     object_id=network_id)
    flags = reads.network_flags(con, chosen.run_id, network_id) if chosen else pd.DataFrame()
    rows: list[dict[str, Any]] = []
    waiting = 0
    if chosen is not None and not flags.empty:
        latest = ctx.store.latest_reviews(chosen.term)
        all_rows = views.list_rows(flags, latest, {}, ctx.require_review())
        visible = []
        for row in all_rows:
            if row["status"] == "ikke_laengere":
                if row["review"] is not None and row["review"]["active"] and row.get("in_network") is not False:
                    visible.append(row)
            elif row["active"]:
                visible.append(row)
            elif row["review"] is None:
                waiting += 1
        identities = names(ctx, [r["pupil_id"] for r in visible], con)
        rows = views.list_rows(flags[flags["pupil_id"].isin([r["pupil_id"] for r in visible])],
                               latest, identities, ctx.require_review())
    audit(ctx, request, principal, action, True, object_type="network", object_id=network_id,
          run_id=chosen.run_id if chosen else None, purpose=decision.purpose + detail)
    return NetworkRows(chosen, terms, flags, rows, waiting)


def require_member(ctx: AppContext, request: Request, principal: Principal, network_id: str, action: str,
                   detail: str = "") -> Decision:
    """The membership check of a network's pages, before anything is looked up; a refusal is audited.

    Raises:
        Forbidden: When the member is not in the network.
    """
    decision = may_view_network(principal, network_id)
    if not decision.allowed:
        audit(ctx, request, principal, action, False, object_type="network", object_id=network_id,
              purpose=decision.purpose + detail)
        raise Forbidden("Du har kun adgang til listerne for dine egne netværk.")
    return decision


@router.get("", response_class=HTMLResponse)
def my_networks(request: Request, ctx: Ctx, principal: NetworkMember) -> Response:
    """The member's networks (straight to the list when there is one)."""
    if len(principal.networks) == 1:
        return RedirectResponse(f"/netvaerk/{quote(next(iter(principal.networks)))}", status_code=303)
    config = ctx.config()
    labels = {n.id: n.name for n in config.networks} if config else {}
    return render(ctx, request, "networks.html", {
        "networks": [(n, labels.get(n, n)) for n in sorted(principal.networks)]})


@router.get("/{network_id}", response_class=HTMLResponse)
def network_list(request: Request, ctx: Ctx, principal: NetworkMember, con: Warehouse, network_id: NetworkId,
                 termin: TermQuery = None) -> Response:
    """The network's list of a term: new, still and no longer flagged, with UU's decisions."""
    shown = network_rows(ctx, con, request, principal, network_id, termin, "view_list")
    config = ctx.config()
    network = next((n for n in config.networks if n.id == network_id), None) if config else None
    states = followup.follow_ups(ctx, shown.flags) if shown.chosen is not None else []
    visible = {r["pupil_id"] for r in shown.rows}
    identities = {r["pupil_id"]: {"first_name": r.get("name")} for r in shown.rows}
    users = {str(u["username"]): str(u["display_name"]) for u in ctx.store.list_users()}
    overdue = followup.overdue_rows(states, shown.flags, identities, users, named=visible)
    return render(ctx, request, "network_list.html", {
        "overdue": overdue, "followup_counts": followup.state_counts(states),
        "risk_outcome": views.risk_outcome(con, shown.flags),
        "hidden_overdue": sum(1 for s in states if s.overdue and s.pupil_id not in visible),
        "review_days": followup.review_within_days(ctx), "followup_day": followup.today(ctx).strftime("%d-%m-%Y"),
        "network_id": network_id, "network": network, "term_run": shown.chosen, "terms": shown.terms,
        "rows": shown.rows, "waiting": shown.waiting, "require_review": ctx.require_review(),
        "formats": [("pdf", "PDF"), ("xlsx", "Excel"), ("csv", "CSV")],
        "sections": [(status, FLAG_STATUSES[status], [r for r in shown.rows if r["status"] == status])
                     for status in ("ny", "fortsat", "ikke_laengere")]})


@router.get("/{network_id}/opfoelgning.pdf")
def network_followup_summary(request: Request, ctx: Ctx, principal: NetworkExporter, con: Warehouse,
                             network_id: NetworkId, termin: TermQuery = None) -> Response:
    """The network's termly follow-up summary (PDF, Danish): counts only, never a name; audited."""
    shown = network_rows(ctx, con, request, principal, network_id, termin, "export", " (opfølgning, pdf)")
    config = ctx.config()
    if config is None or not any(n.id == network_id for n in config.networks):
        raise NotFound("Kommunens konfiguration kender ikke netværket.")
    chosen = shown.chosen
    term = chosen.term if chosen else "ingen termin"
    states = followup.follow_ups(ctx, shown.flags) if chosen is not None else []
    summary = network_summary(network_id, term, shown.flags if chosen is not None else _EMPTY_FLAGS, states)
    manifest = reads.read_manifest(ctx.state_dir, chosen.run_id) if chosen else None
    content = followup_pdf(summary, config, followup.today(ctx), followup.review_within_days(ctx),
                           run_id=chosen.run_id if chosen else None, manifest=manifest,
                           dismiss_labels=DISMISS_REASONS)
    filename = f"opfoelgning_{safe_file_stem(network_id)}_{safe_file_stem(term)}.pdf"
    return Response(content=content, media_type=MEDIA_TYPES["pdf"],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


_EMPTY_FLAGS = pd.DataFrame({"pupil_id": pd.Series(dtype=object), "status": pd.Series(dtype=object)})


@router.get("/{network_id}/eksport.{fmt}")
def network_export(request: Request, ctx: Ctx, principal: NetworkExporter, con: Warehouse, network_id: NetworkId,
                   fmt: Annotated[str, Path(max_length=10)], termin: TermQuery = None) -> Response:
    """The network's list as PDF, Excel or CSV: only what the network's page shows, audited."""
    require_member(ctx, request, principal, network_id, "export", f" ({fmt})")
    if fmt not in MEDIA_TYPES:
        audit(ctx, request, principal, "export", False, object_type="network", object_id=network_id,
              purpose="Ukendt filformat", status=404)
        raise NotFound("Listen findes som PDF, Excel (xlsx) og CSV.")
    shown = network_rows(ctx, con, request, principal, network_id, termin, "export", f" ({fmt})")
    config = ctx.config()
    if config is None or not any(n.id == network_id for n in config.networks):
        raise NotFound("Kommunens konfiguration kender ikke netværket.")
    chosen = shown.chosen
    manifest = reads.read_manifest(ctx.state_dir, chosen.run_id) if chosen else None
    reviewed_on = {r["pupil_id"]: local_time(r["review"]["reviewed_at"]).split(" ")[0]
                   for r in shown.rows if r["review"]}
    content, filename = network_file(
        fmt, config, network_id, chosen.term if chosen else "ingen termin", shown.flags, shown.rows,
        reviewed_on, shown.waiting, ctx.require_review(), manifest)
    return Response(content=content, media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
