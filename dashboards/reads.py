"""What the app reads from the warehouse, the identity store and the run log.

Every function receives an open read-only connection (the app opens the live warehouse per
request with :func:`ews.warehouse.open_readonly`) and returns plain frames or dicts. Tables a
stage has not written yet read as empty. The one exception is :func:`read_runs`, which opens
the run log itself because the pipeline holds that file for a moment at the start and end of
each run: it retries briefly and then reports the log as busy.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dashboards.queries import load_queries
from ews.warehouse import open_runlog

_SQL = load_queries("reads.sql")


class RunLogBusyError(RuntimeError):
    """The pipeline holds the run log right now."""


@dataclass(frozen=True)
class TermRun:
    """A term with a flag list and the run that made it."""

    term: str
    run_id: str
    flagged: int


def has_tables(con: duckdb.DuckDBPyConnection, *tables: str) -> bool:
    """Whether every one of the tables exists (a stage that has not run has not made its table)."""
    existing = {row[0] for row in con.execute(_SQL["existing_tables"]).fetchall()}
    return all(table in existing for table in tables)


def _frame(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any] | None = None,
           tables: tuple[str, ...] = ()) -> pd.DataFrame:
    if tables and not has_tables(con, *tables):
        return pd.DataFrame()
    return con.execute(_SQL[query], params or {}).df()


def flag_terms(con: duckdb.DuckDBPyConnection) -> list[TermRun]:
    """Terms with a flag list, newest first."""
    frame = _frame(con, "terms_with_flags", tables=("flags_pupil_term",))
    return [TermRun(r.term, r.run_id, int(r.flagged)) for r in frame.itertuples()]


def network_flags(con: duckdb.DuckDBPyConnection, run_id: str, network_id: str) -> pd.DataFrame:
    """A network's flag list of one run (flagged and no-longer-flagged pupils)."""
    return _decode(_frame(con, "network_flags", {"run_id": run_id, "network_id": network_id},
                          ("flags_pupil_term", "scores_pupil_term")))


def school_flags(con: duckdb.DuckDBPyConnection, run_id: str, schools: list[str]) -> pd.DataFrame:
    """The flags of one run at the given schools."""
    return _decode(_frame(con, "school_flags", {"run_id": run_id, "schools": sorted(schools)},
                          ("flags_pupil_term", "scores_pupil_term")))


def pupil_flags(con: duckdb.DuckDBPyConnection, run_id: str, pupil_id: str) -> list[dict[str, Any]]:
    """The pupil's rows in a run's flag lists (with school, grade and rank), on a list first.

    A pupil who moved network between terms has two rows: on the new network's list and
    ``ikke_laengere`` on the old one. Which of them a person may see is decided by the caller.
    """
    frame = _decode(_frame(con, "pupil_flag", {"run_id": run_id, "pupil_id": pupil_id},
                           ("flags_pupil_term", "scores_pupil_term")))
    return _records(frame)


def pupil_flag(con: duckdb.DuckDBPyConnection, run_id: str, pupil_id: str) -> dict[str, Any] | None:
    """The pupil's first row in a run (on a list before ``ikke_laengere``), or None when not on a list."""
    rows = pupil_flags(con, run_id, pupil_id)
    return rows[0] if rows else None


def pupil_trajectory(con: duckdb.DuckDBPyConnection, pupil_id: str, term: str) -> pd.DataFrame:
    """The pupil's risk and tier in every term up to ``term``."""
    return _frame(con, "pupil_trajectory", {"pupil_id": pupil_id, "term": term},
                  ("scores_pupil_term", "flags_pupil_term"))


def pupil_explanation(con: duckdb.DuckDBPyConnection, run_id: str, pupil_id: str) -> pd.DataFrame:
    """The pupil's SHAP contributions in a run, largest first."""
    return _frame(con, "pupil_explanation", {"run_id": run_id, "pupil_id": pupil_id},
                  ("explanations_pupil_term",))


def numeric_feature_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Numeric (or boolean) columns of ``features_pupil_term``."""
    frame = _frame(con, "table_columns", {"table": "features_pupil_term"}, ("features_pupil_term",))
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
               "BOOLEAN", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
    return [r.column_name for r in frame.itertuples()
            if str(r.data_type).upper().startswith(numeric) and r.column_name not in ("grade",)]


def feature_comparison(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    as_of_date: date,
    school_code: str,
    grade: int,
    features: list[str],
) -> pd.DataFrame:
    """Median and mean of features at the pupil's school and in the municipality (same grade).

    Args:
        con: Warehouse connection.
        run_id: The run whose scores give each pupil's school and grade.
        as_of_date: The as-of date of the features.
        school_code: The pupil's school.
        grade: The pupil's grade.
        features: Feature columns to compare (others are ignored).

    Returns:
        One row per feature: ``feature``, ``school_median``, ``school_mean``,
        ``municipality_median``, ``municipality_mean``, ``school_pupils``,
        ``municipality_pupils``.
    """
    available = set(numeric_feature_columns(con))
    wanted = [f for f in features if f in available]
    if not wanted or not has_tables(con, "scores_pupil_term"):
        return pd.DataFrame()
    frame = con.execute(_SQL["feature_comparison"], {
        "school_code": school_code, "run_id": run_id, "as_of_date": as_of_date, "grade": grade,
        "features": wanted}).df().set_index("level")
    rows = []
    for feature in wanted:
        rows.append({
            "feature": feature,
            **{level: _number(frame.at[level, feature]) for level in frame.index},
            "school_pupils": int(frame.at["school_median", "pupils"]),
            "municipality_pupils": int(frame.at["municipality_median", "pupils"]),
        })
    return pd.DataFrame(rows)


def model_record(con: duckdb.DuckDBPyConnection, model_id: str | None) -> dict[str, Any] | None:
    """The model registry's row for a model, or None."""
    if not model_id:
        return None
    frame = _frame(con, "model_row", {"model_id": model_id}, ("models",))
    return _records(frame)[0] if len(frame) else None


def all_models(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every model in the registry."""
    return _records(_frame(con, "all_models", tables=("models",)))


def outcome_evaluations(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``scores_outcome_evaluation``: earlier models against arrived outcomes, over the evaluating terms."""
    return _frame(con, "outcome_evaluations", tables=("scores_outcome_evaluation",))


def flag_outcome_counts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``flags_outcomes`` of the latest evaluating term (descriptive counts per group)."""
    return _frame(con, "flag_outcome_counts", tables=("flags_outcomes",))


def identities(con: duckdb.DuckDBPyConnection, pupil_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Names and classes of the given pupils from the identity store (only those asked for)."""
    if not pupil_ids:
        return {}
    frame = _frame(con, "identities", {"pupil_ids": list(pupil_ids)}, ("identity_pupils",))
    return {r["pupil_id"]: r for r in _records(frame)}


def validation_by_term(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Expectations run and failed per source and term."""
    return _frame(con, "validation_by_term", tables=("validation_results",))


def validation_failures(con: duckdb.DuckDBPyConnection, term: str) -> pd.DataFrame:
    """The failed expectations of a term (counts only)."""
    return _frame(con, "validation_failures", {"term": term}, ("validation_results",))


def quarantine_by_term(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Rows in quarantine per source and term."""
    return _frame(con, "quarantine_by_term", tables=("quarantine_rows",))


def quarantine_reasons(con: duckdb.DuckDBPyConnection, term: str) -> pd.DataFrame:
    """Why rows of a term went to quarantine (counts per source, column and reason)."""
    return _frame(con, "quarantine_reasons", {"term": term}, ("quarantine_rows",))


def score_summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The score distribution per term: count, mean and quantiles of the risk."""
    return _frame(con, "score_summary", tables=("scores_pupil_term",))


def score_histogram(con: duckdb.DuckDBPyConnection, term: str, bins: int = 20) -> list[int]:
    """Pupils per risk bin (``bins`` equal bins from 0 to 1) in a term."""
    frame = _frame(con, "score_histogram", {"term": term, "bins": bins}, ("scores_pupil_term",))
    counts = [0] * bins
    for r in frame.itertuples():
        counts[int(r.bin)] = int(r.pupils)
    return counts


def tiers_by_term(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Pupils per tier and term."""
    return _frame(con, "tiers_by_term", tables=("scores_pupil_term",))


def flags_by_term(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Flags per network, status and term (counts)."""
    return _frame(con, "flags_by_term", tables=("flags_pupil_term",))


def feature_drift(
    con: duckdb.DuckDBPyConnection,
    reference_dates: list[date],
    current_date: date,
    features: list[str],
) -> pd.DataFrame:
    """Population stability index of each feature: current as-of date against the reference.

    The reference is the features at the model's training as-of dates (a sample of at most
    200,000 rows each side, drawn with a fixed seed). Bins are the reference's deciles; a
    feature with ten or fewer distinct values uses its values as bins; missing values form a
    bin of their own (missing is not zero).

    Args:
        con: Warehouse connection.
        reference_dates: The training as-of dates.
        current_date: The as-of date of the term shown.
        features: Feature columns.

    Returns:
        One row per feature: ``feature``, ``psi``, ``reference_missing``,
        ``current_missing`` (shares), ``reference_mean``, ``current_mean``; sorted by PSI.
    """
    available = set(numeric_feature_columns(con))
    wanted = [f for f in features if f in available]
    if not wanted or not reference_dates:
        return pd.DataFrame()
    reference = con.execute(_SQL["feature_sample"], {"features": wanted, "as_of_dates": reference_dates}).df()
    current = con.execute(_SQL["feature_sample"], {"features": wanted, "as_of_dates": [current_date]}).df()
    if reference.empty or current.empty:
        return pd.DataFrame()
    rows = []
    for feature in wanted:
        ref, cur = reference[feature].to_numpy(float), current[feature].to_numpy(float)
        rows.append({
            "feature": feature,
            "psi": population_stability_index(ref, cur),
            "reference_missing": float(np.isnan(ref).mean()),
            "current_missing": float(np.isnan(cur).mean()),
            "reference_mean": _number(np.nanmean(ref)) if (~np.isnan(ref)).any() else None,
            "current_mean": _number(np.nanmean(cur)) if (~np.isnan(cur)).any() else None,
        })
    return pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI = sum over bins of (current share - reference share) * ln(current / reference).

    Args:
        reference: Reference values (NaN = missing, its own bin).
        current: Current values.
        bins: Number of quantile bins of the reference.

    Returns:
        The index (0 = same distribution; above 0.25 is usually read as a marked shift).
    """
    ref_ok, cur_ok = reference[~np.isnan(reference)], current[~np.isnan(current)]
    distinct = np.unique(ref_ok)
    if len(distinct) <= bins:
        edges = (distinct[:-1] + distinct[1:]) / 2 if len(distinct) > 1 else np.array([])
    else:
        edges = np.unique(np.quantile(ref_ok, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.append(np.bincount(np.searchsorted(edges, ref_ok, side="right"), minlength=len(edges) + 1),
                           len(reference) - len(ref_ok))
    cur_counts = np.append(np.bincount(np.searchsorted(edges, cur_ok, side="right"), minlength=len(edges) + 1),
                           len(current) - len(cur_ok))
    floor = 1e-4
    ref_share = np.maximum(ref_counts / max(len(reference), 1), floor)
    cur_share = np.maximum(cur_counts / max(len(current), 1), floor)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def feature_as_of_dates(con: duckdb.DuckDBPyConnection) -> list[date]:
    """The as-of dates that have features."""
    frame = _frame(con, "feature_as_of_dates", tables=("features_pupil_term",))
    return [pd.Timestamp(d).date() for d in frame["as_of_date"]] if len(frame) else []


def read_runs(state_dir: Path, limit: int = 50, attempts: int = 6) -> pd.DataFrame:
    """Recent runs from the run log with their per-file totals.

    Args:
        state_dir: The state folder.
        limit: Most recent executions to return.
        attempts: Tries (about 0.1 s apart) while the pipeline holds the log.

    Returns:
        One row per execution, newest first; empty when no run has been recorded.

    Raises:
        RunLogBusyError: When the log stayed locked through every attempt.
    """
    def query(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
        runs = con.execute(_SQL["runs"], {"limit": limit}).df()
        totals = con.execute(_SQL["run_source_totals"]).df()
        return runs.merge(totals, on=["run_id", "attempt"], how="left")

    return _with_runlog(state_dir, query, attempts, pd.DataFrame())


def read_run(state_dir: Path, run_id: str, attempts: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every execution of one run, and the per-file counts of its latest execution.

    Raises:
        RunLogBusyError: When the log stayed locked through every attempt.
    """
    def query(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
        runs = con.execute(_SQL["run_by_id"], {"run_id": run_id}).df()
        if runs.empty:
            return runs, pd.DataFrame()
        sources = con.execute(_SQL["run_sources_of"], {
            "run_id": run_id, "attempt": int(runs["attempt"].iloc[0])}).df()
        return runs, sources

    return _with_runlog(state_dir, query, attempts, (pd.DataFrame(), pd.DataFrame()))


def _with_runlog(state_dir: Path, query: Any, attempts: int, empty: Any) -> Any:
    for attempt in range(attempts):
        try:
            with open_runlog(state_dir, read_only=True) as con:
                return query(con)
        except FileNotFoundError:
            return empty
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            # Another process writing: "Could not set lock on file"; a writer in this process
            # (a flow run inside the server's process): "different configuration".
            if "lock" not in str(exc).lower() and "different configuration" not in str(exc).lower():
                raise
            if attempt == attempts - 1:
                raise RunLogBusyError("the pipeline is writing the run log right now") from exc
            time.sleep(0.05 * (attempt + 1))
    raise RunLogBusyError("the run log could not be read")


def read_manifest(state_dir: Path, run_id: str) -> dict[str, Any] | None:
    """A run's manifest (``runs/<run_id>/manifest.json``), or None."""
    if not run_id.replace("-", "").replace("_", "").isalnum():
        return None
    path = state_dir / "runs" / run_id / "manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def parse_list(value: Any) -> list[Any]:
    """A JSON list, a list, or a comma-separated string as a list (None -> [])."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return list(value)
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return [text]
        return parsed if isinstance(parsed, list) else [parsed]
    return [part.strip() for part in text.split(",") if part.strip()]


def reason_text(reason: Any) -> str:
    """The Danish text of one reason (a string, or an object with a text field)."""
    if isinstance(reason, dict):
        for key in ("text_da", "tekst", "text", "reason_da", "reason"):
            if reason.get(key):
                return str(reason[key])
        return "; ".join(str(v) for v in reason.values())
    return str(reason)


def _decode(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    context = frame["context_da"] if "context_da" in frame.columns else [None] * len(frame)
    return frame.assign(
        reasons=[[reason_text(r) for r in parse_list(v)] for v in frame["reasons_da"]],
        context=[[reason_text(r) for r in parse_list(v)] for v in context],
        discipline_list=[[str(d) for d in parse_list(v)] for v in frame["disciplines"]],
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
