"""Fixtures of the flag-list tests; the synthetic run itself is built in ``flag_fixtures``."""

from __future__ import annotations

import pytest

from tests.flags.flag_fixtures import StubBundle, TwoRuns, build_two_runs, fit_model, make_config


@pytest.fixture(scope="session")
def bundle() -> StubBundle:
    return fit_model()


@pytest.fixture(scope="session")
def two_runs(bundle: StubBundle) -> TwoRuns:
    runs = build_two_runs(bundle, make_config())
    yield runs
    runs.con.close()
    runs.identity.close()
