"""Fixtures of the pipeline tests.

The session's finished run and the state helpers live in ``tests/conftest.py`` (re-exported
here for the test modules' ``from .conftest import ...``). The one-school world is shared by the
model matrix (its ``small`` world) and the publication-gate tests (its unshuffled and shuffled
runs): same size, same files, one generation and one unshuffled run.
"""

from __future__ import annotations

import pytest

from tests.conftest import PREVIOUS_TERM, TERM, TEST_KEY, FinishedRun, small_params, use_state
from tests.pipelines.model_matrix import WorldResult, ci_worlds, run_world

__all__ = ["PREVIOUS_TERM", "TERM", "TEST_KEY", "FinishedRun", "small_params", "use_state"]

#: The matrix world the publication-gate tests also use (1 school, 60 pupils a grade).
ONE_SCHOOL_WORLD = "small"


@pytest.fixture(scope="session")
def one_school_world(tmp_path_factory: pytest.TempPathFactory) -> WorldResult:
    """The model matrix's one-school world through the whole termly run (with the flag lists).

    The matrix reads its evaluation against the oracle; the publication-gate tests read its run
    (which list was published) and shuffle the labels of a copy of its files (``synthetic``).
    """
    world = next(w for w in ci_worlds() if w.name == ONE_SCHOOL_WORLD)
    return run_world(world, tmp_path_factory.mktemp("one-school"), full_pipeline=True)
