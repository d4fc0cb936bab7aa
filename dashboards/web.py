"""What the app's routers share: the app context, errors, rendering, auditing and small reads.

Nothing here knows a route. The typed dependencies built on it are in :mod:`dashboards.deps`;
the routes, one router per area, are in :mod:`dashboards.routes`.
"""

from __future__ import annotations

import hmac
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pandas as pd
from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from dashboards import reads
from dashboards.access import Principal
from dashboards.settings import DashboardSettings
from dashboards.store import AppStore
from ews.config import ConfigError, MunicipalityConfig, load_config
from ews.formats import date_da
from ews.settings import Settings
from ews.warehouse import open_readonly as open_snapshot
from ews.warehouse import snapshot_version

PACKAGE_DIR = Path(__file__).parent
SESSION_COOKIE = "ews_session"
LOGIN_CSRF_COOKIE = "ews_login_csrf"
LOCAL_TZ = ZoneInfo("Europe/Copenhagen")
PUBLIC_PATHS = ("/login", "/healthz", "/static/")

#: A pupil's pseudonym (``ews.pseudonym``: "p" and fifteen letters; the sample data uses hex):
#: sixteen lower-case letters or digits, so a CPR number (ten digits) can never match.
PUPIL_ID_PATTERN = r"^[0-9a-z]{16}$"
#: Network ids, school codes, run ids and model ids: short and without separators of paths.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"

# Bounded parameters shared by the routers: a longer or malformed value gets the Danish 400 page.
TermQuery = Annotated[str | None, Query(max_length=20)]
ChoiceQuery = Annotated[str | None, Query(max_length=40)]
TextQuery = Annotated[str | None, Query(max_length=200)]
NextQuery = Annotated[str | None, Query(max_length=2000)]
IdQuery = Annotated[str | None, Query(max_length=100, pattern=ID_PATTERN)]
PageId = Annotated[int | None, Query(ge=1, le=2**62)]
CsrfForm = Annotated[str, Form(max_length=100)]
ChoiceForm = Annotated[str, Form(max_length=40)]
TextForm = Annotated[str, Form(max_length=200)]
TermForm = Annotated[str, Form(max_length=20)]
DateForm = Annotated[str, Form(max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")]
#: Argon2 hashes any length, so an unbounded password would be an easy way to burn CPU.
PasswordForm = Annotated[str, Form(max_length=1024)]


class LoginRequired(Exception):
    """The request needs a logged-in user."""


class Forbidden(Exception):
    """The user may not see this; the message is shown in Danish."""

    code = "forbidden"


class CsrfRefused(Forbidden):
    """A form without the right CSRF token (the refusal is audited by the app's error page).

    Args:
        message: The Danish message.
        action: The audit action (``csrf`` for forms of a session, ``login`` for the login form).
        username: The user name typed into the login form, if any.
    """

    code = "csrf"

    def __init__(self, message: str, action: str = "csrf", username: str | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.username = username


class NotFound(Exception):
    """The page does not exist (e.g. an unknown term)."""

    code = "not_found"


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

    def school_name(self, code: Any) -> str:
        """A school's name from the municipality config (the code when the config does not name it)."""
        if code is None or code == "":
            return "–"
        config = self.config()
        names = {s.code: s.name for s in config.schools} if config else {}
        return names.get(str(code)) or str(code)

    def network_name(self, network_id: Any) -> str:
        """A network's name from the municipality config (the id when the config does not name it)."""
        if network_id is None or network_id == "":
            return "–"
        config = self.config()
        names = {n.id: n.name for n in config.networks} if config else {}
        return names.get(str(network_id)) or str(network_id)

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
    """A date the Danish way, ``dd-mm-yyyy`` (``ews.formats.date_da``, as in every file)."""
    return date_da(value)


def set_cookie(ctx: AppContext, response: Response, name: str, value: str) -> None:
    """Set an HttpOnly, SameSite=Strict cookie (Secure when configured)."""
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=ctx.dashboard.cookie_secure,
                        path="/")


def check_csrf(principal: Principal, token: str) -> None:
    """Refuse a form that does not carry the session's CSRF token.

    Raises:
        CsrfRefused: When the token is missing or wrong (the error page audits it).
    """
    if not token or not hmac.compare_digest(token, principal.session.csrf_token):
        raise CsrfRefused("Formularen er udløbet eller kom ikke fra denne side. Genindlæs siden, og prøv igen.")


def client_of(request: Request) -> str | None:
    """The client's address as the server saw it (behind a proxy: the proxy's, unless it forwards)."""
    return request.client.host if request.client else None


_PUPIL_ID = re.compile(PUPIL_ID_PATTERN)
_ID = re.compile(ID_PATTERN)


def route_template(request: Request) -> str:
    """The matched route's template (``/elev/{pupil_id}``), or ``(ukendt sti)``."""
    return getattr(request.scope.get("route"), "path", None) or "(ukendt sti)"


def attempted_object(request: Request) -> tuple[str | None, str | None]:
    """The pupil or network a request was about, from its path (only well-formed ids are named)."""
    params = request.path_params
    pupil = str(params.get("pupil_id", ""))
    if pupil:
        return "pupil", pupil if _PUPIL_ID.match(pupil) else "(ugyldigt id)"
    network = str(params.get("network_id", ""))
    if network:
        return "network", network if _ID.match(network) else "(ugyldigt id)"
    return None, None


def audit(ctx: AppContext, request: Request, principal: Principal | None, action: str, allowed: bool, *,
          object_type: str | None = None, object_id: str | None = None, run_id: str | None = None,
          purpose: str | None = None, status: int | None = None, username: str | None = None,
          path: str | None = None) -> None:
    """Write one row to the audit log (allowed or denied, with purpose or reason).

    ``path`` overrides the request's path (error pages log the route's template, so that a
    value typed into an address, e.g. a CPR number, never reaches the log).
    """
    ctx.store.record_audit(
        action=action, outcome="allowed" if allowed else "denied",
        username=principal.username if principal else username, role=principal.role if principal else None,
        object_type=object_type, object_id=object_id, run_id=run_id, purpose=purpose,
        http_status=status if status is not None else (200 if allowed else 403), path=path or request.url.path,
        client=client_of(request),
    )


def render(ctx: AppContext, request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Render a page with the user, CSRF token and menu every page needs."""
    principal = getattr(request.state, "principal", None)
    base = {"principal": principal, "csrf_token": principal.session.csrf_token if principal else "",
            "auth_mode": ctx.dashboard.auth_mode, "nav": nav(principal), "path": request.url.path,
            "school_name": ctx.school_name, "network_name": ctx.network_name}
    return ctx.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def nav(principal: Principal | None) -> list[tuple[str, str]]:
    """The menu of a role: (path, label)."""
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
                  ("/drift/udfald", "Udfald"),
                  ("/revision", "Adgangslog")]
    if role == "admin":
        items += [("/admin/brugere", "Brugere"), ("/admin/udtagelser", "Udtagelser")]
    return items


def safe_next(target: str | None) -> str:
    """A redirect target inside the app (``/`` otherwise)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def audited_term_run(ctx: AppContext, request: Request, principal: Principal, con: Any, requested: str | None, *,
                     action: str, object_type: str, object_id: str | None
                     ) -> tuple[reads.TermRun | None, list[reads.TermRun]]:
    """:func:`term_run`, with an unknown term audited as a refused attempt on the object.

    Raises:
        NotFound: For a term without a list (after writing the refusal to the audit log).
    """
    try:
        return term_run(con, requested)
    except NotFound:
        audit(ctx, request, principal, action, False, object_type=object_type, object_id=object_id,
              purpose=f"Ukendt termin {requested}", status=404)
        raise


def term_run(con: Any, requested: str | None) -> tuple[reads.TermRun | None, list[reads.TermRun]]:
    """The term asked for (or the latest) and every term with a list (none before any run).

    Raises:
        NotFound: For a term without a list.
    """
    if con is None:
        return None, []
    terms = reads.flag_terms(con)
    if requested:
        chosen = next((t for t in terms if t.term == requested), None)
        if chosen is None:
            raise NotFound(f"Der er ingen liste for terminen {requested}.")
        return chosen, terms
    return (terms[0] if terms else None), terms


def names(ctx: AppContext, pupil_ids: list[str], con: Any = None) -> dict[str, dict[str, Any]]:
    """Names and classes of the given pupils (only these) from the identity store.

    Args:
        ctx: The app's context.
        pupil_ids: The pupils.
        con: The request's warehouse connection: the names come from the same published
            version as its rows (default: the version published now).
    """
    version = snapshot_version(con) if con is not None else None
    try:
        with open_snapshot(ctx.state_dir, identity=True, version=version) as identity:
            return reads.identities(identity, pupil_ids)
    except FileNotFoundError:
        return {}
