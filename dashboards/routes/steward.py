"""The data steward's pages: runs, data quality, stability and drift, model cards (aggregates only).

Every route needs the steward or admin role; the role dependency writes each view, allowed or
refused, to the audit log. No query here reads a pupil-level row for display.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from markdown_it import MarkdownIt
from markupsafe import Markup

from dashboards import reads, views
from dashboards.charts import histogram_svg, lines_svg
from dashboards.deps import Ctx, Warehouse, steward_page
from dashboards.web import ID_PATTERN, IdQuery, NotFound, TermQuery, render
from ews.terms import term_name_da
from ews.warehouse import WAREHOUSE_FILE, snapshot_version

router = APIRouter(prefix="/drift", tags=["steward"])

RunId = Annotated[str, PathParam(max_length=100, pattern=ID_PATTERN)]
ReportName = Annotated[str, PathParam(max_length=200)]


@router.get("", response_class=HTMLResponse, dependencies=[Depends(steward_page("runs"))])
def steward_runs(request: Request, ctx: Ctx, con: Warehouse) -> Response:
    """Every run execution, and flags per network, term and status."""
    try:
        runs = reads.read_runs(ctx.state_dir)
        busy = False
    except reads.RunLogBusyError:
        runs, busy = pd.DataFrame(), True
    flags = reads.flags_by_term(con) if con is not None else pd.DataFrame()
    return render(ctx, request, "steward_runs.html", {
        "runs": reads._records(runs), "busy": busy, "flags": _pivot_flags(flags),
        "prefect_ui_url": ctx.dashboard.prefect_ui_url})


@router.get("/koersel/{run_id}", response_class=HTMLResponse, dependencies=[Depends(steward_page("run:{run_id}"))])
def steward_run(request: Request, ctx: Ctx, run_id: RunId) -> Response:
    """One run: its attempts, files, manifest and validation reports."""
    try:
        runs, sources = reads.read_run(ctx.state_dir, run_id)
        busy = False
    except reads.RunLogBusyError:
        runs, sources, busy = pd.DataFrame(), pd.DataFrame(), True
    manifest = reads.read_manifest(ctx.state_dir, run_id)
    if runs.empty and manifest is None and not busy:
        raise NotFound(f"Kørslen {run_id} findes ikke.")
    return render(ctx, request, "steward_run.html", {
        "run_id": run_id, "runs": reads._records(runs), "sources": reads._records(sources), "busy": busy,
        "manifest": manifest, "manifest_text": json.dumps(_manifest_summary(manifest), indent=2,
                                                          ensure_ascii=False, default=str) if manifest else None,
        "reports": _run_reports(ctx.state_dir, run_id), "prefect_ui_url": ctx.dashboard.prefect_ui_url})


@router.get("/rapport/{run_id}/{name}", dependencies=[Depends(steward_page("report:{run_id}/{name}"))])
def steward_report(ctx: Ctx, run_id: RunId, name: ReportName) -> Response:
    """A validation report of a run, sandboxed."""
    reports = dict(_run_reports(ctx.state_dir, run_id))
    if name not in reports:
        raise NotFound("Rapporten findes ikke.")
    path = ctx.state_dir / "runs" / run_id / reports[name]
    media = "text/html; charset=utf-8" if path.suffix == ".html" else "text/plain; charset=utf-8"
    return Response(path.read_bytes(), media_type=media,
                    headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline' data:; sandbox"})


@router.get("/kvalitet", response_class=HTMLResponse, dependencies=[Depends(steward_page("quality"))])
def steward_quality(request: Request, ctx: Ctx, con: Warehouse, termin: TermQuery = None) -> Response:
    """Failed expectations and quarantined rows per term and source."""
    if con is None:
        validation = quarantine = failures = reasons = pd.DataFrame()
        terms, term = [], None
    else:
        validation = reads.validation_by_term(con)
        quarantine = reads.quarantine_by_term(con)
        terms = sorted(set(validation.get("term", pd.Series(dtype=str)))
                       | set(quarantine.get("term", pd.Series(dtype=str))), reverse=True)
        term = termin if termin in terms else (terms[0] if terms else None)
        failures = reads.validation_failures(con, term) if term else pd.DataFrame()
        reasons = reads.quarantine_reasons(con, term) if term else pd.DataFrame()
    return render(ctx, request, "steward_quality.html", {
        "terms": terms, "term": term, "matrix": _source_matrix(validation, quarantine),
        "failures": reads._records(failures), "reasons": reads._records(reasons)})


@router.get("/stabilitet", response_class=HTMLResponse, dependencies=[Depends(steward_page("stability"))])
def steward_stability(request: Request, ctx: Ctx, con: Warehouse, termin: TermQuery = None) -> Response:
    """Risk distribution over terms, tiers per term and feature drift (PSI)."""
    context: dict[str, Any] = {"summary": [], "histogram": None, "quantiles": None, "drift": [],
                               "term": None, "terms": [], "reference": [], "model_id": None, "tiers": []}
    summary = reads.score_summary(con) if con is not None else pd.DataFrame()
    if not summary.empty:
        terms = summary["term"].tolist()
        term = termin if termin in terms else terms[-1]
        row = summary[summary["term"] == term].iloc[0]
        context.update(
            summary=reads._records(summary), terms=terms, term=term, model_id=row["model_id"],
            histogram=histogram_svg(reads.score_histogram(con, term),
                                    f"Fordeling af risiko, {term_name_da(term)}"),
            quantiles=lines_svg([term_name_da(t) for t in terms], {
                "Gennemsnit": summary["mean_risk"].tolist(), "Median": summary["p50"].tolist(),
                "90 %-fraktil": summary["p90"].tolist(), "99 %-fraktil": summary["p99"].tolist()},
                "Risikoens fordeling over terminer", chart_id="quantiles"),
            tiers=_pivot_tiers(reads.tiers_by_term(con), ctx.config()))
        model = reads.model_record(con, row["model_id"])
        current = pd.Timestamp(row["as_of_date"]).date()
        trained_on = reference_dates(model, reads.feature_as_of_dates(con))
        reference = same_season(trained_on, current)
        features = [c for c in reads.numeric_feature_columns(con) if c in views.feature_catalogue()] \
            or reads.numeric_feature_columns(con)
        key = (_file_key(con), row["run_id"], tuple(reference), current)
        drift = ctx.drift(key, lambda: reads.feature_drift(con, reference, current, features))
        context.update(reference=reference, reference_other_season=len(trained_on) - len(reference), drift=[
            {**r, "label": views.describe_feature(r["feature"]).label} for r in reads._records(drift)])
    return render(ctx, request, "steward_stability.html", context)


@router.get("/model", response_class=HTMLResponse, dependencies=[Depends(steward_page("model"))])
def steward_model(request: Request, ctx: Ctx, con: Warehouse, model: IdQuery = None) -> Response:
    """A model's registry row and model card."""
    models = reads.all_models(con) if con is not None else []
    chosen = next((m for m in models if m.get("model_id") == model), None) if model else (
        sorted(models, key=lambda m: str(m.get("created_at") or m.get("model_id")))[-1] if models else None)
    card_da = card_rest = None
    for _column, raw_path in views.card_paths(chosen):
        path = _card_file(ctx.state_dir, raw_path, str(chosen.get("model_id") or ""))
        if path is not None and path.suffix == ".md":
            card_da, card_rest = _split_card(path.read_text(encoding="utf-8"))
            break
    return render(ctx, request, "steward_model.html", {
        "models": models, "model": chosen, "card_da": card_da, "card_rest": card_rest,
        "fields": views.model_fields(chosen), "metrics": views.model_metrics(chosen)})


def _markdown(text: str) -> Markup:
    return Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


def _split_card(text: str) -> tuple[Markup, Markup | None]:
    """The card's Danish summary (title and ``## Sammenfatning``) and the rest (English, technical)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")]
    danish_end = next((i for i in starts if "dansk" not in lines[i].lower()), len(lines))
    rest = "\n".join(lines[danish_end:]).strip()
    return _markdown("\n".join(lines[:danish_end])), (_markdown(rest) if rest else None)


def _card_file(state_dir: Path, raw: str, model_id: str) -> Path | None:
    """The card file named in the registry, found inside the state folder.

    The registry holds the path as the pipeline wrote it: absolute, relative to the state
    folder, or relative to the pipeline's working directory (``data/models/...`` with the
    default ``EWS_STATE_DIR=data``, which joined to the state folder gave ``data/data/...``).
    """
    name = Path(raw).name
    candidates = [Path(raw), state_dir / raw, state_dir / "models" / model_id / name]
    for candidate in candidates:
        path = _inside_state(state_dir, str(candidate))
        if path is not None:
            return path
    return None


@router.get("/udfald", response_class=HTMLResponse, dependencies=[Depends(steward_page("outcomes"))])
def steward_outcomes(request: Request, ctx: Ctx, con: Warehouse) -> Response:
    """Earlier models against the outcomes that arrived, over time; flags vs outcomes (descriptive)."""
    from flags.outcomes import DESCRIPTIVE_NOTE_DA, GROUPS
    from models.outcomes import OUTCOMES

    evaluations = reads.outcome_evaluations(con) if con is not None else pd.DataFrame()
    counts = reads.flag_outcome_counts(con) if con is not None else pd.DataFrame()
    records = reads._records(evaluations)
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for row in records:
        key = (row["model_id"], row["scored_term"])
        entry = models.setdefault(key, {"model_id": row["model_id"], "model_term": row["model_term"],
                                        "model_outcome": row["model_outcome"], "scored_term": row["scored_term"],
                                        "overall": [], "grades": [], "bridge": []})
        if not row["own_definition"]:
            entry["bridge"].append(row)
        elif row["grade"] is None:
            entry["overall"].append(row)
        else:
            entry["grades"].append(row)
    latest_term = max((r["term"] for r in records), default=None)
    for entry in models.values():
        entry["grades"] = [r for r in entry["grades"] if r["term"] == latest_term]
        entry["bridge"] = [r for r in entry["bridge"] if r["term"] == latest_term]
        entry["dropped"] = any(r["dropped"] for r in entry["overall"] if r["term"] == latest_term)
    labels = {f"{d.name}@v{d.version}": d.description_da for d in OUTCOMES.values()}
    return render(ctx, request, "steward_outcomes.html", {
        "models": list(models.values()), "latest_term": latest_term, "outcome_labels": labels,
        "counts": reads._records(counts), "groups": GROUPS, "note": DESCRIPTIVE_NOTE_DA})


def _file_key(con: Any) -> tuple[str, int, int]:
    """The published version this request reads (a cache key)."""
    version = snapshot_version(con)
    stat = (version / WAREHOUSE_FILE).stat()
    return version.name, stat.st_ino, stat.st_mtime_ns


def _inside_state(state_dir: Path, raw: str) -> Path | None:
    path = Path(raw)
    path = path if path.is_absolute() else state_dir / path
    try:
        resolved = path.resolve()
        resolved.relative_to(state_dir.resolve())
    except (ValueError, OSError):
        return None
    return resolved if resolved.is_file() else None


def _run_reports(state_dir: Path, run_id: str) -> list[tuple[str, str]]:
    """Validation reports of a run that a steward may open: (link name, path in the run folder)."""
    if not run_id.replace("-", "").replace("_", "").isalnum():
        return []
    folder = state_dir / "runs" / run_id
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".md") and "valid" in path.name.lower():
            relative = path.relative_to(folder).as_posix()
            found.append((relative.replace("/", "__"), relative))
    return found


def _manifest_summary(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest without any list longer than 50 entries (counts only are shown)."""
    if manifest is None:
        return {}
    return {k: (v if not isinstance(v, list) or len(v) <= 50 else f"{len(v)} poster") for k, v in manifest.items()}


def _source_matrix(validation: pd.DataFrame, quarantine: pd.DataFrame) -> dict[str, Any]:
    """Terms x sources: expectations failed and rows quarantined."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reads._records(validation):
        cells.setdefault((r["term"], r["source"]), {}).update(
            expectations=r["expectations"], failed=r["failed"], failed_file_level=r["failed_file_level"],
            unexpected=r["unexpected"])
    for r in reads._records(quarantine):
        cells.setdefault((r["term"], r["source"]), {}).update(quarantined=r["rows_quarantined"])
    terms = sorted({t for t, _ in cells}, reverse=True)
    sources = sorted({s for _, s in cells})
    return {"terms": terms, "sources": sources, "cells": {f"{t}|{s}": v for (t, s), v in cells.items()}}


def _pivot_flags(flags: pd.DataFrame) -> list[dict[str, Any]]:
    if flags.empty:
        return []
    table = flags.pivot_table(index=["term", "network_id"], columns="status", values="pupils",
                              aggfunc="sum", fill_value=0).reset_index()
    return sorted(reads._records(table), key=lambda r: (r["term"], r["network_id"]), reverse=True)


def _pivot_tiers(tiers: pd.DataFrame, config: Any = None) -> dict[str, Any]:
    """Pupils per term (rows) and tier (columns, in the config's order of the tiers, not A-Z)."""
    if tiers.empty:
        return {"tiers": [], "rows": []}
    table = tiers.pivot_table(index="term", columns="tier", values="pupils", aggfunc="sum", fill_value=0)
    order = [t.name for t in config.tiers] if config is not None else []
    table = table[[t for t in order if t in table.columns] + [t for t in table.columns if t not in order]]
    return {"tiers": [str(c) for c in table.columns],
            "rows": [{"term": term, "counts": [int(v) for v in values]} for term, values in
                     zip(table.index, table.to_numpy(), strict=True)]}


def same_season(reference: list[date], current: date) -> list[date]:
    """The reference as-of dates of the same season as the current one (like with like).

    Features such as absence so far this school year or the latest test differ between an
    autumn and a spring as-of date even when nothing changed, so a November term is compared
    with the earlier Novembers the model learnt from, not with April.

    Args:
        reference: The model's training as-of dates.
        current: The as-of date of the term shown.

    Returns:
        The dates with the current date's month and day; else those in its month; else none
        (the page then says there is nothing of the same season to compare with).
    """
    earlier = [d for d in reference if d < current]
    same_day = [d for d in earlier if (d.month, d.day) == (current.month, current.day)]
    return same_day or [d for d in earlier if d.month == current.month]


def reference_dates(model: dict[str, Any] | None, available: list[date]) -> list[date]:
    """The model's training as-of dates (from the registry), else the earliest half of the dates."""
    if model:
        if model.get("label_cutoff"):
            # The model learnt from features dated up to its label cut-off (features.timechop).
            cutoff = pd.Timestamp(model["label_cutoff"]).date()
            earlier = [d for d in available if d <= cutoff]
            if earlier:
                return earlier
        for key in ("training_as_of_dates", "train_as_of_dates", "as_of_dates"):
            value = model.get(key)
            if value:
                listed = reads.parse_list(value)
                dates = [pd.Timestamp(v).date() for v in listed]
                return [d for d in dates if d in available] or dates
        for start_key, end_key in (("train_from", "train_to"), ("training_start", "training_end"),
                                   ("train_start", "train_end"), ("training_from", "training_to")):
            if model.get(start_key) and model.get(end_key):
                start, end = pd.Timestamp(model[start_key]).date(), pd.Timestamp(model[end_key]).date()
                return [d for d in available if start <= d <= end]
    return available[: max(1, len(available) // 2)] if len(available) > 1 else []

