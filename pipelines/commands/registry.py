"""Area commands registered on the ``ews`` app: (name, function) and (name, sub-app)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMANDS: list[tuple[str, Callable[..., Any]]] = []
GROUPS: list[tuple[str, Any]] = []
