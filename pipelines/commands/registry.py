"""Area commands registered on the ``ews`` app: (name, function) and (name, sub-app)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.commands.audit import audit_app
from pipelines.commands.dashboards import serve, users_app
from pipelines.commands.evaluate import evaluate
from pipelines.commands.explain import explain
from pipelines.commands.fleet import fleet_app
from pipelines.commands.lifecycle import exclude, exclusions, records, retention, subject_access

COMMANDS: list[tuple[str, Callable[..., Any]]] = [("evaluate", evaluate), ("explain", explain), ("serve", serve),
                                               ("exclude", exclude), ("exclusions", exclusions),
                                               ("subject-access", subject_access), ("retention", retention),
                                               ("records", records)]
GROUPS: list[tuple[str, Any]] = [("users", users_app), ("audit", audit_app), ("fleet", fleet_app)]
