"""Login, logout, the health check and the start page (which sends each role to its own page)."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from dashboards.deps import Ctx, CurrentUser
from dashboards.store import MAX_USERNAME
from dashboards.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfForm,
    CsrfRefused,
    Forbidden,
    NextQuery,
    PasswordForm,
    audit,
    check_csrf,
    client_of,
    render,
    safe_next,
    set_cookie,
)

router = APIRouter(tags=["auth"])


@router.get("/healthz", response_class=PlainTextResponse)
def healthz() -> str:
    """Liveness check (no login)."""
    return "ok"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: Ctx, next: NextQuery = None) -> Response:
    """The login form, with a double-submit CSRF token."""
    if request.state.principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    token = secrets.token_urlsafe(24)
    response = render(ctx, request, "login.html", {"login_csrf": token, "next": safe_next(next), "error": None})
    set_cookie(ctx, response, LOGIN_CSRF_COOKIE, token)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, ctx: Ctx, username: str = Form("", max_length=MAX_USERNAME),
          password: PasswordForm = "", login_csrf: CsrfForm = "", next: str = Form("/", max_length=2000)) -> Response:
    """Check the password (with lockouts per user name and per client address) and start a session."""
    if ctx.dashboard.auth_mode == "sso":
        raise Forbidden("Appen bruger kommunens single sign-on; der er ingen lokal adgangskode.")
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not login_csrf or not hmac.compare_digest(cookie, login_csrf):
        raise CsrfRefused("Loginformularen er udløbet. Genindlæs siden, og prøv igen.", action="login",
                          username=username or None)
    since = ctx.store.clock() - timedelta(minutes=ctx.dashboard.login_window_minutes)
    client = client_of(request)
    user = None
    locked = ctx.store.failed_logins_since(username, since) >= ctx.dashboard.login_max_failures
    throttled = client is not None and (ctx.store.failed_logins_of_client(client, since)
                                        >= ctx.dashboard.login_max_failures_per_client)
    if not locked and not throttled:
        user = ctx.store.verify_login(username, password)
    if user is None:
        reason = ("For mange fejlede login fra denne adresse" if throttled
                  else "Kontoen er spærret efter for mange fejlede login" if locked
                  else "Forkert brugernavn eller adgangskode")
        ctx.store.record_audit(action="login", outcome="denied", username=username or None, purpose=reason,
                               http_status=429 if throttled else 401, path="/login", client=client)
        token = secrets.token_urlsafe(24)
        response = render(ctx, request, "login.html", {
            "login_csrf": token, "next": safe_next(next),
            "error": f"For mange fejlede forsøg herfra. Vent {ctx.dashboard.login_window_minutes} minutter, "
                     "og prøv igen." if throttled
                     else "Forkert brugernavn eller adgangskode, eller kontoen er spærret."},
            status=429 if throttled else 401)
        set_cookie(ctx, response, LOGIN_CSRF_COOKIE, token)
        return response
    session_token, _session = ctx.store.create_session(user.user_id, "local")
    ctx.store.record_audit(action="login", outcome="allowed", username=user.username, role=user.role,
                           http_status=303, path="/login", client=client)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(ctx, response, SESSION_COOKIE, session_token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx, principal: CurrentUser, csrf_token: CsrfForm = "") -> Response:
    """End the session."""
    check_csrf(principal, csrf_token)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        ctx.store.end_session(token)
    audit(ctx, request, principal, "logout", True, status=303)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(principal: CurrentUser) -> Response:
    """Send each role to its own start page."""
    target = {"network_member": "/netvaerk", "consultant": "/vejleder", "steward": "/drift",
              "admin": "/admin/brugere"}[principal.role]
    return RedirectResponse(target, status_code=303)
