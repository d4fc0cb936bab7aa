"""The follow-up duty in the app (issue 14): overdue lists on the consultant's and network's pages.

The states come from :mod:`flags.followup`, computed at request time from the run's flags and
the reviews in ``app.sqlite`` (the live record: a review made a minute ago counts). The day is
the app clock's date in Danish time.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from dashboards.web import AppContext
from ews.config import FollowUp as FollowUpConfig
from flags.followup import FOLLOWUP_STATES, OVERDUE_STATES, FollowUp, follow_up

DANISH_TIME = ZoneInfo("Europe/Copenhagen")


def today(ctx: AppContext) -> date:
    """The app's current day in Danish time (the store's clock, which tests set)."""
    return ctx.store.clock().astimezone(DANISH_TIME).date()


def review_within_days(ctx: AppContext) -> int:
    """The config's ``followup.review_within_days`` (the default without a config)."""
    config = ctx.config()
    return config.followup.review_within_days if config else FollowUpConfig().review_within_days


def follow_ups(ctx: AppContext, flags: pd.DataFrame) -> list[FollowUp]:
    """The follow-up state of every flag with a duty (overdue first)."""
    if flags.empty:
        return []
    return follow_up(flags, ctx.store.all_reviews(), today(ctx), review_within_days(ctx))


def overdue_rows(states: list[FollowUp], flags: pd.DataFrame, identities: dict[str, dict[str, Any]],
                 users: dict[str, str], named: set[str] | None = None) -> list[dict[str, Any]]:
    """The overdue flags as table rows.

    Args:
        states: From :func:`follow_ups`.
        flags: The same flags (school, status).
        identities: Pupil id -> identity row (names only where the viewer may see them).
        users: User name -> display name.
        named: When given, only these pupils are listed by name; the rest are left out (a
            network sees unreviewed flags only as a count).

    Returns:
        One dict per overdue flag: ``pupil_id``, ``name``, ``school_code``, ``state``,
        ``state_label``, ``deadline`` (the review deadline or the next step), ``days_overdue``,
        ``responsible``.
    """
    schools = dict(zip(flags["pupil_id"].astype(str), flags["school_code"], strict=False))
    rows = []
    for state in states:
        if not state.overdue or (named is not None and state.pupil_id not in named):
            continue
        identity = identities.get(state.pupil_id, {})
        name = " ".join(p for p in (identity.get("first_name"), identity.get("last_name")) if p) or None
        deadline = state.review_due if state.state == "ikke_vurderet_i_tide" else state.next_step_date
        rows.append({
            "pupil_id": state.pupil_id, "name": name, "school_code": schools.get(state.pupil_id),
            "state": state.state, "state_label": FOLLOWUP_STATES[state.state],
            "deadline": deadline.strftime("%d-%m-%Y") if deadline else "–",
            "days_overdue": state.days_overdue,
            "responsible": users.get(state.responsible or "", state.responsible) if state.responsible else None,
        })
    return rows


def state_counts(states: list[FollowUp]) -> list[tuple[str, str, int]]:
    """(state, Danish label, flags) for every follow-up state, in the pages' order."""
    counts = {key: 0 for key in FOLLOWUP_STATES}
    for state in states:
        counts[state.state] += 1
    return [(key, FOLLOWUP_STATES[key], counts[key]) for key in FOLLOWUP_STATES]


__all__ = ["OVERDUE_STATES", "follow_ups", "overdue_rows", "review_within_days", "state_counts", "today"]
