"""The risk model: a monotone gradient-boosted classifier with a calibration step.

``HistGradientBoostingClassifier`` takes missing values as they are (missing is not zero)
and respects the catalogue's monotone directions (more unauthorised absence never lowers the
risk). Its raw output, the log-odds, is mapped to a probability by a sigmoid (Platt scaling,
scikit-learn's ``CalibratedClassifierCV``):

* **cross-validated calibration** (the default): ``CalibratedClassifierCV(model,
  method="sigmoid", ensemble=False)``: the sigmoid is fitted on out-of-fold predictions, with
  folds that keep a pupil's rows together (a pupil has several as-of rows), and the boosted
  model is then fitted on every training row.
* **temporal calibration** (``CALIBRATION_COHORTS > 0``): the boosted model is fitted on every
  training cohort but the latest, and the sigmoid on the latest, which the boosted model has
  not seen (``CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid")``).

The sigmoid is strictly increasing, so the calibrated risk ranks pupils exactly as the
explained model's log-odds do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from features.build import design_matrix
from features.catalogue import monotone_constraints
from features.timechop import Split

#: Hyper-parameters of the boosted model (part of the model id).
BOOSTING_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 500,
    "max_leaf_nodes": 4,
    "min_samples_leaf": 500,
    "l2_regularization": 5.0,
    "max_bins": 255,
    "early_stopping": False,
}
CALIBRATION_METHOD = "sigmoid"
CALIBRATION_FOLDS = 3
#: Latest training cohorts kept apart for temporal calibration (when there are more); 0 uses
#: cross-validated calibration on every training cohort. Measured on the synthetic
#: municipality (two generator versions), cross-validated calibration gave both the higher
#: AUC (+0.002) and the lower calibration error (-0.003), so it is the default.
CALIBRATION_COHORTS = 0


#: OpenMP threads for fitting and predicting. One thread: on a machine shared with DuckDB,
#: Prefect and other jobs, OpenMP's busy-waiting threads made a fit 10-25 times slower than a
#: single thread (measured on 2 cores), and the model is small.
BOOSTING_THREADS = 1


@contextmanager
def boosting_threads() -> Iterator[None]:
    """Limit OpenMP and BLAS threads (the models' native threads) to :data:`BOOSTING_THREADS`."""
    with threadpool_limits(limits=BOOSTING_THREADS):
        yield


def make_boosted_model(feature_names: Sequence[str], seed: int) -> HistGradientBoostingClassifier:
    """The unfitted boosted model with the catalogue's monotone constraints."""
    return HistGradientBoostingClassifier(
        **BOOSTING_PARAMS,
        monotonic_cst=monotone_constraints(list(feature_names)),
        random_state=seed,
    )


def pupil_folds(groups: Sequence[str], n_splits: int = CALIBRATION_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds that keep every pupil's rows in one fold.

    Args:
        groups: Pupil id per training row.
        n_splits: Number of folds.

    Returns:
        (train indices, test indices) per fold; deterministic for the same rows.
    """
    codes = pd.factorize(pd.Series(groups, dtype=str), sort=True)[0]
    n_splits = max(2, min(n_splits, int(codes.max()) + 1 if len(codes) else 2))
    zeros = np.zeros((len(codes), 1))
    return [(train, test) for train, test in GroupKFold(n_splits=n_splits).split(zeros, groups=codes)]


def fit_risk_model(
    X: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    feature_names: Sequence[str],
    seed: int,
    calibration_rows: np.ndarray | None = None,
) -> tuple[HistGradientBoostingClassifier, CalibratedClassifierCV]:
    """Fit the boosted model and its calibration.

    Args:
        X: Design matrix (rows x features).
        y: 0/1 outcomes.
        groups: Pupil id per row (cross-validation folds keep a pupil together).
        feature_names: Column names of ``X``, in order.
        seed: Random seed.
        calibration_rows: Boolean mask of the rows kept apart for temporal calibration (the
            latest training cohort); None calibrates on grouped out-of-fold predictions.

    Returns:
        ``(boosted, calibrated)``: the boosted model whose log-odds are explained, and the
        calibrated classifier whose probability is the risk.
    """
    y = np.asarray(y, dtype=int)
    with boosting_threads():
        return _fit(X, y, groups, feature_names, seed, calibration_rows)


def _fit(X: np.ndarray, y: np.ndarray, groups: Sequence[str], feature_names: Sequence[str], seed: int,
         calibration_rows: np.ndarray | None) -> tuple[HistGradientBoostingClassifier, CalibratedClassifierCV]:
    if calibration_rows is not None:
        fit_rows = ~calibration_rows
        boosted = make_boosted_model(feature_names, seed).fit(X[fit_rows], y[fit_rows])
        calibrated = CalibratedClassifierCV(FrozenEstimator(boosted), method=CALIBRATION_METHOD)
        calibrated.fit(X[calibration_rows], y[calibration_rows])
        return boosted, calibrated
    calibrated = CalibratedClassifierCV(
        make_boosted_model(feature_names, seed),
        method=CALIBRATION_METHOD,
        cv=pupil_folds(groups),
        ensemble=False,
    )
    calibrated.fit(X, y)
    return calibrated.calibrated_classifiers_[0].estimator, calibrated


@dataclass
class ModelBundle:
    """A trained model with everything needed to score, explain, evaluate and describe it.

    Attributes:
        model_id: Content hash of training data, model configuration and code version.
        feature_names: The model's inputs, in design-matrix order.
        boosted: The fitted boosted model (see :attr:`explained_model`).
        calibrated: The calibrated classifier (risk = its probability of the outcome).
        baselines: Fitted baselines (``models.baselines``), compared on the same rows.
        outcome_definition: ``name@vN`` of the one outcome definition trained on.
        split: Training and evaluation cohorts.
        model_config: What went into the model id besides data and code.
        training_digest: Hash of the training and evaluation rows.
        code_version: Code version the model was trained with.
        metrics: Evaluation on the held-out cohorts (``models.evaluation``).
        card_paths: ``markdown`` and ``html`` model card files.
    """

    model_id: str
    feature_names: list[str]
    boosted: HistGradientBoostingClassifier
    calibrated: CalibratedClassifierCV
    baselines: list[Any]
    outcome_definition: str
    split: Split
    model_config: dict[str, Any]
    training_digest: str
    code_version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    card_paths: dict[str, str] = field(default_factory=dict)

    def design_matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The exact matrix the models take, from a features frame.

        Args:
            frame: Rows of ``features_pupil_term`` or of ``features.build.build_features``.

        Returns:
            A float64 frame with the columns of :attr:`feature_names`, in order, index
            aligned with ``frame``; NaN where a value is missing. Pass ``.to_numpy()`` to
            :attr:`explained_model` (it was fitted on arrays).
        """
        return pd.DataFrame(design_matrix(frame, self.feature_names), columns=self.feature_names,
                            index=frame.index)

    @property
    def explained_model(self) -> HistGradientBoostingClassifier:
        """The fitted boosted model.

        Its ``decision_function`` (log-odds) is what SHAP's TreeExplainer explains; the
        calibrated risk is a strictly increasing function of it (:attr:`calibration_map`).
        """
        return self.boosted

    @property
    def calibration_map(self) -> tuple[float, float]:
        """``(a, b)`` of the sigmoid: ``risk = 1 / (1 + exp(a * log_odds + b))``."""
        calibrator = self.calibrated.calibrated_classifiers_[0].calibrators[0]
        return float(calibrator.a_), float(calibrator.b_)

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the adverse outcome for each row of a features frame."""
        if len(frame) == 0:
            return np.zeros(0)
        with boosting_threads():
            return self.calibrated.predict_proba(design_matrix(frame, self.feature_names))[:, 1]

    def log_odds(self, frame: pd.DataFrame) -> np.ndarray:
        """The explained model's raw output for each row."""
        with boosting_threads():
            return self.explained_model.decision_function(design_matrix(frame, self.feature_names))
