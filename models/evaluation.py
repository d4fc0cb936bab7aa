"""Evaluation on the held-out cohorts: the model, every baseline and (given) the oracle.

Everything is measured on the same rows: the held-out cohorts' (pupil, as-of date) rows in
the training grades, before their outcome was assessed. When a ground-truth frame is given
(only ``ews evaluate`` reads one), the rows are those with a true probability, and the
oracle, ranking by that true probability, is measured like any other score.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ews.config import MunicipalityConfig
from ews.sql import load_sql
from models.baselines import RULE_BASELINES
from models.fairness import fairness_report
from models.gate import GATE_BOOTSTRAP, gate_evaluation, published
from models.metrics import calibration_curve_points, list_lengths, score_metrics, select_top_k
from models.risk_model import ModelBundle

#: Yardsticks of the issue: the model against the oracle and the rules.
MAX_AUC_GAP_TO_ORACLE = 0.02
MAX_CALIBRATION_ERROR = 0.03
MIN_PRECISION_SHARE_OF_ORACLE = 0.9
#: A model has learnt something only when its risk spreads over the pupils: the standard
#: deviation of the held-out risks must be at least this share of the largest possible at the
#: same mean risk, ``sqrt(m * (1 - m))`` (a risk of 0 or 1 for every pupil). A constant risk
#: fills lists by the tie-break alone.
MIN_RELATIVE_RISK_SPREAD = 0.1
#: z of the one-sided 97.5 % bound on the held-out AUC that must lie above 0.5 (chance).
CHANCE_Z = 1.96
FAIRNESS_BOOTSTRAP = 50


def _sql(name: str) -> str:
    return load_sql("models", name)


def audit_attributes(con: duckdb.DuckDBPyConnection, config: MunicipalityConfig, rows: pd.DataFrame) -> pd.DataFrame:
    """Sex, origin and area of evaluated rows, for the fairness audit only.

    Args:
        con: A connection with ``clean_pupils``.
        config: The municipality config (school -> area).
        rows: Evaluated rows (``pupil_id``, ``as_of_date``, ``school_code``).

    Returns:
        ``rows`` with ``sex``, ``origin`` and ``area`` added (None where unknown).
    """
    keys = rows[["pupil_id"]].drop_duplicates()
    con.register("_audit_pupils", keys)
    try:
        attributes = con.execute(_sql("audit_attributes.sql")).df()
    finally:
        con.unregister("_audit_pupils")
    areas = {s.code: s.area for s in config.schools}
    merged = rows.merge(attributes, on="pupil_id", how="left")
    merged["area"] = merged["school_code"].map(areas)
    for column in ("sex", "origin", "area"):
        merged[column] = merged[column].astype(object).where(merged[column].notna(), None)
    return merged


def _comparison(rows: pd.DataFrame, y: np.ndarray, scores: dict[str, tuple[np.ndarray, bool]],
                population: pd.DataFrame, capacity: dict[str, int]) -> dict[str, Any]:
    lengths = list_lengths(rows, population, capacity)
    return {name: score_metrics(rows, y, score, lengths, is_probability)
            for name, (score, is_probability) in scores.items()}


def evaluate_model(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    bundle: ModelBundle,
    ground_truth: pd.DataFrame | None = None,
    data: Any | None = None,
    n_boot: int = FAIRNESS_BOOTSTRAP,
    gate_boot: int = GATE_BOOTSTRAP,
) -> dict[str, Any]:
    """Metrics of the model, the baselines and the oracle on the held-out cohorts.

    Args:
        con: A connection with the ``clean_*`` tables.
        config: The municipality config (capacities, schools).
        bundle: The trained model.
        ground_truth: Optional ``pupil_id``, ``as_of_date`` (date) and ``p_true`` (the true
            probability as of that date); adds the ``oracle`` entry.
        data: The model data (``models.training.ModelData``); rebuilt from the warehouse
            when None.
        n_boot: Bootstrap samples for the fairness intervals.
        gate_boot: Bootstrap samples for the publication gate's interval.

    Returns:
        ``model``, ``baselines`` (one entry per baseline), ``oracle`` (only with ground
        truth), each with ``roc_auc``, ``average_precision``, ``brier``,
        ``calibration_error``, ``precision_at_capacity``, ``recall_at_capacity``; the same per
        grade under ``per_grade``; ``fairness``; ``checks`` (the yardsticks); ``gate`` (the
        publication gate, ``models.gate``, with what the config publishes); and the model's
        identity and split.
    """
    if data is None:
        from models.training import assemble_model_data

        data = assemble_model_data(con, config, bundle.split.term)
    rows = data.evaluation.reset_index(drop=True)
    if ground_truth is not None:
        truth = ground_truth[["pupil_id", "as_of_date", "p_true"]].drop_duplicates(["pupil_id", "as_of_date"])
        rows = rows.merge(truth, on=["pupil_id", "as_of_date"], how="inner")
    y = rows["outcome"].to_numpy(dtype=int)
    risk = bundle.predict_risk(rows)
    scores: dict[str, tuple[np.ndarray, bool]] = {"model": (risk, True)}
    if ground_truth is not None:
        scores["oracle"] = (rows["p_true"].to_numpy(dtype=float), True)
    for baseline in bundle.baselines:
        scores[baseline.name] = (baseline.score(rows), baseline.is_probability)
    capacity = {n.id: n.capacity_per_term for n in config.networks}

    def arrange(result: dict[str, Any]) -> dict[str, Any]:
        entry = {"model": result["model"],
                 "baselines": {b.name: result[b.name] for b in bundle.baselines}}
        if "oracle" in result:
            entry["oracle"] = result["oracle"]
        return entry

    overall = arrange(_comparison(rows, y, scores, data.population, capacity))
    per_grade = {}
    for grade in sorted(rows["grade"].unique()):
        mask = (rows["grade"] == grade).to_numpy()
        subset = rows[mask]
        per_grade[str(int(grade))] = arrange(_comparison(
            subset, y[mask], {k: (v[mask], p) for k, (v, p) in scores.items()}, data.population, capacity))
    lengths = list_lengths(rows, data.population, capacity)
    flagged = select_top_k(rows, risk, lengths)
    audited = audit_attributes(con, config, rows)
    fairness = fairness_report(audited, y, risk, flagged, seed=config.model.seed, n_boot=n_boot)
    result = {
        "model_id": bundle.model_id,
        "term": bundle.split.term,
        "outcome_definition": bundle.outcome_definition,
        "training_cohorts": list(bundle.split.training_cohorts),
        "evaluation_cohorts": list(bundle.split.evaluation_cohorts),
        "rows": int(len(rows)),
        "pupils": int(rows["pupil_id"].nunique()),
        "positives": int(y.sum()),
        **overall,
        "per_grade": per_grade,
        "fairness": fairness,
        "calibration_curve": calibration_curve_points(y, risk).round(6).to_dict("records"),
        "risk_spread": risk_spread(risk),
        "selection": dict(getattr(bundle, "selection", {}) or {}),
    }
    result["checks"] = yardstick_checks(result)
    rules = {b.name: scores[b.name][0] for b in bundle.baselines if b.name in RULE_BASELINES}
    learnt = {name: result["checks"][name] for name in ("risk_varies", "better_than_chance")}
    gate = gate_evaluation(rows, y, risk, rules, lengths, overall, MAX_CALIBRATION_ERROR,
                           n_boot=gate_boot, seed=config.model.seed, learnt_checks=learnt)
    result["gate"] = {**gate, **published(gate, config.publication.on_gate_failure)}
    return result


def risk_spread(risk: np.ndarray) -> dict[str, float | None]:
    """How much the risk varies across the evaluated rows.

    Args:
        risk: The model's risk per held-out row.

    Returns:
        ``relative_std`` (standard deviation of the risk divided by ``sqrt(m * (1 - m))`` at
        the mean risk ``m``), ``std``, ``share_varying`` (rows more than 1 percentage point from
        the median risk) and ``distinct_share`` (distinct risks, rounded to 4 decimals, per
        row); None without rows.
    """
    values = np.asarray(risk, dtype="float64")
    if len(values) == 0:
        return {"relative_std": None, "std": None, "share_varying": None, "distinct_share": None}
    mean = float(values.mean())
    largest = float(np.sqrt(mean * (1 - mean)))
    return {
        "relative_std": round(float(values.std()) / largest, 6) if largest > 0 else 0.0,
        "std": round(float(values.std()), 6),
        "share_varying": round(float((np.abs(values - np.median(values)) > 0.01).mean()), 6),
        "distinct_share": round(len(np.unique(values.round(4))) / len(values), 6),
    }


def auc_lower_bound(auc: float | None, positives: int, negatives: int, rows: int, pupils: int) -> float | None:
    """A conservative lower bound of a ROC AUC (Hanley and McNeil's standard error).

    A pupil has several as-of rows, which are not independent: the counts are scaled down to
    the number of pupils before the standard error is taken.

    Args:
        auc: The AUC.
        positives: Rows with the outcome.
        negatives: Rows without it.
        rows: All rows.
        pupils: Distinct pupils among them.

    Returns:
        ``auc - CHANCE_Z * se``, or None without an AUC.
    """
    if auc is None or positives == 0 or negatives == 0:
        return None
    scale = pupils / rows if rows else 1.0
    n1, n2 = max(positives * scale, 1.0), max(negatives * scale, 1.0)
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    variance = (auc * (1 - auc) + (n1 - 1) * (q1 - auc ** 2) + (n2 - 1) * (q2 - auc ** 2)) / (n1 * n2)
    return round(auc - CHANCE_Z * float(np.sqrt(max(variance, 0.0))), 6)


def yardstick_checks(result: dict[str, Any]) -> dict[str, Any]:
    """Whether the model meets the issue's yardsticks on these rows.

    Args:
        result: From :func:`evaluate_model`.

    Returns:
        Check name -> ``{"value", "limit", "passed"}``; oracle checks only with an oracle.
        ``risk_varies`` and ``better_than_chance`` fail when the model learnt nothing: its risk
        is (nearly) the same for every pupil, or its held-out AUC is not surely above 0.5.
    """
    model = result["model"]
    checks: dict[str, Any] = {}
    spread = (result.get("risk_spread") or {}).get("relative_std")
    checks["risk_varies"] = {"value": spread, "limit": MIN_RELATIVE_RISK_SPREAD,
                             "passed": spread is not None and spread >= MIN_RELATIVE_RISK_SPREAD}
    positives, rows = int(result.get("positives") or 0), int(result.get("rows") or 0)
    bound = auc_lower_bound(model.get("roc_auc"), positives, rows - positives, rows, int(result.get("pupils") or 0))
    checks["better_than_chance"] = {"value": bound, "limit": 0.5, "passed": bound is not None and bound > 0.5}
    cal = model.get("calibration_error")
    checks["calibration_error"] = {"value": cal, "limit": MAX_CALIBRATION_ERROR,
                                   "passed": cal is not None and cal <= MAX_CALIBRATION_ERROR}
    oracle = result.get("oracle")
    if oracle:
        gap = None
        if model.get("roc_auc") is not None and oracle.get("roc_auc") is not None:
            gap = round(oracle["roc_auc"] - model["roc_auc"], 6)
        checks["auc_gap_to_oracle"] = {"value": gap, "limit": MAX_AUC_GAP_TO_ORACLE,
                                       "passed": gap is not None and gap <= MAX_AUC_GAP_TO_ORACLE}
        share = None
        if model.get("precision_at_capacity") is not None and oracle.get("precision_at_capacity"):
            share = round(model["precision_at_capacity"] / oracle["precision_at_capacity"], 6)
        checks["precision_share_of_oracle"] = {
            "value": share, "limit": MIN_PRECISION_SHARE_OF_ORACLE,
            "passed": share is not None and share >= MIN_PRECISION_SHARE_OF_ORACLE}
    for name in RULE_BASELINES:
        baseline = result["baselines"].get(name)
        if baseline is None:
            continue
        mine, theirs = model.get("precision_at_capacity"), baseline.get("precision_at_capacity")
        checks[f"beats_{name}"] = {
            "value": mine, "limit": theirs,
            "passed": mine is not None and (theirs is None or mine > theirs),
        }
    return checks
