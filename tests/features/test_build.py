import math
from datetime import date, timedelta

import numpy as np
import pytest

from features.build import (
    FEATURES_TABLE,
    KEY_COLUMNS,
    as_of_batches,
    build_features,
    design_matrix,
    term_of_date,
    write_features,
)
from features.catalogue import FEATURE_NAMES

AS_OF = date(2019, 11, 15)


def _week(pupil, start, end, school_days=5.0, ill=0.0, auth=0.0, unauth=0.0, late=0):
    return {"pupil_id": pupil, "school_code": "S1", "period_start": start, "period_end": end,
            "school_days": school_days, "illness_days": ill, "authorised_days": auth,
            "unauthorised_days": unauth, "late_arrivals": late}


@pytest.fixture
def filled(con, rows):
    insert, pupil_years = rows.insert, rows.pupil_years
    # pA: at S1 (reports absence) since 2018; pB: moved from S1 to S2 (no absence reporting)
    # in August 2019; pC: left before the as-of date; pD: grade 4, outside the grades.
    pupils = (pupil_years("pA", "S1", 2018, 4, 3, date(2018, 8, 1))
              + [{**pupil_years("pB", "S1", 2018, 4, 1, date(2018, 8, 1))[0]},
                 *pupil_years("pB", "S2", 2019, 5, 2, date(2019, 8, 12))]
              + [{**pupil_years("pC", "S1", 2019, 5, 1, date(2019, 8, 1))[0], "enrolled_to": date(2019, 10, 1)}]
              + pupil_years("pD", "S1", 2019, 4, 1, date(2019, 8, 1)))
    insert(con, "clean_pupils", pupils)
    insert(con, "clean_absence", [
        _week("pA", date(2018, 10, 1), date(2018, 10, 5), unauth=5.0),            # only in 'all'
        _week("pA", date(2019, 3, 4), date(2019, 3, 8), ill=1.0, late=1),          # 12m, not 6m
        _week("pA", date(2019, 9, 2), date(2019, 9, 6), auth=1.0, unauth=1.0, late=2),
        _week("pA", date(2019, 9, 9), date(2019, 9, 13), unauth=3.0),              # spell starts
        _week("pA", date(2019, 9, 16), date(2019, 9, 20), unauth=5.0),             # spell: 8 days
        _week("pA", date(2019, 11, 11), date(2019, 11, 15), ill=5.0),              # ends on the as-of date
        _week("pB", date(2019, 3, 4), date(2019, 3, 8), ill=0.5),
    ])
    insert(con, "clean_contacts", [
        {"pupil_id": "pA", "contact_date": date(2018, 1, 10), "discipline": "ppr", "contact_type": "kontakt"},
        {"pupil_id": "pA", "contact_date": date(2019, 3, 1), "discipline": "ppr", "contact_type": "kontakt"},
        {"pupil_id": "pA", "contact_date": date(2019, 10, 1), "discipline": "socialraadgiver",
         "contact_type": "underretning"},
        {"pupil_id": "pA", "contact_date": AS_OF, "discipline": "ppr", "contact_type": "kontakt"},
        {"pupil_id": "pA", "contact_date": date(2019, 12, 1), "discipline": "uu", "contact_type": "kontakt"},
    ])
    insert(con, "clean_support", [
        {"pupil_id": "pB", "support_type": "specialklasse", "start_date": date(2019, 1, 1),
         "end_date": date(2019, 6, 30)},
        {"pupil_id": "pB", "support_type": "stoettetimer", "start_date": date(2019, 10, 1), "end_date": None},
        {"pupil_id": "pA", "support_type": "specialskole", "start_date": date(2020, 1, 1), "end_date": None},
    ])
    tests = [{"pupil_id": f"f{i}", "school_code": "S1", "grade": 4, "subject": "dansk_laesning",
              "test_date": date(2019, 3, 10), "score": float(i + 1), "scale": "NT"} for i in range(1, 11)]
    tests += [
        {"pupil_id": "pA", "school_code": "S1", "grade": 4, "subject": "dansk_laesning",
         "test_date": date(2019, 3, 10), "score": 12.0, "scale": "NT"},
        {"pupil_id": "pB", "school_code": "S1", "grade": 4, "subject": "dansk_laesning",
         "test_date": date(2019, 3, 10), "score": 1.0, "scale": "NT"},
        {"pupil_id": "pA", "school_code": "S1", "grade": 5, "subject": "dansk_laesning",
         "test_date": date(2020, 3, 10), "score": 1.0, "scale": "NT"},
    ]
    insert(con, "clean_tests", tests)
    return con


def _row(frame, pupil):
    rows = frame[frame["pupil_id"] == pupil]
    assert len(rows) == 1
    return rows.iloc[0]


def test_rows_are_the_pupils_enrolled_in_the_grades_on_the_as_of_date(filled, config):
    frame = build_features(filled, config, [AS_OF])
    assert sorted(frame["pupil_id"]) == ["pA", "pB"]
    assert list(frame.columns[: len(KEY_COLUMNS)]) == list(KEY_COLUMNS)
    assert set(FEATURE_NAMES) <= set(frame.columns)
    row = _row(frame, "pB")
    assert (row["school_code"], row["network_id"], row["grade"], row["term"]) == ("S2", "N2", 5, "2019/20-H1")
    assert build_features(filled, config, [AS_OF], grades=[4])["pupil_id"].tolist() == ["pD"]


def test_absence_windows_use_only_periods_ending_before_the_as_of_date(filled, config):
    row = _row(build_features(filled, config, [AS_OF]), "pA")
    assert row["absence_total_pct_6m"] == pytest.approx(100 * 10 / 15, abs=1e-5)
    assert row["absence_unauthorised_pct_6m"] == pytest.approx(60.0)
    assert row["absence_authorised_pct_6m"] == pytest.approx(100 / 15, abs=1e-5)
    assert row["absence_total_pct_12m"] == pytest.approx(55.0)
    assert row["absence_illness_pct_12m"] == pytest.approx(5.0)
    assert row["absence_total_pct_all"] == pytest.approx(64.0)
    assert row["late_arrivals_per_100_days_12m"] == pytest.approx(15.0)
    assert row["absence_longest_spell_days_12m"] == pytest.approx(8.0)
    assert row["absence_concerning_12m"] == 1.0
    assert row["absence_data_available"] == 1.0


def test_missing_absence_is_missing_not_zero(filled, config):
    frame = build_features(filled, config, [date(2020, 11, 16)])
    row = _row(frame, "pB")  # S2 reports no absence; the last S1 row is over a year old
    assert math.isnan(row["absence_total_pct_12m"]) and math.isnan(row["absence_concerning_12m"])
    assert math.isnan(row["school_absence_pct_12m"])
    assert row["absence_data_available"] == 0.0


def test_contacts_support_and_moves(filled, config):
    frame = build_features(filled, config, [AS_OF])
    a, b = _row(frame, "pA"), _row(frame, "pB")
    assert (a["contacts_ppr_12m"], a["contacts_ppr_ever"]) == (1.0, 2.0)
    assert a["contacts_ppr_days_since"] == (AS_OF - date(2019, 3, 1)).days
    assert math.isnan(a["contacts_uu_days_since"]) and a["contacts_uu_ever"] == 0.0
    assert (a["notifications_12m"], a["notifications_ever"]) == (1.0, 1.0)
    assert (a["support_active_level"], a["support_ever"]) == (0.0, 0.0)
    assert (b["support_active_level"], b["support_ever"], b["support_max_level"]) == (1.0, 1.0, 2.0)
    assert (b["school_moves_ever"], b["school_moves_12m"]) == (1.0, 1.0)
    assert b["days_at_current_school"] == (AS_OF - date(2019, 8, 12)).days
    assert a["school_moves_ever"] == 0.0


def test_tests_are_normal_scores_within_their_sitting(filled, config):
    frame = build_features(filled, config, [AS_OF])
    a, b = _row(frame, "pA"), _row(frame, "pB")
    assert a["test_reading_latest_z"] == pytest.approx(1.7317, abs=2e-3)  # rank 12 of 12
    assert b["test_reading_latest_z"] == pytest.approx(-1.7317, abs=2e-3)
    assert a["test_mean_z"] == pytest.approx(a["test_reading_latest_z"])
    assert math.isnan(a["test_math_latest_z"]) and math.isnan(a["test_reading_change_z"])
    assert a["test_data_available"] == 1.0


def test_write_features_replaces_the_as_of_date(filled, config):
    frame = build_features(filled, config, [AS_OF, date(2020, 4, 15)])
    assert write_features(filled, frame) == len(frame)
    assert write_features(filled, frame[frame["as_of_date"] == AS_OF]) == 2
    stored = filled.execute(f"SELECT as_of_date, count(*) FROM {FEATURES_TABLE} GROUP BY 1 ORDER BY 1").fetchall()
    assert stored == [(AS_OF, 2), (date(2020, 4, 15), 2)]
    types = dict(filled.execute(f"SELECT column_name, data_type FROM information_schema.columns "
                                f"WHERE table_name = '{FEATURES_TABLE}'").fetchall())
    assert types["as_of_date"] == "DATE" and types["absence_total_pct_6m"] == "DOUBLE"


def test_design_matrix_follows_the_given_order(filled, config):
    frame = build_features(filled, config, [AS_OF])
    matrix = design_matrix(frame, ["grade", "absence_total_pct_12m"])
    assert matrix.shape == (2, 2) and matrix.dtype == "float64"
    assert list(matrix[:, 0]) == [5.0, 5.0]


def test_term_of_date(config):
    assert str(term_of_date(config.terms, date(2019, 11, 15))) == "2019/20-H1"
    assert str(term_of_date(config.terms, date(2020, 4, 15))) == "2019/20-H2"
    assert str(term_of_date(config.terms, date(2020, 7, 15))) == "2019/20-H2"


def _reference_absence(absence, pupil, as_of):
    """The absence windows and the longest spell as the catalogue defines them, row by row."""
    cut_6m, cut_12m = as_of - timedelta(days=182), as_of - timedelta(days=365)
    mine = [r for r in absence if r["pupil_id"] == pupil and r["period_end"] < as_of]
    total = {"all": 0.0, "6m": 0.0, "12m": 0.0}
    school = {"all": 0.0, "6m": 0.0, "12m": 0.0}
    for r in mine:
        days = r["illness_days"] + r["authorised_days"] + r["unauthorised_days"]
        for window, cut in (("all", date.min), ("6m", cut_6m), ("12m", cut_12m)):
            if r["period_end"] >= cut:
                total[window] += days
                school[window] += r["school_days"]
    periods = {}  # rows with the same end date are one period
    for r in mine:
        days = r["illness_days"] + r["authorised_days"] + r["unauthorised_days"]
        period = periods.setdefault(r["period_end"], [0.0, 0.0])
        period[0] += days
        period[1] += r["school_days"]
    longest, run = 0.0, 0.0
    for end in sorted(periods):
        days, school_days = periods[end]
        run = run + days if school_days > 0 and days >= 0.5 * school_days else 0.0
        if run and end >= cut_12m:
            longest = max(longest, run)
    return {
        "absence_total_pct_all": 100 * total["all"] / school["all"],
        "absence_total_pct_6m": 100 * total["6m"] / school["6m"] if school["6m"] else float("nan"),
        "absence_total_pct_12m": 100 * total["12m"] / school["12m"] if school["12m"] else float("nan"),
        "absence_longest_spell_days_12m": longest if school["12m"] else float("nan"),
    }


def test_absence_windows_and_spells_match_a_row_by_row_reference(con, rows, config):
    """Random weekly absence over three years for many pupils and four as-of dates at once.

    Runs are long enough to cross the start of the 12-month window (their days before it
    count) and some weeks are split over two schools (one period, two rows).
    """
    rng = np.random.default_rng(7)
    pupils, absence = [], []
    for i in range(40):
        pupil = f"p{i:02d}"
        pupils += rows.pupil_years(pupil, "S1", 2017, 3, 4, date(2017, 8, 1))
        start, level = date(2017, 8, 14) + timedelta(weeks=int(rng.integers(0, 20))), 0.0
        for week in range(150 - int(rng.integers(0, 40))):
            if rng.random() < 0.12:  # switch between attending and a spell of absence
                level = 0.0 if level else float(rng.choice([2.5, 3.0, 5.0]))
            monday = start + timedelta(weeks=week)
            days = level if level else float(rng.choice([0.0, 0.0, 0.0, 1.0, 2.0]))
            if rng.random() < 0.05:  # the week split over two schools: only together absent
                absence.append(_week(pupil, monday, monday + timedelta(days=4), school_days=2.0, ill=days / 2))
                absence.append({**_week(pupil, monday, monday + timedelta(days=4), school_days=3.0,
                                        unauth=days / 2), "school_code": "S2"})
            else:
                absence.append(_week(pupil, monday, monday + timedelta(days=4), unauth=days))
    rows.insert(con, "clean_pupils", pupils)
    rows.insert(con, "clean_absence", absence)
    as_of_dates = [date(2018, 11, 15), date(2019, 4, 15), date(2019, 11, 15), date(2020, 4, 15)]
    frame = build_features(con, config, as_of_dates, grades=[3, 4, 5, 6])
    assert len(frame) == 40 * 4
    crossing = 0
    for row in frame.itertuples():
        expected = _reference_absence(absence, row.pupil_id, row.as_of_date)
        for name, value in expected.items():
            assert getattr(row, name) == pytest.approx(value, abs=1e-6, nan_ok=True), (row.pupil_id, name)
        if expected["absence_longest_spell_days_12m"] > 0:
            year_days = _reference_absence(
                [r for r in absence if r["period_end"] >= row.as_of_date - timedelta(days=365)],
                row.pupil_id, row.as_of_date)["absence_longest_spell_days_12m"]
            crossing += year_days != expected["absence_longest_spell_days_12m"]
    assert crossing >= 3  # runs that began before the year, counted whole


def test_absence_days_are_summed_exactly_at_the_ten_percent_line(con, rows, config):
    """Fractions of days add up exactly: 0.1 + 0.2 absent days of 3 school days are 10 %.

    In binary floating point 0.1 + 0.2 is 0.30000000000000004, the share 10.000000000000002 %,
    and the pupil would be "above 10 %"; summed as decimals it is exactly 10 %, not above.
    """
    rows.insert(con, "clean_pupils", rows.pupil_years("pA", "S1", 2018, 4, 2, date(2018, 8, 1)))
    rows.insert(con, "clean_absence", [
        _week("pA", date(2019, 9, 2), date(2019, 9, 6), school_days=1.5, ill=0.1),
        _week("pA", date(2019, 9, 9), date(2019, 9, 13), school_days=1.5, auth=0.2),
    ])
    row = _row(build_features(con, config, [AS_OF]), "pA")
    assert row["absence_total_pct_12m"] == 10.0
    assert row["absence_concerning_12m"] == 0.0


def test_one_as_of_date_is_one_batch_without_counting(config):
    """A scoring's single date needs no enrolment count: the connection has no tables at all."""
    import duckdb

    with duckdb.connect() as empty:
        assert as_of_batches(empty, config, [AS_OF, AS_OF], (5, 6), max_rows=1) == [[AS_OF]]
        assert as_of_batches(empty, config, [], (5, 6)) == []
