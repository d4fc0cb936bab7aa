"""Mark history: first, latest, change and the year's mean of the standing marks."""

from __future__ import annotations

import math
from datetime import date

import pytest

from features.build import build_features
from features.catalogue import FEATURE_SOURCE_KINDS, FEATURES, feature_spec, features_by_source

AS_OF = date(2020, 11, 15)


def _mark(pupil: str, subject: str, day: date, mark: int, grade: int, kind: str = "standpunkt") -> dict:
    return {"pupil_id": pupil, "school_code": "S1", "grade": grade, "subject": subject,
            "mark_kind": kind, "mark_date": day, "mark": mark}


@pytest.fixture
def marked(con, rows):
    rows.insert(con, "clean_pupils", rows.pupil_years("pA", "S1", 2018, 5, 3, date(2018, 8, 1))
                + rows.pupil_years("pB", "S1", 2018, 5, 3, date(2018, 8, 1))
                + rows.pupil_years("pC", "S1", 2018, 5, 3, date(2018, 8, 1)))
    rows.insert(con, "clean_marks", [
        # pA: marks from grade 6 (a municipality that exports them), falling in Danish
        _mark("pA", "dansk", date(2019, 1, 15), 10, 5),
        _mark("pA", "dansk", date(2019, 6, 15), 7, 5),
        _mark("pA", "dansk", date(2020, 1, 15), 4, 6),
        _mark("pA", "dansk", date(2020, 6, 15), 2, 6),
        _mark("pA", "matematik", date(2020, 1, 15), 7, 6),
        _mark("pA", "matematik", date(2020, 6, 15), 7, 6),
        _mark("pA", "dansk", AS_OF, -3, 7),  # on the as-of date: not yet known
        _mark("pA", "engelsk", date(2020, 6, 20), 12, 6, kind="afgangsproeve"),  # never a feature
        # pB: one mark only
        _mark("pB", "engelsk", date(2018, 6, 15), 4, 5),
    ])
    return con


def _row(frame, pupil):
    found = frame[frame["pupil_id"] == pupil]
    assert len(found) == 1
    return found.iloc[0]


def test_first_latest_change_and_year_mean(marked, config):
    frame = build_features(marked, config, [AS_OF])
    a = _row(frame, "pA")
    assert a["marks_mean_latest"] == pytest.approx((2 + 7) / 2)
    assert a["marks_mean_first"] == pytest.approx((10 + 7) / 2)
    assert a["marks_change"] == pytest.approx(((2 - 10) + (7 - 7)) / 2)
    # last year: 15 Jan 2020 and 15 Jun 2020 marks (Danish 4, 2; maths 7, 7)
    assert a["marks_mean_12m"] == pytest.approx((4 + 2 + 7 + 7) / 4)
    assert a["marks_below_02_count"] == 0 and a["marks_data_available"] == 1


def test_one_mark_has_no_change_and_old_marks_no_year_mean(marked, config):
    frame = build_features(marked, config, [AS_OF])
    b = _row(frame, "pB")
    assert b["marks_mean_first"] == b["marks_mean_latest"] == 4
    assert math.isnan(b["marks_change"])  # missing, never zero
    assert math.isnan(b["marks_mean_12m"])
    c = _row(frame, "pC")
    assert c["marks_data_available"] == 0 and math.isnan(c["marks_mean_first"])


def test_earlier_as_of_date_sees_only_earlier_marks(marked, config):
    frame = build_features(marked, config, [date(2019, 11, 15)])
    a = _row(frame, "pA")
    assert a["marks_mean_first"] == 10 and a["marks_mean_latest"] == 7 and a["marks_change"] == -3


def test_mark_history_is_in_the_catalogue_with_directions():
    for name in ("marks_mean_first", "marks_change", "marks_mean_12m"):
        spec = feature_spec(name)
        assert spec.family == "laering" and spec.unit == "karakter" and spec.monotone == -1
        assert spec.sources == ("marks",) and spec.actionable
        assert len(spec.description_da) <= 60  # short enough to be a reason label


def test_every_feature_names_its_sources():
    by_source = features_by_source()
    assert set(by_source) == set(FEATURE_SOURCE_KINDS)
    for spec in FEATURES:
        assert spec.sources and set(spec.sources) <= set(FEATURE_SOURCE_KINDS), spec.name
        for kind in spec.sources:
            assert spec.name in by_source[kind]
    assert "test_reading_latest_z" in by_source["tests"]
    assert "notifications_12m" in by_source["contacts"]
    assert "contacts_ppr_per_year" in by_source["pupils"]
    assert "absence_total_pct_12m" not in by_source["tests"]
