"""Shared fixtures: an isolated state folder and Prefect home for every test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="ews-test-prefect-"))
os.environ.setdefault("PREFECT_HOME", str(_SESSION_HOME))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh EWS_STATE_DIR with a fixed pseudonymisation key."""
    state = tmp_path / "state"
    monkeypatch.setenv("EWS_STATE_DIR", str(state))
    monkeypatch.setenv("EWS_PSEUDONYM_KEY", "test-key-not-secret")
    return state
