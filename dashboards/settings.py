"""Settings of the review app, from ``EWS_DASHBOARD_*`` environment variables or ``.env``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """How the review app authenticates people and how long sessions live.

    Attributes:
        auth_mode: ``local`` (accounts with passwords in ``app.sqlite``) or ``sso`` (trust an
            authenticated user header set by the municipality's single sign-on proxy).
        sso_header: The header that carries the authenticated user name in ``sso`` mode.
        sso_proxy_secret: ``sso`` mode requires the header ``X-EWS-Proxy-Secret`` with this
            value, so that only the proxy can assert a user. Without it the app refuses to
            start in ``sso`` mode, unless ``sso_trusted_proxy`` is set.
        sso_trusted_proxy: The explicit alternative to a proxy secret: declare that only the
            proxy can reach the app (it listens on loopback and the proxy strips the user
            header from clients). ``ews serve`` then refuses any address but loopback.
        session_idle_minutes: A session ends after this long without a request.
        session_max_hours: A session ends this long after login, whatever happens.
        cookie_secure: Mark cookies ``Secure`` (set it when the app is served over HTTPS).
        prefect_ui_url: Link to the Prefect UI for data stewards.
        login_max_failures: Failed logins of one user name within the window before the
            account is refused for the rest of it (``ews users unlock NAME`` lifts it).
        login_max_failures_per_client: Failed logins from one client address (whatever the
            user names) within the window before that address is refused for the rest of it.
        login_window_minutes: The window of both login limits.
    """

    model_config = SettingsConfigDict(env_prefix="EWS_DASHBOARD_", env_file=".env", extra="ignore")

    auth_mode: Literal["local", "sso"] = "local"
    sso_header: str = "X-Remote-User"
    sso_proxy_secret: SecretStr | None = None
    sso_trusted_proxy: bool = False
    session_idle_minutes: int = 30
    session_max_hours: int = 8
    cookie_secure: bool = False
    prefect_ui_url: str = "http://127.0.0.1:4200"
    login_max_failures: int = Field(default=10, ge=1)
    login_max_failures_per_client: int = Field(default=30, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)

    def sso_problem(self) -> str | None:
        """Why these settings must not start the app, or None when they may.

        ``sso`` mode trusts a header; without a proxy secret any client that can reach the
        app could name itself admin, so the mode needs a secret or an explicit trusted proxy.
        """
        if self.auth_mode != "sso" or self.sso_trusted_proxy:
            return None
        if self.sso_proxy_secret is None or not self.sso_proxy_secret.get_secret_value().strip():
            return ("EWS_DASHBOARD_AUTH_MODE=sso needs EWS_DASHBOARD_SSO_PROXY_SECRET (the proxy sends it in "
                    "X-EWS-Proxy-Secret), or EWS_DASHBOARD_SSO_TRUSTED_PROXY=true when only the proxy can "
                    "reach the app on loopback; without either, any client could send "
                    f"{self.sso_header}: <an admin> and be that admin (see docs/dashboards.md)")
        return None


class DashboardConfigError(ValueError):
    """The app's settings are unsafe to start with; the message says which variable to set."""

    code = "dashboard_config"
