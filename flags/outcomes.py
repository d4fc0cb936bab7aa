"""What became of flagged and unflagged, confirmed and dismissed pupils (issue 14): descriptive only.

When the outcomes of a scored term's pupils arrive, the run counts the adverse outcome among
the pupils who were flagged and those who were not, and among the flagged, those a UU
consultant confirmed, dismissed or never reviewed. **These are descriptions, not effects**: a
flag that led to help may have prevented the very outcome it predicted, and UU chose whom to
confirm. The model's accuracy is measured by ``models.prospective`` on the risks, not here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import pandas as pd

from ews.sql import load_sql
from ews.tables import create_tables
from ews.warehouse import append_rows, delete_rows, read_frame, table_exists
from flags.followup import ACTIVE_DECISIONS, REVIEWS_TABLE, _reviews_in_force
from models.outcomes import outcome_definition
from models.prospective import ArrivedOutcomes

OUTCOMES_TABLE = "flags_outcomes"
#: Groups of pupils compared, in the order the pages show them (code -> Danish label).
GROUPS: dict[str, str] = {
    "flaget": "Flaget",
    "ikke_flaget": "Ikke flaget",
    "bekraeftet": "Flaget og bekræftet af UU",
    "afvist": "Flaget og afvist af UU",
    "ikke_vurderet": "Flaget, ikke vurderet",
}
DESCRIPTIVE_NOTE_DA = (
    "Beskrivende tal, ikke en effekt: et flag, der førte til hjælp, kan have forhindret netop det udfald, "
    "det forudsagde, og UU valgte, hvilke flag der blev bekræftet. Modellens træfsikkerhed måles på "
    "risikoen (AUC, præcision), ikke her."
)



def group_pupils(scores: pd.DataFrame, flags: pd.DataFrame, reviews: pd.DataFrame) -> pd.DataFrame:
    """The groups each scored pupil of a run belongs to.

    Args:
        scores: The run's scored pupils (``pupil_id``).
        flags: The run's flags (``pupil_id``, ``term``, ``status``).
        reviews: ``reviews_decisions`` rows (``review_id``, ``pupil_id``, ``term``, ``decision``).

    Returns:
        ``pupil_id``, ``pupil_group`` (a key of :data:`GROUPS`); a flagged pupil is in ``flaget`` and
        in one of ``bekraeftet``, ``afvist``, ``ikke_vurderet``.
    """
    flagged = flags[flags["status"].isin(["ny", "fortsat"])]
    by_pupil: dict[str, list[dict[str, Any]]] = {}
    for record in reviews.to_dict("records"):
        by_pupil.setdefault(str(record["pupil_id"]), []).append(record)
    rows = []
    for flag in flagged.to_dict("records"):
        pupil = str(flag["pupil_id"])
        in_force = sorted(_reviews_in_force(flag, by_pupil.get(pupil, [])), key=lambda r: int(r["review_id"]))
        decision = in_force[-1]["decision"] if in_force else None
        review_group = ("ikke_vurderet" if decision is None else
                        "bekraeftet" if decision in ACTIVE_DECISIONS else "afvist")
        rows += [(pupil, "flaget"), (pupil, review_group)]
    on_list = set(flagged["pupil_id"].astype(str))
    rows += [(str(p), "ikke_flaget") for p in scores["pupil_id"].astype(str).unique() if p not in on_list]
    return pd.DataFrame(rows, columns=["pupil_id", "pupil_group"])


def outcomes_by_group(groups: pd.DataFrame, labels: pd.DataFrame, scored_as_of: date) -> pd.DataFrame:
    """Pupils and adverse outcomes per group, among those whose outcome arrived after the scoring.

    Returns:
        ``pupil_group``, ``pupils``, ``adverse``, ``share`` (one row per group with any pupil).
    """
    arrived = labels[pd.to_datetime(labels["assessed_date"]).dt.date > scored_as_of]
    joined = groups.merge(arrived[["pupil_id", "outcome"]].drop_duplicates("pupil_id"), on="pupil_id")
    if joined.empty:
        return pd.DataFrame(columns=["pupil_group", "pupils", "adverse", "share"])
    counts = joined.groupby("pupil_group").agg(pupils=("pupil_id", "nunique"), adverse=("outcome", "sum")).reset_index()
    counts["adverse"] = counts["adverse"].astype(int)
    counts["share"] = (counts["adverse"] / counts["pupils"]).round(6)
    order = list(GROUPS)
    return counts.sort_values("pupil_group", key=lambda s: s.map(order.index)).reset_index(drop=True)


def flag_outcomes(con: duckdb.DuckDBPyConnection, arrived: ArrivedOutcomes, term: str, run_id: str) -> pd.DataFrame:
    """Outcomes per group for every earlier flagged run and every definition whose outcomes arrived.

    Args:
        con: The staged warehouse (``scores_pupil_term``, ``flags_pupil_term``, ``reviews_decisions``).
        arrived: From :func:`models.prospective.arrived_outcomes` for the evaluating run.
        term: The evaluating run's term.
        run_id: Its run id.

    Returns:
        Rows of :data:`OUTCOMES_TABLE`.
    """
    if not (table_exists(con, "flags_pupil_term") and table_exists(con, "scores_pupil_term")):
        return pd.DataFrame()
    runs = read_frame(con, load_sql("flags", "outcome_runs.sql"), {"as_of": arrived.as_of_date})
    reviews = read_frame(con, f"SELECT review_id, pupil_id, term, decision FROM {REVIEWS_TABLE}") \
        if table_exists(con, REVIEWS_TABLE) else pd.DataFrame(columns=["review_id", "pupil_id", "term", "decision"])
    rows = []
    for run in runs.to_dict("records"):
        params = {"run_id": run["run_id"]}
        scores = read_frame(con, "SELECT pupil_id FROM scores_pupil_term WHERE run_id = $run_id", params)
        flags = read_frame(con, "SELECT pupil_id, term, status, list_basis FROM flags_pupil_term "
                                "WHERE run_id = $run_id", params)
        groups = group_pupils(scores, flags, reviews)
        scored_as_of = pd.Timestamp(run["as_of_date"]).date()
        for definition, labels in arrived.labels.items():
            for entry in outcomes_by_group(groups, labels, scored_as_of).to_dict("records"):
                rows.append({"run_id": run_id, "term": term, "as_of_date": arrived.as_of_date,
                             "scored_run_id": run["run_id"], "scored_term": run["term"], "scored_as_of": scored_as_of,
                             "list_basis": run["list_basis"],
                             "outcome_definition": outcome_definition(definition).versioned_name, **entry})
    return pd.DataFrame(rows)


def store_flag_outcomes(con: duckdb.DuckDBPyConnection, term: str, frame: pd.DataFrame) -> None:
    """Replace the term's rows of :data:`OUTCOMES_TABLE`."""
    create_tables(con, "warehouse", [OUTCOMES_TABLE])
    delete_rows(con, OUTCOMES_TABLE, {"term": term})
    if len(frame):
        append_rows(con, OUTCOMES_TABLE, frame)
