from datetime import date

import pandas as pd
import pytest

from ews.terms import Term
from features.timechop import (
    LeakageError,
    NotEnoughHistoryError,
    Split,
    assert_split_is_causal,
    label_rows,
    plan_split,
    required_as_of_dates,
    term_as_of_dates,
)


def _labels(cohorts=("2019/20", "2020/21", "2021/22", "2022/23", "2023/24")):
    rows = []
    for i, cohort in enumerate(cohorts):
        year = int(cohort[:4])
        for p in range(3):
            rows.append({"pupil_id": f"c{i}p{p}", "cohort": cohort,
                         "assessed_date": date(year, 12, 1 + p), "outcome": p == 0})
    return pd.DataFrame(rows)


def test_only_cohorts_fully_assessed_before_the_as_of_date_are_used():
    labels = _labels()
    split = plan_split(labels, "2023/24-H1", date(2023, 11, 15), evaluation_cohorts=1)
    # 2023/24 is assessed in December 2023, after the as-of date: not known yet
    assert split.training_cohorts == ("2019/20", "2020/21", "2021/22")
    assert split.evaluation_cohorts == ("2022/23",)
    assert split.label_cutoff == date(2022, 12, 3)
    assert split.label_cutoff < split.as_of_date
    later = plan_split(labels, "2024/25-H1", date(2024, 11, 15), evaluation_cohorts=2)
    assert later.training_cohorts == ("2019/20", "2020/21", "2021/22")
    assert later.evaluation_cohorts == ("2022/23", "2023/24")


def test_a_cohort_partly_assessed_is_not_known():
    labels = _labels()
    # on 2 December 2022 only one pupil of 2022/23 has been assessed
    split = plan_split(labels, "x", date(2022, 12, 2), evaluation_cohorts=1)
    assert "2022/23" not in split.training_cohorts + split.evaluation_cohorts


def test_too_little_history_is_refused_with_a_reason():
    with pytest.raises(NotEnoughHistoryError, match="evaluation_cohorts"):
        plan_split(_labels(("2019/20", "2020/21")), "2021/22-H1", date(2021, 11, 15), evaluation_cohorts=2)


def test_rows_are_kept_only_in_training_grades_and_before_the_outcome():
    labels = _labels(("2019/20",))
    pupil_dates = pd.DataFrame({
        "pupil_id": ["c0p0", "c0p0", "c0p0", "c0p1", "c0p2", "other"],
        "as_of_date": [date(2018, 11, 15), date(2019, 11, 15), date(2020, 4, 15), date(2019, 11, 15),
                       date(2019, 11, 15), date(2019, 11, 15)],
        "grade": [7, 8, 8, 4, 8, 8],
    })
    rows = label_rows(pupil_dates, labels, ["2019/20"], grades=[5, 6, 7, 8])
    # April 2020 is after the December 2019 assessment; grade 4 is outside; 'other' has no label
    assert list(zip(rows["pupil_id"], rows["as_of_date"], strict=True)) == [
        ("c0p0", date(2018, 11, 15)), ("c0p0", date(2019, 11, 15)), ("c0p2", date(2019, 11, 15))]
    assert rows["outcome"].tolist() == [1, 1, 0]


def test_duplicate_labels_are_refused():
    labels = pd.concat([_labels(("2019/20",)), _labels(("2019/20",))])
    with pytest.raises(LeakageError, match="more than one outcome"):
        label_rows(pd.DataFrame({"pupil_id": [], "as_of_date": [], "grade": []}), labels, ["2019/20"], [8])


def test_a_split_that_uses_later_labels_is_caught():
    labels = _labels()
    bad = Split("2022/23-H1", date(2022, 11, 15), ("2019/20", "2020/21"), ("2022/23",), date(2022, 12, 3))
    with pytest.raises(LeakageError, match="2022/23"):
        assert_split_is_causal(bad, labels)
    overlapping = Split("x", date(2030, 1, 1), ("2019/20", "2020/21"), ("2020/21",), date(2021, 1, 1))
    with pytest.raises(LeakageError, match="both trained on and held out"):
        assert_split_is_causal(overlapping, labels)
    good = plan_split(labels, "2024/25-H1", date(2024, 11, 15), 2)
    assert_split_is_causal(good, labels)


def test_as_of_dates_of_terms(config):
    dates = term_as_of_dates(Term.parse("2019/20-H1"), Term.parse("2020/21-H1"), config.terms.as_of_date)
    assert [(a.term, a.as_of_date) for a in dates] == [
        ("2019/20-H1", date(2019, 11, 15)), ("2019/20-H2", date(2020, 4, 15)), ("2020/21-H1", date(2020, 11, 15))]
    split = plan_split(_labels(), "2021/22-H1", date(2021, 11, 15), 1)
    assert split.label_cutoff == date(2020, 12, 3)
    assert [a.as_of_date for a in required_as_of_dates(dates, split)] == [
        date(2019, 11, 15), date(2020, 4, 15), date(2020, 11, 15)]
    early = plan_split(_labels(), "2020/21-H1", date(2020, 11, 15), 0)
    assert [a.as_of_date for a in required_as_of_dates(dates, early)] == [date(2019, 11, 15)]
