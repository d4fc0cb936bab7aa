"""Earlier models checked against outcomes as they arrive (issue 14, part 3).

A model is evaluated once before deployment, on held-out cohorts (``models.evaluation``); its
card states what it promised. Years later the outcomes of the pupils it scored arrive. Each run
evaluates every earlier scored term's model on exactly the pupils it scored back then, with the
outcomes that have arrived since (assessed after the scoring's as-of date and on or before the
run's as-of date): ROC AUC, precision at each network's capacity (pro-rated as in
``models.metrics``), calibration error and Brier score, overall and per grade at scoring time.

It does so for the model's own outcome definition and, as a bridge across the 2024/25 break,
for every other definition whose outcomes arrived (how a UPV-trained model ranks the first
post-UPV cohorts). Only the own definition is compared with the card's promise: when the
held-out value the card promised exceeds the prospective value by more than 1.96 standard errors
of the difference (the 95 % bootstrap interval of the prospective value, pupils resampled, and
the promise's own sampling error), the drop is more than sampling noise and the run warns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ews.sql import load_sql
from ews.tables import create_tables
from ews.warehouse import append_rows, delete_rows, read_frame, table_exists
from models.evaluation import CHANCE_Z, auc_lower_bound
from models.metrics import list_lengths, score_metrics, select_top_k
from models.outcomes import OUTCOMES, load_labels, outcome_definition

PROSPECTIVE_TABLE = "scores_outcome_evaluation"
#: Bootstrap samples (pupils resampled) for the intervals of the prospective figures.
PROSPECTIVE_BOOTSTRAP = 200
#: The fewest pupils of each outcome class before an AUC interval is judged (fewer: no verdict).
MIN_CLASS_PUPILS = 5
#: The shortest list (over the evaluated pupils) before a precision interval is judged.
MIN_LIST_LENGTH = 5
#: Metrics compared with the model card's promise (held-out value) and judged for a drop.
JUDGED_METRICS = ("roc_auc", "precision_at_capacity")



def _definition_name(versioned: str) -> str:
    return str(versioned).split("@", 1)[0]


@dataclass(frozen=True)
class ArrivedOutcomes:
    """The outcomes known on a run's as-of date, per definition (``pupil_id``, ``assessed_date``, ``outcome``)."""

    as_of_date: date
    labels: Mapping[str, pd.DataFrame]


def arrived_outcomes(con: duckdb.DuckDBPyConnection, as_of_date: date) -> ArrivedOutcomes:
    """Every definition's labels assessed on or before ``as_of_date``.

    Args:
        con: A connection with ``clean_outcomes`` and ``clean_marks``.
        as_of_date: The evaluating run's as-of date.

    Returns:
        Definition name -> labels (only definitions with any).
    """
    labels = {}
    for name in OUTCOMES:
        frame = load_labels(con, name)
        frame = frame[frame["assessed_date"] <= as_of_date]
        if len(frame):
            labels[name] = frame[["pupil_id", "assessed_date", "outcome"]].reset_index(drop=True)
    return ArrivedOutcomes(as_of_date, labels)


def weighted_auc(tie_group: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float | None:
    """ROC AUC with row weights (ties count half), as ``roc_auc_score`` with ``sample_weight``.

    Args:
        tie_group: Each row's rank among the distinct scores (``np.unique(..., return_inverse=True)``).
        y: 0/1 outcomes.
        weight: Row weights (bootstrap counts).

    Returns:
        The AUC, or None when a class has no weight.
    """
    positives = np.bincount(tie_group, weights=weight * y)
    negatives = np.bincount(tie_group, weights=weight * (1 - y))
    total_pos, total_neg = positives.sum(), negatives.sum()
    if total_pos == 0 or total_neg == 0:
        return None
    below = np.cumsum(negatives) - negatives
    return float((positives * (below + 0.5 * negatives)).sum() / (total_pos * total_neg))


def bootstrap_interval(pupils: pd.Series, y: np.ndarray, values: np.ndarray, chosen: np.ndarray | None,
                       metric: str, n_boot: int, seed: int) -> tuple[float | None, float | None]:
    """The 95 % percentile interval of a prospective metric, resampling pupils with replacement.

    Args:
        pupils: Pupil id per row (rows of a pupil are drawn together).
        y: 0/1 outcomes.
        values: Risk per row.
        chosen: Whether each row was on its network's list (precision only).
        metric: ``roc_auc`` or ``precision_at_capacity``.
        n_boot: Samples.
        seed: Random seed.

    Returns:
        (low, high), or (None, None) when too few samples had both classes or a list.
    """
    codes, _ = pd.factorize(pupils)
    n_pupils = int(codes.max()) + 1 if len(codes) else 0
    if n_pupils == 0 or n_boot <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    _, tie_group = np.unique(np.asarray(values, dtype=float), return_inverse=True)
    draws = []
    for _ in range(n_boot):
        weight = np.bincount(rng.integers(0, n_pupils, n_pupils), minlength=n_pupils)[codes]
        if metric == "roc_auc":
            auc = weighted_auc(tie_group, y, weight)
            if auc is not None:
                draws.append(auc)
        else:
            on_list = weight * chosen
            if on_list.sum() > 0:
                draws.append(float((on_list * y).sum() / on_list.sum()))
    if len(draws) < n_boot // 2:
        return None, None
    low, high = np.percentile(draws, [2.5, 97.5])
    return round(float(low), 6), round(float(high), 6)


def _round(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 6)


def evaluate_scored_term(scores: pd.DataFrame, labels: pd.DataFrame, capacity: Mapping[str, int],
                         n_boot: int = PROSPECTIVE_BOOTSTRAP, seed: int = 0) -> list[dict[str, Any]]:
    """One model's scores of one term against the outcomes that arrived for those pupils.

    Args:
        scores: The term's ``scores_pupil_term`` rows (``pupil_id``, ``as_of_date``,
            ``network_id``, ``grade``, ``risk``): every pupil scored, which also sets each
            network's list length.
        labels: One definition's arrived labels (``pupil_id``, ``assessed_date``, ``outcome``).
        capacity: Network id -> pupils a term.
        n_boot: Bootstrap samples for the intervals.
        seed: Random seed of the bootstrap.

    Returns:
        One row for all grades (``grade`` None) and one per grade at scoring time, each with
        ``rows``, ``positives``, ``roc_auc`` (and ``_low``/``_high``), ``precision_at_capacity``
        (and interval), ``list_length``, ``calibration_error``, ``brier``, ``mean_risk``,
        ``outcome_rate``; empty when no scored pupil's outcome arrived after the scoring.
    """
    frame = scores.drop(columns=["outcome", "assessed_date"], errors="ignore")
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"]).dt.date
    population = (frame.groupby(["as_of_date", "network_id"], dropna=False).size()
                  .rename("pupils").reset_index())
    rows = frame.merge(labels[["pupil_id", "assessed_date", "outcome"]], on="pupil_id", how="inner")
    rows = rows[pd.to_datetime(rows["assessed_date"]).dt.date > rows["as_of_date"]].reset_index(drop=True)
    if rows.empty:
        return []
    results = []
    groups: list[tuple[int | None, pd.DataFrame]] = [(None, rows)]
    groups += [(int(g), part.reset_index(drop=True)) for g, part in rows.groupby("grade", sort=True)]
    for grade, part in groups:
        y = part["outcome"].astype(int).to_numpy()
        risk = part["risk"].astype(float).to_numpy()
        lengths = list_lengths(part, population, capacity)
        metrics = score_metrics(part, y, risk, lengths)
        chosen = select_top_k(part, risk, lengths)
        entry: dict[str, Any] = {
            "grade": grade, "rows": int(len(part)), "pupils": int(part["pupil_id"].nunique()),
            "positives": int(y.sum()), "roc_auc": metrics["roc_auc"],
            "precision_at_capacity": metrics["precision_at_capacity"], "list_length": metrics["list_length"],
            "calibration_error": metrics["calibration_error"], "brier": metrics["brier"],
            "mean_risk": _round(risk.mean()), "outcome_rate": _round(y.mean()),
        }
        negatives = int(len(y) - y.sum())
        judged_auc = min(int(y.sum()), negatives) >= MIN_CLASS_PUPILS
        auc_interval = bootstrap_interval(part["pupil_id"], y, risk, None, "roc_auc", n_boot, seed) \
            if judged_auc else (None, None)
        judged_precision = int(chosen.sum()) >= MIN_LIST_LENGTH
        precision_interval = bootstrap_interval(part["pupil_id"], y, risk, chosen.astype(int),
                                                "precision_at_capacity", n_boot, seed) \
            if judged_precision else (None, None)
        entry.update(roc_auc_low=auc_interval[0], roc_auc_high=auc_interval[1],
                     precision_at_capacity_low=precision_interval[0],
                     precision_at_capacity_high=precision_interval[1])
        results.append(entry)
    return results


def promised_metrics(metrics: Mapping[str, Any], grade: int | None) -> dict[str, float | None]:
    """What the model card promised: the held-out figures of the registry's metrics, with their error.

    The promise is itself an estimate on a finite held-out sample, so its standard error is
    kept beside it: Hanley and McNeil's for the AUC and the binomial one for the precision, with
    the held-out rows scaled down to pupils (a pupil has several as-of rows there), as the
    publication gate's chance bound does (``models.evaluation.auc_lower_bound``).

    Args:
        metrics: The registry row's metrics (``models.evaluation.evaluate_model``'s result).
        grade: None for all grades, else the grade's held-out figures (when evaluated).

    Returns:
        ``roc_auc``, ``precision_at_capacity``, ``calibration_error`` and ``roc_auc_se``,
        ``precision_at_capacity_se`` (None when unknown).
    """
    entry = metrics.get("model", {}) if grade is None else (
        (metrics.get("per_grade", {}).get(str(grade)) or {}).get("model", {}))
    promised = {k: _round(entry.get(k)) for k in ("roc_auc", "precision_at_capacity", "calibration_error")}
    rows, positives = entry.get("rows"), entry.get("positives")
    scale = (metrics.get("pupils") or 0) / metrics["rows"] if metrics.get("rows") else 1.0
    auc_se = precision_se = None
    if promised["roc_auc"] is not None and rows and positives is not None:
        bound = auc_lower_bound(promised["roc_auc"], int(positives), int(rows) - int(positives), int(rows),
                                int(round(int(rows) * scale)))
        auc_se = _round((promised["roc_auc"] - bound) / CHANCE_Z) if bound is not None else None
    length = entry.get("list_length")
    if promised["precision_at_capacity"] is not None and length:
        listed = max(float(length) * scale, 1.0)
        value = promised["precision_at_capacity"]
        precision_se = _round(math.sqrt(max(value * (1 - value), 0.0) / listed))
    return {**promised, "roc_auc_se": auc_se, "precision_at_capacity_se": precision_se}


def judge(entry: Mapping[str, Any], promised: Mapping[str, float | None]) -> list[str]:
    """The judged metrics that dropped by more than the sampling error of both figures explains.

    The prospective figure's standard error comes from its 95 % bootstrap interval (width /
    3.92), the promise's from :func:`promised_metrics`; a metric has dropped when the promise
    exceeds the prospective figure by more than 1.96 standard errors of the difference. Without
    an interval (too few pupils) nothing is judged.
    """
    dropped = []
    for metric in JUDGED_METRICS:
        low, high, value = entry.get(f"{metric}_low"), entry.get(f"{metric}_high"), entry.get(metric)
        promise = promised.get(metric)
        if low is None or high is None or value is None or promise is None:
            continue
        se = math.sqrt(((high - low) / (2 * CHANCE_Z)) ** 2 + (promised.get(f"{metric}_se") or 0.0) ** 2)
        if promise - value > CHANCE_Z * se:
            dropped.append(metric)
    return dropped


def evaluate_earlier_models(con: duckdb.DuckDBPyConnection, capacity: Mapping[str, int], term: str,
                            as_of_date: date, run_id: str, n_boot: int = PROSPECTIVE_BOOTSTRAP,
                            seed: int = 0) -> pd.DataFrame:
    """Every earlier scored term's model against the outcomes arrived by ``as_of_date``.

    Args:
        con: The staged warehouse (``scores_pupil_term``, ``models``, ``clean_*``).
        capacity: Network id -> pupils a term.
        term: The evaluating run's term.
        as_of_date: Its as-of date (outcomes assessed later have not arrived).
        run_id: Its run id.
        n_boot: Bootstrap samples.
        seed: Random seed of the bootstrap.

    Returns:
        Rows of :data:`PROSPECTIVE_TABLE` (empty when nothing arrived).
    """
    if not (table_exists(con, "scores_pupil_term") and table_exists(con, "models")):
        return pd.DataFrame()
    scored = read_frame(con, load_sql("models", "prospective_scores.sql"), {"as_of": as_of_date})
    if scored.empty:
        return pd.DataFrame()
    arrived = arrived_outcomes(con, as_of_date)
    registry = read_frame(con, "SELECT model_id, term AS model_term, outcome_definition, metrics_json FROM models")
    models = {r["model_id"]: r for r in registry.to_dict("records")}
    rows = []
    for (model_id, scored_term), scores in scored.groupby(["model_id", "term"], sort=True):
        model = models.get(model_id)
        if model is None:
            continue
        metrics = json.loads(model["metrics_json"]) if model["metrics_json"] else {}
        own = _definition_name(model["outcome_definition"])
        for definition, labels in arrived.labels.items():
            for entry in evaluate_scored_term(scores, labels, capacity, n_boot, seed):
                is_own = definition == own
                promised = promised_metrics(metrics, entry["grade"]) if is_own else {}
                dropped = judge(entry, promised) if is_own else []
                rows.append({
                    "run_id": run_id, "term": term, "as_of_date": as_of_date, "model_id": model_id,
                    "model_term": model["model_term"], "model_outcome": model["outcome_definition"],
                    "scored_term": scored_term, "scored_as_of": pd.to_datetime(scores["as_of_date"]).dt.date.min(),
                    "outcome_definition": outcome_definition(definition).versioned_name,
                    "own_definition": is_own, **entry,
                    "promised_roc_auc": promised.get("roc_auc"),
                    "promised_precision_at_capacity": promised.get("precision_at_capacity"),
                    "promised_calibration_error": promised.get("calibration_error"),
                    "promised_roc_auc_se": promised.get("roc_auc_se"),
                    "promised_precision_at_capacity_se": promised.get("precision_at_capacity_se"),
                    "dropped": ",".join(dropped) or None,
                })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["grade"] = frame["grade"].astype("Int16")
    return frame


def store_prospective(con: duckdb.DuckDBPyConnection, term: str, frame: pd.DataFrame) -> None:
    """Replace the term's rows of :data:`PROSPECTIVE_TABLE` (declared in ``ews/tables_warehouse.sql``)."""
    create_tables(con, "warehouse", [PROSPECTIVE_TABLE])
    delete_rows(con, PROSPECTIVE_TABLE, {"term": term})
    if len(frame):
        append_rows(con, PROSPECTIVE_TABLE, frame)


def drop_warnings(frame: pd.DataFrame) -> list[str]:
    """One warning per earlier model and scored term whose prospective figures dropped (all grades).

    Args:
        frame: From :func:`evaluate_earlier_models`.

    Returns:
        English sentences for the manifest's ``warnings`` (the steward run page lists them).
    """
    if frame.empty:
        return []
    warnings = []
    overall = frame[frame["grade"].isna() & frame["own_definition"] & frame["dropped"].notna()]
    for row in overall.to_dict("records"):
        parts = []
        for metric in str(row["dropped"]).split(","):
            se = row.get(f"promised_{metric}_se")
            error = f" (standard error {se:.3f})" if se is not None and se == se else ""
            parts.append(f"{metric} {row[metric]:.3f} (95 % interval {row[metric + '_low']:.3f}-"
                         f"{row[metric + '_high']:.3f}) against {row['promised_' + metric]:.3f}{error} promised")
        warnings.append(
            f"outcomes: model {row['model_id']} ({row['model_outcome']}), scored {row['scored_term']}, on "
            f"{row['pupils']} pupils whose outcome arrived: " + "; ".join(parts)
            + " by its model card (held-out cohorts); the drop exceeds 1.96 standard errors of the difference "
              "(bootstrap interval and the promise's own sampling error): the relationship between the data and "
              "the outcome may have changed (concept drift); see the steward page 'Udfald'")
    return warnings


def manifest_outcomes(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The all-grades rows of an evaluation, for the run manifest's ``outcomes``."""
    if frame.empty:
        return []
    keys = ("model_id", "model_outcome", "scored_term", "outcome_definition", "own_definition", "pupils",
            "positives", "roc_auc", "roc_auc_low", "roc_auc_high", "promised_roc_auc", "precision_at_capacity",
            "precision_at_capacity_low", "precision_at_capacity_high", "promised_precision_at_capacity",
            "calibration_error", "promised_calibration_error", "dropped")
    overall = frame[frame["grade"].isna()]
    return [{k: (None if isinstance(v, float) and math.isnan(v) else
                 bool(v) if isinstance(v, np.bool_) else int(v) if isinstance(v, np.integer) else v)
             for k, v in ((k, row[k]) for k in keys)} for row in overall.to_dict("records")]
