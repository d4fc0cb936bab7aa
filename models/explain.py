"""SHAP explanations of every scored pupil, kept with the run that scored them.

The explained model is the bundle's chosen model (``models.selection``). For gradient-boosted
trees SHAP's TreeExplainer gives exact (tree-path-dependent) contributions on its raw output,
the log-odds, run tree by tree once per distinct path through the tree (:func:`tree_paths`:
the same values, 4-10 times faster on the model's small trees); for the logistic regression
the contributions are its exact linear terms, with the imputer's missing indicators credited
to their feature (:func:`linear_contributions`). For each pupil the
stored contributions plus the base value add up to that raw output: :func:`check_additivity`
and :func:`check_stored_additivity` check it for every pupil of a run. The calibrated risk that
lists show is a monotone transform of this raw output, so the order of reasons is the same.

Correlated features (e.g. absence over six months and over a year) share credit between them,
so each pupil's contributions are also summed per feature family (attendance, learning,
wellbeing and support, mobility, context). Sums of SHAP values are themselves exact Shapley
values of the grouped features, so family totals keep additivity.

Tables written (through :func:`store_explanations`):

* ``explanations_pupil_term``: one row per run, pupil and feature: ``run_id``, ``term``,
  ``as_of_date``, ``pupil_id``, ``feature``, ``feature_value`` (NULL = missing),
  ``contribution``, ``family``, ``actionable``, ``base_value``, ``model_id``.
* ``explanations_family_term``: one row per run, pupil and family: ``run_id``, ``term``,
  ``pupil_id``, ``family``, ``contribution``, ``top_feature``, ``top_contribution``,
  ``base_value``, ``model_output``, ``model_id``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd

from ews.compute import map_chunks
from ews.sql import load_sql
from ews.tables import create_tables
from ews.warehouse import replace_rows
from features.catalogue import feature_spec

#: Columns of ``explanations_pupil_term`` in order.
EXPLANATION_COLUMNS = (
    "run_id", "term", "as_of_date", "pupil_id", "feature", "feature_value", "contribution",
    "family", "actionable", "base_value", "model_id",
)
#: Columns of ``explanations_family_term`` in order.
FAMILY_COLUMNS = (
    "run_id", "term", "pupil_id", "family", "contribution", "top_feature", "top_contribution",
    "base_value", "model_output", "model_id",
)
#: Largest tolerated gap between base value + contributions and the model's raw output
#: (log-odds). SHAP's tree algorithm is exact; the gap is floating-point rounding only.
ADDITIVITY_TOLERANCE = 1e-6


class ExplainableBundle(Protocol):
    """What :func:`explain_pupils` needs from a trained model bundle (``models``, issue 4)."""

    model_id: str
    feature_names: Sequence[str]
    explained_model: Any


class AdditivityError(AssertionError):
    """Stored contributions do not add up to the model output they explain."""


@dataclass(frozen=True)
class AdditivityReport:
    """The outcome of an additivity check.

    Attributes:
        pupils: Pupils checked.
        max_abs_error: Largest gap, in log-odds, between base value + contributions and the
            model's raw output.
        failing_pupils: Pseudonyms of pupils whose gap exceeds the tolerance (at most 10).
    """

    pupils: int
    max_abs_error: float
    failing_pupils: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether every pupil's contributions add up."""
        return not self.failing_pupils


def design_matrix(bundle: ExplainableBundle, features_frame: pd.DataFrame) -> pd.DataFrame:
    """The explained model's input for a features frame, in the bundle's feature order.

    Uses the bundle's own ``design_matrix`` when it has one, so that explanations always see
    exactly what the model saw.

    Args:
        bundle: The trained bundle.
        features_frame: Rows of ``features_pupil_term`` (one per pupil).

    Returns:
        A float frame with one column per model feature, index aligned with the input.

    Raises:
        KeyError: When a model feature is missing from the frame, naming it.
    """
    builder = getattr(bundle, "design_matrix", None)
    if callable(builder):
        matrix = builder(features_frame)
        if not isinstance(matrix, pd.DataFrame):
            matrix = pd.DataFrame(np.asarray(matrix), columns=list(bundle.feature_names),
                                  index=features_frame.index)
        return matrix
    missing = [name for name in bundle.feature_names if name not in features_frame.columns]
    if missing:
        raise KeyError(f"features frame lacks model features {missing}")
    # a key column may also be a feature (``grade``): keep one copy of each name
    unique = features_frame.loc[:, ~features_frame.columns.duplicated()]
    return unique[list(bundle.feature_names)].astype("float64")


def raw_model_output(bundle: ExplainableBundle, features_frame: pd.DataFrame) -> np.ndarray:
    """The explained model's raw output (log-odds of the adverse outcome) per row.

    Args:
        bundle: The trained bundle.
        features_frame: Rows of ``features_pupil_term``.

    Returns:
        One log-odds value per row of ``features_frame``.
    """
    matrix = design_matrix(bundle, features_frame)
    return np.asarray(bundle.explained_model.decision_function(matrix.to_numpy()), dtype="float64")


def _import_shap() -> Any:
    with warnings.catch_warnings():  # shap's plotting colours use matplotlib calls due to change
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap  # imported here: the import costs about a second and only this step needs it
    return shap


@dataclass(frozen=True)
class _Tree:
    """One tree of the explained model, ready for :func:`_tree_contributions`.

    Attributes:
        explainer: ``shap.TreeExplainer`` of this tree alone (base offset 0).
        features: The feature of each split.
        thresholds: The threshold of each split (a value ``<=`` it goes left).
        missing_left: Whether a missing value goes left at each split.
        used: The distinct features the tree splits on.
        weights: The bit of each split in a row's pattern (up to 63 splits), else None.
    """

    explainer: Any
    features: np.ndarray
    thresholds: np.ndarray
    missing_left: np.ndarray
    used: np.ndarray
    weights: np.ndarray | None


@dataclass(frozen=True)
class TreePaths:
    """A tree model taken apart into its trees, for SHAP once per distinct path (:func:`tree_paths`).

    Attributes:
        trees: The trees.
        base: The model's baseline plus every tree's expected value: SHAP's base value.
    """

    trees: tuple[_Tree, ...]
    base: float


def tree_paths(model: Any) -> TreePaths | None:
    """The trees of a model for :func:`_shap_chunk`, or None when SHAP reads it otherwise.

    Path-dependent TreeSHAP explains a row by walking each tree with, at every split, the
    side the row would take ("hot") and the other side weighted by its training cover. So a
    tree's contributions for a row depend on nothing but the sides the row takes at that
    tree's splits: rows that take the same side at every split of a tree get the same
    contributions from it, to the last bit. The model's trees are small (4 or 8 leaves, see
    ``models.risk_model``), so thousands of pupils take a few tens of distinct paths a tree.
    :func:`_shap_chunk` runs each tree through SHAP's own TreeSHAP (``shap.TreeExplainer`` on
    that tree alone, its C++ code) for one row of each distinct pattern, and gives every row
    its pattern's contributions. The result is SHAP's for the whole model up to the order of
    floating-point additions; ``tests/models/test_explain.py`` compares the two.

    Args:
        model: A fitted tree model (``HistGradientBoostingClassifier``).

    Returns:
        The trees, or None for a model with categorical splits or several outputs, which
        :func:`_shap_chunk` explains with ``shap.TreeExplainer`` on every row.
    """
    shap = _import_shap()
    ensemble = shap.TreeExplainer(model).model
    trees = getattr(ensemble, "trees", None)
    if (not trees or getattr(ensemble, "num_stacked_models", 1) != 1
            or any(np.any(getattr(tree, "threshold_types", 0) != 0) for tree in trees)):
        return None
    base = float(np.asarray(ensemble.base_offset, dtype="float64").reshape(-1)[-1])
    prepared = []
    for tree in trees:
        single = shap.TreeExplainer({
            "trees": [{name: getattr(tree, name) for name in (
                "children_left", "children_right", "children_default", "features", "thresholds", "values",
                "node_sample_weight")}],
            "base_offset": 0.0, "tree_output": ensemble.tree_output, "objective": ensemble.objective,
            "input_dtype": np.float64, "internal_dtype": np.float64,
        })
        base += float(np.asarray(single.expected_value, dtype="float64").reshape(-1)[-1])
        internal = np.flatnonzero(tree.children_left >= 0)
        weights = (np.left_shift(np.int64(1), np.arange(len(internal), dtype=np.int64))
                   if len(internal) <= 63 else None)
        prepared.append(_Tree(
            explainer=single, features=tree.features[internal].astype(np.intp),
            thresholds=tree.thresholds[internal].astype("float64"),
            missing_left=tree.children_default[internal] == tree.children_left[internal],
            used=np.unique(tree.features[internal]).astype(np.intp), weights=weights,
        ))
    return TreePaths(tuple(prepared), base)


def _shap_chunk(model: Any, values: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact TreeSHAP contributions of a block of rows.

    Args:
        model: :class:`TreePaths` (each tree run once per distinct path), or a tree model
            that ``shap.TreeExplainer`` explains on every row.
        values: The rows, NaN for missing.

    Returns:
        The contributions (rows x features) and the base value.
    """
    if not isinstance(model, TreePaths):
        return _shap_chunk_whole(_import_shap().TreeExplainer(model), values)
    columns = np.asfortranarray(values)  # a split reads one column
    missing = np.isnan(columns)
    contributions = np.zeros(values.shape, dtype="float64", order="F")
    for tree in model.trees:
        phi = _tree_contributions(tree, columns, missing)
        for position, feature in enumerate(tree.used):
            contributions[:, feature] += phi[:, position]
    return np.ascontiguousarray(contributions), model.base


def _tree_contributions(tree: _Tree, columns: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """One tree's exact contributions to the features it splits on, for every row.

    Returns:
        Rows x ``tree.used``.
    """
    goes_left = np.where(missing[:, tree.features], tree.missing_left, columns[:, tree.features] <= tree.thresholds)
    first, pattern = _distinct_rows(goes_left, tree.weights)
    phi = np.asarray(tree.explainer.shap_values(columns[first], check_additivity=False), dtype="float64")
    return phi[:, tree.used][pattern]


def _distinct_rows(bits: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each distinct row of a boolean matrix, and each row's distinct row.

    Args:
        bits: Rows x splits.
        weights: The value of each split's bit (up to 63 splits), or None.

    Returns:
        Row numbers of one row per distinct pattern, and for every row the position of its
        pattern among them.
    """
    if weights is not None:  # one integer a row, hashed (no sort)
        pattern, _ = pd.factorize(bits.astype(np.int64) @ weights)
        # factorize numbers the patterns in the order they first appear: a new one is a new maximum
        first = np.flatnonzero(np.diff(np.maximum.accumulate(pattern), prepend=-1) > 0)
        return first, pattern
    _, first, pattern = np.unique(np.packbits(bits, axis=1), axis=0, return_index=True, return_inverse=True)
    return first, pattern.reshape(-1)


def _shap_chunk_whole(explainer: Any, values: np.ndarray) -> tuple[np.ndarray, float]:
    """``shap.TreeExplainer`` on every row (see :func:`_shap_chunk`)."""
    contributions = np.asarray(explainer.shap_values(values, check_additivity=False), dtype="float64")
    if contributions.ndim == 3:  # (rows, features, classes) for a model with class outputs
        contributions = contributions[:, :, -1]
    base = np.asarray(explainer.expected_value, dtype="float64").reshape(-1)[-1]
    return contributions, float(base)


def is_linear(model: Any) -> bool:
    """Whether a model is the logistic pipeline (``models.baselines.logistic_pipeline``)."""
    steps = getattr(model, "named_steps", None)
    return steps is not None and set(steps) == {"impute", "scale", "model"}


def linear_contributions(model: Any, values: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact log-odds contributions of the logistic pipeline, per input feature.

    The pipeline's log-odds are ``intercept + sum_j w_j * z_j``, where ``z`` are the scaled
    columns: each feature's imputed value and, for features that had missing values in
    training, its missing indicator. The scaler centres every column on its training mean, so
    with the training rows as background this is SHAP's linear explanation exactly: a
    feature's contribution is ``w_j * z_j`` of its value column plus that of its indicator
    column (``z`` minus the background mean, which is 0), and the base value is the intercept.
    Contributions plus the base value equal the log-odds for every row.

    Args:
        model: A fitted ``logistic_pipeline``.
        values: Inputs, one row per pupil, NaN for missing.

    Returns:
        The contributions (rows x input features) and the base value.
    """
    imputer, scaler, logistic = (model.named_steps[k] for k in ("impute", "scale", "model"))
    scaled = scaler.transform(imputer.transform(values))
    weighted = scaled * logistic.coef_[0]
    n_features = values.shape[1]
    contributions = weighted[:, :n_features].copy()
    indicator = getattr(imputer, "indicator_", None)
    if indicator is not None:
        for column, feature in enumerate(indicator.features_):
            contributions[:, feature] += weighted[:, n_features + column]
    return contributions, float(logistic.intercept_[0])


def shap_values(
    model: Any, values: np.ndarray, n_jobs: int | None = None, chunk_rows: int | None = None,
) -> tuple[np.ndarray, float]:
    """Exact contributions (log-odds) of the explained model for a matrix of inputs.

    A tree model gets SHAP's TreeExplainer, per chunk of rows (:func:`ews.compute.map_chunks`:
    in the run's own thread inside a fleet, else a local process pool); each row's contributions
    depend on that row alone, so the chunks stacked back are the values of one computation. The
    logistic pipeline gets its exact linear contributions (:func:`linear_contributions`), in one
    go (a matrix product).

    Args:
        model: A fitted tree model TreeExplainer supports (HistGradientBoostingClassifier), or
            the logistic pipeline.
        values: Inputs, one row per pupil, NaN for missing.
        n_jobs: Processes of the local pool outside Dask (SHAP's tree code holds the GIL, so
            threads do not help); ``-1`` uses every core; default ``EWS_COMPUTE_WORKERS``.
        chunk_rows: Pupils a chunk; default ``EWS_COMPUTE_CHUNK_PUPILS``.

    Returns:
        The contributions (rows x features) and the base value.
    """
    contributions, base, _ = _shap_values_mapped(model, values, n_jobs=n_jobs, chunk_rows=chunk_rows)
    return contributions, base


def _shap_values_mapped(
    model: Any, values: np.ndarray, n_jobs: int | None, chunk_rows: int | None,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    if is_linear(model):
        contributions, base = linear_contributions(model, values)
        return contributions, base, {"chunks": 1, "backend": "inline", "workers": 1}
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    mapped = map_chunks(_shap_chunk, tree_paths(model) or model, values, chunk_rows=chunk_rows, local_workers=workers,
                        label="ews-shap")
    contributions = np.vstack([part for part, _ in mapped.results])
    return contributions, mapped.results[0][1], mapped.describe()


def explain_pupils(
    bundle: ExplainableBundle,
    features_frame: pd.DataFrame,
    run_id: str,
    term: str | None = None,
    n_jobs: int | None = None,
    chunk_pupils: int | None = None,
) -> pd.DataFrame:
    """SHAP explanations for every pupil in a features frame, in long form.

    Computed per chunk of pupils (:func:`shap_values`); the rows are the same whatever the
    chunk size or where the chunks ran.

    Args:
        bundle: The trained bundle whose ``explained_model`` scored the pupils.
        features_frame: One row per scored pupil with ``pupil_id`` (and ``as_of_date``) and
            every model feature; NaN means missing.
        run_id: The run that scores and explains.
        term: The run's term (e.g. ``2025/26-H1``), kept for re-runs that replace a term.
        n_jobs: Processes of the local pool outside Dask (see :func:`shap_values`).
        chunk_pupils: Pupils a chunk; default ``EWS_COMPUTE_CHUNK_PUPILS``.

    Returns:
        Rows of ``explanations_pupil_term`` (:data:`EXPLANATION_COLUMNS`), one per pupil and
        feature, ordered by pupil then the bundle's feature order.

    Raises:
        ValueError: When a pupil appears twice.
    """
    return _explain(bundle, features_frame, run_id, term, n_jobs, chunk_pupils)[0]


def _explain(
    bundle: ExplainableBundle, features_frame: pd.DataFrame, run_id: str, term: str | None,
    n_jobs: int | None, chunk_pupils: int | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`explain_pupils`, with where the chunks were computed (:meth:`ews.compute.ChunkMap.describe`)."""
    if features_frame["pupil_id"].duplicated().any():
        dupes = features_frame.loc[features_frame["pupil_id"].duplicated(), "pupil_id"].head(3).tolist()
        raise ValueError(f"features frame has more than one row for pupils {dupes}")
    names = list(bundle.feature_names)
    matrix = design_matrix(bundle, features_frame).to_numpy(dtype="float64")
    contributions, base, compute = _shap_values_mapped(bundle.explained_model, matrix, n_jobs=n_jobs,
                                                       chunk_rows=chunk_pupils)
    n_pupils, n_features = matrix.shape
    specs = [feature_spec(name) for name in names]
    as_of = features_frame["as_of_date"].to_numpy() if "as_of_date" in features_frame else None
    # Categorical columns (codes, not one string per row) keep a national run's 20M rows small;
    # DuckDB stores them as plain VARCHAR.
    pupil_codes = np.repeat(np.arange(n_pupils, dtype=np.int32), n_features)
    feature_codes = np.tile(np.arange(n_features, dtype=np.int16), n_pupils)
    families = list(dict.fromkeys(s.family for s in specs))
    family_codes = np.array([families.index(s.family) for s in specs], dtype=np.int8)
    pupil_ids = features_frame["pupil_id"].astype(str).to_numpy(dtype=object)
    if as_of is not None:
        as_of_values = np.repeat(pd.to_datetime(as_of).to_numpy(dtype="datetime64[ns]"), n_features)
    else:
        as_of_values = np.full(n_pupils * n_features, np.datetime64("NaT"), dtype="datetime64[ns]")
    frame = pd.DataFrame({
        "run_id": _constant(run_id, n_pupils * n_features),
        "term": _constant(term, n_pupils * n_features),
        "as_of_date": as_of_values,
        "pupil_id": pd.Categorical.from_codes(pupil_codes, categories=pd.Index(pupil_ids, dtype=object)),
        "feature": pd.Categorical.from_codes(feature_codes, categories=pd.Index(names, dtype=object)),
        "feature_value": matrix.reshape(-1),
        "contribution": contributions.reshape(-1),
        "family": pd.Categorical.from_codes(family_codes[feature_codes], categories=pd.Index(families, dtype=object)),
        "actionable": np.tile(np.array([s.actionable for s in specs]), n_pupils),
        "base_value": np.full(n_pupils * n_features, base),
        "model_id": _constant(bundle.model_id, n_pupils * n_features),
    })
    return frame, compute


def _constant(value: str | None, rows: int) -> pd.Categorical:
    """One value repeated ``rows`` times, stored once."""
    if value is None:
        return pd.Categorical.from_codes(np.full(rows, -1, dtype=np.int8), categories=pd.Index([], dtype=object))
    return pd.Categorical.from_codes(np.zeros(rows, dtype=np.int8), categories=pd.Index([value], dtype=object))


def summarise_families(explanations: pd.DataFrame, model_output: np.ndarray | None = None) -> pd.DataFrame:
    """Sum each pupil's contributions per feature family.

    Args:
        explanations: Rows from :func:`explain_pupils` (one run).
        model_output: The raw output per pupil, in the order pupils first appear in
            ``explanations``; when None it is taken as base value + contributions.

    Returns:
        Rows of ``explanations_family_term`` (:data:`FAMILY_COLUMNS`), one per pupil and family
        present in the model, with the family's largest single contributor.
    """
    keys = ["run_id", "term", "pupil_id", "family"]
    grouped = explanations.groupby(keys, sort=False, dropna=False)
    totals = grouped["contribution"].sum().rename("contribution")
    top_index = grouped["contribution"].idxmax()
    top = explanations.loc[top_index.to_numpy(), ["feature", "contribution"]]
    summary = totals.reset_index().assign(
        top_feature=top["feature"].to_numpy(), top_contribution=top["contribution"].to_numpy()
    )
    per_pupil = explanations.groupby("pupil_id", sort=False).agg(
        base_value=("base_value", "first"), model_id=("model_id", "first"),
        total=("contribution", "sum"),
    )
    if model_output is None:
        output = per_pupil["base_value"] + per_pupil["total"]
    else:
        output = pd.Series(np.asarray(model_output, dtype="float64"), index=per_pupil.index)
    summary = summary.merge(
        per_pupil[["base_value", "model_id"]].assign(model_output=output),
        left_on="pupil_id", right_index=True, how="left",
    )
    return summary[list(FAMILY_COLUMNS)]


def check_additivity(
    bundle: ExplainableBundle,
    features_frame: pd.DataFrame,
    explanations: pd.DataFrame,
    tolerance: float = ADDITIVITY_TOLERANCE,
) -> AdditivityReport:
    """Check that every pupil's base value + contributions equals the model's raw output.

    The raw output is recomputed from the model, so this also shows that the explanations
    belong to this model and these features.

    Args:
        bundle: The bundle that was explained.
        features_frame: The features the explanations were computed from.
        explanations: Rows from :func:`explain_pupils` or read back from the warehouse.
        tolerance: Largest tolerated gap, in log-odds.

    Returns:
        The report; ``ok`` is False when any pupil's gap exceeds the tolerance or a pupil of
        the frame has no explanation.
    """
    output = pd.Series(raw_model_output(bundle, features_frame),
                       index=features_frame["pupil_id"].to_numpy())
    per_pupil = explanations.groupby("pupil_id").agg(
        total=("contribution", "sum"), base=("base_value", "first"))
    explained = (per_pupil["total"] + per_pupil["base"]).reindex(output.index)
    gap = (explained - output).abs().fillna(np.inf)
    return _report(gap, tolerance)


def check_stored_additivity(
    con: duckdb.DuckDBPyConnection, run_id: str, tolerance: float = ADDITIVITY_TOLERANCE
) -> AdditivityReport:
    """Check additivity for every pupil of a stored run, from the warehouse alone.

    Compares the feature contributions of ``explanations_pupil_term`` with the model output
    recorded in ``explanations_family_term`` when the run was explained, and checks that the
    family totals add up to the same output.

    Args:
        con: A warehouse connection.
        run_id: The run.
        tolerance: Largest tolerated gap, in log-odds.

    Returns:
        The report over every explained pupil of the run.

    Raises:
        LookupError: When the run has no explanations.
    """
    sql = load_sql("models", "explain_additivity.sql")
    gaps = con.execute(sql, {"run_id": run_id}).df()
    if gaps.empty:
        raise LookupError(f"run {run_id}: no rows in explanations_pupil_term")
    gap = pd.Series(gaps["gap"].to_numpy(dtype="float64"), index=gaps["pupil_id"]).fillna(np.inf)
    return _report(gap, tolerance)


def _report(gap: pd.Series, tolerance: float) -> AdditivityReport:
    failing = gap[gap > tolerance]
    return AdditivityReport(
        pupils=len(gap),
        max_abs_error=float(gap.max()) if len(gap) else 0.0,
        failing_pupils=tuple(str(p) for p in failing.index[:10]),
    )


def require_additivity(report: AdditivityReport, run_id: str) -> None:
    """Raise when a report shows contributions that do not add up.

    Args:
        report: From :func:`check_additivity` or :func:`check_stored_additivity`.
        run_id: The run, for the message.

    Raises:
        AdditivityError: Naming up to ten pupils (pseudonyms) and the largest gap.
    """
    if not report.ok:
        raise AdditivityError(
            f"run {run_id}: SHAP contributions do not add up to the model output for "
            f"{len(report.failing_pupils)}+ pupils (largest gap {report.max_abs_error:.3g} "
            f"log-odds), e.g. {list(report.failing_pupils)}; the explanations do not belong "
            "to this model and these features"
        )


def store_explanations(
    con: duckdb.DuckDBPyConnection, explanations: pd.DataFrame, families: pd.DataFrame, run_id: str
) -> int:
    """Write a run's explanations and family totals, replacing earlier rows of the run.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        explanations: Rows from :func:`explain_pupils`.
        families: Rows from :func:`summarise_families`.
        run_id: The run; its earlier rows are deleted first, so a re-run writes the same rows.

    Returns:
        Rows written to ``explanations_pupil_term``.
    """
    create_tables(con, "warehouse", ["explanations_pupil_term", "explanations_family_term"])
    replace_rows(con, "explanations_family_term", families, where={"run_id": run_id})
    return replace_rows(con, "explanations_pupil_term", explanations, where={"run_id": run_id})


def read_explanation(con: duckdb.DuckDBPyConnection, run_id: str, pupil_id: str) -> pd.DataFrame:
    """One pupil's stored explanation, largest contributions first.

    Args:
        con: A warehouse connection (read-only is enough).
        run_id: The run.
        pupil_id: The pupil's pseudonym.

    Returns:
        Rows of ``explanations_pupil_term`` for that pupil and run (empty when none).
    """
    sql = load_sql("models", "explain_read_pupil.sql")
    return con.execute(sql, {"run_id": run_id, "pupil_id": pupil_id}).df()


@dataclass(frozen=True)
class Reproduction:
    """A stored explanation next to the same explanation computed again.

    Attributes:
        stored: The pupil's rows of ``explanations_pupil_term``.
        recomputed: The rows computed now from the model and the stored features.
        max_gap: Largest difference between stored and recomputed contributions (log-odds);
            infinite when a feature value differs.
    """

    stored: pd.DataFrame
    recomputed: pd.DataFrame
    max_gap: float

    @property
    def ok(self) -> bool:
        """Whether the stored explanation was reproduced."""
        return self.max_gap <= ADDITIVITY_TOLERANCE


def reproduce_explanation(
    con: duckdb.DuckDBPyConnection, bundle: ExplainableBundle, run_id: str, pupil_id: str
) -> Reproduction:
    """Compute one pupil's explanation again from the model and the stored features.

    Args:
        con: A warehouse connection (read-only is enough).
        bundle: The bundle of the model the run used (its ``model_id`` must match).
        run_id: The run.
        pupil_id: The pupil's pseudonym.

    Returns:
        Stored and recomputed rows with the largest gap.

    Raises:
        LookupError: When the run has no explanation or no features for the pupil.
        ValueError: When the bundle is not the run's model.
    """
    stored = read_explanation(con, run_id, pupil_id)
    if stored.empty:
        raise LookupError(f"run {run_id}: no explanation of pupil {pupil_id}")
    model_id = str(stored["model_id"].iloc[0])
    if model_id != bundle.model_id:
        raise ValueError(f"run {run_id} was explained with model {model_id}, not {bundle.model_id}")
    as_of = stored["as_of_date"].iloc[0]
    sql = load_sql("models", "explain_features_pupil.sql")
    features = con.execute(sql, {"pupil_id": pupil_id, "as_of_date": as_of}).df()
    if features.empty:
        raise LookupError(f"features_pupil_term has no row for pupil {pupil_id} as of {as_of}")
    recomputed = explain_pupils(bundle, features.head(1), run_id, term=stored["term"].iloc[0])
    both = stored.merge(recomputed, on="feature", how="outer", suffixes=("_stored", "_now"))
    values_equal = (
        (both["feature_value_stored"] == both["feature_value_now"])
        | (both["feature_value_stored"].isna() & both["feature_value_now"].isna())
    )
    gaps = (both["contribution_stored"] - both["contribution_now"]).abs()
    max_gap = float(gaps.max()) if values_equal.all() and gaps.notna().all() else float("inf")
    return Reproduction(stored=stored, recomputed=recomputed, max_gap=max_gap)


def explain_run(
    con: duckdb.DuckDBPyConnection,
    bundle: ExplainableBundle,
    features_frame: pd.DataFrame,
    run_id: str,
    term: str,
    n_jobs: int | None = None,
    chunk_pupils: int | None = None,
) -> dict[str, Any]:
    """Explain every scored pupil of a run, store the explanations and check additivity.

    The one call the termly flow makes after scoring. The SHAP values are computed per chunk
    of pupils (in the run's own thread when the run is a fleet's subflow, else a local process
    pool: :mod:`ews.compute`) and gathered back here; only this process writes them.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        bundle: The bundle that scored the run.
        features_frame: The features of exactly the scored pupils (one row each).
        run_id: The run.
        term: The run's term.
        n_jobs: Processes of the local pool outside Dask (see :func:`shap_values`).
        chunk_pupils: Pupils a chunk; default ``EWS_COMPUTE_CHUNK_PUPILS``.

    Returns:
        The manifest entry: ``pupils``, ``rows``, ``model_id``, ``additivity_max_error`` and
        ``compute`` (``chunks``, ``backend``: ``inline``, ``local_pool`` or ``dask``, ``workers``).

    Raises:
        AdditivityError: When any pupil's stored contributions do not add up to the output.
    """
    explanations, compute = _explain(bundle, features_frame, run_id, term, n_jobs, chunk_pupils)
    families = summarise_families(explanations, raw_model_output(bundle, features_frame))
    rows = store_explanations(con, explanations, families, run_id)
    report = check_stored_additivity(con, run_id)
    require_additivity(report, run_id)
    return {"pupils": report.pupils, "rows": rows, "model_id": bundle.model_id,
            "additivity_max_error": report.max_abs_error, "compute": compute}
