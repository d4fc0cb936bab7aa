"""The model registry: the ``models`` table of the warehouse."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from ews.sql import load_sql
from ews.tables import create_tables
from ews.warehouse import fetch_one, replace_rows, table_exists

if TYPE_CHECKING:  # pragma: no cover
    from models.risk_model import ModelBundle

REGISTRY_TABLE = "models"


def _sql(name: str) -> str:
    return load_sql("models", name)


def ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``models`` table if missing (DDL in ``ews/tables_warehouse.sql``)."""
    create_tables(con, "warehouse", [REGISTRY_TABLE])


def register_model(con: duckdb.DuckDBPyConnection, bundle: ModelBundle) -> None:
    """Write (or rewrite) the registry row of a model.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        bundle: The trained bundle, with metrics, card paths, row counts and its selection.
    """
    ensure_registry(con)
    split = bundle.split
    config_text = json.dumps(bundle.model_config, sort_keys=True, ensure_ascii=False)
    row = pd.DataFrame([{
        "model_id": bundle.model_id,
        "term": split.term,
        "as_of_date": split.as_of_date,
        "outcome_definition": bundle.outcome_definition,
        "training_first_cohort": split.training_window[0],
        "training_last_cohort": split.training_window[1],
        "training_cohorts": json.dumps(list(split.training_cohorts)),
        "evaluation_cohorts": json.dumps(list(split.evaluation_cohorts)),
        "label_cutoff": split.label_cutoff,
        "training_rows": int(bundle.row_counts.get("training_rows", 0)),
        "training_pupils": int(bundle.row_counts.get("training_pupils", 0)),
        "evaluation_rows": int(bundle.row_counts.get("evaluation_rows", 0)),
        "model_config_hash": hashlib.sha256(config_text.encode()).hexdigest()[:16],
        "code_version": bundle.code_version,
        "data_snapshot": bundle.training_digest[:16],
        "seed": int(bundle.model_config["model"]["seed"]),
        "feature_names": json.dumps(bundle.feature_names),
        "metrics_json": json.dumps(bundle.metrics, sort_keys=True, ensure_ascii=False),
        "card_markdown": bundle.card_paths.get("markdown"),
        "card_html": bundle.card_paths.get("html"),
        "candidate": bundle.candidate,
        "calibration": bundle.calibration,
        "selection_json": json.dumps(bundle.selection, sort_keys=True, ensure_ascii=False),
    }])
    replace_rows(con, REGISTRY_TABLE, row, where={"model_id": bundle.model_id})


def read_registered(con: duckdb.DuckDBPyConnection, model_id: str) -> dict[str, Any] | None:
    """The registry row of a model, or None."""
    if not table_exists(con, REGISTRY_TABLE):
        return None
    frame = con.execute(_sql("registry_read.sql"), {"model_id": model_id}).df()
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    row["metrics"] = json.loads(row.pop("metrics_json"))
    selection = row.pop("selection_json", None)
    row["selection"] = json.loads(selection) if isinstance(selection, str) else {}
    return row


def latest_scored_model(con: duckdb.DuckDBPyConnection, term: str | None = None) -> tuple[str, str] | None:
    """``(model_id, term)`` of the latest scored term (or of ``term``), or None."""
    if not (table_exists(con, REGISTRY_TABLE) and table_exists(con, "scores_pupil_term")):
        return None
    row = fetch_one(con, _sql("registry_latest.sql"), {"term": term})
    return (str(row[0]), str(row[1])) if row else None
