"""The model on several synthetic worlds: synth -> termly run -> held-out AUC against the oracle.

Shared by ``tests/pipelines/test_model_matrix.py`` (sizes that fit CI) and
``bench/model_matrix.py`` (Herning-sized and medium worlds). A world is a size and a setting
of the generating model (``pipelines.synth.model.GeneratingModel``); some worlds also leave
sources out of the config, as a municipality without them would.

The run is the termly run (``pipelines.flows.run_term``) without the explanation and flag-list
steps unless ``full_pipeline`` is set: they do not change the model or its evaluation, and
they cost most of the time after the ingest. The evaluation is ``ews evaluate
--ground-truth`` (``pipelines.commands.evaluate.run_evaluation``) without the fairness
bootstrap.

Where the data allow (at least :data:`MIN_HELD_OUT_PUPILS` pupils in the held-out cohorts, so
that a 0.02 gap is about three standard errors of a paired AUC difference), the model must be
within :data:`MAX_ORACLE_GAP` of the oracle; otherwise the figures are recorded. Once the
publication gate exists (``gate`` in the evaluation or the manifest), every world must be
within the margin or have the gate not passed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.synth import SynthParams, generate_municipality
from pipelines.synth.model import GeneratingModel

TERM = "2025/26-H1"
MAX_ORACLE_GAP = 0.02
MIN_HELD_OUT_PUPILS = 1000
#: Steps left out unless the whole pipeline is asked for (they do not touch the model; the flag
#: lists need the explanations, so they go with them: ``pipelines.steps.steps_to_run``).
SKIPPED_STEPS = ("explanations", "flag_lists")


@dataclass(frozen=True)
class World:
    """One synthetic municipality of the matrix.

    Attributes:
        name: Short name (test id, table row).
        params: Size, span and generating model.
        drop_sources: Source kinds left out of the config (a municipality without them).
        note: What the world stands for.
    """

    name: str
    params: SynthParams
    drop_sources: tuple[str, ...] = ()
    note: str = ""


WEAK = GeneratingModel(effect_laering=0.6, effect_fravaer=0.6, effect_trivsel=0.6, upv_noise_sd=1.4,
                       upv_share=0.12)
STRONG = GeneratingModel(effect_laering=1.4, effect_fravaer=1.4, effect_trivsel=1.4,
                         late_starter_share=0.3, late_drift_mean=0.6)


def ci_worlds() -> list[World]:
    """Worlds that fit CI: the default generator at its smallest, a weak and a strong world.

    The medium world (3 schools x 150) moved to :func:`bench_worlds`: at 299 held-out pupils it
    is below :data:`MIN_HELD_OUT_PUPILS` like the small one, so the suite asserted the same of
    it (within the margin or not published) at a third of the matrix's time; the margin that
    needs more pupils is measured by the bench worlds.
    """
    span = {"first_school_year": "2017/18", "last_term": TERM}
    return [
        World("small", SynthParams(seed=21, schools=1, pupils_per_grade=60, **span),
              note="1 school, 60 pupils a grade, default generator"),
        World("weak_signal_low_base_rate", SynthParams(seed=23, schools=2, pupils_per_grade=100,
                                                       model=WEAK, **span),
              note="effects x0.6, assessor noise 1.4, 12 % not education-ready"),
        World("strong_signal_late_starters_sparse",
              SynthParams(seed=24, schools=2, pupils_per_grade=100, model=STRONG,
                          marks_from_grade=6, **span),
              drop_sources=("tests", "contacts"),
              note="effects x1.4, 30 % late starters; marks from grade 6; no tests or contacts"),
    ]


def bench_worlds() -> list[World]:
    """Larger worlds for ``bench/model_matrix.py``."""
    span = {"first_school_year": "2017/18", "last_term": TERM}
    return [
        World("medium", SynthParams(seed=22, schools=3, pupils_per_grade=150, **span),
              note="3 schools, 150 pupils a grade, default generator (in CI until 2026-12)"),
        World("medium_bench", SynthParams(seed=31, schools=6, pupils_per_grade=500),
              note="6 schools, 500 pupils a grade, default generator"),
        World("herning", SynthParams(seed=7, schools=20, pupils_per_grade=1000),
              note="the default world (Herning-sized)"),
        World("herning_weak_low_base_rate", SynthParams(seed=7, schools=20, pupils_per_grade=1000,
                                                        model=WEAK),
              note="Herning-sized, effects x0.6, noise 1.4, 12 % not education-ready"),
    ]


@dataclass
class WorldResult:
    """A world's run and evaluation."""

    world: World
    manifest: dict[str, Any]
    evaluation: dict[str, Any]
    state_dir: Path
    seconds: float
    cpu_seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def gate(self) -> dict[str, Any] | None:
        """The publication gate's verdict, once the pipeline has one."""
        return self.evaluation.get("gate") or self.manifest.get("gate")

    @property
    def data_allow(self) -> bool:
        """Enough held-out pupils for the 0.02 margin to mean something."""
        return int(self.evaluation.get("pupils") or 0) >= MIN_HELD_OUT_PUPILS

    @property
    def gap(self) -> float:
        """Oracle AUC minus model AUC on the held-out rows."""
        return self.evaluation["oracle"]["roc_auc"] - self.evaluation["model"]["roc_auc"]

    @property
    def within_oracle(self) -> bool:
        """The model is within the margin of the oracle."""
        return self.gap <= MAX_ORACLE_GAP


def summarise(result: WorldResult) -> dict[str, Any]:
    """The figures reported per world."""
    evaluation = result.evaluation
    rules = {name: entry for name, entry in evaluation["baselines"].items()
             if name in ("fravaer_over_10pct", "abc_regel", "kun_skole")}
    best_rule = max(rules, key=lambda name: rules[name]["precision_at_capacity"] or 0.0)
    gate = result.gate
    return {
        "world": result.world.name,
        "rows": evaluation["rows"],
        "pupils": evaluation["pupils"],
        "positive_share": round(evaluation["positives"] / max(evaluation["rows"], 1), 3),
        "auc_model": evaluation["model"]["roc_auc"],
        "auc_oracle": evaluation["oracle"]["roc_auc"],
        "gap": round(result.gap, 4),
        "best_rule": best_rule,
        "auc_best_rule": rules[best_rule]["roc_auc"],
        "p_at_cap_model": evaluation["model"]["precision_at_capacity"],
        "p_at_cap_oracle": evaluation["oracle"]["precision_at_capacity"],
        "p_at_cap_best_rule": rules[best_rule]["precision_at_capacity"],
        "calibration_error": evaluation["model"]["calibration_error"],
        "auc_logistic": evaluation["baselines"]["logistisk_regression"]["roc_auc"],
        "data_allow": result.data_allow,
        "gate_passed": None if gate is None else bool(gate.get("passed")),
        "seconds": round(result.seconds, 1),
        "cpu_seconds": round(result.cpu_seconds, 1),
    }


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def drop_config_sources(config_path: Path, kinds: tuple[str, ...]) -> None:
    """Leave the sources of some kinds out of a municipality config (in place)."""
    document = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    document["sources"] = [s for s in document["sources"] if s["kind"] not in kinds]
    config_path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                           encoding="utf-8")


def run_world(world: World, root: Path, *, full_pipeline: bool = False) -> WorldResult:
    """Write the world, run the term, evaluate against the oracle.

    Args:
        world: The world.
        root: An empty folder for the synthetic files and the state.
        full_pipeline: Also run the explanation and flag-list steps.

    Returns:
        The manifest, the evaluation and the summary figures.
    """
    from pipelines.commands.evaluate import run_evaluation
    from pipelines.flows import run_term

    started, cpu_started = time.perf_counter(), time.process_time()
    synthetic, state = root / "synthetic", root / "state"
    generate_municipality(synthetic, world.params)
    if world.drop_sources:
        drop_config_sources(synthetic / "municipality.yaml", world.drop_sources)
    env = {"EWS_STATE_DIR": str(state), "EWS_CONFIG_PATH": str(synthetic / "municipality.yaml"),
           "EWS_INBOX": str(synthetic / "exports"), "EWS_PSEUDONYM_KEY": "matrix-key-not-secret"}
    with _environment(env):
        manifest = run_term(TERM, skip=() if full_pipeline else SKIPPED_STEPS)
        evaluation = run_evaluation(synthetic / "ground_truth", None, state_dir=state, bootstrap=0)
    result = WorldResult(world=world, manifest=manifest, evaluation=evaluation, state_dir=state,
                         seconds=time.perf_counter() - started,
                         cpu_seconds=time.process_time() - cpu_started)
    result.figures = summarise(result)
    return result


def with_seed(world: World, seed: int) -> World:
    """The same world drawn with another seed."""
    return replace(world, params=replace(world.params, seed=seed))
