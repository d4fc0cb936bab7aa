"""Settings of the review app, from ``EWS_DASHBOARD_*`` environment variables or ``.env``."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """How the review app authenticates people and how long sessions live.

    Attributes:
        auth_mode: ``local`` (accounts with passwords in ``app.sqlite``) or ``sso`` (trust an
            authenticated user header set by the municipality's single sign-on proxy).
        sso_header: The header that carries the authenticated user name in ``sso`` mode.
        sso_proxy_secret: When set, ``sso`` mode also requires the header
            ``X-EWS-Proxy-Secret`` with this value, so that only the proxy can assert a user.
        session_idle_minutes: A session ends after this long without a request.
        session_max_hours: A session ends this long after login, whatever happens.
        cookie_secure: Mark cookies ``Secure`` (set it when the app is served over HTTPS).
        prefect_ui_url: Link to the Prefect UI for data stewards.
        login_max_failures: Failed logins of one user name within 15 minutes before the
            account is refused for the rest of that window.
    """

    model_config = SettingsConfigDict(env_prefix="EWS_DASHBOARD_", env_file=".env", extra="ignore")

    auth_mode: Literal["local", "sso"] = "local"
    sso_header: str = "X-Remote-User"
    sso_proxy_secret: SecretStr | None = None
    session_idle_minutes: int = 30
    session_max_hours: int = 8
    cookie_secure: bool = False
    prefect_ui_url: str = "http://127.0.0.1:4200"
    login_max_failures: int = 10
