"""Exclusion from screening, for admins (``ews.exclusions``): the list and the form to add or lift one.

The CPR number is typed into a password field, hashed with the pseudonymisation key at once and
dropped; only the pseudonym, a reason code and the dates are kept. Every change is audited (the
audit entry names the pseudonym, never the CPR number).
"""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashboards.deps import Admin, Ctx
from dashboards.web import ChoiceForm, CsrfForm, PasswordForm, TextQuery, audit, check_csrf, render
from ews.exclusions import REASONS, ExclusionError, ExclusionStore, pupil_id_from_cpr

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/udtagelser", response_class=HTMLResponse)
def exclusions_page(request: Request, ctx: Ctx, _principal: Admin, besked: TextQuery = None) -> Response:
    """The exclusions (pseudonyms, reasons, dates) and the forms to add or lift one."""
    entries = ExclusionStore(ctx.state_dir).entries()
    return render(ctx, request, "admin_exclusions.html", {
        "entries": entries, "reasons": REASONS, "message": besked, "today": ctx.settings.today_date().isoformat()})


@router.post("/udtagelser")
def exclusions_action(request: Request, ctx: Ctx, principal: Admin, csrf_token: CsrfForm = "",
                      action: ChoiceForm = "", cpr: PasswordForm = "", reason: ChoiceForm = "",
                      excluded_on: ChoiceForm = "", exclusion_id: ChoiceForm = "") -> Response:
    """Exclude a pupil (CPR number, reason code, date) or lift an exclusion."""
    check_csrf(principal, csrf_token)
    store = ExclusionStore(ctx.state_dir)
    pupil_id: str | None = None
    try:
        if action == "exclude":
            pupil_id = pupil_id_from_cpr(cpr, ctx.settings.key_bytes())
            del cpr
            on = date.fromisoformat(excluded_on) if excluded_on else ctx.settings.today_date()
            entry = store.add(pupil_id, reason, on, principal.username)
            message = (f"Eleven ({pupil_id}) er taget ud af screeningen fra {entry.excluded_on}. "
                       "Næste kørsel udelader eleven og trækker et åbent flag tilbage.")
            purpose = f"Udtaget af screeningen: {entry.reason} fra {entry.excluded_on}"
        elif action == "lift":
            number = int(exclusion_id)
            found = next((e for e in store.entries() if e.exclusion_id == number), None)
            if found is None:
                raise ExclusionError(f"no exclusion with id {number}")
            pupil_id = found.pupil_id
            store.lift(number, ctx.settings.today_date(), principal.username)
            message = f"Udtagelse {number} er ophævet; eleven screenes igen fra næste kørsel."
            purpose = f"Udtagelse {number} ophævet"
        else:
            raise ExclusionError(f"unknown action '{action}'")
    except (ExclusionError, ValueError) as exc:
        text = str(exc) if isinstance(exc, ExclusionError) else "a date like 2026-01-31 or an exclusion id"
        audit(ctx, request, principal, "exclude", False, object_type="pupil", object_id=pupil_id,
              purpose=f"{action}: {text}"[:200], status=303)
        return RedirectResponse(f"/admin/udtagelser?besked={quote('Ikke udført: ' + text)}", status_code=303)
    audit(ctx, request, principal, "exclude", True, object_type="pupil", object_id=pupil_id, purpose=purpose,
          status=303)
    return RedirectResponse(f"/admin/udtagelser?besked={quote(message)}", status_code=303)
