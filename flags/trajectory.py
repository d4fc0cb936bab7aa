"""Trajectory: how a pupil's risk moved since last term, and whether it looks like an early start.

Two developmental paths are named in the municipality's practice: the *tidlig starter* (early,
many risk factors, often early neuro-psychological problems) and the *sen starter* (fewer risk
factors, drifts in adolescence; a level alone misses it, the trend over terms catches it). The
rules below are a reading aid for the network, not a diagnosis. "Early support" counts the
contacts on record with PPR, a speech and hearing teacher or an occupational therapist.

* ``sen_starter``: the score history shows a late rise (the first score on record, at least two
  earlier terms back, was below the elevated tier and the risk has risen by at least
  :data:`LATE_RISE` since, rising this term too); or the pupil is in grade 7 or later, has had
  little early support (fewer than :data:`LATE_MAX_EARLY_SUPPORT` contacts) and the absence
  data show a recent drift (:func:`drift_signals`).
* ``tidlig_starter``: otherwise, when the pupil has had early support (or it is unknown) and
  either at least three families of factors raise the risk now (many risk factors), or at least
  two do and the risk was already at or above the elevated tier in grade 5 or 6 (in this or an
  earlier term).
* otherwise None.
"""

from __future__ import annotations

import math

import numpy as np
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
#: Contacts that count as early support (features of the catalogue, all years).
EARLY_SUPPORT_FEATURES = ("contacts_ppr_ever", "contacts_talehoerelaerer_ever", "contacts_ergoterapeut_ever")
#: Drift signals: absence trend (percentage points per term) and absence in the last six
#: months above the pupil's own all-years level (percentage points).
DRIFT_ABSENCE_TREND = 3.0
DRIFT_ABSENCE_JUMP = 10.0
#: A late start is read from grade 7 (adolescence) and with fewer early-support contacts than this.
LATE_FROM_GRADE = 7
LATE_MAX_EARLY_SUPPORT = 10


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


def drift_signals(explanations: pd.DataFrame) -> pd.DataFrame:
    """Per pupil: early-support contacts and whether the absence data show a recent drift.

    Args:
        explanations: Rows of ``explanations_pupil_term`` (``pupil_id``, ``feature``,
            ``feature_value``); features the model does not use count as unknown.

    Returns:
        ``pupil_id``, ``early_support`` (contacts with PPR, speech and hearing teacher and
        occupational therapist on record; NaN when none of these features is known) and
        ``drift`` (absence trend of at least 3 points per term, or absence in the last six
        months at least 10 points above the pupil's all-years level).
    """
    wide = explanations.pivot_table(index="pupil_id", columns="feature", values="feature_value",
                                    aggfunc="first", dropna=False, observed=True)

    def column(name: str) -> pd.Series:
        return wide[name] if name in wide.columns else pd.Series(np.nan, index=wide.index)

    support = pd.concat([column(n) for n in EARLY_SUPPORT_FEATURES], axis=1)
    early_support = support.sum(axis=1, min_count=1)
    jump = column("absence_total_pct_6m") - column("absence_total_pct_all")
    drift = (column("absence_trend_pp") >= DRIFT_ABSENCE_TREND) | (jump >= DRIFT_ABSENCE_JUMP)
    return pd.DataFrame({"pupil_id": wide.index.astype(object), "early_support": early_support.to_numpy(),
                         "drift": drift.fillna(False).astype(bool).to_numpy()})


def path_pattern(
    history: pd.DataFrame,
    risk: float,
    grade: int,
    risk_families: int,
    elevated: float,
    trend: str,
    early_support: float | None = None,
    drift: bool = False,
) -> str | None:
    """Early or late starter for one flagged pupil (rules in the module docstring).

    Args:
        history: Earlier terms of the pupil (``term``, ``grade``, ``risk``), any order.
        risk: This term's risk.
        grade: This term's grade.
        risk_families: Families that raise the risk now (from the explanation).
        elevated: Risk at which the elevated tier starts.
        trend: This term's trajectory code.
        early_support: Early-support contacts on record (None/NaN: unknown).
        drift: Whether the data show a recent drift (:func:`drift_signals`).

    Returns:
        ``tidlig_starter``, ``sen_starter`` or None.
    """
    ordered = history.sort_values("term")
    first = float(ordered["risk"].iloc[0]) if len(ordered) >= 2 else None
    early_before = bool(((ordered["grade"].isin(EARLY_GRADES)) & (ordered["risk"] >= elevated)).any())
    return _pattern(first, early_before, risk, grade, risk_families, elevated, trend, early_support, drift)


def _pattern(first: float | None, early_before: bool, risk: float, grade: int, risk_families: int,
             elevated: float, trend: str, early_support: float | None, drift: bool) -> str | None:
    """:func:`path_pattern` from what it needs of the history.

    Args:
        first: The risk of the pupil's first earlier term, when there are at least two; else None.
        early_before: Whether an earlier term in grade 5 or 6 had at least the elevated risk.
        risk: As :func:`path_pattern`.
        grade: As :func:`path_pattern`.
        risk_families: As :func:`path_pattern`.
        elevated: As :func:`path_pattern`.
        trend: As :func:`path_pattern`.
        early_support: As :func:`path_pattern`.
        drift: As :func:`path_pattern`.

    Returns:
        ``tidlig_starter``, ``sen_starter`` or None.
    """
    known = early_support is not None and not math.isnan(early_support)
    late_history = first is not None and first < elevated and risk - first >= LATE_RISE and trend == "stigende"
    little_support = not known or early_support < LATE_MAX_EARLY_SUPPORT
    late_data = grade >= LATE_FROM_GRADE and little_support and drift
    if late_history or late_data:
        return "sen_starter"
    had_support = not known or early_support >= 1
    early_now = grade in EARLY_GRADES and risk >= elevated
    many = risk_families >= EARLY_FAMILIES
    early_and_several = (early_now or early_before) and risk_families >= EARLY_MIN_FAMILIES
    if had_support and (many or early_and_several):
        return "tidlig_starter"
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
        current: ``pupil_id``, ``risk``, ``grade``, ``risk_families`` this term, and optionally
            ``early_support`` and ``drift`` (from :func:`drift_signals`).
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
    # what path_pattern needs of each pupil's history, for all pupils at once: the first earlier
    # term's risk (with at least two terms) and whether grade 5 or 6 had an elevated risk
    ordered = history.sort_values(["pupil_id", "term"], kind="stable")
    grouped = ordered.groupby("pupil_id", sort=False)
    terms = grouped.size()
    firsts = grouped["risk"].first(skipna=False)[terms >= 2].astype(float).to_dict()
    early_rows = ordered["grade"].isin(EARLY_GRADES) & (ordered["risk"] >= elevated)
    early_before = set(ordered.loc[early_rows, "pupil_id"])
    rows = []
    for record in current.to_dict("records"):
        pupil_id = record["pupil_id"]
        previous = float(last_term.at[pupil_id, "risk"]) if pupil_id in last_term.index else None
        trend = classify_trend(record["risk"], previous, step)
        support = record.get("early_support")
        pattern = _pattern(
            firsts.get(pupil_id), pupil_id in early_before, float(record["risk"]), int(record["grade"]),
            int(record["risk_families"]), elevated, trend,
            early_support=None if support is None or pd.isna(support) else float(support),
            drift=bool(record.get("drift", False)) if not pd.isna(record.get("drift", False)) else False,
        )
        rows.append({
            "pupil_id": pupil_id,
            "previous_risk": previous,
            "risk_change": None if previous is None else float(record["risk"]) - previous,
            "trajectory": trend,
            "path_pattern": pattern,
        })
    return pd.DataFrame(
        rows, columns=["pupil_id", "previous_risk", "risk_change", "trajectory", "path_pattern"]
    )
