"""Prefect flows: thin wrappers around the plain functions of every step.

This is the only module (with ``pipelines.cli`` and ``pipelines.schedule``) that knows Prefect.
One termly run:

    config (validated in full) -> find files, hash them -> run id -> run log 'running'
    -> staged warehouse: the steps of ``pipelines.steps`` in data-flow order, each a Prefect task
       (ingest + validation -> expiry of old export rows -> exclusions -> features
       -> model: train or reuse, score, gate
       -> explanations -> flag lists -> reviews copy -> outcomes -> retention)
    -> publish (one pointer switch for both stores) -> manifest, artifacts
    -> run log 'succeeded'

Each step takes the run's ``RunInputs`` and the typed results of the steps it needs, and returns
a frozen dataclass with its ``seconds``; the manifest is assembled from those results
(``pipelines.manifest.run_manifest``) with the seconds per step in ``step_seconds``. The tasks
run one after another in the flow's thread on one staged session: one writer.

A failure anywhere discards the new version (the published stores are untouched), logs the run
as 'failed' with its message and writes a manifest with status 'failed'. A killed run is
marked 'killed' by the next run (``ews.warehouse.record_run_start``).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

import ews
from ews.config import ConfigError, MunicipalityConfig, config_hash, load_config
from ews.exclusions import ExclusionStore, exclusions_digest
from ews.fleet import artifact_key
from ews.pseudonym import hex_as_letters
from ews.retention import finish_retention
from ews.settings import Settings, get_settings
from ews.terms import Term
from ews.warehouse import (
    WarehousePaths,
    WriteSession,
    open_runlog,
    record_run_end,
    record_run_start,
    staged_write,
)
from pipelines import steps
from pipelines.corrections import record_corrections
from pipelines.file_hashes import CACHE_FILE, file_hashes
from pipelines.ingest import IngestResult, SourceFiles, data_snapshot, discover_sources
from pipelines.manifest import run_manifest, source_entries, write_manifest
from pipelines.steps import RunInputs
from validation.gate import severity_problems
from validation.report import artifact_markdown, render_report, summarise_quarantine

Progress = Callable[[str], None]


def code_version() -> str:
    """The code's version: the git commit when run from a checkout, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    return f"{ews.__version__}+{described}" if described else ews.__version__


def make_run_id(term: Term, as_of: Any, cfg_hash: str, snapshot: str, version: str) -> str:
    """A run id that is a content hash of the run's inputs: the same inputs, the same id.

    The hash's ten hex digits are written as letters (a-p): in about one run in a hundred they
    would all be decimal digits, a run id that reads as a CPR number, which every message, log
    and summary check for CPR numbers would then mask or flag.
    """
    digest = hashlib.sha256(f"{term}|{as_of}|{cfg_hash}|{snapshot}|{version}".encode()).hexdigest()
    return f"{term.start_year}-{(term.start_year + 1) % 100:02d}-H{term.half}-{hex_as_letters(digest[:10])}"


def load_checked_config(path: Path) -> MunicipalityConfig:
    """Load the config and check what only the validation stage knows (its severity keys).

    Raises:
        ConfigError: With every problem found.
    """
    config = load_config(path)
    problems = severity_problems(config)
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return config


def previous_rows_loaded(state_dir: Path) -> dict[str, int]:
    """Rows loaded per source by the latest successful run (for the volume check)."""
    if not WarehousePaths(state_dir).runlog.exists():
        return {}
    with open_runlog(state_dir) as con:
        rows = con.execute(
            "WITH last AS (SELECT run_id, attempt FROM runs WHERE status = 'succeeded' "
            "ORDER BY ended_at DESC LIMIT 1) "
            "SELECT source, sum(rows_loaded) FROM run_sources JOIN last USING (run_id, attempt) "
            "GROUP BY source"
        ).fetchall()
    return {source: int(count) for source, count in rows}


@task(name="hash-files", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def hash_files_task(sources: list[SourceFiles], cache: Path | None) -> dict[Path, str]:
    """Hash every input file (I/O, so retried); unchanged files from the state folder's cache.

    See :mod:`pipelines.file_hashes`: a file whose device, inode, size and times are those it had
    when it was hashed keeps its hash, so a term does not read every school year's bytes again.
    ``cache`` None (``EWS_FILE_HASH_CACHE=false``) hashes every file.
    """
    return file_hashes([path for entry in sources for path in entry.files], cache)


@task(name="ingest-and-validate", retries=0, cache_policy=NO_CACHE)
def ingest_task(session: WriteSession, inputs: RunInputs, progress: Progress | None) -> steps.IngestStep:
    """Read, validate and load every source into the staged warehouse (``pipelines.steps.ingest_step``)."""
    return steps.ingest_step(session, inputs, progress)


@task(name="exclusions", retries=0, cache_policy=NO_CACHE)
def exclusion_task(session: WriteSession, inputs: RunInputs) -> steps.ExclusionStep:
    """Pupils excluded from screening (``pipelines.steps.exclusion_step``)."""
    return steps.exclusion_step(session, inputs)


@task(name="features", retries=0, cache_policy=NO_CACHE)
def feature_task(session: WriteSession, inputs: RunInputs) -> steps.FeatureStep:
    """The term's features (``pipelines.steps.feature_step``)."""
    return steps.feature_step(session, inputs)


@task(name="model", retries=0, cache_policy=NO_CACHE)
def model_task(session: WriteSession, inputs: RunInputs, features: steps.FeatureStep,
               progress: Progress | None) -> steps.ModelStep:
    """Train or reuse the model, score, gate (``pipelines.steps.model_step``)."""
    return steps.model_step(session, inputs, features, progress)


@task(name="explanations", retries=0, cache_policy=NO_CACHE)
def explanation_task(session: WriteSession, inputs: RunInputs, model: steps.ModelStep,
                     features: steps.FeatureStep) -> steps.ExplanationStep:
    """SHAP explanations of the scored pupils (``pipelines.steps.explanation_step``)."""
    return steps.explanation_step(session, inputs, model, features)


@task(name="flag-lists", retries=0, cache_policy=NO_CACHE)
def flag_task(session: WriteSession, inputs: RunInputs, model: steps.ModelStep, features: steps.FeatureStep,
              explanations: steps.ExplanationStep) -> steps.FlagStep:
    """The flag lists and UU working lists (``pipelines.steps.flag_step``)."""
    return steps.flag_step(session, inputs, model, features, explanations)


@task(name="reviews-copy", retries=0, cache_policy=NO_CACHE)
def review_copy_task(session: WriteSession, inputs: RunInputs) -> steps.ReviewCopyStep:
    """The review app's reviews into the warehouse (``pipelines.steps.review_copy_step``)."""
    return steps.review_copy_step(session, inputs)


@task(name="outcomes", retries=0, cache_policy=NO_CACHE)
def outcome_task(session: WriteSession, inputs: RunInputs) -> steps.OutcomeStep:
    """Earlier models and flags against arrived outcomes (``pipelines.steps.outcome_step``)."""
    return steps.outcome_step(session, inputs)


@task(name="expiry", retries=0, cache_policy=NO_CACHE)
def expiry_task(session: WriteSession, inputs: RunInputs) -> steps.ExpiryStep:
    """The exports' rows past their time, deleted before the model sees them (``pipelines.steps.expiry_step``)."""
    return steps.expiry_step(session, inputs)


@task(name="retention", retries=0, cache_policy=NO_CACHE)
def retention_task(session: WriteSession, inputs: RunInputs, expiry: steps.ExpiryStep | None) -> steps.RetentionStep:
    """Delete the rest of what is past its time, in the staged version (``pipelines.steps.retention_step``)."""
    return steps.retention_step(session, inputs, expiry)


#: The progress line said at the start of each step (the command line shows them).
STEP_PROGRESS: dict[str, str] = {
    "ingest": "reading and validating exports",
    "expiry": "retention: the exports' rows past their time",
    "exclusions": "exclusions from screening",
    "features": "features as of the term's as-of date",
    "model": "model: train or reuse, then score",
    "explanations": "explanations",
    "flag_lists": "flag lists",
    "reviews": "reviews: copy from the review app",
    "outcomes": "outcomes: earlier models and flags against arrived outcomes",
    "retention": "retention",
}


def _publish_artifacts(inputs: RunInputs, ingest: IngestResult) -> None:
    table = [
        {"kilde": e["name"], "fil": e["file"], "læst": e["rows_read"], "indlæst": e["rows_loaded"],
         "i karantæne": e["rows_quarantined"]}
        for e in source_entries(ingest.files)
    ]
    create_table_artifact(key=artifact_key("ingest-counts"), table=table,
                          description=f"Rows per file, run {inputs.run_id} ({inputs.term})")
    if len(ingest.validation):
        summary = (ingest.validation.groupby(["source", "severity"])
                   .agg(expectations=("success", "size"), failed=("success", lambda s: int((~s).sum())),
                        unexpected=("unexpected_count", "sum"))
                   .reset_index())
        create_table_artifact(key=artifact_key("validation-summary"), table=summary.to_dict("records"),
                              description=f"Validation, run {inputs.run_id} ({inputs.term})")


@flow(name="termly-run", log_prints=False, validate_parameters=False)
def termly_flow(term: str, progress: Progress | None = None) -> dict[str, Any]:
    """Run one term end to end and return its manifest.

    Args:
        term: The term, e.g. ``2025/26-H1``.
        progress: Called with short English status lines (the CLI shows them).

    Returns:
        The run manifest.
    """
    return run_term(term, progress=progress, publish=True)


def run_term(term_text: str, *, progress: Progress | None = None, publish: bool = False,
             settings: Settings | None = None, skip: Collection[str] = ()) -> dict[str, Any]:
    """The termly run as a plain function (the flow calls it; tests may too).

    Args:
        term_text: The term, e.g. ``2025/26-H1``.
        progress: Called with short English status lines.
        publish: Inside a flow run: call the steps as Prefect tasks and publish artifacts.
            Otherwise the steps' plain functions are called (``task.fn``).
        settings: Settings to use (default: from the environment).
        skip: Steps to leave out, with every step that needs them (tests and benchmarks only,
            ``pipelines.steps.steps_to_run``).

    Returns:
        The run manifest.
    """
    settings = settings or get_settings()
    say = progress or (lambda _message: None)
    plan = steps.steps_to_run(skip)
    term = Term.parse(term_text)
    config = load_checked_config(settings.resolved_config_path)  # in full, before any task
    inbox = settings.resolved_inbox
    sources = discover_sources(config, inbox)
    say(f"hashing {sum(len(s.files) for s in sources)} files")
    cache = settings.state_dir / CACHE_FILE if settings.file_hash_cache else None
    hashes = hash_files_task(sources, cache) if publish else hash_files_task.fn(sources, cache)
    snapshot = data_snapshot(sources, hashes)
    exclusions = ExclusionStore(settings.state_dir).active(settings.today_date())
    excluded_digest = exclusions_digest(exclusions)
    if excluded_digest is not None:  # an exclusion changes the run's output, so its id (ews.exclusions)
        snapshot = hashlib.sha256(f"{snapshot}|{excluded_digest}".encode()).hexdigest()[:16]
    cfg_hash = config_hash(config)
    version = code_version()
    as_of = config.terms.as_of_date(term)
    run_id = make_run_id(term, as_of, cfg_hash, snapshot, version)
    started = datetime.now(UTC).replace(tzinfo=None)
    previous = previous_rows_loaded(settings.state_dir)
    attempt = record_run_start(settings.state_dir, {
        "run_id": run_id, "term": str(term), "as_of_date": as_of, "config_hash": cfg_hash,
        "code_version": version, "data_snapshot": snapshot, "started_at": started,
    })
    inputs = RunInputs(settings=settings, config=config, term=term, as_of_date=as_of, run_id=run_id,
                       attempt=attempt, config_hash=cfg_hash, code_version=version, data_snapshot=snapshot,
                       run_dir=settings.runs_dir / run_id, started_at=started, sources=tuple(sources),
                       file_hashes=hashes, previous_rows=previous, exclusions=exclusions)
    logger = _logger(publish)
    logger.info("run %s (attempt %s) for %s, as of %s", run_id, attempt, term, as_of)
    manifest_path = inputs.run_dir / "manifest.json"
    results = steps.StepResults()

    def step(name: str, step_task: Any, *args: Any) -> Any:
        """Run one step (as a Prefect task when publishing) and keep its result; None when left out."""
        if name not in plan:
            return None
        say(STEP_PROGRESS[name])
        result = step_task(*args) if publish else step_task.fn(*args)
        setattr(results, name, result)
        return result

    try:
        with staged_write(settings.state_dir, settings.warehouse_memory_limit) as session:
            step("ingest", ingest_task, session, inputs, say)
            expiry = step("expiry", expiry_task, session, inputs)  # before the model sees the rows
            step("exclusions", exclusion_task, session, inputs)
            features = step("features", feature_task, session, inputs)
            model = step("model", model_task, session, inputs, features, say)
            explanations = step("explanations", explanation_task, session, inputs, model, features)
            step("flag_lists", flag_task, session, inputs, model, features, explanations)
            step("reviews", review_copy_task, session, inputs)
            step("outcomes", outcome_task, session, inputs)
            step("retention", retention_task, session, inputs, expiry)  # published with the run, or not at all
            say("publishing")
        status, message = "succeeded", None
    except BaseException as exc:
        status, message = "failed", f"{type(exc).__name__}: {exc}"
        report = _validation_report(inputs, status, message, results)
        write_manifest(run_manifest(inputs, results, status, message, validation_report=report), manifest_path)
        ingest = results.ingest.result if results.ingest is not None else None
        record_run_end(settings.state_dir, run_id, attempt, status, _now(), message,
                       str(manifest_path), ingest.files if ingest is not None else None)
        logger.error("run %s failed: %s", run_id, message)
        raise
    ingest = results.ingest.result
    report = _validation_report(inputs, status, message, results)
    record_corrections(settings.state_dir, run_id, str(term), results.ingest.corrections)
    retention = (finish_retention(settings.state_dir, config, as_of, results.retention.counts, run_id)
                 if results.retention is not None else None)
    manifest = run_manifest(inputs, results, status, message, validation_report=report, retention=retention,
                            audit_checkpoint=audit_checkpoint(settings))
    write_manifest(manifest, manifest_path)
    record_run_end(settings.state_dir, run_id, attempt, status, _now(), message,
                   str(manifest_path), ingest.files)
    if publish:
        _publish_artifacts(inputs, ingest)
        create_markdown_artifact(key=artifact_key("validation-report"), markdown=artifact_markdown(
            ingest.validation, summarise_quarantine(ingest.quarantine), _run_info(inputs, status, message, results)))
        create_markdown_artifact(key=artifact_key("run-manifest"), markdown=_manifest_markdown(manifest),
                                 description=f"Run {run_id} ({term})")
    logger.info("run %s succeeded", run_id)
    return manifest


def audit_checkpoint(settings: Settings) -> dict[str, Any] | None:
    """Checkpoint the review app's keyed audit chains at the end of a run (issue 12).

    The heads of the audit log and the reviews are appended to the app's anchor file and kept in
    the run's manifest, outside ``app.sqlite``, so that deleting the newest rows or rewriting the
    log shows against a copy the app cannot change.

    Args:
        settings: The settings (state folder, audit key).

    Returns:
        ``intact``, ``summary`` and ``heads`` (table -> rows, head id, head hash); None when the
        app has no store yet.
    """
    from dashboards.store import AppStore, app_db_path

    path = app_db_path(settings.state_dir)
    if not path.exists():
        return None
    store = AppStore(path, audit_key=settings.audit_key_bytes())
    report = store.verify_chains()
    heads = store.checkpoint()
    return {"intact": bool(report.ok), "summary": report.summary(),
            "heads": {h.table: {"rows": h.rows, "head_id": h.head_id, "head_hash": h.head_hash} for h in heads}}


def _run_info(inputs: RunInputs, status: str, message: str | None, results: steps.StepResults) -> dict[str, Any]:
    ingest = results.ingest.result if results.ingest is not None else None
    return {"run_id": inputs.run_id, "term": str(inputs.term), "as_of_date": str(inputs.as_of_date),
            "status": status, "message": message, "municipality": inputs.config.municipality,
            "started_at": inputs.started_at.isoformat(timespec="seconds"),
            "files": ingest.files if ingest is not None else None,
            "warnings": ingest.warnings if ingest is not None else []}


def _validation_report(inputs: RunInputs, status: str, message: str | None, results: steps.StepResults) -> Path:
    """The run's readable validation report (self-contained HTML), also for a failed run."""
    ingest = results.ingest.result if results.ingest is not None else None
    results_frame = ingest.validation if ingest is not None else pd.DataFrame()
    summary = summarise_quarantine(ingest.quarantine if ingest is not None else None)
    return Path(render_report(results_frame, summary, _run_info(inputs, status, message, results),
                              inputs.run_dir / "validation_report.html"))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _logger(publish: bool):  # noqa: ANN202 - a logging.Logger or Prefect's adapter
    if publish:
        return get_run_logger()
    import logging

    return logging.getLogger("ews.run")


def _manifest_markdown(manifest: dict[str, Any]) -> str:
    lines = [f"# Run {manifest['run_id']}", "",
             f"- term: {manifest['term']} (as of {manifest['as_of_date']})",
             f"- status: **{manifest['status']}** in {manifest['duration_seconds']} s",
             f"- config {manifest['config_hash']}, code {manifest['code_version']}, "
             f"data {manifest['data_snapshot']}", "",
             "| source | file | read | loaded | quarantined |", "|---|---|---:|---:|---:|"]
    for entry in manifest["sources"]:
        lines.append(f"| {entry['name']} | {entry['file']} | {entry['rows_read']} | "
                     f"{entry['rows_loaded']} | {entry['rows_quarantined']} |")
    return "\n".join(lines)
