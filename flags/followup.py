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
from typing import Any

import duckdb
import pandas as pd

from ews.tables import create_tables
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



def ensure_reviews_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``reviews_decisions`` if missing."""
    create_tables(con, "warehouse", ["reviews_decisions"])


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


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _as_date(value: Any) -> date | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class FollowUp:
    """The follow-up state of one flag.

    Attributes:
        pupil_id: The pupil's pseudonym.
        state: A key of :data:`FOLLOWUP_STATES`.
        review_due: The last day to review the flag (as-of date + ``review_within_days``).
        decision: The decision in force (None: not reviewed).
        dismiss_reason: Its reason, for a dismissal.
        step: The latest step on the indsatstrappe recorded for the flag.
        responsible: The user name responsible for the follow-up (None: none set).
        next_step_date: When the next step is due.
        days_overdue: Days past the review deadline or the next step (0 when not overdue).
        family_contacted: Whether a review recorded that the family was contacted.
    """

    pupil_id: str
    state: str
    review_due: date | None
    decision: str | None
    dismiss_reason: str | None
    step: str | None
    responsible: str | None
    next_step_date: date | None
    days_overdue: int
    family_contacted: bool

    @property
    def overdue(self) -> bool:
        """Whether the follow-up duty is not met."""
        return self.state in OVERDUE_STATES


def _reviews_in_force(flag: dict[str, Any], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reviews that apply to a flag, oldest first (as ``dashboards.access.effective_review``).

    Reviews of the flag's term apply; earlier terms' reviews carry over while the pupil stayed
    on the list (status ``fortsat`` or ``ikke_laengere``); a pupil back on the list (``ny``)
    needs a fresh review.
    """
    term = str(flag["term"])
    if flag.get("status") == "ny":
        return [r for r in history if str(r["term"]) == term]
    return [r for r in history if str(r["term"]) <= term]


def follow_up_flag(flag: dict[str, Any], history: list[dict[str, Any]], today: date,
                   review_within_days: int) -> FollowUp:
    """The follow-up state of one flag.

    Args:
        flag: The flag (``pupil_id``, ``term``, ``status``, ``as_of_date``).
        history: The pupil's reviews (``review_id``, ``term``, ``decision``, ``dismiss_reason``,
            ``step``, ``responsible``, ``next_step_date``), any order.
        today: The day the state is computed for.
        review_within_days: The config's ``followup.review_within_days``.

    Returns:
        The state, the deadlines and what the reviews recorded.
    """
    reviews = sorted(_reviews_in_force(flag, history), key=lambda r: int(r["review_id"]))
    as_of = _as_date(flag.get("as_of_date"))
    due = as_of + timedelta(days=review_within_days) if as_of is not None else None
    base = {"pupil_id": str(flag["pupil_id"]), "review_due": due}
    if not reviews:
        late = (today - due).days if due is not None else 0
        state = "ikke_vurderet_i_tide" if late > 0 else "afventer_vurdering"
        return FollowUp(**base, state=state, decision=None, dismiss_reason=None, step=None, responsible=None,
                        next_step_date=None, days_overdue=max(late, 0), family_contacted=False)
    latest = reviews[-1]
    since_dismissal = reviews
    dismissals = [i for i, r in enumerate(reviews) if r["decision"] == "afvist"]
    if dismissals:
        since_dismissal = reviews[dismissals[-1] + 1:]
    steps = [_text(r.get("step")) for r in since_dismissal if _text(r.get("step"))]
    contacted = any(r["decision"] == "familie_kontaktet" for r in since_dismissal)
    if latest["decision"] == "afvist":
        return FollowUp(**base, state="afvist", decision="afvist", dismiss_reason=_text(latest.get("dismiss_reason")),
                        step=None, responsible=None, next_step_date=None, days_overdue=0,
                        family_contacted=any(r["decision"] == "familie_kontaktet" for r in reviews))
    plans = [r for r in since_dismissal if _text(r.get("responsible")) and _as_date(r.get("next_step_date"))]
    common = {**base, "decision": str(latest["decision"]), "dismiss_reason": None,
              "step": steps[-1] if steps else None, "family_contacted": contacted}
    if not plans:
        return FollowUp(**common, state="uden_naeste_skridt", responsible=None, next_step_date=None,
                        days_overdue=0)
    plan = plans[-1]
    next_step = _as_date(plan["next_step_date"])
    late = (today - next_step).days if next_step is not None else 0
    return FollowUp(**common, state="naeste_skridt_overskredet" if late > 0 else "i_gang",
                    responsible=_text(plan["responsible"]), next_step_date=next_step, days_overdue=max(late, 0))


def follow_up(flags: pd.DataFrame, reviews: pd.DataFrame | list[dict[str, Any]], today: date,
              review_within_days: int) -> list[FollowUp]:
    """The follow-up state of every flag of a list that carries a duty.

    A flag carries the duty when the pupil is on the list (``ny``, ``fortsat``), or is no longer
    on it but a review in force keeps the flag active (the network's work goes on).

    Args:
        flags: Flags of one run (``pupil_id``, ``term``, ``status``, ``as_of_date``).
        reviews: Every review of the app (as :meth:`dashboards.store.AppStore.all_reviews`).
        today: The day the state is computed for.
        review_within_days: The config's ``followup.review_within_days``.

    Returns:
        One :class:`FollowUp` per flag with a duty, overdue ones first (most days first).
    """
    records = reviews.to_dict("records") if isinstance(reviews, pd.DataFrame) else list(reviews)
    by_pupil: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_pupil.setdefault(str(record["pupil_id"]), []).append(record)
    result = []
    for flag in flags.to_dict("records"):
        state = follow_up_flag(flag, by_pupil.get(str(flag["pupil_id"]), []), today, review_within_days)
        if flag.get("status") == "ikke_laengere" and state.state in ("afventer_vurdering", "ikke_vurderet_i_tide",
                                                                      "afvist"):
            continue
        result.append(state)
    order = list(FOLLOWUP_STATES)
    return sorted(result, key=lambda f: (order.index(f.state), -f.days_overdue, f.pupil_id))


@dataclass(frozen=True)
class NetworkSummary:
    """What happened to a network's flags in a term (the termly follow-up summary).

    Attributes:
        network_id: The network.
        term: The term.
        flagged: Pupils on the list (new or still flagged).
        reviewed: Of them, with a UU review in force.
        confirmed: Of them, confirmed (any decision that keeps the flag active).
        dismissed: Of them, dismissed.
        dismiss_reasons: Dismissals per reason code.
        families_contacted: Pupils whose family was contacted (a review says so).
        steps: Pupils per step on the indsatstrappe (the latest step recorded).
        states: Flags (with a duty) per follow-up state.
        overdue: Flags (with a duty) whose follow-up is overdue.
        continued: Pupils no longer on the list whose flag stays active.
    """

    network_id: str
    term: str
    flagged: int
    reviewed: int
    confirmed: int
    dismissed: int
    dismiss_reasons: dict[str, int] = field(default_factory=dict)
    families_contacted: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    continued: int = 0


def network_summary(network_id: str, term: str, flags: pd.DataFrame, follow_ups: list[FollowUp]
                    ) -> NetworkSummary:
    """Count a network's term: flagged, reviewed, confirmed, dismissed, contacted, steps, overdue.

    Args:
        network_id: The network.
        term: The term.
        flags: The network's flags of the term's run (``pupil_id``, ``status``).
        follow_ups: From :func:`follow_up` over the same flags.

    Returns:
        The counts.
    """
    on_list = set(flags.loc[flags["status"].isin(["ny", "fortsat"]), "pupil_id"].astype(str))
    listed = [f for f in follow_ups if f.pupil_id in on_list]
    reviewed = [f for f in listed if f.decision is not None]
    dismissed = [f for f in listed if f.decision == "afvist"]
    return NetworkSummary(
        network_id=network_id, term=term, flagged=len(on_list), reviewed=len(reviewed),
        confirmed=sum(1 for f in listed if f.decision in ACTIVE_DECISIONS), dismissed=len(dismissed),
        dismiss_reasons=dict(Counter(str(f.dismiss_reason) for f in dismissed)),
        families_contacted=sum(1 for f in follow_ups if f.family_contacted),
        steps=dict(Counter(f.step for f in follow_ups if f.step and f.decision in ACTIVE_DECISIONS)),
        states=dict(Counter(f.state for f in follow_ups)),
        overdue=sum(1 for f in follow_ups if f.overdue),
        continued=sum(1 for f in follow_ups if f.pupil_id not in on_list),
    )
