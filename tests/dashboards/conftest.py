"""Fixtures of the review app's tests: a synthetic state folder, accounts, a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards.app import create_app
from dashboards.sample import SampleState, write_sample_state
from dashboards.settings import DashboardSettings
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, make_env


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> SampleState:
    """The sample warehouse, written once per session (tests copy it)."""
    return write_sample_state(tmp_path_factory.mktemp("sample") / "state")


@pytest.fixture
def env(sample_template: SampleState, tmp_path: Path) -> AppEnv:
    return make_env(sample_template, tmp_path / "state")


@pytest.fixture
def live(env: AppEnv) -> Iterator[LiveServer]:
    app = create_app(env.settings, DashboardSettings(), env.store)
    with LiveServer(app) as server:
        yield server
