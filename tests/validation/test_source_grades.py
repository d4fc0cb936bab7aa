"""The grade contract follows the source config: marks from earlier grades where declared."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from pydantic import ValidationError

from ews.config import SourceConfig, default_sources
from ews.terms import Term
from tests.validation.validation_corpus import typed_frame
from validation.gate import ValidationContext, validate_source

SOURCES = {s["name"]: s for s in default_sources()}


def _marks_source(**changes: object) -> SourceConfig:
    return SourceConfig.model_validate({**SOURCES["marks"], **changes})


def _context() -> ValidationContext:
    return ValidationContext(term=Term.parse("2025/26-H1"), today=date(2025, 11, 20),
                             known_pupils=pd.Index(["pa"]), school_codes=frozenset({"101"}))


def _marks(grades: list[int]) -> pd.DataFrame:
    rows = [{"pupil_id": "pa", "birth_year": 2012.0 - (grade - 6), "school_code": "101",
             "grade": grade, "subject": subject, "mark_kind": "standpunkt",
             "mark_date": date(2025, 1, 10 + i), "mark": 7}
            for i, (grade, subject) in enumerate(zip(grades, ["dansk", "matematik", "engelsk"],
                                                     strict=False))]
    frame = typed_frame(rows, "karakterer_2024-25.xlsx")
    frame["grade"] = frame["grade"].astype("Int64")
    frame["mark"] = frame["mark"].astype("Int64")
    return frame


def _reasons(outcome) -> list[str]:  # noqa: ANN001
    return outcome.quarantine["reason"].tolist()


def test_without_grades_every_folkeskole_grade_is_accepted():
    outcome = validate_source(_marks([6, 7, 9]), _marks_source(), _context())
    assert _reasons(outcome) == []


def test_declared_grades_accept_early_marks_and_quarantine_the_rest():
    outcome = validate_source(_marks([6, 5, 9]), _marks_source(grades=[6, 10]), _context())
    assert _reasons(outcome) == [
        "grade_out_of_range: grade 5 is not a grade this source is configured for (6-10)"]
    strict = validate_source(_marks([7, 8, 9]), _marks_source(grades=[8, 10]), _context())
    assert [r.split(":")[0] for r in _reasons(strict)] == ["grade_out_of_range"]


@pytest.mark.parametrize("grades", [[9, 8], [-1, 10], [6], [6, 11]])
def test_bad_grade_ranges_are_refused_with_the_config(grades):
    with pytest.raises(ValidationError, match="grades"):
        _marks_source(grades=grades)


def test_a_kind_without_grades_cannot_declare_them():
    with pytest.raises(ValidationError, match="has no grade column"):
        SourceConfig.model_validate({**SOURCES["absence"], "grades": [5, 9]})
