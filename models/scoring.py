"""Scoring in the termly flow: every pupil in grades 5-9 gets a calibrated risk and a tier."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ews.compute import ChunkMap, map_chunks
from ews.config import MunicipalityConfig
from ews.tables import create_tables
from ews.warehouse import replace_rows
from features.build import design_matrix
from models.risk_model import ModelBundle, boosting_threads

SCORES_TABLE = "scores_pupil_term"
SCORE_COLUMNS = (
    "run_id", "term", "as_of_date", "pupil_id", "model_id", "risk", "tier", "tier_step",
    "network_id", "school_code", "grade", "rank_in_network",
)
#: Headline metrics copied into the run manifest.
MANIFEST_METRICS = (
    "roc_auc", "average_precision", "brier", "calibration_error", "precision_at_capacity",
    "recall_at_capacity",
)


def assign_tiers(config: MunicipalityConfig, risk: np.ndarray) -> tuple[list[str], list[str]]:
    """Tier name and indsatstrappe step per risk, from the config's tiers."""
    thresholds = np.array([t.min_risk for t in config.tiers])
    index = np.searchsorted(thresholds, np.asarray(risk, dtype=float), side="right") - 1
    index = np.clip(index, 0, len(thresholds) - 1)
    return [config.tiers[i].name for i in index], [config.tiers[i].step for i in index]


def _risk_chunk(calibrated: Any, values: np.ndarray) -> np.ndarray:
    """Calibrated risk of a block of design-matrix rows (a chunk task: pure, no database)."""
    with boosting_threads():
        return np.asarray(calibrated.predict_proba(values)[:, 1], dtype="float64")


def predict_risk_chunked(
    bundle: ModelBundle, features: pd.DataFrame, chunk_pupils: int | None = None,
    local_workers: int | None = None,
) -> tuple[np.ndarray, ChunkMap]:
    """The calibrated risk of every row, computed per chunk of pupils (``ews.compute.map_chunks``).

    Each row's risk depends on that row alone, so the result is the same as
    ``bundle.predict_risk(features)`` whatever the chunk size or where the chunks ran (in the
    run's own thread when the run is a fleet's subflow, on its Dask cluster with
    ``EWS_COMPUTE_ON_DASK``, else a local process pool).

    Args:
        bundle: The model.
        features: Rows of a features frame.
        chunk_pupils: Pupils a chunk; default ``EWS_COMPUTE_CHUNK_PUPILS``.
        local_workers: Processes of the local pool outside Dask; default ``EWS_COMPUTE_WORKERS``.

    Returns:
        The risks in row order, and where the chunks were computed.
    """
    if len(features) == 0:
        return np.zeros(0), ChunkMap([], 0, "inline", 1)
    matrix = design_matrix(features, bundle.feature_names)
    mapped = map_chunks(_risk_chunk, bundle.calibrated, matrix, chunk_rows=chunk_pupils,
                        local_workers=local_workers, label="ews-score")
    return np.concatenate(mapped.results), mapped


def score_frame(
    config: MunicipalityConfig, bundle: ModelBundle, features: pd.DataFrame, run_id: str,
    chunk_pupils: int | None = None,
) -> pd.DataFrame:
    """Scores of a features frame (pure: no database).

    Args:
        config: The municipality config (tiers).
        bundle: The model.
        features: From ``features.build.build_features`` for one as-of date.
        run_id: The run.
        chunk_pupils: Pupils a chunk of the risk computation (:func:`predict_risk_chunked`);
            default ``EWS_COMPUTE_CHUNK_PUPILS``.

    Returns:
        The rows of ``scores_pupil_term``: rank 1 is the highest risk in the network; ties
        are ordered by pupil id.
    """
    risk, _ = predict_risk_chunked(bundle, features, chunk_pupils)
    tiers, steps = assign_tiers(config, risk)
    frame = pd.DataFrame({
        "run_id": run_id,
        "term": features["term"].astype(str).to_numpy(),
        "as_of_date": features["as_of_date"].to_numpy(),
        "pupil_id": features["pupil_id"].astype(str).to_numpy(),
        "model_id": bundle.model_id,
        "risk": risk.astype(float),
        "tier": tiers,
        "tier_step": steps,
        "network_id": features["network_id"].to_numpy(),
        "school_code": features["school_code"].astype(str).to_numpy(),
        "grade": features["grade"].astype("int64").to_numpy(),
    })
    frame = frame.sort_values(["network_id", "risk", "pupil_id"], ascending=[True, False, True],
                              kind="stable", na_position="last")
    frame["rank_in_network"] = frame.groupby("network_id", dropna=False).cumcount().astype("int64") + 1
    return frame.sort_values(["network_id", "rank_in_network"], kind="stable").reset_index(drop=True)[
        list(SCORE_COLUMNS)]


def score_pupils(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    bundle: ModelBundle,
    term: str,
    features: pd.DataFrame,
    run_id: str,
) -> pd.DataFrame:
    """Score the features of a term's as-of date and store the scores.

    Replaces the term's rows of ``scores_pupil_term``. The features come from the run's
    features step (``features.build.build_scoring_features``), which stored them.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        config: The municipality config.
        bundle: The model (from ``models.training.train_or_load_model``).
        term: The term, e.g. ``2025/26-H1``.
        features: The term's features (its as-of date, ``term`` set on every row).
        run_id: The run.

    Returns:
        The score rows written.
    """
    scores = score_frame(config, bundle, features, run_id)
    create_tables(con, "warehouse", [SCORES_TABLE])
    replace_rows(con, SCORES_TABLE, scores, where={"term": term})
    return scores


def manifest_entry(bundle: ModelBundle, scores: pd.DataFrame) -> dict[str, Any]:
    """What the run manifest records about the model and the scores.

    Args:
        bundle: The model.
        scores: From :func:`score_pupils`.

    Returns:
        ``{"model": {...}, "scores": {...}}``.
    """
    metrics = bundle.metrics or {}
    return {
        "model": {
            "model_id": bundle.model_id,
            "candidate": bundle.candidate,
            "calibration": bundle.calibration,
            "outcome_definition": bundle.outcome_definition,
            "training_cohorts": list(bundle.split.training_cohorts),
            "evaluation_cohorts": list(bundle.split.evaluation_cohorts),
            "metrics": {k: metrics.get("model", {}).get(k) for k in MANIFEST_METRICS},
            "baselines": {name: {k: entry.get(k) for k in MANIFEST_METRICS}
                          for name, entry in metrics.get("baselines", {}).items()},
            "card": dict(bundle.card_paths),
        },
        "scores": {
            "pupils": int(len(scores)),
            "by_tier": {str(k): int(v) for k, v in scores["tier"].value_counts().sort_index().items()},
        },
    }


def run_model_stage(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    term: str,
    as_of: date,
    features: pd.DataFrame,
    run_id: str,
    models_dir: Path,
    code_version: str,
    progress: Any = None,
) -> tuple[ModelBundle, pd.DataFrame, dict[str, Any]]:
    """The termly model step: train or load the model, then score the features it is given.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        config: The municipality config.
        term: The term.
        as_of: Its as-of date (the look-ahead check's date when the model is retrained).
        features: The term's features (``features.build.build_scoring_features``).
        run_id: The run.
        models_dir: Folder for model files and cards.
        code_version: Code version (part of the model id).
        progress: Called with short status lines.

    Returns:
        The model (for the explanations), the score rows, and the manifest additions
        (:func:`manifest_entry`).
    """
    from models.training import train_or_load_model

    bundle = train_or_load_model(con, config, term, models_dir, code_version, progress=progress,
                                 check_as_of=as_of)
    scores = score_pupils(con, config, bundle, term, features, run_id)
    return bundle, scores, manifest_entry(bundle, scores)
