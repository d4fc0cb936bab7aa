"""Prefect flows: thin wrappers around the plain functions of every stage.

This is the only module (with ``pipelines.cli`` and ``pipelines.schedule``) that knows Prefect.
One termly run:

    config (validated in full) -> find files, hash them -> run id -> run log 'running'
    -> staged warehouse: ingest + validation -> features -> model -> scores -> explanations
    -> flag lists -> retention (ews.retention) -> publish (one pointer switch for both stores)
    -> manifest, artifacts
    -> run log 'succeeded'

A failure anywhere discards the new version (the published stores are untouched), logs the run
as 'failed' with its message and writes a manifest with status 'failed'. A killed run is
marked 'killed' by the next run (``ews.warehouse.record_run_start``).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
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
from ews.retention import apply_retention, finish_retention, retention_summary
from ews.settings import Settings, get_settings
from ews.terms import Term
from ews.warehouse import (
    IDENTITY_FILE,
    WAREHOUSE_FILE,
    WarehousePaths,
    WriteSession,
    open_runlog,
    record_run_end,
    record_run_start,
    staged_write,
)
from pipelines.corrections import changed_files, record_corrections, replaced_rows, rows_before
from pipelines.coverage import rows_loaded_by_source, source_coverage
from pipelines.ingest import IngestResult, SourceFiles, data_snapshot, discover_sources, ingest_sources
from pipelines.manifest import source_entries, write_manifest
from pipelines.readers import file_sha256
from validation.gate import severity_problems
from validation.report import artifact_markdown, manifest_section, render_report, summarise_quarantine

Progress = Callable[[str], None]


@dataclass
class RunContext:
    """Everything a run's stages share."""

    settings: Settings
    config: MunicipalityConfig
    term: Term
    as_of_date: Any
    run_id: str
    attempt: int
    config_hash: str
    code_version: str
    data_snapshot: str
    run_dir: Path
    started_at: datetime
    outputs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


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
    """A run id that is a content hash of the run's inputs: the same inputs, the same id."""
    digest = hashlib.sha256(f"{term}|{as_of}|{cfg_hash}|{snapshot}|{version}".encode()).hexdigest()
    return f"{term.start_year}-{(term.start_year + 1) % 100:02d}-H{term.half}-{digest[:10]}"


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
def hash_files_task(sources: list[SourceFiles]) -> dict[Path, str]:
    """Hash every input file (I/O, so retried)."""
    return {path: file_sha256(path) for entry in sources for path in entry.files}


@task(name="ingest-and-validate", retries=0, cache_policy=NO_CACHE)
def ingest_task(session: WriteSession, ctx: RunContext, sources: list[SourceFiles],
                progress: Progress | None) -> IngestResult:
    """Read, validate and load every source into the staged warehouse."""
    return ingest_sources(
        session, ctx.config, sources, key=ctx.settings.key_bytes(), term=ctx.term,
        today=ctx.settings.today_date(), run_id=ctx.run_id,
        previous_rows=ctx.extra.get("previous_rows", {}), progress=progress,
        chunk_rows=ctx.settings.ingest_chunk_rows, scratch_memory=ctx.settings.ingest_scratch_memory,
        file_hashes=ctx.extra.get("file_hashes"),
    )


#: Stages after the ingest, in order: (name, function(session, ctx) -> manifest additions).
#: Later stages (features, model, explanations, flags) are appended by their modules' wiring
#: in :func:`stages`.
StageFunction = Callable[[WriteSession, RunContext], dict[str, Any]]


def stages() -> list[tuple[str, StageFunction]]:
    """The stages that follow the ingest, in data-flow order."""
    from pipelines import stages as stage_module

    return stage_module.STAGES


def _publish_artifacts(ctx: RunContext, ingest: IngestResult) -> None:
    table = [
        {"kilde": e["name"], "fil": e["file"], "læst": e["rows_read"], "indlæst": e["rows_loaded"],
         "i karantæne": e["rows_quarantined"]}
        for e in source_entries(ingest.files)
    ]
    create_table_artifact(key=artifact_key("ingest-counts"), table=table,
                          description=f"Rows per file, run {ctx.run_id} ({ctx.term})")
    if len(ingest.validation):
        summary = (ingest.validation.groupby(["source", "severity"])
                   .agg(expectations=("success", "size"), failed=("success", lambda s: int((~s).sum())),
                        unexpected=("unexpected_count", "sum"))
                   .reset_index())
        create_table_artifact(key=artifact_key("validation-summary"), table=summary.to_dict("records"),
                              description=f"Validation, run {ctx.run_id} ({ctx.term})")


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
             settings: Settings | None = None) -> dict[str, Any]:
    """The termly run as a plain function (the flow calls it; tests may too).

    Args:
        term_text: The term, e.g. ``2025/26-H1``.
        progress: Called with short English status lines.
        publish: Publish Prefect artifacts (only inside a flow run).
        settings: Settings to use (default: from the environment).

    Returns:
        The run manifest.
    """
    settings = settings or get_settings()
    say = progress or (lambda _message: None)
    term = Term.parse(term_text)
    config = load_checked_config(settings.resolved_config_path)  # in full, before any task
    inbox = settings.resolved_inbox
    sources = discover_sources(config, inbox)
    say(f"hashing {sum(len(s.files) for s in sources)} files")
    hashes = hash_files_task(sources) if publish else hash_files_task.fn(sources)
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
    run_dir = settings.runs_dir / run_id
    previous = previous_rows_loaded(settings.state_dir)
    attempt = record_run_start(settings.state_dir, {
        "run_id": run_id, "term": str(term), "as_of_date": as_of, "config_hash": cfg_hash,
        "code_version": version, "data_snapshot": snapshot, "started_at": started,
    })
    ctx = RunContext(settings=settings, config=config, term=term, as_of_date=as_of, run_id=run_id,
                     attempt=attempt, config_hash=cfg_hash, code_version=version,
                     data_snapshot=snapshot, run_dir=run_dir, started_at=started,
                     extra={"previous_rows": previous, "file_hashes": hashes, "exclusions": exclusions})
    found_files = {entry.source.name: entry.files for entry in sources}
    ctx.extra["coverage"] = source_coverage(config, found_files)
    logger = _logger(publish)
    logger.info("run %s (attempt %s) for %s, as of %s", run_id, attempt, term, as_of)
    manifest_path = run_dir / "manifest.json"
    ingest: IngestResult | None = None
    try:
        with staged_write(settings.state_dir) as session:
            say("reading and validating exports")
            changed = changed_files(session.con, sources, hashes)  # corrected exports (rectification)
            before = rows_before(session.con, changed)
            ingest = ingest_task(session, ctx, sources, say) if publish else ingest_task.fn(
                session, ctx, sources, say)
            ctx.extra["corrections"] = replaced_rows(session.con, changed, before)
            ctx.extra["ingest"] = ingest
            ctx.extra["coverage"] = source_coverage(config, found_files,
                                                    rows_loaded_by_source(ingest.files))
            for name, stage in stages():
                say(name)
                ctx.outputs.update(stage(session, ctx) or {})
            say("retention")  # in the same version: published with the run, or not at all
            ctx.extra["retention"] = apply_retention(session, config, as_of, settings.state_dir, inbox)
            say("publishing")
        status, message = "succeeded", None
    except BaseException as exc:
        status, message = "failed", f"{type(exc).__name__}: {exc}"
        _validation_report(ctx, status, message, ingest)
        manifest = _manifest(ctx, status, message, ingest)
        write_manifest(manifest, manifest_path)
        record_run_end(settings.state_dir, run_id, attempt, status, _now(), message,
                       str(manifest_path), ingest.files if ingest is not None else None)
        logger.error("run %s failed: %s", run_id, message)
        raise
    _validation_report(ctx, status, message, ingest)
    manifest = _manifest(ctx, status, message, ingest)
    corrections = ctx.extra["corrections"]
    record_corrections(settings.state_dir, run_id, str(term), corrections)
    manifest["corrections"] = {"files": int(corrections[["source", "source_file"]].drop_duplicates().shape[0]),
                               "pupils": int(corrections["pupil_id"].nunique())}
    manifest["retention"] = retention_summary(
        finish_retention(settings.state_dir, config, as_of, ctx.extra["retention"], run_id))
    checkpoint = audit_checkpoint(settings)
    if checkpoint is not None:
        manifest["audit_checkpoint"] = checkpoint
        if not checkpoint["intact"]:
            manifest["warnings"].append("audit trail: the review app's audit log or reviews fail their "
                                        "keyed chain; run 'ews audit verify' (" + checkpoint["summary"] + ")")
    write_manifest(manifest, manifest_path)
    record_run_end(settings.state_dir, run_id, attempt, status, _now(), message,
                   str(manifest_path), ingest.files)
    if publish:
        _publish_artifacts(ctx, ingest)
        create_markdown_artifact(key=artifact_key("validation-report"), markdown=artifact_markdown(
            ingest.validation, summarise_quarantine(ingest.quarantine), _run_info(ctx, status, message, ingest)))
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


def _run_info(ctx: RunContext, status: str, message: str | None, ingest: IngestResult | None) -> dict[str, Any]:
    return {"run_id": ctx.run_id, "term": str(ctx.term), "as_of_date": str(ctx.as_of_date), "status": status,
            "message": message, "municipality": ctx.config.municipality,
            "started_at": ctx.started_at.isoformat(timespec="seconds"),
            "files": ingest.files if ingest is not None else None,
            "warnings": ingest.warnings if ingest is not None else []}


def _validation_report(ctx: RunContext, status: str, message: str | None, ingest: IngestResult | None) -> None:
    """The run's readable validation report (self-contained HTML), also for a failed run."""
    results = ingest.validation if ingest is not None else pd.DataFrame()
    summary = summarise_quarantine(ingest.quarantine if ingest is not None else None)
    path = render_report(results, summary, _run_info(ctx, status, message, ingest),
                         ctx.run_dir / "validation_report.html")
    ctx.outputs["validation_report"] = str(Path(path).resolve())


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _logger(publish: bool):  # noqa: ANN202 - a logging.Logger or Prefect's adapter
    if publish:
        return get_run_logger()
    import logging

    return logging.getLogger("ews.run")


def _manifest(ctx: RunContext, status: str, message: str | None,
              ingest: IngestResult | None) -> dict[str, Any]:
    paths = WarehousePaths(ctx.settings.state_dir)
    published = paths.published()  # the version published now (this run's, when it succeeded)
    ended = _now()
    validation: dict[str, Any] = {}
    coverage = ctx.extra.get("coverage", {})
    if ingest is not None:
        validation = manifest_section(ingest.validation, ingest.quarantine)
    return {
        "run_id": ctx.run_id,
        "attempt": ctx.attempt,
        "term": str(ctx.term),
        "as_of_date": str(ctx.as_of_date),
        "status": status,
        "message": message,
        "started_at": ctx.started_at.isoformat(timespec="seconds"),
        "ended_at": ended.isoformat(timespec="seconds"),
        "duration_seconds": round((ended - ctx.started_at).total_seconds(), 1),
        "config_hash": ctx.config_hash,
        "code_version": ctx.code_version,
        "data_snapshot": ctx.data_snapshot,
        "warehouse": str((published / WAREHOUSE_FILE).resolve()),
        "identity_store": str((published / IDENTITY_FILE).resolve()),
        "run_log": str(paths.runlog.resolve()),
        "sources": source_entries(ingest.files) if ingest is not None else [],
        "warnings": [*(ingest.warnings if ingest is not None else []), *coverage.get("notes", []),
                     *ctx.extra.get("warnings", [])],
        "source_coverage": coverage,
        "ingest_seconds": ingest.seconds if ingest is not None else {},
        "files_read": ingest.files_read if ingest is not None else [],
        "validation": validation,
        **ctx.extra.get("manifest", {}),
        "outputs": {"manifest": str((ctx.run_dir / "manifest.json").resolve()), **ctx.outputs},
    }


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
