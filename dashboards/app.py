"""The review app: FastAPI with server-rendered Jinja2 pages in Danish.

Why FastAPI and Jinja2: both are already in the dependency tree (Prefect needs FastAPI), the
pages work without JavaScript and without a CDN, and forms plus server-side sessions make CSRF
protection and auditing simple to get right. Streamlit (also resolvable) was not chosen: it
has no real per-request access control, sessions or CSRF, and loads its front end as a
JavaScript bundle.

Concurrency: every request opens the live warehouse read-only as a fresh snapshot
(:mod:`dashboards.snapshot`), which a run never locks (it writes a staged copy and swaps it
in). The app's own state is in ``app.sqlite`` (WAL), which the pipeline only reads. The run log
is read briefly with retries. So pages keep answering and reviews are stored during a run.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from dashboards import reads, views
from dashboards.access import (
    Principal,
    effective_review,
    is_steward,
    may_review,
    may_view_network,
    may_view_pupil,
)
from dashboards.charts import fmt_number, fmt_pct, histogram_svg, lines_svg
from dashboards.labels import (
    AUDIT_ACTIONS,
    DECISIONS,
    DISMISS_REASONS,
    FLAG_STATUSES,
    OUTCOMES,
    ROLES,
    RUN_STATUSES,
)
from dashboards.network_files import MEDIA_TYPES, network_file
from dashboards.settings import DashboardSettings
from dashboards.store import AppStore, StoreError, app_db_path
from ews.config import ConfigError, MunicipalityConfig, load_config
from ews.settings import Settings, get_settings
from ews.warehouse import open_readonly as open_snapshot

PACKAGE_DIR = Path(__file__).parent
SESSION_COOKIE = "ews_session"
LOGIN_CSRF_COOKIE = "ews_login_csrf"
LOCAL_TZ = ZoneInfo("Europe/Copenhagen")
PUBLIC_PATHS = ("/login", "/healthz", "/static/")


class LoginRequired(Exception):
    """The request needs a logged-in user."""


class Forbidden(Exception):
    """The user may not see this; the message is shown in Danish."""


class NotFound(Exception):
    """The page does not exist (e.g. an unknown term)."""


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


@dataclass
class AppContext:
    """What the routes share: settings, the app store, templates and small caches."""

    settings: Settings
    dashboard: DashboardSettings
    store: AppStore
    templates: Jinja2Templates
    _config: tuple[float, MunicipalityConfig | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _drift_cache: dict[tuple[Any, ...], pd.DataFrame] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        """The state folder."""
        return self.settings.state_dir

    def config(self) -> MunicipalityConfig | None:
        """The municipality config, reloaded when the file changes (None when absent)."""
        path = self.settings.resolved_config_path
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return None
        with self._lock:
            if self._config is None or self._config[0] != mtime:
                try:
                    self._config = (mtime, load_config(path))
                except ConfigError:
                    self._config = (mtime, None)
            return self._config[1]

    def require_review(self) -> bool:
        """The config's ``flagging.require_review`` (True when there is no config)."""
        config = self.config()
        return True if config is None else config.flagging.require_review

    def drift(self, key: tuple[Any, ...], compute: Any) -> pd.DataFrame:
        """Feature drift, computed once per warehouse file and run."""
        with self._lock:
            if key in self._drift_cache:
                return self._drift_cache[key]
        result = compute()
        with self._lock:
            if len(self._drift_cache) > 16:
                self._drift_cache.clear()
            self._drift_cache[key] = result
        return result


def local_time(value: Any) -> str:
    """An ISO timestamp (UTC) as Danish local time, ``dd-mm-yyyy hh:mm``."""
    if value is None or value == "":
        return "–"
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return "–"
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert(LOCAL_TZ).strftime("%d-%m-%Y %H:%M")


def fmt_date(value: Any) -> str:
    """A date the Danish way, ``dd-mm-yyyy``."""
    if value is None or value == "":
        return "–"
    stamp = pd.Timestamp(value)
    return "–" if pd.isna(stamp) else stamp.strftime("%d-%m-%Y")


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
    """
    settings = settings or get_settings()
    dashboard = dashboard or DashboardSettings()
    store = store or AppStore(app_db_path(settings.state_dir))
    templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
    templates.env.globals.update(
        fmt_pct=fmt_pct, fmt_number=fmt_number, local_time=local_time, fmt_date=fmt_date, ROLES=ROLES,
        DECISIONS=DECISIONS,
        DISMISS_REASONS=DISMISS_REASONS, FLAG_STATUSES=FLAG_STATUSES, RUN_STATUSES=RUN_STATUSES,
        AUDIT_ACTIONS=AUDIT_ACTIONS, OUTCOMES=OUTCOMES,
    )
    ctx = AppContext(settings, dashboard, store, templates)
    app = FastAPI(title="Alle skal med", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static")
    _install_middleware(app, ctx)
    _install_error_pages(app, ctx)
    _install_routes(app, ctx)
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
        response = await call_next(request)
        if new_token:
            _set_cookie(ctx, response, SESSION_COOKIE, new_token)
        elif clear:
            response.delete_cookie(SESSION_COOKIE, path="/")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def _set_cookie(ctx: AppContext, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=ctx.dashboard.cookie_secure,
                        path="/")


def _principal(request: Request) -> Principal:
    principal = request.state.principal
    if principal is None:
        raise LoginRequired()
    return principal


def _check_csrf(principal: Principal, token: str) -> None:
    if not token or not hmac.compare_digest(token, principal.session.csrf_token):
        raise Forbidden("Formularen er udløbet eller kom ikke fra denne side. Genindlæs siden, og prøv igen.")


def _audit(ctx: AppContext, request: Request, principal: Principal | None, action: str, allowed: bool, *,
           object_type: str | None = None, object_id: str | None = None, run_id: str | None = None,
           purpose: str | None = None, status: int | None = None, username: str | None = None) -> None:
    ctx.store.record_audit(
        action=action, outcome="allowed" if allowed else "denied",
        username=principal.username if principal else username, role=principal.role if principal else None,
        object_type=object_type, object_id=object_id, run_id=run_id, purpose=purpose,
        http_status=status if status is not None else (200 if allowed else 403), path=request.url.path,
    )


# ---- error pages ---------------------------------------------------------------------------


def _render(ctx: AppContext, request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    base = {"principal": principal, "csrf_token": principal.session.csrf_token if principal else "",
            "auth_mode": ctx.dashboard.auth_mode, "nav": _nav(principal), "path": request.url.path}
    return ctx.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def _nav(principal: Principal | None) -> list[tuple[str, str]]:
    if principal is None:
        return []
    role = principal.role
    items: list[tuple[str, str]] = []
    if role == "network_member":
        items.append(("/netvaerk", "Netværkets liste"))
    if role == "consultant":
        items.append(("/vejleder", "Mine skolers flag"))
    if role in ("steward", "admin"):
        items += [("/drift", "Kørsler"), ("/drift/kvalitet", "Datakvalitet"),
                  ("/drift/stabilitet", "Stabilitet og scorer"), ("/drift/model", "Modelkort"),
                  ("/revision", "Adgangslog")]
    if role == "admin":
        items.append(("/admin/brugere", "Brugere"))
    return items


def _install_error_pages(app: FastAPI, ctx: AppContext) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if ctx.dashboard.auth_mode == "sso":
            return _render(ctx, request, "error.html", {
                "title": "Ikke logget ind",
                "message": "Kommunens single sign-on sendte ingen kendt og aktiv bruger. Kontakt "
                           "administratoren, hvis du skal have adgang."}, status=401)
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return _render(ctx, request, "error.html", {
            "title": "Ikke logget ind", "message": "Din session er udløbet. Log ind igen."}, status=401)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _render(ctx, request, "error.html", {"title": "Ingen adgang", "message": str(exc)}, status=403)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _render(ctx, request, "error.html", {"title": "Ikke fundet", "message": str(exc)}, status=404)


# ---- routes --------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _term_run(con: Any, requested: str | None) -> tuple[reads.TermRun | None, list[reads.TermRun]]:
    terms = reads.flag_terms(con)
    if requested:
        chosen = next((t for t in terms if t.term == requested), None)
        if chosen is None:
            raise NotFound(f"Der er ingen liste for terminen {requested}.")
        return chosen, terms
    return (terms[0] if terms else None), terms


def _names(ctx: AppContext, pupil_ids: list[str]) -> dict[str, dict[str, Any]]:
    try:
        with open_snapshot(ctx.state_dir, identity=True) as identity:
            return reads.identities(identity, pupil_ids)
    except FileNotFoundError:
        return {}


def _install_routes(app: FastAPI, ctx: AppContext) -> None:  # noqa: C901 - one place for all routes
    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    # -- login ---------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None) -> Response:
        if request.state.principal is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        token = secrets.token_urlsafe(24)
        response = _render(ctx, request, "login.html", {"login_csrf": token, "next": _safe_next(next),
                                                         "error": None})
        _set_cookie(ctx, response, LOGIN_CSRF_COOKIE, token)
        return response

    @app.post("/login", response_class=HTMLResponse)
    def login(request: Request, username: str = Form(""), password: str = Form(""),
              login_csrf: str = Form(""), next: str = Form("/")) -> Response:
        if ctx.dashboard.auth_mode == "sso":
            raise Forbidden("Appen bruger kommunens single sign-on; der er ingen lokal adgangskode.")
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not login_csrf or not hmac.compare_digest(cookie, login_csrf):
            raise Forbidden("Loginformularen er udløbet. Genindlæs siden, og prøv igen.")
        since = ctx.store.clock() - timedelta(minutes=15)
        user = None
        if ctx.store.failed_logins_since(username, since) < ctx.dashboard.login_max_failures:
            user = ctx.store.verify_login(username, password)
        if user is None:
            ctx.store.record_audit(action="login", outcome="denied", username=username[:100] or None,
                                   http_status=401, path="/login")
            token = secrets.token_urlsafe(24)
            response = _render(ctx, request, "login.html", {
                "login_csrf": token, "next": _safe_next(next),
                "error": "Forkert brugernavn eller adgangskode, eller kontoen er spærret."}, status=401)
            _set_cookie(ctx, response, LOGIN_CSRF_COOKIE, token)
            return response
        session_token, _session = ctx.store.create_session(user.user_id, "local")
        ctx.store.record_audit(action="login", outcome="allowed", username=user.username, role=user.role,
                               http_status=303, path="/login")
        response = RedirectResponse(_safe_next(next), status_code=303)
        _set_cookie(ctx, response, SESSION_COOKIE, session_token)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @app.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        principal = _principal(request)
        _check_csrf(principal, csrf_token)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            ctx.store.end_session(token)
        _audit(ctx, request, principal, "logout", True, status=303)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/")
    def home(request: Request) -> Response:
        principal = _principal(request)
        target = {"network_member": "/netvaerk", "consultant": "/vejleder", "steward": "/drift",
                  "admin": "/admin/brugere"}[principal.role]
        return RedirectResponse(target, status_code=303)

    # -- network lists -------------------------------------------------------------------

    @app.get("/netvaerk", response_class=HTMLResponse)
    def my_networks(request: Request) -> Response:
        principal = _principal(request)
        if principal.role != "network_member":
            _audit(ctx, request, principal, "view_list", False, object_type="network",
                   purpose="Rollen har ingen netværksliste")
            raise Forbidden("Netværkslister er for netværkenes medlemmer.")
        if len(principal.networks) == 1:
            return RedirectResponse(f"/netvaerk/{quote(next(iter(principal.networks)))}", status_code=303)
        config = ctx.config()
        names = {n.id: n.name for n in config.networks} if config else {}
        return _render(ctx, request, "networks.html", {
            "networks": [(n, names.get(n, n)) for n in sorted(principal.networks)]})

    def _network_rows(principal: Principal, network_id: str, termin: str | None, request: Request,
                      action: str, detail: str = "") -> NetworkRows:
        decision = may_view_network(principal, network_id)
        if not decision.allowed:
            _audit(ctx, request, principal, action, False, object_type="network", object_id=network_id,
                   purpose=decision.purpose + detail)
            raise Forbidden("Du har kun adgang til listerne for dine egne netværk.")
        try:
            with open_snapshot(ctx.state_dir) as con:
                chosen, terms = _term_run(con, termin)
                flags = reads.network_flags(con, chosen.run_id, network_id) if chosen else pd.DataFrame()
        except FileNotFoundError:
            chosen, terms, flags = None, [], pd.DataFrame()
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
            names = _names(ctx, [r["pupil_id"] for r in visible])
            rows = views.list_rows(flags[flags["pupil_id"].isin([r["pupil_id"] for r in visible])],
                                   latest, names, ctx.require_review())
        _audit(ctx, request, principal, action, True, object_type="network", object_id=network_id,
               run_id=chosen.run_id if chosen else None, purpose=decision.purpose + detail)
        return NetworkRows(chosen, terms, flags, rows, waiting)

    @app.get("/netvaerk/{network_id}", response_class=HTMLResponse)
    def network_list(request: Request, network_id: str, termin: str | None = None) -> Response:
        principal = _principal(request)
        shown = _network_rows(principal, network_id, termin, request, "view_list")
        config = ctx.config()
        network = next((n for n in config.networks if n.id == network_id), None) if config else None
        return _render(ctx, request, "network_list.html", {
            "network_id": network_id, "network": network, "term_run": shown.chosen, "terms": shown.terms,
            "rows": shown.rows, "waiting": shown.waiting, "require_review": ctx.require_review(),
            "formats": [("pdf", "PDF"), ("xlsx", "Excel"), ("csv", "CSV")],
            "sections": [(status, FLAG_STATUSES[status], [r for r in shown.rows if r["status"] == status])
                         for status in ("ny", "fortsat", "ikke_laengere")]})

    @app.get("/netvaerk/{network_id}/eksport.{fmt}")
    def network_export(request: Request, network_id: str, fmt: str, termin: str | None = None) -> Response:
        """The network's list as PDF, Excel or CSV: only what the network's page shows, audited."""
        principal = _principal(request)
        if fmt not in MEDIA_TYPES:
            raise NotFound("Listen findes som PDF, Excel (xlsx) og CSV.")
        shown = _network_rows(principal, network_id, termin, request, "export", f" ({fmt})")
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

    # -- consultant ----------------------------------------------------------------------

    @app.get("/vejleder", response_class=HTMLResponse)
    def consultant_list(request: Request, termin: str | None = None, vis: str = "alle") -> Response:
        principal = _principal(request)
        if principal.role != "consultant":
            _audit(ctx, request, principal, "view_list", False, object_type="school",
                   purpose="Kun UU-vejledere har skolelister")
            raise Forbidden("Listen over flag pr. skole er for UU-vejledere.")
        try:
            with open_snapshot(ctx.state_dir) as con:
                chosen, terms = _term_run(con, termin)
                flags = (reads.school_flags(con, chosen.run_id, sorted(principal.schools))
                         if chosen and principal.schools else pd.DataFrame())
        except FileNotFoundError:
            chosen, terms, flags = None, [], pd.DataFrame()
        rows: list[dict[str, Any]] = []
        if chosen is not None and not flags.empty:
            latest = ctx.store.latest_reviews(chosen.term)
            names = _names(ctx, flags["pupil_id"].tolist())
            rows = views.list_rows(flags, latest, names, ctx.require_review())
            if vis == "afventer":
                rows = [r for r in rows if r["review"] is None and r["status"] != "ikke_laengere"]
        _audit(ctx, request, principal, "view_list", True, object_type="school",
               object_id=",".join(sorted(principal.schools)), run_id=chosen.run_id if chosen else None,
               purpose="UU-vejleders flag for tildelte skoler")
        return _render(ctx, request, "consultant_list.html", {
            "term_run": chosen, "terms": terms, "rows": rows, "vis": vis,
            "schools": sorted(principal.schools)})

    # -- pupil page ----------------------------------------------------------------------

    @app.get("/elev/{pupil_id}", response_class=HTMLResponse)
    def pupil_page(request: Request, pupil_id: str, termin: str | None = None, gemt: int = 0,
                   fejl: str | None = None) -> Response:
        principal = _principal(request)
        if principal.role not in ("network_member", "consultant"):
            _audit(ctx, request, principal, "view_pupil", False, object_type="pupil", object_id=pupil_id,
                   purpose=f"Rollen {principal.role} ser ingen elevdata")
            raise Forbidden("Din rolle giver ikke adgang til elevsider.")
        try:
            with open_snapshot(ctx.state_dir) as con:
                chosen, terms = _term_run(con, termin)
                flag = reads.pupil_flag(con, chosen.run_id, pupil_id) if chosen else None
                latest = ctx.store.latest_reviews(chosen.term).get(pupil_id) if chosen else None
                review = effective_review(flag, latest) if flag else None
                decision = may_view_pupil(principal, flag, review, ctx.require_review())
                if not decision.allowed:
                    _audit(ctx, request, principal, "view_pupil", False, object_type="pupil", object_id=pupil_id,
                           run_id=chosen.run_id if chosen else None, purpose=decision.purpose)
                    raise Forbidden("Du har ikke adgang til denne elev.")
                page = _pupil_context(con, principal, flag, chosen, review)
        except FileNotFoundError:
            _audit(ctx, request, principal, "view_pupil", False, object_type="pupil", object_id=pupil_id,
                   purpose="Ingen data")
            raise Forbidden("Du har ikke adgang til denne elev.") from None
        _audit(ctx, request, principal, "view_pupil", True, object_type="pupil", object_id=pupil_id,
               run_id=chosen.run_id, purpose=decision.purpose)
        identity = _names(ctx, [pupil_id]).get(pupil_id, {})
        history = [views.review_view(r) for r in ctx.store.reviews_of_pupil(pupil_id)]
        users = {u["username"]: u["display_name"] for u in ctx.store.list_users()}
        config = ctx.config()
        return _render(ctx, request, "pupil.html", {
            **page, "pupil_id": pupil_id, "identity": identity, "term_run": chosen, "terms": terms,
            "history": history, "users": users, "saved": bool(gemt), "error": REVIEW_ERRORS.get(fejl or ""),
            "steps": [t.step for t in config.tiers] if config else [],
            "can_review": may_review(principal, flag).allowed, "purpose": decision.purpose})

    def _pupil_context(con: Any, principal: Principal, flag: dict[str, Any], chosen: reads.TermRun,
                       review: dict[str, Any] | None) -> dict[str, Any]:
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

    @app.post("/elev/{pupil_id}/vurdering")
    def record_review(request: Request, pupil_id: str, csrf_token: str = Form(""), term: str = Form(""),
                      decision: str = Form(""), dismiss_reason: str = Form(""), step: str = Form("")) -> Response:
        principal = _principal(request)
        _check_csrf(principal, csrf_token)
        try:
            with open_snapshot(ctx.state_dir) as con:
                chosen, _terms = _term_run(con, term or None)
                flag = reads.pupil_flag(con, chosen.run_id, pupil_id) if chosen else None
        except FileNotFoundError:
            chosen, flag = None, None
        allowed = may_review(principal, flag)
        if not allowed.allowed or chosen is None or flag is None:
            _audit(ctx, request, principal, "review", False, object_type="pupil", object_id=pupil_id,
                   purpose=allowed.purpose)
            raise Forbidden("Du kan ikke vurdere denne elevs flag.")
        config = ctx.config()
        target = f"/elev/{quote(pupil_id)}?termin={quote(chosen.term, safe='')}"
        try:
            ctx.store.add_review(
                pupil_id=pupil_id, term=chosen.term, run_id=chosen.run_id, network_id=flag.get("network_id"),
                school_code=flag.get("school_code"), decision=decision, reviewer=principal.username,
                reviewer_role=principal.role, dismiss_reason=dismiss_reason or None, step=step or None,
                allowed_steps=[t.step for t in config.tiers] if config else None)
        except StoreError as exc:
            code = ("reason" if "reason" in str(exc) or "dismissal" in str(exc)
                    else "step" if "step" in str(exc) else "decision")
            return RedirectResponse(f"{target}&fejl={code}#vurdering", status_code=303)
        _audit(ctx, request, principal, "review", True, object_type="pupil", object_id=pupil_id,
               run_id=chosen.run_id, purpose=f"{allowed.purpose}: {DECISIONS[decision]}", status=303)
        return RedirectResponse(f"{target}&gemt=1#historik", status_code=303)

    # -- steward -------------------------------------------------------------------------

    def _steward(request: Request, page: str) -> Principal:
        principal = _principal(request)
        if not is_steward(principal):
            _audit(ctx, request, principal, "view_steward", False, object_type="page", object_id=page,
                   purpose="Kun dataansvarlige og administratorer")
            raise Forbidden("Driftssiderne er for dataansvarlige.")
        _audit(ctx, request, principal, "view_steward", True, object_type="page", object_id=page,
               purpose="Drift og datakvalitet (kun aggregater)")
        return principal

    @app.get("/drift", response_class=HTMLResponse)
    def steward_runs(request: Request) -> Response:
        _steward(request, "runs")
        try:
            runs = reads.read_runs(ctx.state_dir)
            busy = False
        except reads.RunLogBusyError:
            runs, busy = pd.DataFrame(), True
        try:
            with open_snapshot(ctx.state_dir) as con:
                flags = reads.flags_by_term(con)
        except FileNotFoundError:
            flags = pd.DataFrame()
        return _render(ctx, request, "steward_runs.html", {
            "runs": reads._records(runs), "busy": busy, "flags": _pivot_flags(flags),
            "prefect_ui_url": ctx.dashboard.prefect_ui_url})

    @app.get("/drift/koersel/{run_id}", response_class=HTMLResponse)
    def steward_run(request: Request, run_id: str) -> Response:
        _steward(request, f"run:{run_id}")
        try:
            runs, sources = reads.read_run(ctx.state_dir, run_id)
            busy = False
        except reads.RunLogBusyError:
            runs, sources, busy = pd.DataFrame(), pd.DataFrame(), True
        manifest = reads.read_manifest(ctx.state_dir, run_id)
        if runs.empty and manifest is None and not busy:
            raise NotFound(f"Kørslen {run_id} findes ikke.")
        return _render(ctx, request, "steward_run.html", {
            "run_id": run_id, "runs": reads._records(runs), "sources": reads._records(sources), "busy": busy,
            "manifest": manifest, "manifest_text": json.dumps(_manifest_summary(manifest), indent=2,
                                                              ensure_ascii=False, default=str) if manifest else None,
            "reports": _run_reports(ctx.state_dir, run_id), "prefect_ui_url": ctx.dashboard.prefect_ui_url})

    @app.get("/drift/rapport/{run_id}/{name}")
    def steward_report(request: Request, run_id: str, name: str) -> Response:
        _steward(request, f"report:{run_id}/{name}")
        reports = dict(_run_reports(ctx.state_dir, run_id))
        if name not in reports:
            raise NotFound("Rapporten findes ikke.")
        path = ctx.state_dir / "runs" / run_id / reports[name]
        media = "text/html; charset=utf-8" if path.suffix == ".html" else "text/plain; charset=utf-8"
        return Response(path.read_bytes(), media_type=media,
                        headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline' data:; sandbox"})

    @app.get("/drift/kvalitet", response_class=HTMLResponse)
    def steward_quality(request: Request, termin: str | None = None) -> Response:
        _steward(request, "quality")
        try:
            with open_snapshot(ctx.state_dir) as con:
                validation = reads.validation_by_term(con)
                quarantine = reads.quarantine_by_term(con)
                terms = sorted(set(validation.get("term", pd.Series(dtype=str)))
                               | set(quarantine.get("term", pd.Series(dtype=str))), reverse=True)
                term = termin if termin in terms else (terms[0] if terms else None)
                failures = reads.validation_failures(con, term) if term else pd.DataFrame()
                reasons = reads.quarantine_reasons(con, term) if term else pd.DataFrame()
        except FileNotFoundError:
            validation = quarantine = failures = reasons = pd.DataFrame()
            terms, term = [], None
        return _render(ctx, request, "steward_quality.html", {
            "terms": terms, "term": term, "matrix": _source_matrix(validation, quarantine),
            "failures": reads._records(failures), "reasons": reads._records(reasons)})

    @app.get("/drift/stabilitet", response_class=HTMLResponse)
    def steward_stability(request: Request, termin: str | None = None) -> Response:
        _steward(request, "stability")
        context: dict[str, Any] = {"summary": [], "histogram": None, "quantiles": None, "drift": [],
                                   "term": None, "terms": [], "reference": [], "model_id": None, "tiers": []}
        try:
            with open_snapshot(ctx.state_dir) as con:
                summary = reads.score_summary(con)
                if not summary.empty:
                    terms = summary["term"].tolist()
                    term = termin if termin in terms else terms[-1]
                    row = summary[summary["term"] == term].iloc[0]
                    context.update(
                        summary=reads._records(summary), terms=terms, term=term, model_id=row["model_id"],
                        histogram=histogram_svg(reads.score_histogram(con, term),
                                                f"Fordeling af risiko, {term}"),
                        quantiles=lines_svg(terms, {
                            "Gennemsnit": summary["mean_risk"].tolist(), "Median": summary["p50"].tolist(),
                            "90 %-fraktil": summary["p90"].tolist(), "99 %-fraktil": summary["p99"].tolist()},
                            "Risikoens fordeling over terminer", chart_id="quantiles"),
                        tiers=_pivot_tiers(reads.tiers_by_term(con)))
                    model = reads.model_record(con, row["model_id"])
                    reference = _reference_dates(model, reads.feature_as_of_dates(con))
                    current = pd.Timestamp(row["as_of_date"]).date()
                    features = [c for c in reads.numeric_feature_columns(con) if c in views.feature_catalogue()] \
                        or reads.numeric_feature_columns(con)
                    key = (_file_key(ctx.state_dir), row["run_id"], tuple(reference), current)
                    drift = ctx.drift(key, lambda: reads.feature_drift(con, reference, current, features))
                    context.update(reference=reference, drift=[
                        {**r, "label": views.describe_feature(r["feature"]).label} for r in reads._records(drift)])
        except FileNotFoundError:
            pass
        return _render(ctx, request, "steward_stability.html", context)

    @app.get("/drift/model", response_class=HTMLResponse)
    def steward_model(request: Request, model: str | None = None) -> Response:
        _steward(request, "model")
        try:
            with open_snapshot(ctx.state_dir) as con:
                models = reads.all_models(con)
        except FileNotFoundError:
            models = []
        chosen = next((m for m in models if m.get("model_id") == model), None) if model else (
            sorted(models, key=lambda m: str(m.get("created_at") or m.get("model_id")))[-1] if models else None)
        card_html = None
        for _column, raw_path in views.card_paths(chosen):
            path = _inside_state(ctx.state_dir, raw_path)
            if path is not None and path.suffix == ".md":
                card_html = Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(
                    path.read_text(encoding="utf-8")))
                break
        return _render(ctx, request, "steward_model.html", {
            "models": models, "model": chosen, "card_html": card_html,
            "fields": {k: v for k, v in (chosen or {}).items() if not isinstance(v, list | dict)}})

    # -- audit log -----------------------------------------------------------------------

    @app.get("/revision", response_class=HTMLResponse)
    def audit_log(request: Request, bruger: str | None = None, objekt: str | None = None,
                  udfald: str | None = None, foer: int | None = None) -> Response:
        principal = _principal(request)
        if not is_steward(principal):
            _audit(ctx, request, principal, "view_audit", False, purpose="Kun dataansvarlige og administratorer")
            raise Forbidden("Adgangsloggen kan læses af dataansvarlige og administratorer.")
        _audit(ctx, request, principal, "view_audit", True, purpose="Tilsyn med adgang")
        entries = ctx.store.read_audit(limit=200, username=bruger, object_id=objekt,
                                       outcome=udfald if udfald in OUTCOMES else None, before_id=foer)
        return _render(ctx, request, "audit.html", {
            "entries": entries, "bruger": bruger or "", "objekt": objekt or "", "udfald": udfald or "",
            "chain_broken_at": ctx.store.verify_audit_chain(),
            "older": entries[-1]["audit_id"] if len(entries) == 200 else None})

    # -- admin ---------------------------------------------------------------------------

    def _admin(request: Request) -> Principal:
        principal = _principal(request)
        if principal.role != "admin":
            _audit(ctx, request, principal, "admin", False, object_type="page", object_id="users",
                   purpose="Kun administratorer")
            raise Forbidden("Brugeradministration er for administratorer.")
        return principal

    @app.get("/admin/brugere", response_class=HTMLResponse)
    def admin_users(request: Request, besked: str | None = None) -> Response:
        _admin(request)
        config = ctx.config()
        return _render(ctx, request, "admin_users.html", {
            "users": ctx.store.list_users(), "message": besked,
            "networks": [(n.id, n.name) for n in config.networks] if config else [],
            "schools": [(s.code, s.name) for s in config.schools] if config else []})

    @app.post("/admin/brugere")
    def admin_action(request: Request, csrf_token: str = Form(""), action: str = Form(""),
                     username: str = Form(""), display_name: str = Form(""), role: str = Form(""),
                     password: str = Form(""), target: str = Form("")) -> Response:
        principal = _admin(request)
        _check_csrf(principal, csrf_token)
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
                    raise StoreError("you cannot disable your own account")
                store.set_active(username, action == "enable")
                message = f"Brugeren {username} er {'genåbnet' if action == 'enable' else 'spærret'}."
            elif action == "password":
                store.set_password(username, password)
                message = f"Adgangskoden for {username} er skiftet."
            else:
                raise StoreError(f"unknown action '{action}'")
        except StoreError as exc:
            message = f"Ikke udført: {exc}"
            _audit(ctx, request, principal, "admin", False, object_type="user", object_id=username or None,
                   purpose=f"{action} {target}".strip(), status=303)
        else:
            _audit(ctx, request, principal, "admin", True, object_type="user", object_id=username or None,
                   purpose=f"{action} {target}".strip(), status=303)
        return RedirectResponse(f"/admin/brugere?besked={quote(message)}", status_code=303)


REVIEW_ERRORS = {
    "reason": "Vælg en begrundelse, når du afviser et flag (og kun da).",
    "step": "Vælg et trin på indsatstrappen, når beslutningen er et trin (og kun da).",
    "decision": "Vælg en beslutning.",
}


def _file_key(state_dir: Path) -> tuple[int, int]:
    stat = (state_dir / "warehouse.duckdb").stat()
    return stat.st_ino, stat.st_mtime_ns


def _inside_state(state_dir: Path, raw: str) -> Path | None:
    path = Path(raw)
    path = path if path.is_absolute() else state_dir / path
    try:
        resolved = path.resolve()
        resolved.relative_to(state_dir.resolve())
    except (ValueError, OSError):
        return None
    return resolved if resolved.is_file() else None


def _run_reports(state_dir: Path, run_id: str) -> list[tuple[str, str]]:
    """Validation reports of a run that a steward may open: (link name, path in the run folder)."""
    if not run_id.replace("-", "").replace("_", "").isalnum():
        return []
    folder = state_dir / "runs" / run_id
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".md") and "valid" in path.name.lower():
            relative = path.relative_to(folder).as_posix()
            found.append((relative.replace("/", "__"), relative))
    return found


def _manifest_summary(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest without any list longer than 50 entries (counts only are shown)."""
    if manifest is None:
        return {}
    return {k: (v if not isinstance(v, list) or len(v) <= 50 else f"{len(v)} poster") for k, v in manifest.items()}


def _source_matrix(validation: pd.DataFrame, quarantine: pd.DataFrame) -> dict[str, Any]:
    """Terms x sources: expectations failed and rows quarantined."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reads._records(validation):
        cells.setdefault((r["term"], r["source"]), {}).update(
            expectations=r["expectations"], failed=r["failed"], failed_file_level=r["failed_file_level"],
            unexpected=r["unexpected"])
    for r in reads._records(quarantine):
        cells.setdefault((r["term"], r["source"]), {}).update(quarantined=r["rows_quarantined"])
    terms = sorted({t for t, _ in cells}, reverse=True)
    sources = sorted({s for _, s in cells})
    return {"terms": terms, "sources": sources, "cells": {f"{t}|{s}": v for (t, s), v in cells.items()}}


def _pivot_flags(flags: pd.DataFrame) -> list[dict[str, Any]]:
    if flags.empty:
        return []
    table = flags.pivot_table(index=["term", "network_id"], columns="status", values="pupils",
                              aggfunc="sum", fill_value=0).reset_index()
    return sorted(reads._records(table), key=lambda r: (r["term"], r["network_id"]), reverse=True)


def _pivot_tiers(tiers: pd.DataFrame) -> dict[str, Any]:
    if tiers.empty:
        return {"tiers": [], "rows": []}
    table = tiers.pivot_table(index="term", columns="tier", values="pupils", aggfunc="sum", fill_value=0)
    return {"tiers": [str(c) for c in table.columns],
            "rows": [{"term": term, "counts": [int(v) for v in values]} for term, values in
                     zip(table.index, table.to_numpy(), strict=True)]}


def _reference_dates(model: dict[str, Any] | None, available: list[date]) -> list[date]:
    """The model's training as-of dates (from the registry), else the earliest half of the dates."""
    if model:
        if model.get("label_cutoff"):
            # The model learnt from features dated up to its label cut-off (features.timechop).
            cutoff = pd.Timestamp(model["label_cutoff"]).date()
            earlier = [d for d in available if d <= cutoff]
            if earlier:
                return earlier
        for key in ("training_as_of_dates", "train_as_of_dates", "as_of_dates"):
            value = model.get(key)
            if value:
                listed = reads.parse_list(value)
                dates = [pd.Timestamp(v).date() for v in listed]
                return [d for d in dates if d in available] or dates
        for start_key, end_key in (("train_from", "train_to"), ("training_start", "training_end"),
                                   ("train_start", "train_end"), ("training_from", "training_to")):
            if model.get(start_key) and model.get(end_key):
                start, end = pd.Timestamp(model[start_key]).date(), pd.Timestamp(model[end_key]).date()
                return [d for d in available if start <= d <= end]
    return available[: max(1, len(available) // 2)] if len(available) > 1 else []
