from datetime import date

import pytest

from ews.config import TermCalendar
from ews.terms import Term, parse_school_year, school_year_of, terms_between


def test_parse_and_print_round_trip():
    term = Term.parse("2025/26-H1")
    assert (term.start_year, term.half) == (2025, 1)
    assert str(term) == "2025/26-H1"
    assert term.school_year == "2025/26"


@pytest.mark.parametrize("text", ["2025/27-H1", "2025-26-H1", "2025/26-H3", "H1", "1999/00-H1x"])
def test_parse_rejects_malformed_terms(text):
    with pytest.raises(ValueError, match="not a term"):
        Term.parse(text)


def test_century_wrap_is_a_valid_school_year():
    assert Term.parse("1999/00-H2").start_year == 1999


def test_previous_and_next_cross_school_years():
    assert str(Term.parse("2025/26-H1").previous()) == "2024/25-H2"
    assert str(Term.parse("2024/25-H2").next()) == "2025/26-H1"
    assert [str(t) for t in terms_between(Term.parse("2024/25-H1"), Term.parse("2025/26-H1"))] == [
        "2024/25-H1", "2024/25-H2", "2025/26-H1"]


def test_as_of_dates_fall_in_their_term():
    calendar = TermCalendar()
    assert calendar.as_of_date(Term.parse("2025/26-H1")) == date(2025, 11, 15)
    assert calendar.as_of_date(Term.parse("2025/26-H2")) == date(2026, 4, 15)


def test_school_year_of_dates():
    assert school_year_of(date(2025, 8, 1)) == 2025
    assert school_year_of(date(2026, 7, 31)) == 2025
    assert parse_school_year("2019/20") == 2019
