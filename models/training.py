"""Training data, the model id, model selection, and train-or-load with the registry.

The model for a term learns from the cohorts whose outcomes were known before the term's
as-of date, except the latest ``model.evaluation_cohorts`` of them, which are held out to
measure it (``features.timechop``). Which model it is (a logistic regression or boosted trees
of a given size) is chosen on the training cohorts alone (``models.selection``).

Its id is a content hash of what the training and evaluation rows can depend on (the clean
tables as known on the latest as-of date the rows use, the labels of the cohorts used), the
model configuration and the code version: the same data, config and code give the same id,
and a registered id is loaded instead of retrained. The fingerprint is computed in DuckDB
(:func:`training_fingerprint`) without building any feature, so a term whose training data
did not change builds only its own as-of date's features (for scoring).
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
import pandas as pd

from ews.config import MunicipalityConfig
from ews.exclusions import excluded_pupils
from ews.sql import load_sql
from ews.terms import Term
from ews.warehouse import memory_capped
from features.build import SCORING_GRADES, design_matrix, feature_batches
from features.catalogue import FEATURE_NAMES, feature_spec
from features.leakage import check_no_lookahead
from features.timechop import (
    AsOf,
    NotEnoughHistoryError,
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
    BOOSTING_BASE,
    CALIBRATION_FOLDS,
    CALIBRATION_METHOD,
    DEFAULT_CANDIDATES,
    MIN_CLASS_ROWS_PER_FOLD,
    MIN_LEAF_ROWS,
    Candidate,
    ModelBundle,
    boosting_threads,
    fit_risk_model,
    pupil_folds,
)
from models.selection import (
    MIN_KNOWN_VALUES,
    SELECTION_MAX_ROWS,
    TIE_TOLERANCE,
    sample_pupils,
    select_candidate,
    usable_features,
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


@dataclass(frozen=True)
class TrainingPlan:
    """What a term's model is trained on, known before any feature is built.

    Attributes:
        split: Training and evaluation cohorts.
        outcome_definition: ``name@vN``.
        labels: Outcome labels of the definition (``pupil_id``, ``cohort``, ``assessed_date``,
            ``outcome``).
        as_of_dates: The as-of dates whose rows the model uses (oldest first).
    """

    split: Split
    outcome_definition: str
    labels: pd.DataFrame
    as_of_dates: tuple[date, ...]


def plan_training(con: duckdb.DuckDBPyConnection, config: MunicipalityConfig, term: str) -> TrainingPlan:
    """Labels, split and as-of dates of the model for one term (no features).

    Args:
        con: A connection with the ``clean_*`` tables.
        config: The municipality config (its ``outcome`` names the one definition used).
        term: The term the model is for.

    Returns:
        The plan.

    Raises:
        features.timechop.NotEnoughHistoryError: Too few cohorts with known outcomes.
        models.outcomes.OutcomeError: The labels mix definitions.
    """
    parsed = Term.parse(term)
    as_of = config.terms.as_of_date(parsed)
    spec = outcome_definition(config.outcome)
    labels = load_labels(con, spec.name)
    split = plan_split(labels, str(parsed), as_of, config.model.evaluation_cohorts)
    assert_split_is_causal(split, labels)
    dates = tuple(a.as_of_date for a in required_as_of_dates(all_as_of_dates(config, parsed), split))
    if not dates:
        raise NotEnoughHistoryError(f"term {term}: no as-of date before the label cutoff {split.label_cutoff}")
    return TrainingPlan(split, spec.versioned_name, labels, dates)


def assemble_model_data(
    con: duckdb.DuckDBPyConnection, config: MunicipalityConfig, term: str,
    progress: Progress | None = None, plan: TrainingPlan | None = None,
) -> ModelData:
    """Labels, split and feature rows for the model of one term.

    Args:
        con: A connection with the ``clean_*`` tables.
        config: The municipality config (its ``outcome`` names the one definition used).
        term: The term the model is for.
        progress: Called with short status lines.
        plan: The plan from :func:`plan_training` (made here when None).

    Returns:
        The model data.

    Raises:
        features.timechop.NotEnoughHistoryError: Too few cohorts with known outcomes.
        models.outcomes.OutcomeError: The labels mix definitions.
    """
    say = progress or (lambda _m: None)
    plan = plan or plan_training(con, config, term)
    split, labels = plan.split, plan.labels
    say(f"building features for {len(plan.as_of_dates)} as-of dates")
    grades = list(config.model.training_grades)
    population, train, evaluation = [], [], []
    # batch by batch (oldest first), only the labelled rows and the pupils per network are
    # kept: a national training never holds every as-of date's features at once (most of its
    # rows are grade 9 or cohorts without a known outcome)
    for features in feature_batches(con, config, list(plan.as_of_dates), SCORING_GRADES):
        population.append(features.groupby(["as_of_date", "network_id"], dropna=False).size()
                          .rename("pupils").reset_index())
        train.append(label_rows(features, labels, split.training_cohorts, grades))
        evaluation.append(label_rows(features, labels, split.evaluation_cohorts, grades))
        del features
    return ModelData(split, plan.outcome_definition, _joined(train), _joined(evaluation), _joined(population))


def _joined(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The batches' rows in batch order, as one frame (the batches are in as-of date order)."""
    kept = [p for p in parts if len(p)] or parts[:1]  # an empty batch adds no row and no dtype
    return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)


def model_configuration(config: MunicipalityConfig) -> dict[str, Any]:
    """Everything in the config and code constants that changes the model or its metrics."""
    spec = outcome_definition(config.outcome)
    return {
        "outcome": spec.versioned_name,
        "model": config.model.model_dump(mode="json"),
        "terms": config.terms.model_dump(mode="json"),
        "capacities": {n.id: n.capacity_per_term for n in config.networks},
        "schools": sorted([s.code, s.network, s.area, s.reports_absence] for s in config.schools),
        "candidates": [c.describe() for c in DEFAULT_CANDIDATES],
        "boosting": BOOSTING_BASE,
        "min_leaf_rows": MIN_LEAF_ROWS,
        "selection_tie_tolerance": TIE_TOLERANCE,
        "selection_max_rows": SELECTION_MAX_ROWS,
        "max_training_rows": MAX_TRAINING_ROWS,
        "min_known_values": MIN_KNOWN_VALUES,
        "calibration": {"method": CALIBRATION_METHOD, "folds": CALIBRATION_FOLDS,
                        "min_class_rows_per_fold": MIN_CLASS_ROWS_PER_FOLD},
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


def _fingerprint_sql() -> str:
    return load_sql("models", "training_fingerprint.sql")


def clean_table_hashes(con: duckdb.DuckDBPyConnection, cut: date) -> pd.DataFrame:
    """Row count and row-hash sum of every clean table as known on ``cut`` (DuckDB SQL).

    Args:
        con: A connection with the ``clean_*`` tables.
        cut: Rows dated on or after it are left out (the look-ahead check's cut).

    Returns:
        ``table_name``, ``row_count``, ``row_hash`` (one row per clean table).
    """
    return con.execute(_fingerprint_sql(), {"cut": cut}).df()


def training_fingerprint(con: duckdb.DuckDBPyConnection, plan: TrainingPlan) -> str:
    """A content hash of everything the training and held-out rows of a plan depend on.

    The rows' features use only data dated before their as-of date, all of which are at most
    the plan's latest as-of date; their labels are the split's cohorts'. So the fingerprint is
    the clean tables cut at that date (:func:`clean_table_hashes`), the labels of the split's
    cohorts and the split's cohorts and cutoff. Data of the current school year (dated after
    the cut) and labels of later cohorts do not change it, nor does the term: every term with
    the same known cohorts reuses one model (in practice one model a school year, trained when
    new outcomes arrive); the model's ``split.term`` is the first term it was trained for.

    Args:
        con: A connection with the ``clean_*`` tables.
        plan: From :func:`plan_training`.

    Returns:
        64 hex characters.
    """
    split = plan.split
    tables = clean_table_hashes(con, max(plan.as_of_dates))
    cohorts = list(split.training_cohorts + split.evaluation_cohorts)
    labels = plan.labels[plan.labels["cohort"].isin(cohorts)][["pupil_id", "cohort", "assessed_date", "outcome"]]
    labels = labels.astype({"assessed_date": str, "outcome": int})
    parts = [
        tables.to_csv(index=False), frame_digest(labels),
        ",".join(split.training_cohorts), ",".join(split.evaluation_cohorts), str(split.label_cutoff),
        ",".join(str(d) for d in plan.as_of_dates),
    ]
    excluded = excluded_pupils(con)
    if excluded:  # pupils excluded from screening leave the training rows: a new model
        parts.append("excluded:" + ",".join(sorted(excluded)))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def model_identity(fingerprint: str, config: MunicipalityConfig, code_version: str) -> str:
    """The model id from the training fingerprint, the model configuration and the code.

    Args:
        fingerprint: From :func:`training_fingerprint`.
        config: The municipality config.
        code_version: The code version.

    Returns:
        ``m`` and 15 hex characters.
    """
    configuration = json.dumps(model_configuration(config), sort_keys=True, ensure_ascii=False)
    model_id = hashlib.sha256(f"{fingerprint}|{configuration}|{code_version}".encode()).hexdigest()
    return "m" + model_id[:15]


#: DuckDB's memory limit while the model is fitted and evaluated (the evaluation's few queries
#: fit; above it they spill): the warehouse's cache is given back to the fit.
TRAINING_WAREHOUSE_MEMORY = "2GiB"


#: Above this many training rows (national size) the model learns from a fixed sample of
#: pupils (all their rows): accuracy has levelled off long before, and fitting time has not.
MAX_TRAINING_ROWS = 400_000


def sample_training_rows(train: pd.DataFrame, max_rows: int = MAX_TRAINING_ROWS) -> pd.DataFrame:
    """All rows of a fixed pseudo-random share of pupils, when there are more than ``max_rows``.

    The share is chosen by a hash of the pupil id, so the same data give the same sample
    (``models.selection.sample_pupils``).
    """
    return sample_pupils(train, max_rows)


def pinned_candidate(config: MunicipalityConfig) -> Candidate | None:
    """The candidate the config pins (``model.candidate``, with ``candidate_params``), or None for ``auto``."""
    name = config.model.candidate
    if name == "auto":
        return None
    base = next(c for c in DEFAULT_CANDIDATES if c.name == name)
    if not config.model.candidate_params:
        return base
    return Candidate(base.name, base.kind, {**base.params, **config.model.candidate_params}, base.complexity)


def fit_bundle(
    data: ModelData, config: MunicipalityConfig, code_version: str, model_id: str, fingerprint: str,
    progress: Progress | None = None,
) -> ModelBundle:
    """Choose the model on the training cohorts, fit it and its calibration, and the baselines.

    Args:
        data: The model data.
        config: The municipality config.
        code_version: The code version.
        model_id: From :func:`model_identity`.
        fingerprint: From :func:`training_fingerprint`.
        progress: Called with short status lines.

    Returns:
        An unregistered bundle (no metrics or card yet) with its ``selection`` record.

    Raises:
        ValueError: When the training rows hold only one outcome class.
    """
    say = progress or (lambda _m: None)
    train = sample_training_rows(data.train)
    y = train["outcome"].to_numpy()
    if len(set(y)) < 2:
        raise ValueError(
            f"term {data.split.term}: the training cohorts {list(data.split.training_cohorts)} have "
            f"{len(y)} rows with only one outcome value; check the outcome export"
        )
    seed = config.model.seed
    capacity = {n.id: n.capacity_per_term for n in config.networks}
    pinned = pinned_candidate(config)
    say("choosing the model on the training cohorts (rolling origins)" if pinned is None
        else f"validating the pinned candidate {pinned.name}")
    selection = select_candidate(train, data.population, capacity, seed, origins=config.model.selection_origins,
                                 pinned=pinned)
    winner = pinned or next(c for c in DEFAULT_CANDIDATES if c.name == selection["winner"])
    say(f"model: {winner.name} ({selection['reason']})")
    groups = train["pupil_id"].tolist()
    names = usable_features(train, pupil_folds(groups))
    estimator, calibrated, calibration = fit_risk_model(winner, design_matrix(train, names), y, groups, names, seed)
    selection["calibration"] = calibration
    with boosting_threads():
        baselines = fit_baselines(train, y, names, seed)
    return ModelBundle(
        model_id=model_id, feature_names=names, estimator=estimator, calibrated=calibrated, baselines=baselines,
        outcome_definition=data.outcome_definition, split=data.split,
        model_config=model_configuration(config), training_digest=fingerprint, code_version=code_version,
        candidate=winner.name, calibration=calibration, selection=selection,
        row_counts={"training_rows": int(len(data.train)), "training_pupils": int(data.train["pupil_id"].nunique()),
                    "evaluation_rows": int(len(data.evaluation))},
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
    plan = plan_training(con, config, term)
    fingerprint = training_fingerprint(con, plan)
    model_id = model_identity(fingerprint, config, code_version)
    if (models_dir / model_id / ARTIFACT_FILE).exists():
        say(f"model {model_id} exists (same training data, config and code); reusing it")
        bundle = load_bundle(models_dir, model_id)
        if read_registered(con, model_id) is None:
            register_model(con, bundle)
        return bundle
    if check_as_of is not None:
        say(f"checking features for look-ahead as of {check_as_of}")
        check_no_lookahead(con, config, [check_as_of])
    data = assemble_model_data(con, config, term, progress, plan=plan)
    say(f"training model on {len(data.train)} rows (cohorts {data.split.training_window[0]}"
        f"-{data.split.training_window[1]})")
    # fitting and evaluating need memory for Python, not for DuckDB: its buffer pool (up to 8 GiB
    # after a national ingest) is given back for the while (a national training's peak)
    with memory_capped(con, TRAINING_WAREHOUSE_MEMORY):
        bundle = fit_bundle(data, config, code_version, model_id, fingerprint, progress)
        say(f"evaluating on {len(data.evaluation)} held-out rows")
        n_boot = FAIRNESS_BOOTSTRAP if fairness_bootstrap is None else fairness_bootstrap
        bundle.metrics = evaluate_model(con, config, bundle, data=data, n_boot=n_boot)
    bundle.card_paths = {k: str(v) for k, v in write_model_card(bundle, bundle.metrics, models_dir / model_id).items()}
    save_bundle(bundle, models_dir)
    register_model(con, bundle)
    log.info("model %s (%s) trained and registered", model_id, bundle.candidate)
    return bundle
