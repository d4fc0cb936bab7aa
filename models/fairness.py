"""Fairness audit on the held-out cohorts, with fairlearn's MetricFrame.

Per group of sex, area, school and (where a source provides it) origin: flag rate, precision,
recall, false positive rate and calibration (mean predicted risk minus observed rate), with
bootstrap intervals. A group with fewer than :data:`MIN_GROUP_PUPILS` pupils, or fewer than
:data:`MIN_GROUP_OUTCOMES` pupils with or without the outcome, is suppressed: its numbers are
not shown, only that it was suppressed.

Sex and origin are used here, for the audit, and nowhere else: they are never model inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

MIN_GROUP_PUPILS = 20
MIN_GROUP_OUTCOMES = 5
BOOTSTRAP_SAMPLES = 50
CI_QUANTILES = (0.025, 0.975)
FAIRNESS_METRICS = ("flag_rate", "precision", "recall", "false_positive_rate", "calibration_gap")
ATTRIBUTES = ("sex", "area", "school_code", "origin")


# The audit runs on cells: rows aggregated by (group, outcome, flag) with their weight and the
# sum of their risk. Every metric is a weighted mean over cells, so fairlearn's MetricFrame
# computes the same numbers as on the rows, in milliseconds, and a bootstrap only has to
# re-weight the cells. The bootstrap resamples pupils (a pupil has several as-of rows), which
# fairlearn's own row bootstrap would not.
def _weighted(numerator: np.ndarray, denominator: np.ndarray) -> float:
    total = float(np.sum(denominator))
    return float(np.sum(numerator)) / total if total > 0 else float("nan")


def _flag_rate(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray) -> float:
    return _weighted(weight * y_pred, weight)


def _precision(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray) -> float:
    return _weighted(weight * y_pred * y_true, weight * y_pred)


def _recall(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray) -> float:
    return _weighted(weight * y_pred * y_true, weight * y_true)


def _false_positive_rate(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray) -> float:
    return _weighted(weight * y_pred * (1 - y_true), weight * (1 - y_true))


def calibration_gap(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray, risk_sum: np.ndarray) -> float:
    """Mean predicted risk minus observed rate (positive: the model over-predicts)."""
    return _weighted(risk_sum, weight) - _weighted(weight * y_true, weight)


_METRICS = {
    "flag_rate": _flag_rate, "precision": _precision, "recall": _recall,
    "false_positive_rate": _false_positive_rate, "calibration_gap": calibration_gap,
}


def _cells(group_codes: np.ndarray, y: np.ndarray, f: np.ndarray, risk: np.ndarray,
           weight: np.ndarray, n_groups: int) -> pd.DataFrame:
    """Rows aggregated to (group, outcome, flag) cells: weight and risk sum per cell."""
    code = group_codes * 4 + y * 2 + f
    size = n_groups * 4
    cell_w = np.bincount(code, weights=weight, minlength=size)
    cell_r = np.bincount(code, weights=weight * risk, minlength=size)
    cells = np.arange(size)
    keep = cell_w > 0
    return pd.DataFrame({
        "group": cells[keep] // 4, "y": ((cells[keep] % 4) // 2).astype(float),
        "f": (cells[keep] % 2).astype(float), "weight": cell_w[keep], "risk_sum": cell_r[keep],
    })


def _group_metrics(cells: pd.DataFrame, labels: np.ndarray, replicate: np.ndarray | None = None) -> pd.DataFrame:
    """Fairlearn's MetricFrame over weighted cells, by group (and bootstrap replicate)."""
    params = {name: {"weight": cells["weight"].to_numpy()} for name in _METRICS}
    params["calibration_gap"]["risk_sum"] = cells["risk_sum"].to_numpy()
    frame = MetricFrame(
        metrics=_METRICS, y_true=cells["y"].to_numpy(), y_pred=cells["f"].to_numpy(),
        sensitive_features=pd.Series(labels[cells["group"].to_numpy()], name="group"),
        control_features=None if replicate is None else pd.Series(replicate, name="replicate"),
        sample_params=params,
    )
    return frame.by_group


def _bootstrap_metrics(group_codes: np.ndarray, y: np.ndarray, f: np.ndarray, risk: np.ndarray,
                       pupil_codes: np.ndarray, boot_weights: list[np.ndarray], n_groups: int
                       ) -> dict[str, np.ndarray]:
    """Every metric per bootstrap replicate and group: metric -> array (replicate, group).

    The same weighted means as :data:`_METRICS` over the same cells (:func:`_cells`, one set a
    replicate), with the sums taken for every group and replicate at once instead of a call a
    (replicate, group, metric) through fairlearn: 50 replicates of 1,100 schools were 275,000
    calls. A group with no weight in a replicate (none of its pupils drawn), or a metric whose
    denominator is zero, is NaN, as :func:`_weighted` gives. The point estimates stay
    fairlearn's (:func:`_group_metrics`); ``tests/models/test_fairness.py`` holds the two equal.
    """
    size = n_groups * 4
    code = group_codes * 4 + y * 2 + f
    weight = np.empty((len(boot_weights), size))
    risk_sum = np.empty((len(boot_weights), size))
    for replicate, drawn in enumerate(boot_weights):
        rows = drawn[pupil_codes].astype(float)
        weight[replicate] = np.bincount(code, weights=rows, minlength=size)
        risk_sum[replicate] = np.bincount(code, weights=rows * risk, minlength=size)
    cell = weight.reshape(len(boot_weights), n_groups, 2, 2)  # (replicate, group, outcome, flag)
    total = cell.sum(axis=(2, 3))
    flagged = cell[:, :, :, 1].sum(axis=2)
    positives, negatives = cell[:, :, 1, :].sum(axis=2), cell[:, :, 0, :].sum(axis=2)

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.full(denominator.shape, np.nan), where=denominator > 0)

    risk_total = risk_sum.reshape(len(boot_weights), n_groups, 4).sum(axis=2)
    return {
        "flag_rate": ratio(flagged, total),
        "precision": ratio(cell[:, :, 1, 1], flagged),
        "recall": ratio(cell[:, :, 1, 1], positives),
        "false_positive_rate": ratio(cell[:, :, 0, 1], negatives),
        "calibration_gap": ratio(risk_total, total) - ratio(positives, total),
    }


def _clean(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else round(number, 4)


def fairness_report(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    risk: np.ndarray,
    flagged: np.ndarray,
    attributes: Sequence[str] = ATTRIBUTES,
    seed: int = 0,
    n_boot: int = BOOTSTRAP_SAMPLES,
) -> dict[str, Any]:
    """Group metrics per attribute.

    Args:
        frame: Evaluated rows with ``pupil_id`` and the attribute columns (an attribute
            missing from the frame, or empty for every row, is reported as not available).
        y_true: 0/1 outcomes.
        risk: Calibrated risk.
        flagged: Whether the row made its network's list (at capacity).
        attributes: Attribute columns to audit.
        seed: Bootstrap seed.
        n_boot: Bootstrap samples over pupils (0: no intervals).

    Returns:
        Attribute -> ``{"available", "groups": {group: {...}}, "max_difference": {...}}``;
        each group has ``pupils``, ``rows``, ``suppressed`` and, unless suppressed, every
        metric of :data:`FAIRNESS_METRICS` with its 95 % interval as ``<metric>_ci``.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(risk, dtype=float)
    f = np.asarray(flagged, dtype=np.int64)
    pupil_codes, pupil_index = pd.factorize(frame["pupil_id"].astype(str), sort=True)
    rng = np.random.default_rng(seed)
    boot_weights = [rng.multinomial(len(pupil_index), np.full(len(pupil_index), 1 / len(pupil_index)))
                    for _ in range(n_boot)] if len(pupil_index) else []
    report: dict[str, Any] = {}
    for attribute in attributes:
        if attribute not in frame.columns or frame[attribute].isna().all():
            report[attribute] = {"available": False, "groups": {}, "max_difference": {}}
            continue
        known = frame[attribute].notna().to_numpy()
        group_codes, labels = pd.factorize(frame.loc[known, attribute].astype(str), sort=True)
        labels = np.asarray(labels, dtype=object)
        n_groups = len(labels)
        point = _group_metrics(
            _cells(group_codes, y[known], f[known], p[known], np.ones(int(known.sum())), n_groups), labels)
        draws = (_bootstrap_metrics(group_codes, y[known], f[known], p[known], pupil_codes[known],
                                    boot_weights, n_groups) if boot_weights else None)
        cells = pd.DataFrame({"g": group_codes, "pupil": pupil_codes[known], "y": y[known]})
        per_pupil = cells.groupby(["g", "pupil"])["y"].max().groupby("g")
        pupils, with_outcome = per_pupil.size(), per_pupil.sum()
        rows = cells.groupby("g").size()
        entries: dict[str, Any] = {}
        shown: dict[str, list[float]] = {m: [] for m in FAIRNESS_METRICS}
        for code, group in enumerate(labels):
            n_pupils, n_with = int(pupils.get(code, 0)), int(with_outcome.get(code, 0))
            suppressed = (n_pupils < MIN_GROUP_PUPILS or n_with < MIN_GROUP_OUTCOMES
                          or n_pupils - n_with < MIN_GROUP_OUTCOMES)
            entry: dict[str, Any] = {"pupils": n_pupils, "rows": int(rows.get(code, 0)),
                                     "suppressed": suppressed}
            if not suppressed:
                for metric in FAIRNESS_METRICS:
                    value = _clean(point.loc[group, metric])
                    entry[metric] = value
                    if value is not None:
                        shown[metric].append(value)
                    if draws is not None:
                        drawn = draws[metric][:, code]
                        drawn = drawn[~np.isnan(drawn)]
                        entry[f"{metric}_ci"] = (
                            [_clean(np.quantile(drawn, q)) for q in CI_QUANTILES] if len(drawn) else None)
            entries[str(group)] = entry
        report[attribute] = {
            "available": True,
            "groups": entries,
            "max_difference": {m: round(max(v) - min(v), 4) if len(v) > 1 else None for m, v in shown.items()},
        }
    return report
