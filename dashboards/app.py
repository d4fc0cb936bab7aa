"""The review app: FastAPI with server-rendered Jinja2 pages in Danish.

Why FastAPI and Jinja2: both are already in the dependency tree (Prefect needs FastAPI), the
pages work without JavaScript and without a CDN, and forms plus server-side sessions make CSRF
protection and auditing simple to get right. Streamlit (also resolvable) was not chosen: it
has no real per-request access control, sessions or CSRF, and loads its front end as a
JavaScript bundle.

Layout: this module builds the app (middleware for sessions, SSO and security headers, error
pages) and includes one ``APIRouter`` per area from :mod:`dashboards.routes` (auth, network,
consultant, pupil, steward, audit, admin). Who the user is, which role a route needs (a refusal
is audited by the dependency itself) and the read-only warehouse are typed dependencies in
:mod:`dashboards.deps`; what the routers share is in :mod:`dashboards.web`.

Concurrency: every request opens the live warehouse read-only as a fresh snapshot
(:mod:`dashboards.snapshot`), which a run never locks (it writes a staged copy and swaps it
in). The app's own state is in ``app.sqlite`` (WAL), which the pipeline only reads. The run log
is read briefly with retries. So pages keep answering and reviews are stored during a run.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dashboards.access import Principal
from dashboards.charts import fmt_number, fmt_pct
from dashboards.labels import (
    AUDIT_ACTIONS,
    DECISIONS,
    DISMISS_REASONS,
    FLAG_STATUSES,
    OUTCOMES,
    ROLES,
    RUN_STATUSES,
)
from dashboards.routes import ROUTERS
from dashboards.settings import DashboardConfigError, DashboardSettings
from dashboards.store import AppStore, app_db_path
from dashboards.web import (
    PACKAGE_DIR,
    SESSION_COOKIE,
    AppContext,
    CsrfRefused,
    Forbidden,
    LoginRequired,
    NotFound,
    attempted_object,
    audit,
    fmt_date,
    local_time,
    render,
    route_template,
    set_cookie,
)
from ews.settings import Settings, get_settings
from ews.terms import term_name_da
from flags.labels import list_basis_da

__all__ = ["create_app", "fmt_date", "local_time"]

log = logging.getLogger(__name__)

#: Danish titles of error statuses (every error answers with a Danish page and the headers).
ERROR_TITLES = {400: "Ugyldig forespørgsel", 401: "Ikke logget ind", 403: "Ingen adgang", 404: "Ikke fundet",
                405: "Ikke tilladt", 413: "For stor forespørgsel", 429: "For mange forsøg",
                500: "Der skete en fejl"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(
    settings: Settings | None = None,
    dashboard: DashboardSettings | None = None,
    store: AppStore | None = None,
) -> FastAPI:
    """Build the review app.

    Args:
        settings: Paths (default: from the environment).
        dashboard: Authentication and session settings (default: from the environment).
        store: The app store (default: ``state_dir/app.sqlite``).

    Returns:
        The ASGI app; serve it with uvicorn on 127.0.0.1.

    Raises:
        DashboardConfigError: In ``sso`` mode without a proxy secret or an explicit trusted
            proxy (any client could otherwise name itself admin in the user header).
    """
    settings = settings or get_settings()
    dashboard = dashboard or DashboardSettings()
    problem = dashboard.sso_problem()
    if problem:
        raise DashboardConfigError(problem)
    store = store or AppStore(app_db_path(settings.state_dir), audit_key=settings.audit_key_bytes())
    templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
    templates.env.globals.update(
        fmt_pct=fmt_pct, fmt_number=fmt_number, local_time=local_time, fmt_date=fmt_date, ROLES=ROLES,
        term_name=term_name_da,
        DECISIONS=DECISIONS,
        DISMISS_REASONS=DISMISS_REASONS, FLAG_STATUSES=FLAG_STATUSES, RUN_STATUSES=RUN_STATUSES,
        AUDIT_ACTIONS=AUDIT_ACTIONS, OUTCOMES=OUTCOMES, list_basis_da=list_basis_da,
    )
    ctx = AppContext(settings, dashboard, store, templates)
    app = FastAPI(title="Alle skal med", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static")
    _install_middleware(app, ctx)
    _install_error_pages(app, ctx)
    for router in ROUTERS:
        app.include_router(router)
    return app


# ---- authentication ------------------------------------------------------------------------


def _resolve_principal(ctx: AppContext, request: Request) -> tuple[Principal | None, str | None, bool]:
    """(principal, new session token to set, whether to clear a stale cookie)."""
    store, dash = ctx.store, ctx.dashboard
    idle, max_age = timedelta(minutes=dash.session_idle_minutes), timedelta(hours=dash.session_max_hours)
    token = request.cookies.get(SESSION_COOKIE)
    session = store.load_session(token, idle, max_age) if token else None
    if dash.auth_mode == "sso":
        username = request.headers.get(dash.sso_header, "").strip()
        secret = dash.sso_proxy_secret.get_secret_value() if dash.sso_proxy_secret else None
        if secret and not hmac.compare_digest(request.headers.get("X-EWS-Proxy-Secret", ""), secret):
            username = ""
        if not secret and not dash.sso_trusted_proxy:
            username = ""  # create_app refuses this; never trust the header without one of the two
        user = store.get_user(username) if username else None
        if user is None or not user.active:
            return None, None, token is not None
        new_token = None
        if session is None or session.user_id != user.user_id:
            new_token, session = store.create_session(user.user_id, "sso")
    else:
        if session is None:
            return None, None, token is not None
        user = store.get_user_by_id(session.user_id)
        if user is None or not user.active:
            return None, None, True
        new_token = None
    assigned = store.assignments(user.user_id)
    return Principal(user, assigned["network"], assigned["school"], session), new_token, False


def _install_middleware(app: FastAPI, ctx: AppContext) -> None:
    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        request.state.principal = None
        new_token, clear = None, False
        if not request.url.path.startswith("/static/") and request.url.path != "/healthz":
            principal, new_token, clear = await run_in_threadpool(_resolve_principal, ctx, request)
            request.state.principal = principal
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - any failure gets the Danish page with the headers
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = render(ctx, request, "error.html", {
                "title": ERROR_TITLES[500],
                "message": "Siden kunne ikke vises på grund af en fejl i appen. Fejlen er logget; prøv igen senere, "
                           "eller kontakt den dataansvarlige."}, status=500)
        if new_token:
            set_cookie(ctx, response, SESSION_COOKIE, new_token)
        elif clear:
            response.delete_cookie(SESSION_COOKIE, path="/")
        response.headers.setdefault("Content-Security-Policy", SECURITY_HEADERS["Content-Security-Policy"])
        for name, value in SECURITY_HEADERS.items():
            if name != "Content-Security-Policy":
                response.headers[name] = value
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def _install_error_pages(app: FastAPI, ctx: AppContext) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        object_type, object_id = attempted_object(request)
        status = 401 if ctx.dashboard.auth_mode == "sso" or request.method != "GET" else 303
        await run_in_threadpool(audit, ctx, request, None, "anonymous", False, object_type=object_type,
                                object_id=object_id, purpose="Forespørgsel uden gyldig login", status=status,
                                path=route_template(request))
        if ctx.dashboard.auth_mode == "sso":
            return render(ctx, request, "error.html", {
                "title": "Ikke logget ind",
                "message": "Kommunens single sign-on sendte ingen kendt og aktiv bruger. Kontakt "
                           "administratoren, hvis du skal have adgang."}, status=401)
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return render(ctx, request, "error.html", {
            "title": "Ikke logget ind", "message": "Din session er udløbet. Log ind igen."}, status=401)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if isinstance(exc, CsrfRefused):
            principal = getattr(request.state, "principal", None)
            object_type, object_id = attempted_object(request)
            await run_in_threadpool(audit, ctx, request, principal, exc.action, False, object_type=object_type,
                                    object_id=object_id, purpose="CSRF-token mangler eller er forkert",
                                    username=exc.username, path=route_template(request))
        return render(ctx, request, "error.html", {"title": "Ingen adgang", "message": str(exc)}, status=403)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return render(ctx, request, "error.html", {"title": "Ikke fundet", "message": str(exc)}, status=404)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(error.get("loc", ("", ""))[-1]) for error in exc.errors()})
        object_type, object_id = attempted_object(request)
        principal = getattr(request.state, "principal", None)
        # Only the route's template and the field names are logged, never the values sent.
        await run_in_threadpool(audit, ctx, request, principal, "invalid_request", False, object_type=object_type,
                                object_id=object_id, purpose=f"Ugyldige felter: {', '.join(fields)}"[:200],
                                status=400, path=route_template(request))
        return render(ctx, request, "error.html", {
            "title": ERROR_TITLES[400],
            "message": "Forespørgslen indeholdt en værdi, som appen ikke kan bruge (for lang, forkert format "
                       f"eller uden for det tilladte område): {', '.join(fields)}. Gå tilbage, og prøv igen.",
            }, status=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = ERROR_TITLES.get(exc.status_code, "Fejl")
        message = {404: "Siden findes ikke.", 405: "Siden kan ikke bruges på den måde (forkert metode)."}.get(
            exc.status_code, "Forespørgslen kunne ikke gennemføres.")
        response = render(ctx, request, "error.html", {"title": title, "message": message}, status=exc.status_code)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

