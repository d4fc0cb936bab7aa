"""Ranking and calibration metrics, and list selection at each network's capacity.

A network can take up ``capacity_per_term`` pupils a term out of all its pupils in grades
5-9. When a metric is computed on a subset of those pupils (the held-out cohorts, or one
grade of them), the list length is pro-rated: ``k = round(capacity * n_subset /
n_network_grades_5_9)`` per network and as-of date, so the model, the oracle and every
baseline are compared at the same list length on the same pupils.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

CALIBRATION_BINS = 10
METRIC_NAMES = (
    "roc_auc", "average_precision", "brier", "calibration_error",
    "precision_at_capacity", "recall_at_capacity",
)


def tie_break_key(frame: pd.DataFrame) -> np.ndarray:
    """A fixed pseudo-random order of rows (from pupil and as-of date) for breaking ties.

    A rule that flags more pupils than a list can hold has no opinion about which of them
    come first; this key decides, the same way every time.
    """
    keys = frame["pupil_id"].astype(str) + "|" + frame["as_of_date"].astype(str)
    return pd.util.hash_pandas_object(keys, index=False).to_numpy()


def calibration_error(y_true: np.ndarray, risk: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error over equal-count bins of predicted risk.

    Args:
        y_true: 0/1 outcomes.
        risk: Predicted probabilities.
        bins: Number of bins (equal numbers of rows).

    Returns:
        The row-weighted mean of ``|mean(risk) - mean(outcome)|`` over the bins.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(risk, dtype=float)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for part in np.array_split(order, min(bins, len(y))):
        total += len(part) * abs(p[part].mean() - y[part].mean())
    return float(total / len(y))


def calibration_curve_points(y_true: np.ndarray, risk: np.ndarray, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Mean predicted risk and observed rate per equal-count bin (for the model card)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(risk, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = [
        {"predicted": float(p[part].mean()), "observed": float(y[part].mean()), "n": int(len(part))}
        for part in np.array_split(order, min(bins, max(len(y), 1))) if len(part)
    ]
    return pd.DataFrame(rows)


def list_lengths(
    subset: pd.DataFrame,
    population: pd.DataFrame,
    capacity: Mapping[str, int],
) -> pd.DataFrame:
    """Pro-rated list length per network and as-of date.

    Args:
        subset: Rows evaluated (``as_of_date``, ``network_id``).
        population: Pupils per network and as-of date in grades 5-9 (``as_of_date``,
            ``network_id``, ``pupils``).
        capacity: Network id -> pupils it can take up per term.

    Returns:
        ``as_of_date``, ``network_id``, ``n``, ``k``.
    """
    counts = subset.groupby(["as_of_date", "network_id"], dropna=False).size().rename("n").reset_index()
    merged = counts.merge(population, on=["as_of_date", "network_id"], how="left")
    pupils = merged["pupils"].fillna(merged["n"]).clip(lower=merged["n"])
    cap = merged["network_id"].map(lambda n: capacity.get(n, 0)).astype(float)
    share = merged["n"] / pupils.where(pupils > 0, 1)
    merged["k"] = [int(math.floor(c * s + 0.5)) for c, s in zip(cap, share, strict=True)]
    merged["k"] = np.minimum(merged["k"], merged["n"])
    return merged[["as_of_date", "network_id", "n", "k"]]


def select_top_k(frame: pd.DataFrame, score: np.ndarray, lengths: pd.DataFrame) -> np.ndarray:
    """Which rows make each network's list: the ``k`` highest scores per network and date.

    Args:
        frame: Rows with ``pupil_id``, ``as_of_date``, ``network_id``.
        score: One score per row (higher = more at risk).
        lengths: From :func:`list_lengths`.

    Returns:
        A boolean array aligned with ``frame``.
    """
    work = pd.DataFrame({
        "as_of_date": frame["as_of_date"].to_numpy(),
        "network_id": frame["network_id"].to_numpy(),
        "score": np.asarray(score, dtype=float),
        "tie": tie_break_key(frame),
        "row": np.arange(len(frame)),
    })
    work = work.sort_values(["as_of_date", "network_id", "score", "tie"],
                            ascending=[True, True, False, True], kind="stable")
    work["rank"] = work.groupby(["as_of_date", "network_id"], dropna=False).cumcount()
    work = work.merge(lengths[["as_of_date", "network_id", "k"]], on=["as_of_date", "network_id"], how="left")
    chosen = np.zeros(len(frame), dtype=bool)
    chosen[work.loc[work["rank"] < work["k"].fillna(0), "row"].to_numpy()] = True
    return chosen


def score_metrics(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    score: np.ndarray,
    lengths: pd.DataFrame,
    is_probability: bool = True,
) -> dict[str, float | None]:
    """The six metrics of one score on one set of rows.

    Args:
        frame: Rows with ``pupil_id``, ``as_of_date``, ``network_id``.
        y_true: 0/1 outcomes.
        score: Risk (a probability) or a rule's score.
        lengths: List lengths from :func:`list_lengths`.
        is_probability: False for rule scores: Brier score and calibration error are then
            None (a rule's score is not a probability).

    Returns:
        ``roc_auc``, ``average_precision``, ``brier``, ``calibration_error``,
        ``precision_at_capacity``, ``recall_at_capacity``, ``list_length``, ``rows``,
        ``positives``.
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(score, dtype=float)
    chosen = select_top_k(frame, s, lengths)
    both_classes = 0 < y.sum() < len(y)
    result: dict[str, float | None] = {
        "roc_auc": float(roc_auc_score(y, s)) if both_classes else None,
        "average_precision": float(average_precision_score(y, s)) if both_classes else None,
        "brier": float(brier_score_loss(y, s)) if is_probability and len(y) else None,
        "calibration_error": calibration_error(y, s) if is_probability and len(y) else None,
        "precision_at_capacity": float(y[chosen].mean()) if chosen.any() else None,
        "recall_at_capacity": float(y[chosen].sum() / y.sum()) if y.sum() else None,
        "list_length": int(chosen.sum()),
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.items()}
