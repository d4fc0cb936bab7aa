"""Training data, the model id, and train-or-load with the registry.

The model for a term learns from the cohorts whose outcomes were known before the term's
as-of date, except the latest ``model.evaluation_cohorts`` of them, which are held out to
measure it (``features.timechop``). Its id is a content hash of the training and evaluation
rows, the model configuration and the code version: the same data, config and code give the
same id, and a registered id is loaded instead of retrained.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import joblib
import numpy as np
import pandas as pd

from ews.config import MunicipalityConfig
from ews.terms import Term
from features.build import SCORING_GRADES, build_features, design_matrix
from features.catalogue import FEATURE_NAMES, feature_spec
from features.leakage import check_no_lookahead
from features.timechop import (
    AsOf,
    Split,
    assert_split_is_causal,
    label_rows,
    plan_split,
    required_as_of_dates,
    term_as_of_dates,
)
from models.baselines import fit_baselines
from models.outcomes import load_labels, outcome_definition
from models.registry import read_registered, register_model
from models.risk_model import (
    BOOSTING_PARAMS,
    CALIBRATION_COHORTS,
    CALIBRATION_FOLDS,
    CALIBRATION_METHOD,
    ModelBundle,
    boosting_threads,
    fit_risk_model,
    pupil_folds,
)

log = logging.getLogger(__name__)
ARTIFACT_FILE = "model.joblib"
Progress = Callable[[str], None]


@dataclass
class ModelData:
    """Rows a model for one term is trained and evaluated on.

    Attributes:
        split: Training and evaluation cohorts.
        outcome_definition: ``name@vN``.
        train: Training rows: features, ``cohort``, ``assessed_date``, ``outcome``.
        evaluation: Held-out rows, same columns.
        population: Pupils in grades 5-9 per ``as_of_date`` and ``network_id`` (``pupils``),
            for pro-rating each network's list length.
    """

    split: Split
    outcome_definition: str
    train: pd.DataFrame
    evaluation: pd.DataFrame
    population: pd.DataFrame


def all_as_of_dates(config: MunicipalityConfig, term: Term) -> list[AsOf]:
    """As-of date of every term from the config's first school year to ``term``."""
    first = Term.parse(f"{config.terms.first_school_year}-H1")
    return term_as_of_dates(first, term, config.terms.as_of_date)


def assemble_model_data(
    con: duckdb.DuckDBPyConnection, config: MunicipalityConfig, term: str,
    progress: Progress | None = None,
) -> ModelData:
    """Labels, split and feature rows for the model of one term.

    Args:
        con: A connection with the ``clean_*`` tables.
        config: The municipality config (its ``outcome`` names the one definition used).
        term: The term the model is for.
        progress: Called with short status lines.

    Returns:
        The model data.

    Raises:
        features.timechop.NotEnoughHistoryError: Too few cohorts with known outcomes.
        models.outcomes.OutcomeError: The labels mix definitions.
    """
    say = progress or (lambda _m: None)
    parsed = Term.parse(term)
    as_of = config.terms.as_of_date(parsed)
    spec = outcome_definition(config.outcome)
    labels = load_labels(con, spec.name)
    split = plan_split(labels, str(parsed), as_of, config.model.evaluation_cohorts)
    assert_split_is_causal(split, labels)
    dates = [a.as_of_date for a in required_as_of_dates(all_as_of_dates(config, parsed), split)]
    say(f"building features for {len(dates)} as-of dates")
    features = build_features(con, config, dates, SCORING_GRADES)
    population = (features.groupby(["as_of_date", "network_id"], dropna=False).size()
                  .rename("pupils").reset_index())
    grades = list(config.model.training_grades)
    train = label_rows(features, labels, split.training_cohorts, grades)
    evaluation = label_rows(features, labels, split.evaluation_cohorts, grades)
    return ModelData(split, spec.versioned_name, train, evaluation, population)


def model_configuration(config: MunicipalityConfig) -> dict[str, Any]:
    """Everything in the config and code constants that changes the model or its metrics."""
    spec = outcome_definition(config.outcome)
    return {
        "outcome": spec.versioned_name,
        "model": config.model.model_dump(mode="json"),
        "terms": config.terms.model_dump(mode="json"),
        "capacities": {n.id: n.capacity_per_term for n in config.networks},
        "boosting": BOOSTING_PARAMS,
        "max_training_rows": MAX_TRAINING_ROWS,
        "calibration": {"method": CALIBRATION_METHOD, "temporal_cohorts": CALIBRATION_COHORTS,
                        "folds_when_one_cohort": CALIBRATION_FOLDS},
        "features": [[name, feature_spec(name).monotone] for name in FEATURE_NAMES],
    }


def frame_digest(frame: pd.DataFrame) -> str:
    """An order-independent content hash of a frame (rows sorted by pupil and date)."""
    if len(frame) == 0:
        return hashlib.sha256(b"empty|" + ",".join(frame.columns).encode()).hexdigest()
    keys = [c for c in ("as_of_date", "network_id", "pupil_id") if c in frame.columns]
    ordered = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    text = ordered.astype({c: str for c in ordered.columns if ordered[c].dtype == object})
    hashed = pd.util.hash_pandas_object(text, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(ordered.columns).encode()).hexdigest()


def model_identity(data: ModelData, config: MunicipalityConfig, code_version: str) -> tuple[str, str]:
    """The model id and the training-data digest.

    Args:
        data: The model data.
        config: The municipality config.
        code_version: The code version.

    Returns:
        ``(model_id, training_digest)``; the id is ``m`` and 15 hex characters.
    """
    columns = ["pupil_id", "as_of_date", "network_id", "school_code", "grade", "cohort", "outcome",
               *[f for f in FEATURE_NAMES if f != "grade"]]
    digest = hashlib.sha256("|".join([
        frame_digest(data.train[columns]), frame_digest(data.evaluation[columns]),
        frame_digest(data.population), data.split.term, ",".join(data.split.training_cohorts),
        ",".join(data.split.evaluation_cohorts),
    ]).encode()).hexdigest()
    configuration = json.dumps(model_configuration(config), sort_keys=True, ensure_ascii=False)
    model_id = hashlib.sha256(f"{digest}|{configuration}|{code_version}".encode()).hexdigest()
    return "m" + model_id[:15], digest


#: Fewest known values a feature needs among the rows the boosted model is fitted on.
MIN_KNOWN_VALUES = 20
#: Above this many training rows (national size) the model learns from a fixed sample of
#: pupils (all their rows): accuracy has levelled off long before, and fitting time has not.
MAX_TRAINING_ROWS = 400_000


def sample_training_rows(train: pd.DataFrame, max_rows: int = MAX_TRAINING_ROWS) -> pd.DataFrame:
    """All rows of a fixed pseudo-random share of pupils, when there are more than ``max_rows``.

    The share is chosen by a hash of the pupil id, so the same data give the same sample.
    """
    if len(train) <= max_rows:
        return train
    share = max_rows / len(train)
    key = pd.util.hash_pandas_object(train["pupil_id"].astype(str), index=False).to_numpy()
    keep = (key % 1_000_000) < int(share * 1_000_000)
    return train[keep].reset_index(drop=True)


def usable_features(train: pd.DataFrame, folds: list[tuple[np.ndarray, np.ndarray]] | None = None) -> list[str]:
    """Catalogue features with enough known values in every set of rows a model is fitted on.

    A feature that is missing for (nearly) every fitted row carries nothing to learn from, e.g.
    standing marks, which start in grade 8 after the last training as-of date, or a test that a
    small municipality's older cohorts never sat.

    Args:
        train: The rows the boosted model is fitted on.
        folds: Cross-validation folds over those rows (each fold's training part must qualify).

    Returns:
        Feature names, in catalogue order.
    """
    parts = [train] if folds is None else [train.iloc[fit] for fit, _ in folds]
    return [name for name in FEATURE_NAMES
            if all(int(part[name].notna().sum()) >= MIN_KNOWN_VALUES for part in parts)]


def fit_bundle(data: ModelData, config: MunicipalityConfig, code_version: str) -> ModelBundle:
    """Fit the risk model and the baselines on the training rows.

    Args:
        data: The model data.
        config: The municipality config.
        code_version: The code version.

    Returns:
        An unregistered bundle (no metrics or card yet).

    Raises:
        ValueError: When the training rows hold only one outcome class.
    """
    train = sample_training_rows(data.train)
    y = train["outcome"].to_numpy()
    if len(set(y)) < 2:
        raise ValueError(
            f"term {data.split.term}: the training cohorts {list(data.split.training_cohorts)} have "
            f"{len(y)} rows with only one outcome value; check the outcome export"
        )
    seed = config.model.seed
    cohorts = sorted(train["cohort"].unique())
    calibration_rows = None
    if CALIBRATION_COHORTS and len(cohorts) > CALIBRATION_COHORTS:
        calibration_rows = train["cohort"].isin(cohorts[-CALIBRATION_COHORTS:]).to_numpy()
        if len(set(y[calibration_rows])) < 2 or len(set(y[~calibration_rows])) < 2:
            calibration_rows = None
    if calibration_rows is None:
        names = usable_features(train, pupil_folds(train["pupil_id"].tolist()))
    else:
        names = usable_features(train[~calibration_rows])
    boosted, calibrated = fit_risk_model(design_matrix(train, names), y, train["pupil_id"].tolist(),
                                         names, seed, calibration_rows)
    with boosting_threads():
        baselines = fit_baselines(train, y, names, seed)
    model_id, digest = model_identity(data, config, code_version)
    return ModelBundle(
        model_id=model_id, feature_names=names, boosted=boosted, calibrated=calibrated, baselines=baselines,
        outcome_definition=data.outcome_definition, split=data.split,
        model_config=model_configuration(config), training_digest=digest, code_version=code_version,
    )


def save_bundle(bundle: ModelBundle, models_dir: Path) -> Path:
    """Write the bundle to ``models_dir/<model_id>/model.joblib`` (atomically)."""
    folder = models_dir / bundle.model_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ARTIFACT_FILE
    staging = folder / (ARTIFACT_FILE + ".tmp")
    joblib.dump(bundle, staging)
    staging.replace(target)
    return target


def load_bundle(models_dir: Path, model_id: str) -> ModelBundle:
    """Read a saved bundle.

    Raises:
        FileNotFoundError: When the model's file is missing, naming it.
    """
    path = models_dir / model_id / ARTIFACT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file missing; re-run the term to retrain model {model_id}")
    bundle = joblib.load(path)
    if not isinstance(bundle, ModelBundle) or bundle.model_id != model_id:
        raise FileNotFoundError(f"{path}: does not hold model {model_id}")
    return bundle


def train_or_load_model(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    term: str,
    models_dir: Path,
    code_version: str,
    progress: Progress | None = None,
    check_as_of: date | None = None,
    fairness_bootstrap: int | None = None,
) -> ModelBundle:
    """The model for a term: loaded when its id is registered, else trained and registered.

    Trains on the cohorts known before the term's as-of date (minus the held-out ones),
    evaluates on the held-out cohorts, writes the model card into ``models_dir/<model_id>/``
    and a row into the ``models`` registry.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        config: The municipality config.
        term: The term, e.g. ``2025/26-H1``.
        models_dir: Folder for model files and cards (e.g. ``EWS_STATE_DIR/models``).
        code_version: The code version (part of the model id).
        progress: Called with short status lines.
        check_as_of: An as-of date on which to run the look-ahead check
            (``features.leakage``) before training; None skips it.
        fairness_bootstrap: Bootstrap samples for the fairness intervals (default
            ``models.evaluation.FAIRNESS_BOOTSTRAP``).

    Returns:
        The bundle, with ``metrics`` and ``card_paths``.
    """
    from models.card import write_model_card
    from models.evaluation import FAIRNESS_BOOTSTRAP, evaluate_model

    say = progress or (lambda _m: None)
    data = assemble_model_data(con, config, term, progress)
    model_id, _ = model_identity(data, config, code_version)
    if (models_dir / model_id / ARTIFACT_FILE).exists():
        say(f"model {model_id} exists (same data, config and code); reusing it")
        bundle = load_bundle(models_dir, model_id)
        if read_registered(con, model_id) is None:
            register_model(con, bundle, data)
        return bundle
    if check_as_of is not None:
        say(f"checking features for look-ahead as of {check_as_of}")
        check_no_lookahead(con, config, [check_as_of])
    say(f"training model on {len(data.train)} rows (cohorts {data.split.training_window[0]}"
        f"-{data.split.training_window[1]})")
    bundle = fit_bundle(data, config, code_version)
    say(f"evaluating on {len(data.evaluation)} held-out rows")
    n_boot = FAIRNESS_BOOTSTRAP if fairness_bootstrap is None else fairness_bootstrap
    bundle.metrics = evaluate_model(con, config, bundle, data=data, n_boot=n_boot)
    bundle.card_paths = {k: str(v) for k, v in write_model_card(bundle, bundle.metrics, models_dir / model_id).items()}
    save_bundle(bundle, models_dir)
    register_model(con, bundle, data)
    log.info("model %s trained and registered", model_id)
    return bundle
