"""The stages that follow the ingest in a termly run, in data-flow order.

Each stage is a plain function ``(session, ctx) -> dict`` that reads and writes the staged
warehouse through ``session`` and returns what it adds to the manifest's ``outputs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STAGES: list[tuple[str, Callable[[Any, Any], dict[str, Any]]]] = []
