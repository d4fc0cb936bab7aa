"""Typed dependencies of the routes: context, current user, required role, read-only warehouse.

The role a route needs writes a refusal to the audit log, so no handler can forget it. The
pattern is that of ``fastapi/full-stack-fastapi-template``'s ``backend/app/api/deps.py``.
A route says what it needs in its signature::

    @router.get("/vejleder")
    def consultant_list(request: Request, ctx: Ctx, principal: Consultant, con: Warehouse) -> Response:

FastAPI resolves the parameters in order, so the role is checked (and a refusal audited)
before the warehouse is opened. (No ``from __future__ import annotations`` here: FastAPI reads
the annotations of :class:`RoleRequired`'s ``__call__``, which has no module globals to resolve
strings in.)
"""

from collections.abc import Iterator
from typing import Annotated

import duckdb
from fastapi import Depends, Request

from dashboards.access import STEWARD_ROLES, Principal
from dashboards.web import AppContext, Forbidden, LoginRequired, audit
from ews.warehouse import WAREHOUSE_FILE, WarehousePaths
from ews.warehouse import open_readonly as open_snapshot


def get_ctx(request: Request) -> AppContext:
    """The app's shared context (settings, store, templates)."""
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def get_current_user(request: Request) -> Principal:
    """The logged-in user, set by the authentication middleware.

    Raises:
        LoginRequired: When nobody is logged in (the login page or a 401 follows).
    """
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise LoginRequired()
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


class RoleRequired:
    """A dependency that lets only some roles through and audits every refusal.

    Args:
        roles: The roles allowed.
        action: The audit action of the route (``view_list``, ``export``, ``view_pupil``, ...).
        message: The Danish message of the refusal page.
        object_type: The audit object type.
        object_param: The path parameter that names the object (e.g. ``network_id``), if any.
        object_id: A fixed object id (used when there is no path parameter).
        refusal: The reason recorded with a refusal; ``{role}`` is the user's role.
        allowed_purpose: When given, an allowed request is audited too, with this purpose
            (steward pages: every view is on record); ``{param}`` fields come from the path.
    """

    def __init__(self, roles: frozenset[str] | set[str] | tuple[str, ...], *, action: str, message: str,
                 object_type: str | None = None, object_param: str | None = None, object_id: str | None = None,
                 refusal: str = "Rollen {role} har ikke adgang", allowed_purpose: str | None = None) -> None:
        self.roles = frozenset(roles)
        self.action = action
        self.message = message
        self.object_type = object_type
        self.object_param = object_param
        self.object_id = object_id
        self.refusal = refusal
        self.allowed_purpose = allowed_purpose

    def __call__(self, request: Request, ctx: Ctx, principal: CurrentUser) -> Principal:
        """Check the role; audit a refusal (and, if asked, the allowed view)."""
        object_id = self.object_id
        if self.object_param is not None:
            object_id = str(request.path_params.get(self.object_param, "")) or object_id
        elif object_id is not None:
            object_id = object_id.format(**request.path_params)
        if principal.role not in self.roles:
            audit(ctx, request, principal, self.action, False, object_type=self.object_type, object_id=object_id,
                  purpose=self.refusal.format(role=principal.role))
            raise Forbidden(self.message)
        if self.allowed_purpose is not None:
            audit(ctx, request, principal, self.action, True, object_type=self.object_type, object_id=object_id,
                  purpose=self.allowed_purpose)
        return principal


def steward_page(page: str) -> RoleRequired:
    """The role check of a steward page (aggregates only); ``page`` may name path fields."""
    return RoleRequired(STEWARD_ROLES, action="view_steward", object_type="page", object_id=page,
                        message="Driftssiderne er for dataansvarlige.",
                        refusal="Kun dataansvarlige og administratorer",
                        allowed_purpose="Drift og datakvalitet (kun aggregater)")


NetworkMember = Annotated[Principal, Depends(RoleRequired(
    {"network_member"}, action="view_list", object_type="network", object_param="network_id",
    message="Netværkslister er for netværkenes medlemmer.", refusal="Rollen har ingen netværksliste"))]
NetworkExporter = Annotated[Principal, Depends(RoleRequired(
    {"network_member"}, action="export", object_type="network", object_param="network_id",
    message="Netværkslister er for netværkenes medlemmer.", refusal="Rollen har ingen netværksliste"))]
Consultant = Annotated[Principal, Depends(RoleRequired(
    {"consultant"}, action="view_list", object_type="school",
    message="Listen over flag pr. skole er for UU-vejledere.", refusal="Kun UU-vejledere har skolelister"))]
Reviewer = Annotated[Principal, Depends(RoleRequired(
    {"consultant"}, action="review", object_type="pupil", object_param="pupil_id",
    message="Du kan ikke vurdere denne elevs flag.", refusal="Kun UU-vejledere vurderer flag"))]
PupilViewer = Annotated[Principal, Depends(RoleRequired(
    {"network_member", "consultant"}, action="view_pupil", object_type="pupil", object_param="pupil_id",
    message="Din rolle giver ikke adgang til elevsider.", refusal="Rollen {role} ser ingen elevdata"))]
AuditReader = Annotated[Principal, Depends(RoleRequired(
    STEWARD_ROLES, action="view_audit", message="Adgangsloggen kan læses af dataansvarlige og administratorer.",
    refusal="Kun dataansvarlige og administratorer", allowed_purpose="Tilsyn med adgang"))]
Admin = Annotated[Principal, Depends(RoleRequired(
    {"admin"}, action="admin", object_type="page", object_id="users",
    message="Brugeradministration er for administratorer.", refusal="Kun administratorer"))]


def get_warehouse(ctx: Ctx) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """The live warehouse, read-only, as a snapshot for this request (None before any run).

    The file is attached read-only to a fresh in-memory database (``ews.warehouse.open_readonly``),
    so a run that swaps in a new warehouse never blocks or changes this request's view.
    """
    version = WarehousePaths(ctx.state_dir).published()  # resolved once per request
    if not (version / WAREHOUSE_FILE).exists():
        yield None
        return
    with open_snapshot(ctx.state_dir, version=version) as con:
        yield con


Warehouse = Annotated[duckdb.DuckDBPyConnection | None, Depends(get_warehouse)]
