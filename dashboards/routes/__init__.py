"""The app's routes, one ``APIRouter`` per area, included by ``dashboards.app.create_app``."""

from __future__ import annotations

from dashboards.routes import admin, audit, auth, consultant, exclusions, network, pupil, steward

#: Every router, in the order the app includes them.
ROUTERS = (auth.router, network.router, consultant.router, pupil.router, steward.router, audit.router,
           admin.router, exclusions.router)
