"""The risk model: the candidate chosen per training run, with a calibration step.

Model selection (``models.selection``) chooses among :data:`DEFAULT_CANDIDATES` (or the
config's pinned candidate): regularised logistic regressions and monotone gradient-boosted
trees whose leaf sizes scale with the rows available. ``HistGradientBoostingClassifier``
takes missing values as they are (missing is not zero) and respects the catalogue's monotone
directions (more unauthorised absence never lowers the risk); the logistic regression imputes
the median and adds a missing indicator per feature (``models.baselines``).

The winner's raw output, the log-odds, is mapped to a probability by a sigmoid (Platt scaling,
scikit-learn's ``CalibratedClassifierCV(model, method="sigmoid", ensemble=False)``): the
sigmoid is fitted on out-of-fold predictions, with folds that keep a pupil's rows together (a
pupil has several as-of rows), and the model is then fitted on every training row. When the
training rows have too few outcomes for that (:func:`calibration_for`), the model's own
probability is used instead, and the bundle records it (``calibration``).

The sigmoid is strictly increasing, so the calibrated risk ranks pupils exactly as the
explained model's log-odds do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from features.build import design_matrix
from features.catalogue import monotone_constraints
from features.timechop import Split
from models.baselines import logistic_pipeline

#: Fixed hyper-parameters of every boosted candidate (part of the model id); the leaf size and
#: the number of leaves come from the candidate (:data:`DEFAULT_CANDIDATES`), scaled to the rows.
BOOSTING_BASE: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 500,
    "l2_regularization": 5.0,
    "max_bins": 255,
    "early_stopping": False,
}
#: Smallest leaf of a boosted candidate, whatever the share of rows says.
MIN_LEAF_ROWS = 20
CALIBRATION_METHOD = "sigmoid"
CALIBRATION_FOLDS = 3
#: Fewest rows with (and without) the outcome per calibration fold for cross-validated Platt
#: scaling; with fewer, the model's own probability is used (:data:`OWN_PROBABILITY`).
MIN_CLASS_ROWS_PER_FOLD = 20
#: The calibration names recorded in the bundle, the registry and the model card.
PLATT_CV = "platt_cv"
OWN_PROBABILITY = "own_probability"


#: OpenMP threads for fitting and predicting. One thread: on a machine shared with DuckDB,
#: Prefect and other jobs, OpenMP's busy-waiting threads made a fit 10-25 times slower than a
#: single thread (measured on 2 cores), and the model is small.
BOOSTING_THREADS = 1


@contextmanager
def boosting_threads() -> Iterator[None]:
    """Limit OpenMP and BLAS threads (the models' native threads) to :data:`BOOSTING_THREADS`."""
    with threadpool_limits(limits=BOOSTING_THREADS):
        yield


CandidateKind = Literal["logistic", "boosting"]


@dataclass(frozen=True)
class Candidate:
    """One model that model selection (``models.selection``) can choose.

    Attributes:
        name: Stable name, e.g. ``boosting_4_leaves_1pct``.
        kind: ``logistic`` (regularised logistic regression, ``models.baselines``) or
            ``boosting`` (monotone ``HistGradientBoostingClassifier``).
        params: ``C`` for a logistic candidate; ``max_leaf_nodes`` and
            ``min_samples_leaf_share`` (a leaf's least share of the fitted rows, at least
            :data:`MIN_LEAF_ROWS`) for a boosted one.
        complexity: Rank used to break ties: the lower, the simpler.
    """

    name: str
    kind: CandidateKind
    params: dict[str, float] = field(default_factory=dict)
    complexity: int = 0

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (name, kind, parameters, complexity)."""
        return {"name": self.name, "kind": self.kind, "params": dict(self.params),
                "complexity": self.complexity}

    def estimator(self, feature_names: Sequence[str], n_rows: int, seed: int) -> Any:
        """The unfitted estimator for ``n_rows`` fitted rows.

        Args:
            feature_names: Columns of the design matrix (monotone constraints follow them).
            n_rows: Rows it will be fitted on (a boosted leaf size is a share of them).
            seed: Random seed.

        Returns:
            A scikit-learn classifier with ``decision_function`` (log-odds).
        """
        if self.kind == "logistic":
            return logistic_pipeline(C=float(self.params.get("C", 1.0)), random_state=seed)
        return HistGradientBoostingClassifier(
            **BOOSTING_BASE,
            max_leaf_nodes=int(self.params["max_leaf_nodes"]),
            min_samples_leaf=leaf_rows(float(self.params["min_samples_leaf_share"]), n_rows),
            monotonic_cst=monotone_constraints(list(feature_names)),
            random_state=seed,
        )


def leaf_rows(share: float, n_rows: int) -> int:
    """A boosted leaf's least number of rows: ``share`` of the fitted rows, at least :data:`MIN_LEAF_ROWS`."""
    return max(MIN_LEAF_ROWS, int(round(share * n_rows)))


#: The candidates of automatic model selection, simplest first. The boosted ones keep the
#: shallow, additive-like shape that fitted the synthetic municipality (4 leaves, a leaf at
#: least 1 % of the rows: 500 rows at Herning size) and a deeper one with smaller leaves for
#: interactions; both scale with the rows available, so a municipality with 60 pupils a grade
#: gets leaves of 20-40 rows instead of 500. The two logistic regressions differ in penalty.
DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("logistic_c0.1", "logistic", {"C": 0.1}, complexity=1),
    Candidate("logistic_c1", "logistic", {"C": 1.0}, complexity=2),
    Candidate("boosting_4_leaves_1pct", "boosting",
              {"max_leaf_nodes": 4, "min_samples_leaf_share": 0.01}, complexity=3),
    Candidate("boosting_8_leaves_0.3pct", "boosting",
              {"max_leaf_nodes": 8, "min_samples_leaf_share": 0.003}, complexity=4),
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


def calibration_for(y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """Which calibration the training rows support.

    Cross-validated Platt scaling (:data:`PLATT_CV`) needs at least
    :data:`MIN_CLASS_ROWS_PER_FOLD` rows with and without the outcome in every fold's held-out
    part; otherwise the model's own probability (:data:`OWN_PROBABILITY`: the logistic loss it
    was fitted with) is used, and the model card says so.

    Args:
        y: 0/1 outcomes of the training rows.
        folds: The pupil folds over those rows.

    Returns:
        :data:`PLATT_CV` or :data:`OWN_PROBABILITY`.
    """
    y = np.asarray(y, dtype=int)
    for _, test in folds:
        positives = int(y[test].sum())
        if min(positives, len(test) - positives) < MIN_CLASS_ROWS_PER_FOLD:
            return OWN_PROBABILITY
    return PLATT_CV


class OwnProbability(ClassifierMixin, BaseEstimator):
    """A fitted classifier's own probability, ``1 / (1 + exp(-log_odds))``, as the risk.

    The calibration used when the training rows have too few outcomes for cross-validated
    Platt scaling; it keeps the ``predict_proba`` interface of ``CalibratedClassifierCV``.

    Args:
        estimator: A fitted classifier with ``decision_function``.
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: np.ndarray, y: np.ndarray) -> OwnProbability:
        """Nothing to learn: the estimator is already fitted; records the classes."""
        self.classes_ = np.unique(np.asarray(y))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of both classes."""
        positive = expit(np.asarray(self.estimator.decision_function(X), dtype="float64"))
        return np.column_stack([1 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The likelier class."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def fit_risk_model(
    candidate: Candidate,
    X: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    feature_names: Sequence[str],
    seed: int,
) -> tuple[Any, Any, str]:
    """Fit a candidate and its calibration on every training row.

    Args:
        candidate: The chosen candidate.
        X: Design matrix (rows x features).
        y: 0/1 outcomes.
        groups: Pupil id per row (calibration folds keep a pupil together).
        feature_names: Column names of ``X``, in order.
        seed: Random seed.

    Returns:
        ``(estimator, calibrated, calibration)``: the fitted model whose log-odds are
        explained, the classifier whose probability is the risk, and the calibration used
        (:data:`PLATT_CV` or :data:`OWN_PROBABILITY`).
    """
    y = np.asarray(y, dtype=int)
    folds = pupil_folds(groups)
    calibration = calibration_for(y, folds)
    with boosting_threads():
        model = candidate.estimator(feature_names, len(y), seed)
        if calibration == OWN_PROBABILITY:
            model.fit(X, y)
            return model, OwnProbability(model).fit(X, y), calibration
        calibrated = CalibratedClassifierCV(model, method=CALIBRATION_METHOD, cv=folds, ensemble=False)
        calibrated.fit(X, y)
        return calibrated.calibrated_classifiers_[0].estimator, calibrated, calibration


@dataclass
class ModelBundle:
    """A trained model with everything needed to score, explain, evaluate and describe it.

    Attributes:
        model_id: Content hash of training data, model configuration and code version.
        feature_names: The model's inputs, in design-matrix order.
        estimator: The fitted winning candidate (see :attr:`explained_model`).
        calibrated: The calibrated classifier (risk = its probability of the outcome).
        baselines: Fitted baselines (``models.baselines``), compared on the same rows.
        outcome_definition: ``name@vN`` of the one outcome definition trained on.
        split: Training and evaluation cohorts.
        model_config: What went into the model id besides data and code.
        training_digest: Fingerprint of the data the training and evaluation rows come from.
        code_version: Code version the model was trained with.
        candidate: Name of the winning candidate (``models.risk_model.Candidate``).
        calibration: :data:`PLATT_CV` or :data:`OWN_PROBABILITY`.
        selection: The model selection record (``models.selection.select_candidate``).
        row_counts: ``training_rows``, ``training_pupils``, ``evaluation_rows``.
        metrics: Evaluation on the held-out cohorts (``models.evaluation``).
        card_paths: ``markdown`` and ``html`` model card files.
    """

    model_id: str
    feature_names: list[str]
    estimator: Any
    calibrated: Any
    baselines: list[Any]
    outcome_definition: str
    split: Split
    model_config: dict[str, Any]
    training_digest: str
    code_version: str
    candidate: str = ""
    calibration: str = PLATT_CV
    selection: dict[str, Any] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    card_paths: dict[str, str] = field(default_factory=dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load a bundle saved before model selection (its model was always ``boosted``)."""
        if "estimator" not in state and "boosted" in state:
            state = {**state, "estimator": state.pop("boosted"), "candidate": "boosting_4_leaves_500_rows"}
        defaults = {"candidate": "", "calibration": PLATT_CV, "selection": {}, "row_counts": {}}
        self.__dict__.update({**defaults, **state})

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
    def explained_model(self) -> Any:
        """The fitted winning model (boosted trees or a logistic regression pipeline).

        Its ``decision_function`` (log-odds) is what ``models.explain`` explains; the
        calibrated risk is a strictly increasing function of it (:attr:`calibration_map`).
        """
        return self.estimator

    @property
    def boosted(self) -> Any:
        """The explained model (its name from when it was always the boosted one)."""
        return self.estimator

    @property
    def calibration_map(self) -> tuple[float, float]:
        """``(a, b)`` of the sigmoid: ``risk = 1 / (1 + exp(a * log_odds + b))``."""
        if self.calibration == OWN_PROBABILITY:
            return -1.0, 0.0
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
