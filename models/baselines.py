"""Baselines the model must beat: the simple rules it replaces, and a logistic regression.

* ``fravaer_over_10pct``: absence above 10 % of school days over the last year
  ("bekymrende fravær"), the rule most schools use today. Score 0/1.
* ``abc_regel``: an ABC-style rule (attendance, behaviour, course performance; Balfanz et
  al. 2007): absence above 10 %, a notification of concern in the last year, a latest national
  test at least one standard deviation below the sitting's mean. Score = number of flags (0-3).
* ``kun_skole``: a school-only ranking: the school's share of adverse outcomes among the
  training cohorts (every pupil of a school gets the same score).
* ``logistisk_regression``: a logistic regression on the same features (standardised,
  missing values imputed with the median plus a missing-indicator per feature).

Rules have no opinion about who comes first among pupils with the same score; lists of a
given length break those ties in a fixed pseudo-random order (``models.metrics``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from features.build import design_matrix

RULE_BASELINES = ("fravaer_over_10pct", "abc_regel", "kun_skole")
ALL_BASELINES = (*RULE_BASELINES, "logistisk_regression")
ABSENCE_LIMIT_PCT = 10.0
LOW_TEST_Z = -1.0


class Baseline(Protocol):
    """A fitted baseline: scores rows of a features frame (higher = more at risk)."""

    name: str
    is_probability: bool

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores aligned with the frame's rows."""
        ...  # pragma: no cover


class AbsenceRule:
    """Absence above 10 % of school days over the last year."""

    name = "fravaer_over_10pct"
    is_probability = False

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """1 when flagged, else 0 (missing absence is not flagged)."""
        return (frame["absence_total_pct_12m"].fillna(0) > ABSENCE_LIMIT_PCT).astype(float).to_numpy()


class AbcRule:
    """Attendance, behaviour (notifications) and course performance (tests): number of flags."""

    name = "abc_regel"
    is_probability = False

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Number of flags, 0-3."""
        attendance = frame["absence_total_pct_12m"].fillna(0) > ABSENCE_LIMIT_PCT
        behaviour = frame["notifications_12m"].fillna(0) >= 1
        low_test = (frame["test_reading_latest_z"].fillna(0) <= LOW_TEST_Z) | (
            frame["test_math_latest_z"].fillna(0) <= LOW_TEST_Z)
        return (attendance.astype(int) + behaviour.astype(int) + low_test.astype(int)).astype(float).to_numpy()


class SchoolOnly:
    """The school's share of adverse outcomes among the training cohorts."""

    name = "kun_skole"
    is_probability = True

    def __init__(self) -> None:
        self.rates_: dict[str, float] = {}
        self.overall_: float = 0.0

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> SchoolOnly:
        """Learn each school's rate from training rows (one vote per pupil: the latest row).

        Args:
            frame: Training rows with ``pupil_id``, ``as_of_date`` and ``school_code``.
            y: Their outcomes.

        Returns:
            Self.
        """
        rows = frame[["pupil_id", "as_of_date", "school_code"]].assign(y=np.asarray(y, dtype=float))
        latest = rows.sort_values(["pupil_id", "as_of_date"]).groupby("pupil_id").tail(1)
        self.overall_ = float(latest["y"].mean()) if len(latest) else 0.0
        self.rates_ = {str(k): float(v) for k, v in latest.groupby("school_code")["y"].mean().items()}
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The school's rate (the overall rate for a school without history)."""
        return frame["school_code"].map(self.rates_).fillna(self.overall_).astype(float).to_numpy()


def logistic_pipeline(C: float = 1.0, random_state: int = 0) -> Pipeline:
    """The unfitted logistic regression: median imputation with missing indicators, scaling.

    Shared by the baseline and the logistic candidates of model selection
    (``models.risk_model``), so both are the same model.

    Args:
        C: Inverse strength of the L2 penalty (smaller = more regularised).
        random_state: Random seed.

    Returns:
        A ``Pipeline`` with steps ``impute``, ``scale`` and ``model``.
    """
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(C=C, max_iter=2000, random_state=random_state)),
    ])


class LogisticBaseline:
    """Logistic regression on the catalogue's features."""

    name = "logistisk_regression"
    is_probability = True

    def __init__(self, feature_names: list[str], random_state: int = 0, C: float = 1.0) -> None:
        self.feature_names = feature_names
        self.random_state = random_state
        self.C = C
        self.pipeline_ = logistic_pipeline(C, random_state)

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> LogisticBaseline:
        """Fit on training rows."""
        self.pipeline_.fit(design_matrix(frame, self.feature_names), np.asarray(y, dtype=int))
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted probability."""
        return self.pipeline_.predict_proba(design_matrix(frame, self.feature_names))[:, 1]


def fit_rules(frame: pd.DataFrame, y: np.ndarray) -> list[Baseline]:
    """The rule baselines (:data:`RULE_BASELINES`), fitted where they learn (school rates).

    Args:
        frame: Training rows (features frame).
        y: Outcomes.

    Returns:
        The rules, in the order of :data:`RULE_BASELINES`.
    """
    return [AbsenceRule(), AbcRule(), SchoolOnly().fit(frame, y)]


def fit_baselines(frame: pd.DataFrame, y: np.ndarray, feature_names: list[str], seed: int) -> list[Baseline]:
    """Fit every baseline on the training rows.

    Args:
        frame: Training rows (features frame).
        y: Outcomes.
        feature_names: The model's features (for the logistic regression).
        seed: Random seed.

    Returns:
        The baselines, in the order of :data:`ALL_BASELINES`.
    """
    return [*fit_rules(frame, y), LogisticBaseline(feature_names, random_state=seed).fit(frame, y)]
