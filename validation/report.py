"""What a run's validation found, for people: an HTML report, a Prefect artifact, a manifest part.

The HTML report is one self-contained file (inline CSS, no scripts, no fonts or styles from the
network), so it renders the same offline, in a mail attachment or from the run folder. Headings
are in Danish and English; codes and messages stay as stored. Nothing here reads pupil data
beyond file names, line numbers and reason codes, which carry no CPR number or name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ews.formats import number_da
from validation.contracts import describe_check

SUMMARY_COLUMNS = ["source", "reason_code", "column_name", "rows", "files", "example_lines"]
_EXAMPLES = 5


def reason_code(reason: str) -> str:
    """The stable code at the start of a quarantine reason (``'mark_not_7_point: ...'``)."""
    return str(reason).split(":", 1)[0].strip()


def reason_codes(reason: str) -> list[str]:
    """Every reason code of a quarantine reason, in order (a row may fail several checks)."""
    return [reason_code(part) for part in str(reason).split(" | ")]


def summarise_quarantine(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows counted by source, reason code and column, with example lines.

    A row quarantined for several reasons counts once, under its first reason.

    Args:
        quarantine: Rows with ``source``, ``source_file``, ``source_line``, ``column_name`` and
            ``reason`` (the ``quarantine_rows`` table or the ingest's frame).

    Returns:
        ``source``, ``reason_code``, ``column_name``, ``rows``, ``files`` (how many files) and
        ``example_lines`` (up to five ``file:line``), most rows first.
    """
    if quarantine is None or not len(quarantine):
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = quarantine.assign(
        source=quarantine["source"] if "source" in quarantine else "",
        reason_code=quarantine["reason"].map(reason_code),
        column_name=quarantine["column_name"].fillna("").astype(str).str.split(",").str[0],
        where=quarantine["source_file"].astype(str) + ":" + quarantine["source_line"].astype(str),
    ).sort_values(["source_file", "source_line"], kind="stable")
    grouped = frame.groupby(["source", "reason_code", "column_name"], sort=False)
    summary = grouped.agg(
        rows=("where", "size"),
        files=("source_file", "nunique"),
        example_lines=("where", lambda s: ", ".join(s.head(_EXAMPLES))),
    ).reset_index()
    return summary.sort_values(["rows", "source", "reason_code"], ascending=[False, True, True],
                               kind="stable").reset_index(drop=True)[SUMMARY_COLUMNS]


def _file_rows(run_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    files = run_info.get("files")
    if files is None:
        return []
    records = files.to_dict("records") if isinstance(files, pd.DataFrame) else list(files)
    rows = []
    for record in records:
        read = int(record.get("rows_read", 0))
        loaded = int(record.get("rows_loaded", 0))
        held = int(record.get("rows_quarantined", 0))
        extra = record.get("extra_columns") or []
        if isinstance(extra, str):
            extra = [c for c in extra.split(", ") if c]
        rows.append({"source": record.get("source", record.get("name", "")),
                     "file": record.get("file", ""), "read": read, "loaded": loaded,
                     "quarantined": held, "balanced": read == loaded + held,
                     "extra_columns": ", ".join(extra)})
    return rows


def _expectation_groups(results: pd.DataFrame) -> list[dict[str, Any]]:
    if results is None or not len(results):
        return []
    groups = []
    for source, part in results.groupby("source", sort=False):
        rows = []
        for record in part.to_dict("records"):
            elements = record.get("element_count")
            unexpected = record.get("unexpected_count")
            rows.append({
                "expectation": record["expectation"],
                "description": describe_check(str(record["expectation"])),
                "column": "" if pd.isna(record.get("column_name")) else record["column_name"],
                "success": bool(record["success"]),
                "unexpected": 0 if pd.isna(unexpected) else int(unexpected),
                "elements": 0 if pd.isna(elements) else int(elements),
                "severity": record["severity"],
            })
        failed = sum(not r["success"] for r in rows)
        groups.append({"source": source, "rows": rows, "failed": failed, "total": len(rows)})
    return groups


def _environment() -> jinja2.Environment:
    template = resources.files("validation").joinpath("report.html").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             loader=jinja2.DictLoader({"report.html": template}))
    env.filters["thousands"] = lambda n: number_da(int(n))
    return env


def render_report(results: pd.DataFrame, quarantine_summary: pd.DataFrame,
                  run_info: Mapping[str, Any], path: Path) -> Path:
    """Write the run's validation report as one self-contained HTML file.

    Args:
        results: Validation results (``validation_results`` rows: ``source``, ``expectation``,
            ``column_name``, ``success``, ``unexpected_count``, ``element_count``, ``severity``).
        quarantine_summary: From :func:`summarise_quarantine`.
        run_info: ``run_id``, ``term``; optionally ``as_of_date``, ``status``, ``message`` (the
            file-level error of a stopped run), ``municipality``, ``started_at``, ``files``
            (per-file counts: ``source``, ``file``, ``rows_read``, ``rows_loaded``,
            ``rows_quarantined``, ``extra_columns``) and ``warnings`` (list of text).
        path: Where to write the report.

    Returns:
        The path written.
    """
    files = _file_rows(run_info)
    groups = _expectation_groups(results)
    summary = (quarantine_summary.to_dict("records")
               if quarantine_summary is not None and len(quarantine_summary) else [])
    totals = {
        "read": sum(f["read"] for f in files),
        "loaded": sum(f["loaded"] for f in files),
        "quarantined": sum(f["quarantined"] for f in files),
        "expectations": sum(g["total"] for g in groups),
        "failed": sum(g["failed"] for g in groups),
        "balanced": all(f["balanced"] for f in files),
    }
    html = _environment().get_template("report.html").render(
        run_id=str(run_info.get("run_id", "")),
        term=str(run_info.get("term", "")),
        as_of_date=str(run_info.get("as_of_date", "") or ""),
        municipality=str(run_info.get("municipality", "") or ""),
        status=str(run_info.get("status", "") or ""),
        message=str(run_info.get("message", "") or ""),
        started_at=str(run_info.get("started_at", "") or ""),
        generated_at=datetime.now().strftime("%d-%m-%Y %H:%M"),
        files=files, groups=groups, summary=summary, totals=totals,
        warnings=list(run_info.get("warnings", []) or []),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def artifact_markdown(results: pd.DataFrame, quarantine_summary: pd.DataFrame,
                      run_info: Mapping[str, Any]) -> str:
    """Markdown for the run's Prefect artifact: counts per file, failed checks, quarantine.

    Args:
        results: Validation results, as for :func:`render_report`.
        quarantine_summary: From :func:`summarise_quarantine`.
        run_info: As for :func:`render_report`.

    Returns:
        A markdown document (the flow publishes it with ``create_markdown_artifact``).
    """
    files = _file_rows(run_info)
    lines = [f"# Validering / Validation: {run_info.get('run_id', '')} ({run_info.get('term', '')})", ""]
    if run_info.get("message"):
        lines += [f"**Stopped / Stoppet:** {_cell(run_info['message'])}", ""]
    lines += ["| kilde / source | fil / file | læst / read | indlæst / loaded | karantæne / quarantined | ok |",
              "|---|---|---:|---:|---:|:-:|"]
    for f in files:
        lines.append(f"| {_cell(f['source'])} | {_cell(f['file'])} | {f['read']} | {f['loaded']} | "
                     f"{f['quarantined']} | {'✓' if f['balanced'] else '✗'} |")
    failed = results[~results["success"].astype(bool)] if results is not None and len(results) else None
    lines += ["", f"Expectations: {0 if results is None else len(results)}, failed: "
              f"{0 if failed is None else len(failed)}", ""]
    if failed is not None and len(failed):
        lines += ["| source | expectation | column | unexpected | of | severity |",
                  "|---|---|---|---:|---:|---|"]
        for r in failed.to_dict("records"):
            column = "" if pd.isna(r.get("column_name")) else r["column_name"]
            lines.append(f"| {_cell(r['source'])} | {_cell(r['expectation'])} | {_cell(column)} | "
                         f"{int(r['unexpected_count'] or 0)} | {int(r['element_count'] or 0)} | "
                         f"{r['severity']} |")
        lines.append("")
    if quarantine_summary is not None and len(quarantine_summary):
        lines += ["| source | reason | column | rows | examples |", "|---|---|---|---:|---|"]
        for r in quarantine_summary.to_dict("records"):
            lines.append(f"| {_cell(r['source'])} | {_cell(r['reason_code'])} | "
                         f"{_cell(r['column_name'])} | {r['rows']} | {_cell(r['example_lines'])} |")
    for warning in run_info.get("warnings", []) or []:
        lines.append(f"- note: {_cell(warning)}")
    return "\n".join(lines) + "\n"


def manifest_section(results: pd.DataFrame, quarantine: pd.DataFrame) -> dict[str, Any]:
    """The ``validation`` part of the run manifest.

    Args:
        results: Validation results of the run.
        quarantine: Quarantined rows of the run (with ``source``).

    Returns:
        Counts of expectations and failures, failed expectations by source, and quarantined
        rows by source and reason code.
    """
    results = results if results is not None else pd.DataFrame(columns=["success"])
    failed = results[~results["success"].astype(bool)] if len(results) else results
    by_reason: dict[str, dict[str, int]] = {}
    if quarantine is not None and len(quarantine):
        codes = quarantine.assign(code=quarantine["reason"].map(reason_code))
        for (source, code), count in codes.groupby(["source", "code"]).size().items():
            by_reason.setdefault(str(source), {})[str(code)] = int(count)
    return {
        "expectations": int(len(results)),
        "failed": int(len(failed)),
        "failed_expectations": [
            {"source": r["source"], "expectation": r["expectation"],
             "unexpected_count": int(r["unexpected_count"] or 0), "severity": r["severity"]}
            for r in failed.to_dict("records")] if len(failed) else [],
        "rows_quarantined": int(0 if quarantine is None else len(quarantine)),
        "quarantine_by_reason": by_reason,
    }
