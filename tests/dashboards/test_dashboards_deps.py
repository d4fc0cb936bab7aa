"""The typed dependencies: every non-public route needs a role, and every role refusal is audited."""

from __future__ import annotations

import httpx
from fastapi.routing import APIRoute

from dashboards.deps import RoleRequired
from dashboards.routes import ROUTERS
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, login, pupil_links

#: Routes anyone may reach (the login itself), or any logged-in user (start page, logout).
OPEN_ROUTES = {"/healthz", "/login", "/", "/logout"}
USERS = {"vera": "consultant", "nina": "network_member", "stig": "steward", "anne": "admin"}


def _role_checks(dependant) -> list[RoleRequired]:
    found = [d.call for d in dependant.dependencies if isinstance(d.call, RoleRequired)]
    for sub in dependant.dependencies:
        found += _role_checks(sub)
    return found


def test_every_route_but_the_open_ones_declares_the_roles_it_needs() -> None:
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 18
    for route in routes:
        checks = _role_checks(route.dependant)
        if route.path in OPEN_ROUTES:
            assert not checks, route.path
        else:
            assert len(checks) == 1, f"{route.path} has no role dependency"


def test_a_role_refused_by_the_dependency_is_audited_on_every_guarded_page(env: AppEnv, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as vera:
        login(vera, "vera")
        pupil = pupil_links(vera.get("/vejleder").text)[0]
    pages = {
        "/netvaerk": {"network_member"}, "/netvaerk/N001": {"network_member"},
        "/netvaerk/N001/eksport.pdf": {"network_member"}, "/netvaerk/N001/eksport.xlsx": {"network_member"},
        "/netvaerk/N001/eksport.csv": {"network_member"}, "/vejleder": {"consultant"},
        f"/elev/{pupil}": {"consultant", "network_member"}, "/drift": {"steward", "admin"},
        "/drift/kvalitet": {"steward", "admin"}, "/drift/stabilitet": {"steward", "admin"},
        "/drift/model": {"steward", "admin"}, "/revision": {"steward", "admin"}, "/admin/brugere": {"admin"},
        "/drift/udfald": {"steward", "admin"}, "/netvaerk/N001/opfoelgning.pdf": {"network_member"},
    }
    refused = 0
    for user, role in USERS.items():
        with httpx.Client(base_url=live.url) as client:
            assert login(client, user).status_code == 303
            for path, roles in pages.items():
                response = client.get(path, follow_redirects=False)
                if role in roles:
                    assert response.status_code in (200, 303) or path.startswith("/elev/"), (user, path)
                    continue
                refused += 1
                assert response.status_code == 403, (user, path)
                rows = [e for e in env.store.read_audit(limit=1000, username=user)
                        if e["path"] == path and e["outcome"] == "denied"]
                assert len(rows) == 1 and rows[0]["role"] == role and rows[0]["http_status"] == 403, (user, path)
    assert refused == sum(len(USERS) - len(roles) for roles in pages.values())
