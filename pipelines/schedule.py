"""The termly schedule: a Prefect deployment that runs the flow on each term's as-of day."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow
from prefect.schedules import Cron

from ews.config import MunicipalityConfig, TermCalendar, load_config
from ews.settings import get_settings
from ews.terms import Term
from pipelines.flows import run_term

TIMEZONE = "Europe/Copenhagen"


def term_on(day: date, calendar: TermCalendar) -> Term:
    """The term whose as-of date falls on or before ``day`` most recently.

    Args:
        day: A date.
        calendar: The term calendar.

    Returns:
        The term to run on that day.
    """
    start_year = day.year if day.month >= 8 else day.year - 1
    term = Term(start_year + 1, 1)
    while calendar.as_of_date(term) > day:
        term = term.previous()
    return term


def schedule_crons(config: MunicipalityConfig, hour: int = 6) -> list[str]:
    """Cron expressions for the as-of day of each half (H1 and H2).

    Args:
        config: The municipality config (its term calendar).
        hour: Hour of the day to start.

    Returns:
        One cron expression per half.
    """
    crons = []
    for window in (config.terms.h1, config.terms.h2):
        month, day = (int(part) for part in window.as_of.split("-"))
        crons.append(f"0 {hour} {day} {month} *")
    return crons


@flow(name="termly-run-scheduled", validate_parameters=False)
def scheduled_termly_flow() -> dict[str, Any]:
    """Work out the term from today's date and run it."""
    settings = get_settings()
    config = load_config(settings.resolved_config_path)
    return run_term(str(term_on(settings.today_date(), config.terms)), publish=True)


def build_deployment(name: str = "termly") -> Any:
    """The deployment ``ews schedule`` serves (a test checks its schedules).

    Args:
        name: Deployment name.

    Returns:
        A ``RunnerDeployment``.
    """
    config = load_config(get_settings().resolved_config_path)
    return scheduled_termly_flow.to_deployment(
        name=name,
        schedules=[Cron(cron, timezone=TIMEZONE) for cron in schedule_crons(config)],
        description="Termly early-warning run on each term's as-of day",
        tags=["ews", "termly"],
    )


def serve_schedule(name: str = "termly") -> None:
    """Serve the termly deployment until stopped."""
    from prefect import serve

    serve(build_deployment(name))
