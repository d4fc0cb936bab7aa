"""Command bodies of the review app: ``ews serve`` and ``ews users ...``.

``pipelines.cli`` registers them: ``app.command("serve")(serve)`` and
``app.add_typer(users_app, name="users")``.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dashboards.labels import ROLES

users_app = typer.Typer(
    name="users",
    help=(
        "Accounts of the review app (state_dir/app.sqlite). Roles: network_member (sees their "
        "network's list), consultant (UU: the flags of their schools, explanations, review form), "
        "steward (runs, validation, drift; no pupil data), admin (users and assignments, audit log)."
    ),
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
EXIT_USAGE = 2
#: Same meaning as in ``pipelines.cli``: the configuration is invalid (here: unsafe to start with).
EXIT_CONFIG = 3


def _store():  # noqa: ANN202 - AppStore, imported lazily to keep `ews --help` fast
    from dashboards.store import AppStore, app_db_path
    from ews.settings import get_settings

    settings = get_settings()
    return AppStore(app_db_path(settings.state_dir), audit_key=settings.audit_key_bytes())


def _read_password(password_env: str | None) -> str:
    """The new password: from the named environment variable, or asked twice at the terminal."""
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise _usage(f"environment variable {password_env} is empty or unset")
        return value
    if not sys.stdin.isatty():
        raise _usage("no terminal to ask for the password: pass --password-env VAR")
    first = getpass.getpass("Password (at least 12 characters): ")
    if getpass.getpass("Repeat: ") != first:
        raise _usage("the two passwords differ")
    return first


def _usage(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(EXIT_USAGE)


def _audit(store, username: str, what: str) -> None:  # noqa: ANN001 - AppStore
    """Record an account change made at the command line in the app's audit log."""
    store.record_audit(action="admin", outcome="allowed", username=f"cli:{getpass.getuser()}", role="admin",
                       object_type="user", object_id=username, purpose=what, path="ews users")


def _guard(action):  # noqa: ANN001, ANN202 - a callable
    from dashboards.store import StoreError

    try:
        return action()
    except StoreError as exc:
        raise _usage(str(exc)) from None


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on. Keep 127.0.0.1 behind a proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Start the review app (Danish web pages for networks, UU consultants and data stewards).

    Reads the live warehouse read-only per request, so it keeps serving while a run writes.
    Authentication: EWS_DASHBOARD_AUTH_MODE=local (accounts from 'ews users') or sso (trust
    the user header of the municipality's single sign-on proxy, which must also send
    EWS_DASHBOARD_SSO_PROXY_SECRET; without it, or EWS_DASHBOARD_SSO_TRUSTED_PROXY=true on
    loopback, the app refuses to start with exit 3); see docs/dashboards.md.
    """
    import uvicorn

    from dashboards.app import create_app
    from dashboards.settings import DashboardConfigError, DashboardSettings

    settings = DashboardSettings()
    loopback = host in ("127.0.0.1", "localhost", "::1")
    problem = settings.sso_problem()
    if problem is None and settings.auth_mode == "sso" and settings.sso_trusted_proxy \
            and settings.sso_proxy_secret is None and not loopback:
        problem = (f"EWS_DASHBOARD_SSO_TRUSTED_PROXY=true trusts every client that reaches the app, so it "
                   f"listens on loopback only, not on {host}; set EWS_DASHBOARD_SSO_PROXY_SECRET to listen "
                   "elsewhere")
    if problem:
        err.print(f"[bold red]refusing to start:[/] {problem}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    if not loopback:
        trust = ("local accounts with passwords" if settings.auth_mode == "local"
                 else f"single sign-on: the user named in {settings.sso_header}, trusted only with the proxy secret")
        err.print(f"[yellow]warning:[/] listening on {host} with authentication mode '{settings.auth_mode}' ({trust}); "
                  "put the app behind an HTTPS proxy and set EWS_DASHBOARD_COOKIE_SECURE=true", highlight=False)
    out.print(f"Review app on http://{host}:{port}/ (authentication: {settings.auth_mode})", highlight=False)
    try:
        app = create_app(dashboard=settings)
    except DashboardConfigError as exc:
        err.print(f"[bold red]refusing to start:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    uvicorn.run(app, host=host, port=port, log_level="warning",
                proxy_headers=settings.auth_mode == "sso", server_header=False)


@users_app.command("add")
def add_user(
    username: Annotated[str, typer.Argument(help="Login name (in SSO mode: the name in the proxy's header)")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="Display name shown in the app")] = "",
    sso_only: Annotated[bool, typer.Option("--sso-only", help="No local password (single sign-on only)")] = False,
    password_env: Annotated[str | None, typer.Option(
        help="Read the password from this environment variable instead of asking")] = None,
) -> None:
    """Create an account; asks for the password (hashed with Argon2id) unless --sso-only."""
    password = None if sso_only else _read_password(password_env)
    store = _store()
    user_id = _guard(lambda: store.add_user(username, name or username, role, password))
    _audit(store, username, f"add role={role}{' sso-only' if sso_only else ''}")
    out.print(f"user '{username}' created (id {user_id}, role {role})", highlight=False)


@users_app.command("list")
def list_users() -> None:
    """Show every account with its role, assignments and status (never a password)."""
    table = Table("user", "name", "role", "assigned", "password", "active")
    for user in _store().list_users():
        table.add_row(str(user["username"]), str(user["display_name"]), str(user["role"]),
                      str(user["assigned"] or "-"), "local" if user["has_password"] else "sso only",
                      "yes" if user["active"] else "no")
    out.print(table)


@users_app.command("assign")
def assign(
    username: Annotated[str, typer.Argument(help="The account")],
    network: Annotated[list[str] | None, typer.Option(help="Network id (network members); repeatable")] = None,
    school: Annotated[list[str] | None, typer.Option(help="School code (UU consultants); repeatable")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove these assignments instead")] = False,
) -> None:
    """Assign networks to a network member or schools to a UU consultant (ids from the config)."""
    from ews.config import ConfigError, load_config
    from ews.settings import get_settings

    targets = [("network", n) for n in network or []] + [("school", s) for s in school or []]
    if not targets:
        raise _usage("give at least one --network or --school")
    try:
        config = load_config(get_settings().resolved_config_path)
    except ConfigError as exc:
        raise _usage(f"cannot check the ids against the config: {exc}") from None
    known = {"network": {n.id for n in config.networks}, "school": {s.code for s in config.schools}}
    unknown = [f"{kind} '{value}'" for kind, value in targets if value not in known[kind]]
    if unknown and not remove:
        raise _usage(f"not in the config: {', '.join(unknown)}")
    store = _store()
    for kind, value in targets:
        _guard(lambda kind=kind, value=value: (store.unassign if remove else store.assign)(username, kind, value))
        _audit(store, username, f"{'unassign' if remove else 'assign'} {kind}:{value}")
    out.print(f"{'removed' if remove else 'assigned'} {', '.join(v for _, v in targets)} "
              f"{'from' if remove else 'to'} '{username}'", highlight=False)


@users_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The account")],
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable the account instead")] = False,
) -> None:
    """Disable an account (its sessions end at once), or re-enable it with --enable."""
    store = _store()
    _guard(lambda: store.set_active(username, enable))
    _audit(store, username, "enable" if enable else "disable")
    out.print(f"user '{username}' {'enabled' if enable else 'disabled'}", highlight=False)


@users_app.command("unlock")
def unlock(username: Annotated[str, typer.Argument(help="The account")]) -> None:
    """Lift the lockout after repeated failed logins: earlier failures of this name no longer count.

    A client address refused for too many failed logins is released when its window ends
    (EWS_DASHBOARD_LOGIN_WINDOW_MINUTES).
    """
    store = _store()
    _guard(lambda: store.unlock(username, by=f"cli:{getpass.getuser()}"))
    out.print(f"user '{username}' unlocked", highlight=False)


@users_app.command("passwd")
def passwd(
    username: Annotated[str, typer.Argument(help="The account")],
    password_env: Annotated[str | None, typer.Option(
        help="Read the password from this environment variable instead of asking")] = None,
) -> None:
    """Set a new password (its sessions end at once)."""
    password = _read_password(password_env)
    store = _store()
    _guard(lambda: store.set_password(username, password))
    _audit(store, username, "password")
    out.print(f"password of '{username}' changed", highlight=False)
