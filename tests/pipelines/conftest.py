"""The finished-run fixture: a small synthetic municipality through one termly run."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.synth import SynthParams, generate_municipality

TERM = "2025/26-H1"
SMALL = SynthParams(seed=11, schools=3, pupils_per_grade=60, first_school_year="2016/17", last_term=TERM)


@dataclass
class FinishedRun:
    """A state folder after one successful run, and its manifest."""

    state_dir: Path
    synthetic_dir: Path
    manifest: dict


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic municipality, written once per session."""
    out = tmp_path_factory.mktemp("synthetic") / "synthetic"
    generate_municipality(out, SMALL)
    return out


def use_state(monkeypatch: pytest.MonkeyPatch, state: Path, synthetic: Path) -> None:
    """Point the settings at a state folder and a synthetic municipality."""
    monkeypatch.setenv("EWS_STATE_DIR", str(state))
    monkeypatch.setenv("EWS_CONFIG_PATH", str(synthetic / "municipality.yaml"))
    monkeypatch.setenv("EWS_INBOX", str(synthetic / "exports"))
    monkeypatch.setenv("EWS_PSEUDONYM_KEY", "test-key-not-secret")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, synthetic_small: Path) -> FinishedRun:
    """One successful termly run over the small synthetic municipality (shared, read-only)."""
    from pipelines.flows import termly_flow

    state = tmp_path_factory.mktemp("finished") / "state"
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_state(monkeypatch, state, synthetic_small)
        manifest = termly_flow(TERM)
    return FinishedRun(state_dir=state, synthetic_dir=synthetic_small, manifest=manifest)


@pytest.fixture
def run_copy(finished_run: FinishedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FinishedRun:
    """A private copy of the finished run's state, for tests that run again or break things."""
    state = tmp_path / "state"
    shutil.copytree(finished_run.state_dir, state, ignore=shutil.ignore_patterns("prefect"))
    use_state(monkeypatch, state, finished_run.synthetic_dir)
    return FinishedRun(state_dir=state, synthetic_dir=finished_run.synthetic_dir,
                       manifest=finished_run.manifest)
