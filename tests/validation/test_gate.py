"""The gate over small inline frames shaped like the parsing step's output."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ews.config import SourceConfig, default_sources
from ews.pseudonym import CPR_LIKE
from ews.terms import Term
from tests.validation.validation_corpus import make_config, typed_frame
from validation.contracts import RowCheck, configurable_checks, key_hashes, prepare_frame, row_checks
from validation.engine import ContractError, VerdictCache, run_checks
from validation.errors import FileLevelError
from validation.gate import (
    QUARANTINE_COLUMNS,
    RESULT_COLUMNS,
    ValidationContext,
    combine_results,
    severity_problems,
    validate_source,
)
from validation.report import reason_codes

TODAY = date(2025, 11, 20)
SOURCES = {s["name"]: s for s in default_sources()}


def source(name: str, **changes: object) -> SourceConfig:
    return SourceConfig.model_validate({**SOURCES[name], **changes})


def context(**changes: object) -> ValidationContext:
    values = {"term": Term.parse("2025/26-H1"), "today": TODAY,
              "known_pupils": pd.Index(["pa", "pb", "pc"]), "school_codes": frozenset({"101", "102"})}
    return ValidationContext(**{**values, **changes})


def absence_rows(*overrides: dict) -> pd.DataFrame:
    base = {"pupil_id": "pa", "birth_year": 2014.0, "school_code": "101",
            "period_start": date(2025, 8, 4), "period_end": date(2025, 8, 8), "school_days": 5.0,
            "illness_days": 0.0, "authorised_days": 0.0, "unauthorised_days": 0.0, "late_arrivals": 0}
    rows = []
    for i, override in enumerate(overrides):
        start = override.get("period_start", date(2025, 8, 4) + timedelta(weeks=i))
        end = override.get("period_end", date(2025, 8, 8) + timedelta(weeks=i))
        rows.append({**base, "period_start": start, "period_end": end, **override})
    frame = typed_frame(rows, "fravaer_2025-26.csv")
    for column in ("school_days", "illness_days", "authorised_days", "unauthorised_days"):
        frame[column] = frame[column].astype("Float64")
    frame["late_arrivals"] = frame["late_arrivals"].astype("Int64")
    frame["pupil_id"] = frame["pupil_id"].astype("str")
    frame["school_code"] = frame["school_code"].astype("str")
    return frame


def codes(outcome) -> dict[int, list[str]]:  # noqa: ANN001
    return {int(r.source_line): reason_codes(r.reason) for r in outcome.quarantine.itertuples()}


def test_clean_rows_pass_every_check_and_come_back_unchanged() -> None:
    frame = absence_rows({}, {}, {"illness_days": 0.5, "late_arrivals": 2})
    snapshot = frame.copy(deep=True)
    outcome = validate_source(frame, source("absence"), context())
    pd.testing.assert_frame_equal(frame, snapshot)  # the input is not changed
    pd.testing.assert_frame_equal(outcome.valid, frame)
    assert outcome.quarantine.empty and list(outcome.quarantine.columns) == QUARANTINE_COLUMNS
    assert list(outcome.results.columns) == RESULT_COLUMNS
    assert outcome.results["success"].all()
    assert {"columns_present", "column_types", "absence_within_school_days", "pupil_known",
            "key_unique"} <= set(outcome.results["expectation"])


def test_each_absence_rule_quarantines_its_row_with_its_reason() -> None:
    frame = absence_rows(
        {},                                                               # line 2: fine
        {"illness_days": 4.0, "unauthorised_days": 2.0},                  # 3: 6 of 5 days
        {"illness_days": -1.0},                                           # 4: negative
        {"school_days": 7.0},                                             # 5: 7 days in a week
        {"period_start": date(2025, 9, 12), "period_end": date(2025, 9, 8)},  # 6: reversed
        {"pupil_id": "pz"},                                               # 7: unknown pupil
        {"school_code": "999"},                                           # 8: unknown school
        {"period_start": date(2025, 12, 1), "period_end": date(2025, 12, 5)},  # 9: future
        {"period_start": date(2025, 3, 3), "period_end": date(2025, 3, 7)},    # 10: last year
        {"late_arrivals": 6},                                             # 11: 6 late in 5 days
    )
    outcome = validate_source(frame, source("absence"), context())
    assert codes(outcome) == {
        3: ["absence_exceeds_school_days"],
        4: ["negative_value"],
        5: ["school_days_exceed_period"],
        6: ["end_before_start"],
        7: ["unknown_pupil"],
        8: ["unknown_school"],
        9: ["date_in_future"],
        10: ["date_outside_school_year", "date_outside_school_year"],
        11: ["late_arrivals_exceed_school_days"],
    }
    assert outcome.valid["source_line"].tolist() == [2]
    failed = outcome.results.set_index("expectation")
    assert failed.loc["absence_within_school_days", "unexpected_count"] == 1
    assert failed.loc["absence_within_school_days", "element_count"] == len(frame)
    assert not failed.loc["pupil_known", "success"]
    message = outcome.quarantine.set_index("source_line").loc[3, "reason"]
    assert message == ("absence_exceeds_school_days: 6 days of absence (illness, authorised, "
                       "unauthorised) in 5 school days")


def test_a_row_failing_several_checks_is_quarantined_once_with_every_reason() -> None:
    frame = absence_rows({"pupil_id": "pz", "school_code": "999", "illness_days": -2.0})
    outcome = validate_source(frame, source("absence"), context())
    assert len(outcome.quarantine) == 1 and outcome.valid.empty
    row = outcome.quarantine.iloc[0]
    assert reason_codes(row["reason"]) == ["unknown_school", "negative_value", "unknown_pupil"]
    assert row["column_name"] == "school_code,illness_days,cpr"


def test_every_row_ends_valid_or_quarantined_exactly_once() -> None:
    rng = np.random.default_rng(3)
    frame = absence_rows(*[{"illness_days": float(rng.choice([0, 1, 6, -1])),
                            "pupil_id": str(rng.choice(["pa", "pb", "px"]))} for _ in range(40)])
    outcome = validate_source(frame, source("absence"), context())
    lines = sorted([*outcome.valid["source_line"], *outcome.quarantine["source_line"]])
    assert lines == frame["source_line"].tolist()
    assert 0 < len(outcome.quarantine) < len(frame)


def test_duplicates_keep_the_first_row_and_name_it() -> None:
    frame = absence_rows({}, {})
    frame = pd.concat([frame, frame.iloc[[0]].assign(source_line=9)], ignore_index=True)
    outcome = validate_source(frame, source("absence"), context())
    assert codes(outcome) == {9: ["duplicate_key"]}
    assert "as line 2 of fravaer_2025-26.csv" in outcome.quarantine["reason"].iloc[0]


def test_duplicates_across_files_keep_the_row_of_the_first_file() -> None:
    first = absence_rows({})
    second = first.assign(source_file="fravaer_2025-26_rettet.csv")
    outcome = validate_source(pd.concat([second, first], ignore_index=True), source("absence"),
                              context())
    assert outcome.quarantine["source_file"].tolist() == ["fravaer_2025-26_rettet.csv"]


def marks_rows(marks: list[int | None], grade: int = 9, birth_year: float = 2010.0) -> pd.DataFrame:
    rows = [{"pupil_id": "pa", "birth_year": birth_year, "school_code": "101", "grade": grade,
             "subject": subject, "mark_kind": "standpunkt", "mark_date": date(2025, 1, 10),
             "mark": mark} for mark, subject in zip(marks, ["dansk", "matematik", "engelsk"], strict=False)]
    frame = typed_frame(rows, "karakterer_2024-25.xlsx")
    frame["grade"] = frame["grade"].astype("Int64")
    frame["mark"] = frame["mark"].astype("Int64")
    return frame


def test_marks_only_on_the_7_point_scale() -> None:
    outcome = validate_source(marks_rows([2, 5, -3]), source("marks"), context())
    assert codes(outcome) == {3: ["mark_not_7_point"]}
    assert outcome.quarantine["reason"].iloc[0] == (
        "mark_not_7_point: value 5 is not on the 7-point scale (-3, 00, 02, 4, 7, 10, 12)")


def test_grade_and_age_checks() -> None:
    assert codes(validate_source(marks_rows([2], grade=11), source("marks"), context())) == {
        2: ["grade_out_of_range", "age_implausible_for_grade"]}
    outcome = validate_source(marks_rows([2], birth_year=2018.0), source("marks"), context())
    assert codes(outcome) == {2: ["age_implausible_for_grade"]}
    assert "born 2018, in grade 9 in school year 2024/25: expected born about 2009" in (
        outcome.quarantine["reason"].iloc[0])


def national_test_rows(rows: list[tuple[str, date, float, str]]) -> pd.DataFrame:
    frame = typed_frame([{"pupil_id": "pa", "birth_year": 2013.0, "school_code": "101", "grade": 6,
                          "subject": subject, "test_date": day, "score": score, "scale": scale}
                         for subject, day, score, scale in rows], "nationale_test_2025-26.csv")
    frame["grade"] = frame["grade"].astype("Int64")
    frame["score"] = frame["score"].astype("Float64")
    return frame


def test_scores_within_the_scale_of_their_school_year() -> None:
    frame = national_test_rows([
        ("dansk_laesning", date(2025, 10, 1), 512.5, "OVERGANG"),  # fine
        ("matematik", date(2025, 10, 2), 950.0, "OVERGANG"),       # above 900
        ("dansk_laesning", date(2025, 10, 3), 60.0, "NT"),         # NT ended 2021/22
        ("matematik", date(2025, 10, 4), 99.0, "OVERGANG"),        # below 100
    ])
    outcome = validate_source(frame, source("tests"), context())
    assert codes(outcome) == {3: ["score_out_of_scale"], 4: ["scale_wrong_for_school_year"],
                              5: ["score_out_of_scale"]}
    old = national_test_rows([("matematik", date(2021, 3, 2), 101.0, "NT")]).assign(
        source_file="nationale_test_2020-21.csv", birth_year=2011.0, grade=pd.array([3], dtype="Int64"))
    outcome = validate_source(old, source("tests"), context())
    assert codes(outcome) == {2: ["score_out_of_scale"]}
    assert "outside the NT scale (1-100)" in outcome.quarantine["reason"].iloc[0]


def test_unmapped_values_are_reported_with_the_config_to_change() -> None:
    frame = typed_frame([{"pupil_id": "pa", "birth_year": 2012.0, "contact_date": date(2025, 9, 1),
                          "discipline": "Psykolog", "contact_type": "kontakt"}], "kontakter_2025-26.csv")
    outcome = validate_source(frame, source("contacts"), context())
    assert codes(outcome) == {2: ["unknown_discipline"]}
    assert "'Psykolog' is not a known discipline" in outcome.quarantine["reason"].iloc[0]
    assert "config's values for discipline" in outcome.quarantine["reason"].iloc[0]


def test_spells_must_overlap_the_school_year_of_their_file() -> None:
    frame = typed_frame([
        {"pupil_id": "pa", "birth_year": 2012.0, "support_type": "stoettetimer",
         "start_date": date(2023, 8, 1), "end_date": None},                    # ongoing: fine
        {"pupil_id": "pb", "birth_year": 2012.0, "support_type": "stoettetimer",
         "start_date": date(2023, 8, 1), "end_date": date(2024, 6, 30)},       # ended before
        {"pupil_id": "pc", "birth_year": 2012.0, "support_type": "specialklasse",
         "start_date": date(2025, 10, 1), "end_date": date(2025, 9, 1)},       # reversed
    ], "specialstoette_2025-26.csv")
    outcome = validate_source(frame, source("support"), context())
    assert codes(outcome) == {3: ["date_outside_school_year"], 4: ["end_before_start"]}


def test_upv_after_its_abolition_is_quarantined() -> None:
    frame = typed_frame([{"pupil_id": "pa", "birth_year": 2010.0, "school_code": "101",
                          "assessed_date": date(2025, 1, 15), "outcome": "parat"}], "upv_2024-25.xlsx")
    assert codes(validate_source(frame, source("upv"), context())) == {2: ["upv_after_abolition"]}


def test_pupils_are_unique_per_school_year_and_need_no_pupil_reference() -> None:
    row = {"pupil_id": "pa", "birth_year": 2014.0, "school_code": "101", "grade": 5,
           "class_label": "5.A", "sex": "F", "origin": None, "enrolled_from": date(2020, 8, 1),
           "enrolled_to": None}
    frame = typed_frame([row, {**row, "pupil_id": "pq"}, {**row, "class_label": "5.B"}],
                        "elever_2025-26.csv")
    frame["grade"] = frame["grade"].astype("Int64")
    earlier = frame.iloc[[0]].assign(source_file="elever_2024-25.csv",
                                     grade=pd.array([4], dtype="Int64"))
    outcome = validate_source(pd.concat([frame, earlier], ignore_index=True), source("pupils"),
                              context(known_pupils=pd.Index([])))
    assert codes(outcome) == {4: ["duplicate_key"]}
    assert "pupil_known" not in set(outcome.results["expectation"])


def test_a_check_set_to_file_severity_stops_the_run_naming_file_line_and_column() -> None:
    with pytest.raises(FileLevelError) as caught:
        validate_source(marks_rows([2, 5, 5]), source("marks", severity={"mark_not_7_point": "file"}),
                        context())
    error = caught.value
    assert (error.file, error.line, error.column, error.check) == (
        "karakterer_2024-25.xlsx", 3, "mark", "mark_on_7_point_scale")
    assert str(error).startswith("karakterer_2024-25.xlsx, line 3, column mark: mark_not_7_point")
    assert "2 row(s) fail" in str(error) and "'mark_on_7_point_scale: row'" in str(error)


def test_severity_by_check_name_overrides_the_reason_default() -> None:
    config = source("absence", severity={"negative_value": "file", "illness_days_not_negative": "row"})
    outcome = validate_source(absence_rows({"illness_days": -1.0}), config, context())
    assert codes(outcome) == {2: ["negative_value"]}
    severities = outcome.results.set_index("expectation")["severity"]
    assert severities["illness_days_not_negative"] == "row"
    assert severities["school_days_not_negative"] == "file"


def test_volume_far_from_the_last_run_stops_the_run() -> None:
    frame = absence_rows({}, {})
    with pytest.raises(FileLevelError) as caught:
        validate_source(frame, source("absence"), context(previous_rows={"absence": 10}))
    assert "source 'absence': 2 rows now against 10" in str(caught.value)
    assert "volume_change_max" in str(caught.value)
    with pytest.raises(FileLevelError) as caught:
        validate_source(frame, source("absence"), context(previous_rows={"fravaer_2025-26.csv": 1}))
    assert str(caught.value).startswith("fravaer_2025-26.csv: 2 rows now against 1 in the last "
                                        "successful run (+100%; at most ±50% allowed)")
    fine = validate_source(frame, source("absence"), context(previous_rows={"absence": 3, "other": 1}))
    volume = fine.results[fine.results["expectation"] == "volume_within_range"]
    assert volume["success"].tolist() == [True]


def test_volume_with_row_severity_is_recorded_and_the_run_goes_on() -> None:
    outcome = validate_source(absence_rows({}), source("absence", severity={"volume_change": "row"}),
                              context(previous_rows={"absence": 50}))
    volume = outcome.results.set_index("expectation").loc["volume_within_range"]
    assert not volume["success"] and volume["unexpected_count"] == 49 and volume["severity"] == "row"
    assert len(outcome.valid) == 1


def test_missing_or_mistyped_columns_stop_the_run() -> None:
    frame = absence_rows({})
    with pytest.raises(FileLevelError, match=r"lack column\(s\) \['late_arrivals'\]"):
        validate_source(frame.drop(columns="late_arrivals"), source("absence"), context())
    with pytest.raises(FileLevelError, match=r"school_days \(str, expected float\)"):
        validate_source(frame.assign(school_days="5"), source("absence"), context())


def test_empty_source_passes_with_empty_outcome() -> None:
    frame = absence_rows({}).iloc[0:0]
    outcome = validate_source(frame, source("absence"), context())
    assert outcome.valid.empty and outcome.quarantine.empty
    assert outcome.results["success"].all()


def test_quarantine_rows_carry_no_cpr_and_no_names() -> None:
    frame = absence_rows({"pupil_id": "pz", "illness_days": 9.0})
    outcome = validate_source(frame, source("absence"), context())
    for text in [*outcome.quarantine["reason"], *outcome.quarantine["raw_values"]]:
        assert not CPR_LIKE.search(text)
    assert '"pupil_id": "pz"' in outcome.quarantine["raw_values"].iloc[0]
    assert "birth_year" not in outcome.quarantine["raw_values"].iloc[0]


def test_unknown_severity_keys_are_config_problems() -> None:
    config = make_config({"absence": {"negative_value": "file", "no_such_check": "row"},
                          "marks": {"truncated": "row"}})
    problems = severity_problems(config)
    assert len(problems) == 1 and "sources[absence].severity: 'no_such_check'" in problems[0]
    assert {"truncated", "empty_file", "volume_within_range", "mark_not_7_point"} <= (
        configurable_checks("marks"))


def test_every_kind_has_checks_with_unique_names_and_known_columns() -> None:
    from ews.schema import SOURCE_KINDS

    for kind, columns in SOURCE_KINDS.items():
        checks = row_checks(kind, TODAY, frozenset({"101"}))
        names = {c.name for c in checks}
        assert len(names) == len(checks)
        known = {c.name for c in columns} | {"pupil_id"}
        for check in checks:
            assert set(check.column.split(",")) <= known, (kind, check.name)


def test_an_expectation_that_cannot_be_evaluated_is_a_contract_error() -> None:
    import great_expectations.expectations as gxe

    broken = RowCheck("broken", "broken", "nope", "{nope}", "refers to a missing column",
                      lambda: gxe.ExpectColumnValuesToBeInSet(column="nope", value_set=[1]))
    frame = prepare_frame(absence_rows({}), "absence", pd.Index(["pa"]))
    with pytest.raises(ContractError, match="contract 'broken' of 'absence' could not be evaluated"):
        run_checks(frame, [broken], "absence")


def test_a_cpr_number_typed_into_another_column_is_masked() -> None:
    outcome = validate_source(absence_rows({"school_code": "150314-4001"}), source("absence"),
                              context())
    row = outcome.quarantine.iloc[0]
    assert reason_codes(row["reason"]) == ["unknown_school"]
    assert "school code '<cpr>'" in row["reason"] and '"school_code": "<cpr>"' in row["raw_values"]
    assert not CPR_LIKE.search(row["reason"] + row["raw_values"])


def test_results_of_chunks_combine_into_one_result_per_check() -> None:
    columns = ["source", "expectation", "column_name", "success", "unexpected_count",
               "element_count", "severity"]
    first = pd.DataFrame([["absence", "key_unique", "pupil_id", True, 0, 3, "row"],
                          ["absence", "school_known", None, True, 0, 3, "row"]], columns=columns)
    second = pd.DataFrame([["absence", "key_unique", "pupil_id", False, 2, 2, "row"],
                           ["absence", "school_known", None, True, 0, 2, "row"]], columns=columns)
    combined = combine_results([first, second, first.iloc[:0]])
    assert combined.to_dict("records") == [
        {"source": "absence", "expectation": "key_unique", "column_name": "pupil_id", "success": False,
         "unexpected_count": 2, "element_count": 5, "severity": "row"},
        {"source": "absence", "expectation": "school_known", "column_name": None, "success": True,
         "unexpected_count": 0, "element_count": 5, "severity": "row"}]


def test_key_hashes_are_equal_for_equal_keys_in_any_chunk_and_differ_otherwise() -> None:
    rows = [
        {"pupil_id": "p1", "school_code": "101", "period_start": date(2025, 8, 4), "period_end": date(2025, 8, 8)},
        {"pupil_id": "p1", "school_code": "101", "period_start": date(2025, 8, 11), "period_end": date(2025, 8, 15)},
        {"pupil_id": "p1", "school_code": "101", "period_start": date(2025, 8, 4), "period_end": date(2025, 8, 8)},
        {"pupil_id": "p1", "school_code": "102", "period_start": date(2025, 8, 4), "period_end": date(2025, 8, 8)},
    ]
    frame = pd.DataFrame(rows).assign(pupil_id=lambda f: f["pupil_id"].astype("string"),
                                      source_file="fravaer_2025-26.csv")
    whole = key_hashes(frame, "absence")
    assert whole is not None and list(whole.columns) == ["_key_a", "_key_b"]
    pairs = list(zip(whole["_key_a"], whole["_key_b"], strict=True))
    assert pairs[0] == pairs[2] and len({pairs[0], pairs[1], pairs[3]}) == 3
    # the same row hashes the same whether it comes alone or with others
    alone = key_hashes(frame.iloc[[2]], "absence")
    assert (alone["_key_a"].iloc[0], alone["_key_b"].iloc[0]) == pairs[0]
    assert key_hashes(frame.assign(contact_date=None), "contacts") is None


def repeated(frame: pd.DataFrame, times: int) -> pd.DataFrame:
    """The rows ``times`` over, on lines of their own (values repeat as in a real export)."""
    out = pd.concat([frame] * times, ignore_index=True)
    out["source_line"] = pd.Series(range(2, len(out) + 2), dtype="int64")
    return out


@pytest.mark.parametrize("kind", ["absence", "tests"])
def test_checks_on_distinct_value_combinations_give_the_results_of_every_row(kind: str) -> None:
    if kind == "absence":
        rows = absence_rows({}, {"illness_days": 4.0, "unauthorised_days": 2.0}, {"illness_days": -1.0},
                            {"school_days": 7.0, "late_arrivals": None}, {"school_code": "999"},
                            {"period_start": date(2025, 9, 12), "period_end": date(2025, 9, 8)},
                            {"period_start": date(2025, 12, 1), "period_end": None}, {"pupil_id": "pz"})
    else:  # a check with a row condition (the scale) and missing scores
        rows = national_test_rows([("matematik", date(2025, 10, 2), 950.0, "OVERGANG"),
                                   ("matematik", date(2025, 10, 3), None, "NT"),
                                   ("dansk_laesning", date(2025, 10, 3), 60.0, "NT"),
                                   ("matematik", date(2025, 10, 4), 512.0, "OVERGANG")])
    frame = prepare_frame(repeated(rows, 5), kind, pd.Index(["pa"]))
    checks = row_checks(kind, TODAY, frozenset({"101"}))
    distinct = run_checks(frame, checks, kind)
    every_row = run_checks(frame, checks, kind, distinct=False)
    assert any(not r.success for r in every_row)
    for mine, theirs in zip(distinct, every_row, strict=True):
        assert (mine.check.name, mine.success, mine.element_count, mine.unexpected_count) == (
            theirs.check.name, theirs.success, theirs.element_count, theirs.unexpected_count)
        np.testing.assert_array_equal(mine.rows, theirs.rows)
    scale = {r.check.name: r for r in distinct}["score_in_scale_NT"] if kind == "tests" else None
    assert scale is None or (scale.element_count, scale.unexpected_count) == (10, 0)
    # in chunks, the verdicts of the first chunk's combinations serve the second chunk
    verdicts = VerdictCache()
    half = len(frame) // 2
    first = run_checks(frame.iloc[:half].reset_index(drop=True), checks, kind, verdicts=verdicts)
    second = run_checks(frame.iloc[half:].reset_index(drop=True), checks, kind, verdicts=verdicts)
    for one, two, theirs in zip(first, second, every_row, strict=True):
        assert one.unexpected_count + two.unexpected_count == theirs.unexpected_count
        assert one.element_count + two.element_count == theirs.element_count
        np.testing.assert_array_equal(np.concatenate([one.rows, two.rows + half]), theirs.rows)
