"""Small inline clean_* tables for feature tests (synthetic pupils, pseudonyms only)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from ews.config import MunicipalityConfig, build_config_document
from ews.warehouse import ensure_schema


@pytest.fixture
def config() -> MunicipalityConfig:
    document = build_config_document(
        "Testkommune", ["Nord", "Syd"],
        [{"id": "N1", "name": "Netværk 1", "area": "Nord", "capacity_per_term": 2},
         {"id": "N2", "name": "Netværk 2", "area": "Syd", "capacity_per_term": 2}],
        [{"code": "S1", "name": "Skole 1", "area": "Nord", "network": "N1", "reports_absence": True},
         {"code": "S2", "name": "Skole 2", "area": "Syd", "network": "N2", "reports_absence": False}],
    )
    return MunicipalityConfig.model_validate(document)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    ensure_schema(connection)
    yield connection
    connection.close()


class CleanRows:
    """Helpers to write inline rows (the test modules get them through the ``rows`` fixture)."""

    @staticmethod
    def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
        insert(con, table, rows)

    @staticmethod
    def pupil_years(*args, **kwargs) -> list[dict]:
        return pupil_years(*args, **kwargs)

    @staticmethod
    def weeks(*args, **kwargs) -> list[dict]:
        return weeks(*args, **kwargs)


@pytest.fixture
def rows() -> CleanRows:
    return CleanRows()


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    frame["source_file"] = f"{table}.csv"
    frame["source_line"] = range(2, len(frame) + 2)
    con.register("_rows", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def weeks(pupil: str, school: str, first_monday: date, count: int, absent: list[float],
          late: int = 0, kind: str = "illness_days") -> list[dict]:
    """Weekly absence rows: 5 school days a week; ``absent`` days per week, cycled."""
    rows = []
    for i in range(count):
        start = first_monday + timedelta(weeks=i)
        row = {"pupil_id": pupil, "school_code": school, "period_start": start,
               "period_end": start + timedelta(days=4), "school_days": 5.0,
               "illness_days": 0.0, "authorised_days": 0.0, "unauthorised_days": 0.0,
               "late_arrivals": late}
        row[kind] = absent[i % len(absent)]
        rows.append(row)
    return rows


def pupil_years(pupil: str, school: str, first_year: int, grade_first: int, years: int,
                enrolled_from: date, sex: str = "F") -> list[dict]:
    return [
        {"pupil_id": pupil, "school_year": f"{y}/{(y + 1) % 100:02d}", "school_code": school,
         "grade": grade_first + (y - first_year), "class_label": None, "sex": sex, "origin": None,
         "birth_year": 2008, "enrolled_from": enrolled_from, "enrolled_to": None}
        for y in range(first_year, first_year + years)
    ]
