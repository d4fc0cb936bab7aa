"""Trajectory: how a pupil's risk moved since last term, and whether it looks like an early start.

Two developmental paths are named in the municipality's practice: the *tidlig starter* (early,
many risk factors, often visible from the first terms we score) and the *sen starter* (fewer
risk factors, drifts later; a level alone misses it, the trend over terms catches it). The
rules below are a reading aid for the network, not a diagnosis:

* ``tidlig_starter``: the pupil's risk was already at or above the elevated tier in grade 5 or
  6 (in this or an earlier term) and at least two families of factors raise the risk now, or
  at least three families raise it now (many risk factors).
* ``sen_starter``: not an early starter, the pupil's first score on record was below the
  elevated tier, the pupil has at least two earlier terms on record, and the risk has risen
  since (by at least :data:`LATE_RISE` from the first score, rising this term too).
* otherwise None (too little history to tell).
"""

from __future__ import annotations

import pandas as pd

#: A change of at least this much (probability) since last term counts as rising / falling.
TREND_STEP = 0.05
#: Rise from the first score on record that marks a late start.
LATE_RISE = 0.10
#: Grades in which an elevated risk marks an early start.
EARLY_GRADES = (5, 6)
#: Families raising the risk that mark an early start (many risk factors).
EARLY_FAMILIES = 3
#: Families that must raise the risk now for an early elevated risk to count as an early start.
EARLY_MIN_FAMILIES = 2


def classify_trend(risk: float | None, previous_risk: float | None, step: float = TREND_STEP) -> str:
    """``stigende``, ``faldende``, ``stabil``, or ``ingen_tidligere`` when there is no earlier score.

    Args:
        risk: This term's risk.
        previous_risk: Last term's risk (None/NaN: not scored last term).
        step: Smallest change that counts.

    Returns:
        The trajectory code.
    """
    if risk is None or previous_risk is None or pd.isna(risk) or pd.isna(previous_risk):
        return "ingen_tidligere"
    change = round(risk - previous_risk, 9)  # 0.35 - 0.30 is one step, not 0.0499999
    if change >= step:
        return "stigende"
    if change <= -step:
        return "faldende"
    return "stabil"


def path_pattern(
    history: pd.DataFrame,
    risk: float,
    grade: int,
    risk_families: int,
    elevated: float,
    trend: str,
) -> str | None:
    """Early or late starter for one flagged pupil.

    Args:
        history: Earlier terms of the pupil (``term``, ``grade``, ``risk``), any order.
        risk: This term's risk.
        grade: This term's grade.
        risk_families: Families that raise the risk now (from the explanation).
        elevated: Risk at which the elevated tier starts.
        trend: This term's trajectory code.

    Returns:
        ``tidlig_starter``, ``sen_starter`` or None.
    """
    ordered = history.sort_values("term")
    early_now = grade in EARLY_GRADES and risk >= elevated
    early_before = bool(((ordered["grade"].isin(EARLY_GRADES)) & (ordered["risk"] >= elevated)).any())
    if ((early_now or early_before) and risk_families >= EARLY_MIN_FAMILIES) or risk_families >= EARLY_FAMILIES:
        return "tidlig_starter"
    if len(ordered) >= 2:
        first = float(ordered["risk"].iloc[0])
        if first < elevated and risk - first >= LATE_RISE and trend == "stigende":
            return "sen_starter"
    return None


def trajectories(
    current: pd.DataFrame,
    history: pd.DataFrame,
    elevated: float,
    previous_term: str,
    step: float = TREND_STEP,
) -> pd.DataFrame:
    """Trajectory and path pattern for many pupils.

    Args:
        current: ``pupil_id``, ``risk``, ``grade``, ``risk_families`` this term.
        history: ``pupil_id``, ``term``, ``grade``, ``risk`` of earlier terms (one row per
            pupil and term).
        elevated: Risk at which the elevated tier starts.
        previous_term: Last term; the change is measured against the pupil's score then (a
            pupil not scored last term has ``ingen_tidligere``).
        step: Smallest change that counts as rising or falling.

    Returns:
        ``pupil_id``, ``previous_risk``, ``risk_change``, ``trajectory``, ``path_pattern``.
    """
    last_term = history[history["term"] == previous_term].set_index("pupil_id")
    by_pupil = {pid: rows for pid, rows in history.groupby("pupil_id")}
    empty = history.iloc[0:0]
    rows = []
    for record in current.itertuples(index=False):
        previous = None
        if record.pupil_id in last_term.index:
            previous = float(last_term.at[record.pupil_id, "risk"])
        trend = classify_trend(record.risk, previous, step)
        pattern = path_pattern(
            by_pupil.get(record.pupil_id, empty), float(record.risk), int(record.grade),
            int(record.risk_families), elevated, trend,
        )
        rows.append({
            "pupil_id": record.pupil_id,
            "previous_risk": previous,
            "risk_change": None if previous is None else float(record.risk) - previous,
            "trajectory": trend,
            "path_pattern": pattern,
        })
    return pd.DataFrame(
        rows, columns=["pupil_id", "previous_risk", "risk_change", "trajectory", "path_pattern"]
    )
