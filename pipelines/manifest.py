"""The run manifest: what a run read, loaded, kept out and produced, as JSON.

Scripts of the municipality's own rely on these names: ``run_id``, ``term``, ``as_of_date``,
``status``, ``warehouse``, ``sources`` (``name``, ``file``, ``rows_read``, ``rows_loaded``,
``rows_quarantined``) and ``outputs``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pipelines.steps import RunInputs, StepResults

#: The gate's keys the manifest keeps (``models.gate``).
GATE_KEYS = ("passed", "published", "list_basis", "best_rule", "learnt_nothing", "checks", "reasons",
             "reasons_da", "figures")


def source_entries(files: pd.DataFrame) -> list[dict[str, Any]]:
    """Per-file counts for the manifest; read = loaded + quarantined holds for each.

    Args:
        files: Per-file counts from the ingest.

    Returns:
        One object per file.

    Raises:
        AssertionError: Never in a correct ingest; guards the invariant the steward relies on.
    """
    entries = []
    for row in files.to_dict("records"):
        if row["rows_read"] != row["rows_loaded"] + row["rows_quarantined"]:
            raise AssertionError(
                f"{row['file']}: rows read {row['rows_read']} != loaded {row['rows_loaded']} + "
                f"quarantined {row['rows_quarantined']}"
            )
        entries.append({
            "name": row["source"],
            "file": row["file"],
            "sha256": row["file_sha256"],
            "rows_read": int(row["rows_read"]),
            "rows_loaded": int(row["rows_loaded"]),
            "rows_quarantined": int(row["rows_quarantined"]),
            "extra_columns": [c for c in str(row.get("extra_columns") or "").split(", ") if c],
        })
    return entries


def write_manifest(manifest: dict[str, Any], path: Path) -> Path:
    """Write the manifest as indented UTF-8 JSON.

    Args:
        manifest: The manifest.
        path: Where to write it.

    Returns:
        The path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8")
    return path


def run_manifest(inputs: RunInputs, results: StepResults, status: str, message: str | None, *,
                 validation_report: Path, retention: list[Any] | None = None,
                 audit_checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run manifest, assembled from the run's inputs and its steps' results (the one place).

    A failed run's manifest has what its finished steps produced; ``corrections`` and
    ``retention`` are added only when the run succeeded (``retention`` is the list that
    ``ews.retention.finish_retention`` returned after publication).

    Args:
        inputs: The run's inputs.
        results: The results of the steps that finished.
        status: ``succeeded`` or ``failed``.
        message: Why the run failed (None when it succeeded).
        validation_report: The run's validation report.
        retention: The retention counts after publication (a succeeded run).
        audit_checkpoint: The review app's audit checkpoint (``pipelines.flows.audit_checkpoint``).

    Returns:
        The manifest (JSON-ready apart from dates, which ``write_manifest`` writes as text).
    """
    from ews.retention import retention_summary
    from ews.warehouse import IDENTITY_FILE, WAREHOUSE_FILE, WarehousePaths
    from pipelines.coverage import source_coverage
    from validation.report import manifest_section

    paths = WarehousePaths(inputs.settings.state_dir)
    published = paths.published()  # the version published now (this run's, when it succeeded)
    ended = datetime.now(UTC).replace(tzinfo=None)
    ingest = results.ingest.result if results.ingest is not None else None
    coverage = (results.ingest.coverage if results.ingest is not None
                else source_coverage(inputs.config, inputs.found_files()))
    warnings = [*(ingest.warnings if ingest is not None else []), *coverage.get("notes", [])]
    steps: dict[str, Any] = {}
    outputs: dict[str, Any] = {"manifest": str((inputs.run_dir / "manifest.json").resolve())}
    if results.exclusions is not None:
        steps["exclusions"] = {"pupils_excluded": results.exclusions.pupils_excluded,
                               "flags_withdrawn": results.exclusions.flags_withdrawn}
    if results.model is not None:
        steps.update(results.model.manifest_entry)
        steps["gate"] = {key: results.model.gate[key] for key in GATE_KEYS}
        warnings.extend(results.model.warnings)
        outputs["model_card"] = results.model.manifest_entry["model"]["card"]
    if results.explanations is not None:
        steps["explanations"] = results.explanations.entry
    if results.flag_lists is not None:
        outputs["uu_worklists"] = results.flag_lists.worklists
    if results.reviews is not None:
        steps["reviews"] = results.reviews.entry
    if results.outcomes is not None:
        steps["outcomes"] = results.outcomes.summary
        warnings.extend(results.outcomes.warnings)
        if results.outcomes.card_section is not None:
            outputs["model_card_outcomes"] = str(results.outcomes.card_section.resolve())
    outputs["validation_report"] = str(Path(validation_report).resolve())
    manifest: dict[str, Any] = {
        "run_id": inputs.run_id,
        "attempt": inputs.attempt,
        "term": str(inputs.term),
        "as_of_date": str(inputs.as_of_date),
        "status": status,
        "message": message,
        "started_at": inputs.started_at.isoformat(timespec="seconds"),
        "ended_at": ended.isoformat(timespec="seconds"),
        "duration_seconds": round((ended - inputs.started_at).total_seconds(), 1),
        "config_hash": inputs.config_hash,
        "code_version": inputs.code_version,
        "data_snapshot": inputs.data_snapshot,
        "warehouse": str((published / WAREHOUSE_FILE).resolve()),
        "identity_store": str((published / IDENTITY_FILE).resolve()),
        "run_log": str(paths.runlog.resolve()),
        "sources": source_entries(ingest.files) if ingest is not None else [],
        "warnings": warnings,
        "source_coverage": coverage,
        "ingest_seconds": ingest.seconds if ingest is not None else {},
        "step_seconds": results.step_seconds(),
        "files_read": ingest.files_read if ingest is not None else [],
        "validation": manifest_section(ingest.validation, ingest.quarantine) if ingest is not None else {},
        **steps,
        "outputs": outputs,
    }
    if status == "succeeded" and results.ingest is not None:
        corrections = results.ingest.corrections
        manifest["corrections"] = {
            "files": int(corrections[["source", "source_file"]].drop_duplicates().shape[0]),
            "pupils": int(corrections["pupil_id"].nunique())}
    if retention is not None:
        manifest["retention"] = retention_summary(retention)
    if audit_checkpoint is not None:
        manifest["audit_checkpoint"] = audit_checkpoint
        if not audit_checkpoint["intact"]:
            manifest["warnings"].append("audit trail: the review app's audit log or reviews fail their keyed "
                                        "chain; run 'ews audit verify' (" + audit_checkpoint["summary"] + ")")
    return manifest
