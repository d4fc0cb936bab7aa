"""A feature built from data dated after the as-of date is caught; the real features pass."""

from datetime import date

import pytest

from features.build import build_features
from features.leakage import check_no_lookahead, compare_features, warehouse_cut_at
from features.timechop import LeakageError

AS_OF = date(2019, 11, 15)


@pytest.fixture
def history(con, rows):
    """Two pupils with absence, contacts, tests, support and enrolments on both sides of the as-of date."""
    rows.insert(con, "clean_pupils", rows.pupil_years("pA", "S1", 2018, 4, 3, date(2018, 8, 1))
                + rows.pupil_years("pB", "S1", 2018, 4, 1, date(2018, 8, 1))
                + rows.pupil_years("pB", "S2", 2019, 5, 2, date(2019, 8, 12)))
    rows.insert(con, "clean_absence", rows.weeks("pA", "S1", date(2018, 8, 13), 90, [0, 1, 5, 5, 0.5], late=1)
                + rows.weeks("pB", "S1", date(2018, 8, 13), 45, [0.5, 2], kind="unauthorised_days"))
    rows.insert(con, "clean_contacts", [
        {"pupil_id": p, "contact_date": d, "discipline": "ppr", "contact_type": t}
        for p in ("pA", "pB") for d, t in ((date(2019, 3, 1), "kontakt"), (date(2019, 11, 14), "underretning"),
                                           (AS_OF, "kontakt"), (date(2020, 1, 5), "kontakt"))])
    rows.insert(con, "clean_support", [
        {"pupil_id": "pA", "support_type": "stoettetimer", "start_date": date(2019, 2, 1),
         "end_date": date(2020, 2, 1)},
        {"pupil_id": "pB", "support_type": "specialskole", "start_date": date(2019, 12, 1), "end_date": None}])
    rows.insert(con, "clean_tests", [
        {"pupil_id": f"f{i}", "school_code": "S1", "grade": 5, "subject": "matematik",
         "test_date": date(2019, 11, 1) if i < 9 else date(2019, 11, 20), "score": float(i), "scale": "OVERGANG"}
        for i in range(20)] + [
        {"pupil_id": "pA", "school_code": "S1", "grade": 5, "subject": "matematik",
         "test_date": date(2019, 11, 1), "score": 3.5, "scale": "OVERGANG"}])
    rows.insert(con, "clean_marks", [
        {"pupil_id": "pA", "school_code": "S1", "grade": 5, "subject": "dansk", "mark_kind": "standpunkt",
         "mark_date": date(2020, 1, 15), "mark": 2}])
    return con


def test_the_real_features_do_not_look_past_the_as_of_date(history, config):
    check_no_lookahead(history, config, [AS_OF, date(2020, 4, 15)])
    # and the cut really removes later data while it is active
    with warehouse_cut_at(history, AS_OF):
        latest = history.execute("SELECT max(contact_date) FROM clean_contacts").fetchone()[0]
    assert latest < AS_OF
    assert history.execute("SELECT max(contact_date) FROM clean_contacts").fetchone()[0] > AS_OF


def test_a_feature_built_from_later_data_is_caught(history, config):
    def leaky_build(con, cfg, as_of_dates, grades):
        frame = build_features(con, cfg, as_of_dates, grades)
        # the classic bug: counting contacts without the as-of filter
        counts = dict(con.execute(
            "SELECT pupil_id, count(*) FROM clean_contacts WHERE discipline = 'ppr' GROUP BY pupil_id").fetchall())
        return frame.assign(contacts_ppr_ever=frame["pupil_id"].map(counts).fillna(0).astype(float))

    with pytest.raises(LeakageError, match=r"contacts_ppr_ever \(2 pupils\)"):
        check_no_lookahead(history, config, [AS_OF], build=leaky_build)


def test_a_test_sitting_straddling_the_as_of_date_is_scored_on_its_known_part(history, config):
    frame = build_features(history, config, [AS_OF])
    z = frame.set_index("pupil_id").loc["pA", "test_math_latest_z"]
    # 10 tests are known before the as-of date (fillers 0-8 and pA's 3.5): pA ranks 5th,
    # the normal quantile of (5 - 0.5) / 10; the 11 later tests would move it
    assert z == pytest.approx(-0.12566, abs=1e-3)


def test_compare_features_counts_changed_values_and_rows(history, config):
    full = build_features(history, config, [AS_OF])
    changed = full.copy()
    changed.loc[0, "absence_total_pct_6m"] += 1
    assert compare_features(full, changed) == {"absence_total_pct_6m": 1}
    assert compare_features(full, full.iloc[:1]) == {"rows": 1}


def test_an_excluded_pupil_stays_excluded_inside_the_cut(history, config):
    """The cut shows the exclusion register as it is (it is not dated), so both builds leave the pupil out."""
    history.execute("CREATE TABLE clean_exclusions (pupil_id VARCHAR NOT NULL, excluded_on DATE NOT NULL)")
    history.execute("INSERT INTO clean_exclusions VALUES ('pB', DATE '2019-09-01')")
    check_no_lookahead(history, config, [AS_OF])
    with warehouse_cut_at(history, AS_OF):
        assert sorted(build_features(history, config, [AS_OF])["pupil_id"]) == ["pA"]
