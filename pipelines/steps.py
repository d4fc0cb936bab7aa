"""The steps of a termly run: plain functions from typed inputs to typed results.

A run is, in data-flow order (:data:`STEPS`)::

    ingest -> expiry (the exports' rows past their time) -> exclusions -> features
    -> model (train or reuse, score, gate) -> explanations -> flag lists -> reviews copy
    -> outcomes -> retention (the rest, and the expired export files)

Every step takes the run's :class:`RunInputs` (immutable, run-wide), the staged
:class:`~ews.warehouse.WriteSession` it writes through, and the results of the steps it needs,
and returns a frozen dataclass with what it produced and how long it took (``seconds``). No
step reads another's output from a shared dict: what a step needs is in its signature. The
manifest is assembled from the results in one place (:func:`pipelines.manifest.run_manifest`).

Prefect is not imported here: ``pipelines.flows`` wraps each step in a task (the Prefect UI
shows the steps of a run with their durations) and calls them in order, in the flow's thread,
on one staged session (one writer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ews.config import MunicipalityConfig
from ews.settings import Settings
from ews.terms import Term
from ews.warehouse import WriteSession
from pipelines.ingest import IngestResult, SourceFiles

if TYPE_CHECKING:  # imported where used: the command line starts without scikit-learn
    from ews.retention import RetentionCount, SourceExpiry
    from models.risk_model import ModelBundle

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunInputs:
    """What every step of one run shares; fixed before the first step.

    Attributes:
        settings: The settings (state folder, key, chunk sizes, today).
        config: The municipality config, validated in full.
        term: The term.
        as_of_date: The term's as-of date.
        run_id: The run id (a content hash of the inputs).
        attempt: The execution of the run id (1 for the first).
        config_hash: Hash of the config.
        code_version: The code's version.
        data_snapshot: Hash of the input files (and the active exclusions).
        run_dir: ``runs/<run_id>/``: the run's files.
        started_at: When the run started (UTC, naive).
        sources: The files found per source.
        file_hashes: SHA-256 per input file.
        previous_rows: Rows loaded per source by the latest successful run (volume check).
        exclusions: The exclusions from screening in effect today (``ews.exclusions``).
    """

    settings: Settings
    config: MunicipalityConfig
    term: Term
    as_of_date: date
    run_id: str
    attempt: int
    config_hash: str
    code_version: str
    data_snapshot: str
    run_dir: Path
    started_at: datetime
    sources: tuple[SourceFiles, ...]
    file_hashes: Mapping[Path, str]
    previous_rows: Mapping[str, int]
    exclusions: pd.DataFrame

    @property
    def lineage(self) -> dict[str, Any]:
        """The run's lineage without the model (for list files and reports)."""
        return {"run_id": self.run_id, "term": str(self.term), "as_of_date": str(self.as_of_date),
                "config_hash": self.config_hash, "data_snapshot": self.data_snapshot,
                "code_version": self.code_version}

    def found_files(self) -> dict[str, list[Path]]:
        """Source name -> the files found for it."""
        return {entry.source.name: list(entry.files) for entry in self.sources}


@dataclass(frozen=True)
class IngestStep:
    """The ingest and validation of every source.

    Attributes:
        result: What was read, loaded and quarantined (``pipelines.ingest``).
        corrections: Per corrected file and pupil, the rows the new export replaced.
        coverage: The manifest's ``source_coverage`` (with the rows loaded).
        seconds: Wall time of the step.
    """

    result: IngestResult
    corrections: pd.DataFrame
    coverage: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class ExclusionStep:
    """Pupils excluded from screening, and the open flags withdrawn because of it.

    Attributes:
        pupils_excluded: Pupils in ``clean_exclusions``.
        flags_withdrawn: Open flags recorded in ``flags_withdrawn`` by this run.
        seconds: Wall time of the step.
    """

    pupils_excluded: int
    flags_withdrawn: int
    seconds: float


@dataclass(frozen=True)
class FeatureStep:
    """The features the term is scored on (its as-of date, grades 5-9), stored.

    Attributes:
        as_of_date: The as-of date.
        features: The rows written to ``features_pupil_term`` (one per pupil).
        seconds: Wall time of the step.
    """

    as_of_date: date
    features: pd.DataFrame
    seconds: float

    @property
    def rows(self) -> int:
        """Rows written."""
        return len(self.features)

    @property
    def pupils(self) -> int:
        """Distinct pupils."""
        return int(self.features["pupil_id"].nunique())


@dataclass(frozen=True)
class ModelStep:
    """The model (trained or reused), the term's scores and the publication gate.

    Attributes:
        bundle: The model that scored the term.
        scores: The rows written to ``scores_pupil_term``.
        gate: The gate (``passed``, ``published``, ``list_basis``, ``best_rule``, ``figures``, ...).
        manifest_entry: The manifest's ``model`` and ``scores`` (``models.scoring.manifest_entry``).
        warnings: The gate's warning when the model did not pass.
        seconds: Wall time of the step.
    """

    bundle: ModelBundle
    scores: pd.DataFrame
    gate: dict[str, Any]
    manifest_entry: dict[str, Any]
    warnings: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class ExplanationStep:
    """SHAP explanations of every scored pupil, or why there are none.

    Attributes:
        entry: The manifest's ``explanations`` (``pupils``, ``rows``, ``model_id``,
            ``additivity_max_error``) or ``{"skipped": reason}``.
        seconds: Wall time of the step.
    """

    entry: dict[str, Any]
    seconds: float

    @property
    def stored(self) -> bool:
        """Whether explanations were stored for the run."""
        return "skipped" not in self.entry


@dataclass(frozen=True)
class FlagStep:
    """Each network's flag list and the UU working lists.

    Attributes:
        worklists: The manifest's ``outputs.uu_worklists`` (one entry per network; empty when no
            list is published).
        seconds: Wall time of the step.
    """

    worklists: list[dict[str, Any]]
    seconds: float


@dataclass(frozen=True)
class ReviewCopyStep:
    """The review app's reviews copied into ``reviews_decisions``.

    Attributes:
        entry: The manifest's ``reviews``.
        seconds: Wall time of the step.
    """

    entry: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class OutcomeStep:
    """Earlier models and flags against the outcomes that have arrived.

    Attributes:
        summary: The manifest's ``outcomes``.
        warnings: One per model whose figures dropped beyond the bootstrap interval.
        card_section: ``model_card_outcomes.md`` of the run (None when nothing was evaluated).
        seconds: Wall time of the step.
    """

    summary: dict[str, Any]
    warnings: tuple[str, ...]
    card_section: Path | None
    seconds: float


@dataclass(frozen=True)
class ExpiryStep:
    """The exports' rows past their time, deleted right after the ingest (``ews.retention.expire_source_rows``).

    Attributes:
        expired: What was deleted and the scope the run's retention step finishes with.
        seconds: Wall time of the step.
    """

    expired: SourceExpiry
    seconds: float


@dataclass(frozen=True)
class RetentionStep:
    """What retention deleted in the staged version (finished after publication).

    Attributes:
        counts: From ``ews.retention.apply_retention``.
        seconds: Wall time of the step.
    """

    counts: list[RetentionCount]
    seconds: float


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def ingest_step(session: WriteSession, inputs: RunInputs, progress: Progress | None = None) -> IngestStep:
    """Read, validate and load every source into the staged warehouse; note corrected exports.

    Args:
        session: The staged session.
        inputs: The run's inputs.
        progress: Called with short status lines.

    Returns:
        The ingest's result, the rows corrected exports replaced and the source coverage.
    """
    from pipelines.corrections import changed_files, replaced_rows, rows_before
    from pipelines.coverage import rows_loaded_by_source, source_coverage
    from pipelines.ingest import ingest_sources

    started = time.perf_counter()
    sources = list(inputs.sources)
    hashes = dict(inputs.file_hashes)
    changed = changed_files(session.con, sources, hashes)  # corrected exports (rectification)
    before = rows_before(session.con, changed)
    settings = inputs.settings
    result = ingest_sources(
        session, inputs.config, sources, key=settings.key_bytes(), term=inputs.term,
        today=settings.today_date(), run_id=inputs.run_id, previous_rows=dict(inputs.previous_rows),
        progress=progress, chunk_rows=settings.ingest_chunk_rows,
        file_hashes=hashes,
    )
    corrections = replaced_rows(session.con, changed, before)
    coverage = source_coverage(inputs.config, inputs.found_files(), rows_loaded_by_source(result.files))
    return IngestStep(result=result, corrections=corrections, coverage=coverage, seconds=_since(started))


def exclusion_step(session: WriteSession, inputs: RunInputs) -> ExclusionStep:
    """Pupils excluded from screening (``ews.exclusions``): left out from here on, open flags withdrawn.

    Copies the exclusions in effect today into ``clean_exclusions`` (the features step leaves
    those pupils out, so no later step sees them) and records each open flag of theirs in
    ``flags_withdrawn`` for the UU consultant. Counts only, no pupil.

    Args:
        session: The staged session.
        inputs: The run's inputs (``exclusions``).

    Returns:
        How many pupils are excluded and how many flags were withdrawn.
    """
    from ews.exclusions import withdraw_open_flags, write_exclusions

    started = time.perf_counter()
    excluded = write_exclusions(session.con, inputs.exclusions)
    withdrawn = withdraw_open_flags(session.con, inputs.exclusions, inputs.run_id, str(inputs.term),
                                    str(inputs.term.previous()))
    return ExclusionStep(pupils_excluded=excluded, flags_withdrawn=withdrawn, seconds=_since(started))


def feature_step(session: WriteSession, inputs: RunInputs) -> FeatureStep:
    """Build and store the features of the term's as-of date for every pupil in grades 5-9.

    Reads the ``clean_*`` tables and ``clean_exclusions`` (the ingest and exclusion steps);
    replaces the as-of date's rows of ``features_pupil_term``. Training features (many as-of
    dates) are built by the model step, only when it retrains.

    Args:
        session: The staged session.
        inputs: The run's inputs.

    Returns:
        The features, for the model, explanation and flag-list steps.
    """
    from features.build import build_scoring_features

    started = time.perf_counter()
    features = build_scoring_features(session.con, inputs.config, str(inputs.term), inputs.as_of_date)
    return FeatureStep(as_of_date=inputs.as_of_date, features=features, seconds=_since(started))


def model_step(session: WriteSession, inputs: RunInputs, features: FeatureStep,
               progress: Progress | None = None) -> ModelStep:
    """Train (or reuse) the model for the term, score the features, apply the publication gate.

    The gate (``models.gate``) says whether the model's lists may be published; a model
    registered before the gate existed is measured now.

    Args:
        session: The staged session.
        inputs: The run's inputs.
        features: The term's features (:func:`feature_step`).
        progress: Called with short status lines (training).

    Returns:
        The model, the scores, the gate and the manifest entry.
    """
    from models.gate import gate_warning, published
    from models.scoring import run_model_stage

    started = time.perf_counter()
    bundle, scores, entry = run_model_stage(
        session.con, inputs.config, str(inputs.term), inputs.as_of_date, features.features, inputs.run_id,
        inputs.settings.state_dir / "models", inputs.code_version, progress=progress,
    )
    gate = (bundle.metrics or {}).get("gate")
    if gate is None:  # a model registered before the gate existed: measure it now
        from models.evaluation import evaluate_model

        gate = evaluate_model(session.con, inputs.config, bundle, n_boot=0)["gate"]
    gate = {**gate, **published(gate, inputs.config.publication.on_gate_failure)}
    warning = gate_warning(gate)
    return ModelStep(bundle=bundle, scores=scores, gate=gate, manifest_entry=entry,
                     warnings=(warning,) if warning else (), seconds=_since(started))


def _scored_features(features: FeatureStep, model: ModelStep) -> pd.DataFrame:
    """The features of exactly the scored pupils, one row each."""
    frame = features.features
    return frame[frame["pupil_id"].isin(model.scores["pupil_id"])].drop_duplicates("pupil_id")


def explanation_step(session: WriteSession, inputs: RunInputs, model: ModelStep,
                     features: FeatureStep) -> ExplanationStep:
    """SHAP explanations for every scored pupil, stored with the run and checked for additivity.

    Skipped when the model did not pass the publication gate: its explanations are not
    published (a rule list gives the rule's criteria as reasons).

    Args:
        session: The staged session.
        inputs: The run's inputs.
        model: The model step's result.
        features: The features the model scored.

    Returns:
        The manifest's ``explanations``.
    """
    from models.explain import explain_run

    started = time.perf_counter()
    if not model.gate["passed"]:
        return ExplanationStep(entry={"skipped": "the model did not pass the publication gate"},
                               seconds=_since(started))
    entry = explain_run(session.con, model.bundle, _scored_features(features, model), inputs.run_id,
                        str(inputs.term))
    return ExplanationStep(entry=entry, seconds=_since(started))


def flag_step(session: WriteSession, inputs: RunInputs, model: ModelStep, features: FeatureStep,
              explanations: ExplanationStep) -> FlagStep:
    """Each network's flag list (new, still, no longer flagged) and the UU working lists.

    The files name every flagged pupil before review, so they are the UU consultants' working
    lists (``uu_worklists/``); the network's list is served by the review app after review.
    What is published follows the gate: the model's lists (with the stored explanations as
    reasons); the best rule's lists (``flags.rule_lists``); or, with
    ``publication.on_gate_failure: no_list``, no list at all (the term's earlier lists are
    removed, no file is written).

    Args:
        session: The staged session.
        inputs: The run's inputs.
        model: The model step's result (bundle, scores, gate).
        features: The features the model scored (a rule list scores them by the rule).
        explanations: The explanation step's result (a model list needs them stored).

    Returns:
        The UU working lists written.

    Raises:
        ValueError: When the model's lists are to be published but no explanations were stored.
    """
    from flags.export import publish_flag_lists
    from flags.selection import withdraw_flag_lists
    from models.gate import PUBLISHED_MODEL, PUBLISHED_NO_LIST, PUBLISHED_RULE_LIST

    started = time.perf_counter()
    gate = model.gate
    if gate["published"] == PUBLISHED_NO_LIST:
        withdraw_flag_lists(session.con, str(inputs.term))
        return FlagStep(worklists=[], seconds=_since(started))
    if gate["published"] == PUBLISHED_MODEL and not explanations.stored:
        raise ValueError(f"run {inputs.run_id}: the model's lists need its explanations, which were not stored")
    rule = None
    if gate["published"] == PUBLISHED_RULE_LIST:
        from flags.rule_lists import rule_basis

        baseline = next(b for b in model.bundle.baselines if b.name == gate["best_rule"])
        rule = rule_basis(baseline, _scored_features(features, model))
    lineage = {**inputs.lineage, "model_id": model.bundle.model_id}
    entries = publish_flag_lists(session.con, session.identity, inputs.config, str(inputs.term), inputs.run_id,
                                 inputs.run_dir / "uu_worklists", lineage, rule=rule)
    return FlagStep(worklists=entries, seconds=_since(started))


def review_copy_step(session: WriteSession, inputs: RunInputs) -> ReviewCopyStep:
    """Copy the review app's reviews into ``reviews_decisions`` (issue 14).

    ``app.sqlite`` is opened read-only, so the copy never blocks the app; only pseudonyms,
    codes, roles and dates are copied.

    Args:
        session: The staged session.
        inputs: The run's inputs (the state folder).

    Returns:
        The manifest's ``reviews`` (how many).
    """
    from dashboards.store import read_reviews
    from flags.followup import copy_reviews

    started = time.perf_counter()
    entry = copy_reviews(session.con, read_reviews(inputs.settings.state_dir))
    return ReviewCopyStep(entry=entry, seconds=_since(started))


def outcome_step(session: WriteSession, inputs: RunInputs) -> OutcomeStep:
    """Earlier models and flags against the outcomes that have arrived (issue 14).

    Writes ``scores_outcome_evaluation`` (``models.prospective``) and ``flags_outcomes``
    (``flags.outcomes``, descriptive) for the term and, when any model was evaluated, the
    model-card section ``model_card_outcomes.md`` of the run.

    Args:
        session: The staged session.
        inputs: The run's inputs.

    Returns:
        The manifest's ``outcomes``, a warning per model whose figures dropped beyond the
        bootstrap interval, and the card section's path.
    """
    from flags.outcomes import DESCRIPTIVE_NOTE_DA, flag_outcomes, store_flag_outcomes
    from models.card import write_outcome_section
    from models.prospective import (
        arrived_outcomes,
        drop_warnings,
        evaluate_earlier_models,
        manifest_outcomes,
        store_prospective,
    )

    started = time.perf_counter()
    capacity = {n.id: n.capacity_per_term for n in inputs.config.networks}
    term = str(inputs.term)
    evaluation = evaluate_earlier_models(session.con, capacity, term, inputs.as_of_date, inputs.run_id,
                                         seed=inputs.config.model.seed)
    store_prospective(session.con, term, evaluation)
    descriptive = flag_outcomes(session.con, arrived_outcomes(session.con, inputs.as_of_date), term, inputs.run_id)
    store_flag_outcomes(session.con, term, descriptive)
    card_section = None
    if not evaluation.empty:
        card_section = write_outcome_section(evaluation, descriptive, inputs.run_dir / "model_card_outcomes.md",
                                             note=DESCRIPTIVE_NOTE_DA)
    return OutcomeStep(summary=manifest_outcomes(evaluation), warnings=tuple(drop_warnings(evaluation)),
                       card_section=card_section, seconds=_since(started))


def expiry_step(session: WriteSession, inputs: RunInputs) -> ExpiryStep:
    """Delete the exports' rows past their time before the features and the model see them.

    A model trained on rows that the same run deletes would be retrained by the next run on the
    same term (its training data changed), and would have learnt from data past its time.

    Args:
        session: The staged session.
        inputs: The run's inputs (today's date is the as-of date).

    Returns:
        What was deleted, for :func:`retention_step` to finish.
    """
    from ews.retention import expire_source_rows

    started = time.perf_counter()
    expired = expire_source_rows(session, inputs.config, inputs.as_of_date)
    return ExpiryStep(expired=expired, seconds=_since(started))


def retention_step(session: WriteSession, inputs: RunInputs, expiry: ExpiryStep | None) -> RetentionStep:
    """Delete what is past its time, in the same staged version (published with the run or not at all).

    Args:
        session: The staged session.
        inputs: The run's inputs (today's date is the as-of date; the inbox).
        expiry: The run's :func:`expiry_step` (the exports' rows already deleted), or None.

    Returns:
        What was deleted (``ews.retention.finish_retention`` completes it after publication).
    """
    from ews.retention import apply_retention

    started = time.perf_counter()
    counts = apply_retention(session, inputs.config, inputs.as_of_date, inputs.settings.state_dir,
                             inputs.settings.resolved_inbox, expiry.expired if expiry is not None else None)
    return RetentionStep(counts=counts, seconds=_since(started))


#: The run's steps in data-flow order: (name, the steps whose results it takes or whose tables it reads).
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ingest", ()),
    ("expiry", ("ingest",)),
    ("exclusions", ("ingest",)),
    ("features", ("ingest", "exclusions")),
    ("model", ("features",)),
    ("explanations", ("model", "features")),
    ("flag_lists", ("model", "features", "explanations")),
    ("reviews", ()),
    ("outcomes", ("ingest",)),
    ("retention", ("expiry",)),
)
STEP_NAMES: tuple[str, ...] = tuple(name for name, _ in STEPS)


def steps_to_run(skip: Collection[str] = ()) -> tuple[str, ...]:
    """The steps a run takes when some are left out, with every step that needs one left out.

    Leaving steps out is for tests and benchmarks (a world that only needs the model, a corpus
    with too little history for one); a municipality's run takes every step.

    Args:
        skip: Names from :data:`STEP_NAMES` (not ``ingest``).

    Returns:
        The names of the steps to run, in data-flow order.

    Raises:
        ValueError: For an unknown step name, or the ingest.
    """
    unknown = sorted(set(skip) - set(STEP_NAMES))
    if unknown or "ingest" in skip:
        raise ValueError(f"steps that cannot be left out: {unknown or ['ingest']}; the steps are {STEP_NAMES}")
    left_out: set[str] = set(skip)
    if "retention" in left_out:  # the expiry is retention's first half: left out with it
        left_out.add("expiry")
    for name, needs in STEPS:
        if left_out.intersection(needs):
            left_out.add(name)
    return tuple(name for name in STEP_NAMES if name not in left_out)


@dataclass
class StepResults:
    """The results of a run's steps as they finish (None: not run, or not reached)."""

    ingest: IngestStep | None = None
    expiry: ExpiryStep | None = None
    exclusions: ExclusionStep | None = None
    features: FeatureStep | None = None
    model: ModelStep | None = None
    explanations: ExplanationStep | None = None
    flag_lists: FlagStep | None = None
    reviews: ReviewCopyStep | None = None
    outcomes: OutcomeStep | None = None
    retention: RetentionStep | None = None

    def step_seconds(self) -> dict[str, float]:
        """Seconds per finished step, in data-flow order (the manifest's ``step_seconds``)."""
        return {f.name: round(getattr(self, f.name).seconds, 2) for f in fields(self)
                if getattr(self, f.name) is not None}
