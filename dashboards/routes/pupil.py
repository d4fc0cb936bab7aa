"""The pupil page (network members and UU consultants, per flag) and the review form."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

import duckdb
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashboards import reads, views
from dashboards.access import Decision, Principal, effective_review, may_review, may_view_pupil
from dashboards.deps import Ctx, PupilViewer, Reviewer, Warehouse
from dashboards.labels import DECISIONS
from dashboards.store import StoreError
from dashboards.web import (
    PUPIL_ID_PATTERN,
    AppContext,
    ChoiceForm,
    ChoiceQuery,
    CsrfForm,
    DateForm,
    Forbidden,
    TermForm,
    TermQuery,
    TextForm,
    TextQuery,
    audit,
    audited_term_run,
    check_csrf,
    names,
    render,
)

router = APIRouter(prefix="/elev", tags=["pupil"])

PupilId = Annotated[str, Path(pattern=PUPIL_ID_PATTERN)]

REVIEW_ERRORS = {
    "reason": "Vælg en begrundelse, når du afviser et flag (og kun da).",
    "step": "Vælg et trin på indsatstrappen, når beslutningen er et trin (og kun da).",
    "decision": "Vælg en beslutning.",
    "followup": "Vælg både en ansvarlig (fra netværket eller UU-vejlederen) og en dato for næste skridt, "
                "og kun ved en bekræftelse.",
}


@router.get("/{pupil_id}", response_class=HTMLResponse)
def pupil_page(request: Request, ctx: Ctx, principal: PupilViewer, con: Warehouse, pupil_id: PupilId,
               termin: TermQuery = None, gemt: Annotated[int, Query(ge=0, le=1)] = 0,
               fejl: ChoiceQuery = None, beslutning: ChoiceQuery = None, begrundelse: ChoiceQuery = None,
               trin: TextQuery = None) -> Response:
    """A pupil's flag, reasons, trajectory, (for consultants) the explanation, and the reviews."""
    if con is None:
        audit(ctx, request, principal, "view_pupil", False, object_type="pupil", object_id=pupil_id,
              purpose="Ingen data")
        raise Forbidden("Du har ikke adgang til denne elev.")
    chosen, terms = audited_term_run(ctx, request, principal, con, termin, action="view_pupil", object_type="pupil",
                                     object_id=pupil_id)
    flag, review, decision = _visible_flag(ctx, con, principal, chosen, pupil_id)
    if not decision.allowed:
        audit(ctx, request, principal, "view_pupil", False, object_type="pupil", object_id=pupil_id,
              run_id=chosen.run_id if chosen else None, purpose=decision.purpose)
        raise Forbidden("Du har ikke adgang til denne elev.")
    page = _pupil_context(ctx, con, principal, flag, chosen, review)
    audit(ctx, request, principal, "view_pupil", True, object_type="pupil", object_id=pupil_id,
          run_id=chosen.run_id, purpose=decision.purpose)
    identity = names(ctx, [pupil_id], con).get(pupil_id, {})
    history = [views.review_view(r) for r in ctx.store.reviews_of_pupil(pupil_id)]
    users = {u["username"]: u["display_name"] for u in ctx.store.list_users()}
    config = ctx.config()
    visible_terms = [t for t in terms if t.term == chosen.term
                     or _visible_flag(ctx, con, principal, t, pupil_id)[2].allowed]
    return render(ctx, request, "pupil.html", {
        **page, "pupil_id": pupil_id, "identity": identity, "term_run": chosen, "terms": visible_terms,
        "history": history, "users": users, "saved": bool(gemt), "error": REVIEW_ERRORS.get(fejl or ""),
        "chosen": {"decision": beslutning or "", "reason": begrundelse or "", "step": trin or ""},
        "next_pending": _next_pending(ctx, con, principal, chosen, pupil_id),
        "path_help": views.PATH_PATTERN_HELP_DA.get(str(flag.get("path_pattern"))),
        "steps": [t.step for t in config.tiers] if config else [],
        "responsible_choices": responsible_choices(ctx, flag, principal),
        "can_review": may_review(principal, flag).allowed, "purpose": decision.purpose})


def responsible_choices(ctx: AppContext, flag: dict[str, Any], principal: Principal) -> list[tuple[str, str]]:
    """Who may be responsible for a confirmed flag's follow-up: the UU consultant or a network member.

    Returns:
        (user name, label) of the reviewing consultant and every active member of the pupil's network.
    """
    choices = [(principal.username, f"{principal.user.display_name} (UU-vejleder)")]
    network = str(flag.get("network_id") or "")
    for user in ctx.store.list_users():
        assigned = {a.strip() for a in str(user.get("assigned") or "").split(",") if a.strip()}
        if user["active"] and user["role"] == "network_member" and f"network:{network}" in assigned:
            choices.append((str(user["username"]), f"{user['display_name']} (netværket)"))
    return choices


def _visible_flag(ctx: AppContext, con: duckdb.DuckDBPyConnection, principal: Principal,
                  chosen: reads.TermRun | None, pupil_id: str
                  ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Decision]:
    """The pupil's row in a term that this person may see, its review and the access decision.

    A pupil who moved network (or school) between terms has a row per network in the run that
    follows the move; the new network's members see the row on its list, the old network's
    members the ``ikke_laengere`` row only while a confirmed review applies. The first row that
    the person may see is shown; when none is, the decision on the first row says why.
    """
    if chosen is None:
        return None, None, may_view_pupil(principal, None, None, ctx.require_review())
    rows = reads.pupil_flags(con, chosen.run_id, pupil_id)
    latest = ctx.store.latest_reviews(chosen.term).get(pupil_id)
    first: tuple[dict[str, Any] | None, dict[str, Any] | None, Decision] | None = None
    for row in rows:
        review = effective_review(row, latest)
        decision = may_view_pupil(principal, row, review, ctx.require_review())
        if decision.allowed:
            return row, review, decision
        first = first or (row, review, decision)
    return first or (None, None, may_view_pupil(principal, None, None, ctx.require_review()))


def _next_pending(ctx: AppContext, con: duckdb.DuckDBPyConnection, principal: Principal,
                  chosen: reads.TermRun, pupil_id: str) -> dict[str, Any] | None:
    """For a UU consultant: the next pupil on their list who awaits review (after this one, wrapping)."""
    if principal.role != "consultant" or not principal.schools:
        return None
    flags = reads.school_flags(con, chosen.run_id, sorted(principal.schools))
    rows = views.list_rows(flags, ctx.store.latest_reviews(chosen.term), {}, ctx.require_review())
    order = [r["pupil_id"] for r in rows if r["status"] != "ikke_laengere" and r["review"] is None]
    others = [p for p in order if p != pupil_id]
    if not others:
        return None
    after = order[order.index(pupil_id) + 1:] if pupil_id in order else []
    following = next((p for p in after if p != pupil_id), others[0])
    identity = names(ctx, [following], con).get(following, {})
    name = " ".join(p for p in (identity.get("first_name"), identity.get("last_name")) if p) or "næste elev"
    return {"pupil_id": following, "name": name, "remaining": len(others)}


def _pupil_context(ctx: AppContext, con: duckdb.DuckDBPyConnection, principal: Principal, flag: dict[str, Any],
                   chosen: reads.TermRun, review: dict[str, Any] | None) -> dict[str, Any]:
    config = ctx.config()
    full = principal.role == "consultant"
    history = reads.pupil_trajectory(con, flag["pupil_id"], chosen.term)
    trajectory_chart, trajectory_rows = views.trajectory(history, config)
    context: dict[str, Any] = {
        "flag": flag, "full": full, "review": views.review_view(review, review is not None
                                                               and review["term"] != flag["term"]),
        "tier_step": flag.get("tier_step") or views.tier_step(config, flag.get("tier")),
        "trajectory_label": views.trajectory_label(flag.get("trajectory")),
        "path_label": views.path_pattern_label(flag.get("path_pattern")),
        "disciplines": views.discipline_labels(flag.get("discipline_list") or []),
        "trajectory_chart": trajectory_chart, "trajectory_rows": trajectory_rows,
        "model": reads.model_record(con, flag.get("model_id")),
        "waterfall_chart": None, "waterfall_rows": [], "comparison": [],
    }
    if full:
        explanation = reads.pupil_explanation(con, chosen.run_id, flag["pupil_id"])
        chart, rows = views.waterfall(explanation)
        context.update(waterfall_chart=chart, waterfall_rows=rows,
                       comparison=views.comparison(con, flag, rows))
    try:
        runs, _sources = reads.read_run(ctx.state_dir, chosen.run_id)
        context["run"] = reads._records(runs)[0] if len(runs) else None
        context["runlog_busy"] = False
    except reads.RunLogBusyError:
        context["run"], context["runlog_busy"] = None, True
    return context


@router.post("/{pupil_id}/vurdering")
def record_review(request: Request, ctx: Ctx, principal: Reviewer, con: Warehouse, pupil_id: PupilId,
                  csrf_token: CsrfForm = "", term: TermForm = "", decision: ChoiceForm = "",
                  dismiss_reason: ChoiceForm = "", step: TextForm = "", responsible: ChoiceForm = "",
                  next_step_date: DateForm = "") -> Response:
    """Store a consultant's decision on a flag (append-only) and go back to the pupil page."""
    check_csrf(principal, csrf_token)
    chosen, _terms = audited_term_run(ctx, request, principal, con, term or None, action="review",
                                      object_type="pupil", object_id=pupil_id)
    rows = reads.pupil_flags(con, chosen.run_id, pupil_id) if chosen else []
    flag = next((row for row in rows if may_review(principal, row).allowed), rows[0] if rows else None)
    allowed = may_review(principal, flag)
    if not allowed.allowed or chosen is None or flag is None:
        audit(ctx, request, principal, "review", False, object_type="pupil", object_id=pupil_id,
              purpose=allowed.purpose)
        raise Forbidden("Du kan ikke vurdere denne elevs flag.")
    config = ctx.config()
    target = f"/elev/{quote(pupil_id)}?termin={quote(chosen.term, safe='')}"
    try:
        due = date.fromisoformat(next_step_date) if next_step_date else None
    except ValueError:
        return RedirectResponse(f"{target}&fejl=followup#vurdering", status_code=303)
    try:
        ctx.store.add_review(
            pupil_id=pupil_id, term=chosen.term, run_id=chosen.run_id, network_id=flag.get("network_id"),
            school_code=flag.get("school_code"), decision=decision, reviewer=principal.username,
            reviewer_role=principal.role, dismiss_reason=dismiss_reason or None, step=step or None,
            allowed_steps=[t.step for t in config.tiers] if config else None,
            responsible=responsible or None, next_step_date=due,
            allowed_responsible=[u for u, _label in responsible_choices(ctx, flag, principal)])
    except StoreError as exc:
        code = exc.code if exc.code in REVIEW_ERRORS else "decision"
        # The choices go back to the form (codes and a step of the config: no text about the child).
        kept = "".join(f"&{key}={quote(value, safe='')}" for key, value in (
            ("beslutning", decision), ("begrundelse", dismiss_reason), ("trin", step)) if value)
        return RedirectResponse(f"{target}&fejl={code}{kept}#vurdering", status_code=303)
    audit(ctx, request, principal, "review", True, object_type="pupil", object_id=pupil_id,
          run_id=chosen.run_id, purpose=f"{allowed.purpose}: {DECISIONS[decision]}", status=303)
    return RedirectResponse(f"{target}&gemt=1#vurdering", status_code=303)
