"""Closing the loop on a flag (issue 14): the reviews in the warehouse and the follow-up duty.

Every run copies the review app's reviews (``app.sqlite``, read-only) into
``reviews_decisions`` of its staged warehouse, so flags, UU decisions and later outcomes can be
joined in SQL. The follow-up duty (*opfølgningspligt*) is computed from a network's flags and
the reviews in force: a flag not reviewed within ``followup.review_within_days`` days of its
term's as-of date is overdue, and so is a confirmed flag whose next step has passed (or that
has no responsible person and next step at all). The termly summary per network counts what
happened to the term's flags.

Pure functions of frames, except :func:`copy_reviews`, which writes through the connection it
is given.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

import duckdb
import pandas as pd

from ews.warehouse import replace_rows

REVIEWS_TABLE = "reviews_decisions"
#: The columns of ``reviews_decisions``, in order.
REVIEW_COLUMNS = ("review_id", "pupil_id", "term", "run_id", "network_id", "school_code", "decision",
                  "dismiss_reason", "step", "reviewer_role", "reviewed_at", "responsible_role",
                  "next_step_date")
#: Decisions that keep a flag active (the network works with the pupil); the rest is ``afvist``.
ACTIVE_DECISIONS = frozenset({"bekraeftet", "familie_kontaktet", "henvist_netvaerksmoede", "indsatstrappe"})

#: Follow-up states of a flag, in the order the pages list them.
FOLLOWUP_STATES: dict[str, str] = {
    "ikke_vurderet_i_tide": "Ikke vurderet inden fristen",
    "naeste_skridt_overskredet": "Næste skridt er overskredet",
    "uden_naeste_skridt": "Bekræftet uden ansvarlig og næste skridt",
    "afventer_vurdering": "Afventer vurdering (inden fristen)",
    "i_gang": "I gang (næste skridt er fastlagt)",
    "afvist": "Afvist",
}
#: The states that count as overdue (the follow-up duty is not met).
OVERDUE_STATES = ("ikke_vurderet_i_tide", "naeste_skridt_overskredet", "uden_naeste_skridt")


def _sql(name: str) -> str:
    return resources.files("flags").joinpath(name).read_text(encoding="utf-8")


def ensure_reviews_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``reviews_decisions`` if missing."""
    con.execute(_sql("reviews_table.sql"))


def copy_reviews(con: duckdb.DuckDBPyConnection, reviews: pd.DataFrame) -> dict[str, Any]:
    """Replace ``reviews_decisions`` with the app's reviews.

    Args:
        con: A connection to the staged warehouse (``ews.warehouse.staged_write``).
        reviews: From :func:`dashboards.store.read_reviews` (pseudonyms and codes only).

    Returns:
        ``reviews`` (rows copied), ``pupils`` and ``last_review_id`` (None without reviews), for
        the run manifest.
    """
    ensure_reviews_table(con)
    frame = reviews.reindex(columns=list(REVIEW_COLUMNS)).copy()
    frame["review_id"] = frame["review_id"].astype("int64")
    frame["reviewed_at"] = pd.to_datetime(frame["reviewed_at"], utc=True, format="ISO8601").dt.tz_localize(None)
    frame["next_step_date"] = pd.to_datetime(frame["next_step_date"], format="ISO8601").dt.date
    for column in REVIEW_COLUMNS:
        if column not in ("review_id", "reviewed_at", "next_step_date"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    replace_rows(con, REVIEWS_TABLE, frame)
    return {"reviews": int(len(frame)), "pupils": int(frame["pupil_id"].nunique()),
            "last_review_id": int(frame["review_id"].max()) if len(frame) else None}
