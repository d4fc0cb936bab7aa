from datetime import date

from ews.config import TermCalendar
from ews.terms import Term
from pipelines.schedule import build_deployment, schedule_crons, term_on


def test_term_on_picks_the_latest_as_of_day():
    calendar = TermCalendar()
    assert term_on(date(2025, 11, 15), calendar) == Term.parse("2025/26-H1")
    assert term_on(date(2025, 11, 14), calendar) == Term.parse("2024/25-H2")
    assert term_on(date(2026, 4, 15), calendar) == Term.parse("2025/26-H2")
    assert term_on(date(2026, 1, 10), calendar) == Term.parse("2025/26-H1")


def test_the_deployment_runs_on_each_terms_as_of_day(finished_run, monkeypatch):
    from .conftest import use_state

    use_state(monkeypatch, finished_run.state_dir, finished_run.synthetic_dir)
    deployment = build_deployment("termly")
    crons = sorted(s.schedule.cron for s in deployment.schedules)
    assert crons == sorted(["0 6 15 11 *", "0 6 15 4 *"])
    assert all(s.schedule.timezone == "Europe/Copenhagen" for s in deployment.schedules)
    assert deployment.flow_name == "termly-run-scheduled"


def test_crons_follow_the_config_calendar():
    from types import SimpleNamespace

    calendar = TermCalendar(h1={"start": "08-01", "end": "01-31", "as_of": "10-01"})
    assert schedule_crons(SimpleNamespace(terms=calendar)) == ["0 6 1 10 *", "0 6 15 4 *"]
