from datetime import date

import pandas as pd
import pytest

from models.outcomes import OUTCOMES, OutcomeError, check_single_definition, load_labels, outcome_definition


def _insert(con, table, rows):
    frame = pd.DataFrame(rows).assign(source_file="x.csv")
    frame["source_line"] = range(2, len(frame) + 2)
    con.register("_rows", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


@pytest.fixture
def con():
    import duckdb

    from ews.warehouse import ensure_schema

    connection = duckdb.connect()
    ensure_schema(connection)
    _insert(connection, "clean_outcomes", [
        {"pupil_id": "a", "outcome_definition": "upv_ikke_uddannelsesparat", "school_year": "2022/23",
         "assessed_date": date(2022, 12, 1), "outcome": True},
        {"pupil_id": "a", "outcome_definition": "upv_ikke_uddannelsesparat", "school_year": "2023/24",
         "assessed_date": date(2023, 12, 1), "outcome": False},
        {"pupil_id": "b", "outcome_definition": "upv_ikke_uddannelsesparat", "school_year": "2024/25",
         "assessed_date": date(2024, 12, 1), "outcome": True},
        {"pupil_id": "c", "outcome_definition": "maalrettet_indsats", "school_year": "2024/25",
         "assessed_date": date(2024, 12, 1), "outcome": True},
        {"pupil_id": "d", "outcome_definition": "maalrettet_indsats", "school_year": "2023/24",
         "assessed_date": date(2023, 12, 1), "outcome": False},
    ])
    marks = []
    for pupil, dansk, matematik in (("e", 2, 4), ("f", 0, 7), ("g", 4, None)):
        for subject, mark in (("dansk", dansk), ("matematik", matematik), ("engelsk", -3)):
            if mark is not None:
                marks.append({"pupil_id": pupil, "school_code": "S1", "grade": 9, "subject": subject,
                              "mark_kind": "afgangsproeve", "mark_date": date(2024, 6, 20), "mark": mark})
    marks.append({"pupil_id": "e", "school_code": "S1", "grade": 9, "subject": "dansk",
                  "mark_kind": "standpunkt", "mark_date": date(2024, 5, 1), "mark": -3})
    _insert(connection, "clean_marks", marks)
    yield connection
    connection.close()


def test_definitions_are_named_and_versioned():
    assert set(OUTCOMES) == {"upv_ikke_uddannelsesparat", "afgangsproeve_krav_ikke_opfyldt", "maalrettet_indsats"}
    upv = outcome_definition("upv_ikke_uddannelsesparat")
    assert upv.versioned_name == "upv_ikke_uddannelsesparat@v1"
    assert upv.covers("2023/24") and not upv.covers("2024/25")
    assert not outcome_definition("maalrettet_indsats").covers("2023/24")
    with pytest.raises(OutcomeError, match="known"):
        outcome_definition("udeblevet")


def test_upv_labels_stop_at_the_2024_25_break_and_keep_the_first_assessment(con):
    labels = load_labels(con, "upv_ikke_uddannelsesparat")
    assert labels[["pupil_id", "cohort", "outcome"]].values.tolist() == [["a", "2022/23", True]]
    assert (labels["outcome_definition"] == "upv_ikke_uddannelsesparat").all()


def test_designation_labels_start_at_2024_25(con):
    labels = load_labels(con, "maalrettet_indsats")
    assert labels["pupil_id"].tolist() == ["c"]


def test_exam_requirement_is_derived_from_danish_and_mathematics_exam_marks(con):
    labels = load_labels(con, "afgangsproeve_krav_ikke_opfyldt")
    assert dict(zip(labels["pupil_id"], labels["outcome"], strict=True)) == {"e": False, "f": True}
    assert set(labels["cohort"]) == {"2023/24"}


def test_labels_of_two_definitions_are_never_mixed(con):
    upv = load_labels(con, "upv_ikke_uddannelsesparat")
    designation = load_labels(con, "maalrettet_indsats")
    with pytest.raises(OutcomeError, match="mix outcome definitions"):
        check_single_definition(pd.concat([upv, designation]), "upv_ikke_uddannelsesparat")
    late = upv.assign(cohort="2024/25")
    with pytest.raises(OutcomeError, match="outside its range"):
        check_single_definition(late, "upv_ikke_uddannelsesparat")
