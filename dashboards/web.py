"""What the app's routers share: the app context, errors, rendering, auditing and small reads.

Nothing here knows a route. The typed dependencies built on it are in :mod:`dashboards.deps`;
the routes, one router per area, are in :mod:`dashboards.routes`.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from dashboards import reads
from dashboards.access import Principal
from dashboards.settings import DashboardSettings
from dashboards.store import AppStore
from ews.config import ConfigError, MunicipalityConfig, load_config
from ews.settings import Settings
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


def set_cookie(ctx: AppContext, response: Response, name: str, value: str) -> None:
    """Set an HttpOnly, SameSite=Strict cookie (Secure when configured)."""
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=ctx.dashboard.cookie_secure,
                        path="/")


def check_csrf(principal: Principal, token: str) -> None:
    """Refuse a form that does not carry the session's CSRF token.

    Raises:
        Forbidden: When the token is missing or wrong.
    """
    if not token or not hmac.compare_digest(token, principal.session.csrf_token):
        raise Forbidden("Formularen er udløbet eller kom ikke fra denne side. Genindlæs siden, og prøv igen.")


def audit(ctx: AppContext, request: Request, principal: Principal | None, action: str, allowed: bool, *,
          object_type: str | None = None, object_id: str | None = None, run_id: str | None = None,
          purpose: str | None = None, status: int | None = None, username: str | None = None) -> None:
    """Write one row to the audit log (allowed or denied, with purpose or reason)."""
    ctx.store.record_audit(
        action=action, outcome="allowed" if allowed else "denied",
        username=principal.username if principal else username, role=principal.role if principal else None,
        object_type=object_type, object_id=object_id, run_id=run_id, purpose=purpose,
        http_status=status if status is not None else (200 if allowed else 403), path=request.url.path,
    )


def render(ctx: AppContext, request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Render a page with the user, CSRF token and menu every page needs."""
    principal = getattr(request.state, "principal", None)
    base = {"principal": principal, "csrf_token": principal.session.csrf_token if principal else "",
            "auth_mode": ctx.dashboard.auth_mode, "nav": nav(principal), "path": request.url.path}
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
                  ("/revision", "Adgangslog")]
    if role == "admin":
        items.append(("/admin/brugere", "Brugere"))
    return items


def safe_next(target: str | None) -> str:
    """A redirect target inside the app (``/`` otherwise)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


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


def names(ctx: AppContext, pupil_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Names and classes of the given pupils (only these) from the identity store."""
    try:
        with open_snapshot(ctx.state_dir, identity=True) as identity:
            return reads.identities(identity, pupil_ids)
    except FileNotFoundError:
        return {}
