"""Shared fixtures: an isolated state folder and Prefect home, and one finished run per session.

The finished run (``finished_run``) is ``ews demo`` over a small synthetic municipality: the
previous and the current term through every stage (ingest, validation, features, model,
publication gate, explanations, flag lists), as ``dssg/triage``'s ``finished_experiment``. The
tests of every stage and of the app query it read-only; a test that must write (run again,
break something) takes ``run_copy``, a private copy of its state folder.

Which world gives which publication-gate verdict: at this size no end-to-end world passes the
gate's calibration limit (``models.evaluation.MAX_CALIBRATION_ERROR``, 0.03; a perfectly
calibrated model would show up to about 0.08 on held-out cohorts this small), so
``finished_run`` publishes the best rule's lists, labelled, and the tests that read it take
their rule-list branch. The shuffled-label runs of ``tests/pipelines/test_publication_gate.py``
are the worlds that must fail. A model that passes is tested on the gate's own synthetic scores
(``tests/models/test_gate.py``) and on the flag-list fixtures (``tests/flags/flag_fixtures.py``),
not end to end: a passing world needs about 6 schools of 120 pupils a grade over twelve school
years (the old demo test's size, about 3 minutes of CPU).
"""

from __future__ import annotations

import atexit
import io
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

if "PREFECT_HOME" not in os.environ:
    # The session's Prefect home (its temporary server's SQLite database), one per process
    # (the xdist controller and each worker), removed at exit. Registered before Prefect
    # starts its server, so it runs after Prefect's own exit hook has stopped the server
    # (atexit runs last-registered first) and nothing writes into the folder any more.
    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="ews-test-prefect-"))
    atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
    os.environ["PREFECT_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# One OpenMP thread per test process, as every fit and prediction of the runs uses
# (models.risk_model.BOOSTING_THREADS): with two xdist workers on two cores, a test that fits
# boosted trees itself would otherwise start OpenMP's busy-waiting threads on both (a 90-leaf
# fit took 5.8 s instead of 0.13 s beside another job). Read when OpenMP loads, so set before
# any test imports scikit-learn (and numpy's BLAS likewise, where it is not loaded yet).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: The term of the shared finished run (the demo term) and the one before it.
TERM = "2025/26-H1"
PREVIOUS_TERM = "2024/25-H2"
#: The pseudonymisation key of every test state folder (not a secret).
TEST_KEY = "test-key-not-secret"


def small_params():  # noqa: ANN201 - a SynthParams (imported late: conftest loads before any test)
    """The small synthetic municipality of the shared run: 3 schools, 60 pupils a grade, from 2016/17."""
    from pipelines.synth import SynthParams

    return SynthParams(seed=11, schools=3, pupils_per_grade=60, first_school_year="2016/17", last_term=TERM)


@dataclass
class FinishedRun:
    """A state folder after the demo's two successful termly runs, and the current term's manifest."""

    state_dir: Path
    synthetic_dir: Path
    manifest: dict


def use_state(monkeypatch: pytest.MonkeyPatch, state: Path, synthetic: Path) -> None:
    """Point the settings at a state folder and a synthetic municipality."""
    monkeypatch.setenv("EWS_STATE_DIR", str(state))
    monkeypatch.setenv("EWS_CONFIG_PATH", str(synthetic / "municipality.yaml"))
    monkeypatch.setenv("EWS_INBOX", str(synthetic / "exports"))
    monkeypatch.setenv("EWS_PSEUDONYM_KEY", TEST_KEY)


@pytest.fixture(scope="session")
def prefect_api_url() -> str:
    """The session's Prefect server, for ``ews run`` in a subprocess (``PREFECT_API_URL``).

    The same temporary server the in-process flows use (Prefect's ``SubprocessASGIServer``,
    started once, stopped at exit), so a subprocess does not start one of its own (about
    25 s on the loaded 2-core machine).
    """
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    return server.api_url


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh EWS_STATE_DIR with a fixed pseudonymisation key."""
    state = tmp_path / "state"
    monkeypatch.setenv("EWS_STATE_DIR", str(state))
    monkeypatch.setenv("EWS_PSEUDONYM_KEY", TEST_KEY)
    return state


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small synthetic municipality (exports, config, ground truth), written once per session.

    Read-only: a test that changes it copies it first.
    """
    from rich.console import Console

    from pipelines.demo import ensure_synthetic

    out = tmp_path_factory.mktemp("synthetic") / "synthetic"
    ensure_synthetic(out, small_params(), Console(file=io.StringIO()))  # marks the parameters
    return out


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, synthetic_small: Path) -> FinishedRun:
    """``ews demo`` over the small synthetic municipality (shared, read-only).

    The synthetic files are copied into the state folder, where the demo keeps them; the demo
    finds them written with its parameters and does not write them again.
    """
    from rich.console import Console

    from pipelines.demo import run_demo

    state = tmp_path_factory.mktemp("finished") / "state"
    synthetic = state / "synthetic"
    shutil.copytree(synthetic_small, synthetic)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_state(monkeypatch, state, synthetic)
        manifest = run_demo(params=small_params(), console=Console(file=io.StringIO()))
    return FinishedRun(state_dir=state, synthetic_dir=synthetic, manifest=manifest)


@pytest.fixture
def run_copy(finished_run: FinishedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FinishedRun:
    """A private copy of the finished run's state (with its synthetic files), for tests that write."""
    state = tmp_path / "state"
    shutil.copytree(finished_run.state_dir, state, ignore=shutil.ignore_patterns("prefect"))
    synthetic = state / finished_run.synthetic_dir.relative_to(finished_run.state_dir)
    use_state(monkeypatch, state, synthetic)
    return FinishedRun(state_dir=state, synthetic_dir=synthetic, manifest=finished_run.manifest)



#: Session fixtures that cost a termly run or more, in order of precedence: under pytest-xdist
#: (``make test`` runs ``-n 2 --dist loadscope``) every test module that names one is sent to
#: the same worker, so each is built once per suite instead of once per worker.
SHARED_WORLDS = ("one_school_world", "finished_run")
#: Fixtures that stand for a shared world (``run_copy`` copies the finished run).
_WORLD_ALIASES = {"run_copy": "finished_run"}


def _scheduling_scope(rootdir: Path, nodeid: str) -> str:
    """The xdist work unit of a test: its module, or the shared world its module uses.

    A module stays whole on one worker (its module-scoped fixtures are built once); the modules
    that use one shared world go to one worker together. Found from the module's text, since the
    controller that schedules has not collected the tests (``--dist loadgroup`` with
    ``xdist_group`` marks would do this, but pytest-xdist 3.8 marks node ids in a way pytest 9
    ignores, so the marks group nothing).
    """
    module = nodeid.split("::", 1)[0]
    try:
        text = (rootdir / module).read_text(encoding="utf-8")
    except OSError:
        return module
    names = {*SHARED_WORLDS, *_WORLD_ALIASES}
    used = {_WORLD_ALIASES.get(name, name) for name in names if re.search(rf"\b{name}\b", text)}
    return next((f"world:{world}" for world in SHARED_WORLDS if world in used), module)


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist's types
    """With ``--dist loadscope``: one work unit per module, and one per shared world."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    rootdir = config.rootpath

    class WorldScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scheduling_scope(rootdir, nodeid)

    return WorldScheduling(config, log)
