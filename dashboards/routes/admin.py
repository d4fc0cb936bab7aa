"""User administration for admins: accounts, roles, assignments (every change is audited)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashboards.deps import Admin, Ctx
from dashboards.labels import STORE_ERRORS_DA
from dashboards.store import MAX_DISPLAY_NAME, MAX_USERNAME, StoreError
from dashboards.web import ChoiceForm, CsrfForm, PasswordForm, TextForm, TextQuery, audit, check_csrf, render

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/brugere", response_class=HTMLResponse)
def admin_users(request: Request, ctx: Ctx, _principal: Admin, besked: TextQuery = None) -> Response:
    """Accounts with their roles and assignments, and the forms to change them."""
    config = ctx.config()
    return render(ctx, request, "admin_users.html", {
        "users": ctx.store.list_users(), "message": besked,
        "networks": [(n.id, n.name) for n in config.networks] if config else [],
        "schools": [(s.code, s.name) for s in config.schools] if config else []})


@router.post("/brugere")
def admin_action(request: Request, ctx: Ctx, principal: Admin, csrf_token: CsrfForm = "",
                 action: ChoiceForm = "", username: str = Form("", max_length=MAX_USERNAME),
                 display_name: str = Form("", max_length=MAX_DISPLAY_NAME), role: ChoiceForm = "",
                 password: PasswordForm = "", target: TextForm = "") -> Response:
    """Add a user, change assignments, disable or enable, lift a login lockout, or set a password."""
    check_csrf(principal, csrf_token)
    store = ctx.store
    try:
        if action == "add":
            store.add_user(username, display_name, role, password or None)
            message = f"Brugeren {username} er oprettet."
        elif action in ("assign", "unassign"):
            kind, _, value = target.partition(":")
            if action == "assign":
                store.assign(username, kind, value)
            else:
                store.unassign(username, kind, value)
            message = f"Tildelingen for {username} er ændret."
        elif action in ("disable", "enable"):
            if username == principal.username:
                raise StoreError("you cannot disable your own account", "own_account")
            store.set_active(username, action == "enable")
            message = f"Brugeren {username} er {'genåbnet' if action == 'enable' else 'spærret'}."
        elif action == "unlock":
            store.unlock(username, by=principal.username)
            message = f"Loginspærringen for {username} er ophævet."
        elif action == "password":
            store.set_password(username, password)
            message = f"Adgangskoden for {username} er skiftet."
        else:
            raise StoreError(f"unknown action '{action}'", "unknown_action")
    except StoreError as exc:
        message = f"Ikke udført: {STORE_ERRORS_DA.get(exc.code, STORE_ERRORS_DA['invalid'])}"
        audit(ctx, request, principal, "admin", False, object_type="user", object_id=username or None,
              purpose=f"{action} {target}".strip(), status=303)
    else:
        audit(ctx, request, principal, "admin", True, object_type="user", object_id=username or None,
              purpose=f"{action} {target}".strip(), status=303)
    return RedirectResponse(f"/admin/brugere?besked={quote(message)}", status_code=303)
