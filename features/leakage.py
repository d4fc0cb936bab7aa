"""The look-ahead check: features must not change when data dated after the as-of date vanish.

For an as-of date ``d`` the check puts a view of every ``clean_*`` table into an in-memory
database attached to the same connection, showing only what was known before ``d`` (rows dated
on or after ``d`` are left out; end dates on or after ``d`` become "still open"), builds the features
there and compares them with the features built on the full tables. Any difference means a
feature looked past its as-of date; :class:`features.timechop.LeakageError` names the
features.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from ews.config import MunicipalityConfig
from ews.exclusions import EXCLUSIONS_TABLE, excluded_pupils
from ews.sql import load_sql
from ews.warehouse import fetch_one
from features.build import SCORING_GRADES, build_features
from features.catalogue import FEATURE_NAMES
from features.timechop import LeakageError

FeatureBuilder = Callable[[duckdb.DuckDBPyConnection, MunicipalityConfig, Sequence[date], Sequence[int]], pd.DataFrame]

CUT_DATABASE = "ews_asof_cut"
#: Tables the cut shows; features may read only these.
CLEAN_TABLES = (
    "clean_pupils", "clean_absence", "clean_tests", "clean_marks", "clean_contacts",
    "clean_support", "clean_outcomes",
)
TOLERANCE = 1e-9


def _cut_sql() -> str:
    return load_sql("features", "leakage_cut.sql")


def _cut_statements(home: str, as_of: date) -> list[str]:
    code = "\n".join(line for line in _cut_sql().splitlines() if not line.lstrip().startswith("--"))
    cut = f"DATE '{date.isoformat(as_of)}'"  # a date object's own text: never a value from the data
    return [s.strip().replace("$home", f'"{home}"').replace("$as_of", cut) for s in code.split(";") if s.strip()]


@contextlib.contextmanager
def warehouse_cut_at(con: duckdb.DuckDBPyConnection, as_of: date) -> Iterator[None]:
    """Make the connection see only data known before ``as_of`` while the block runs.

    Args:
        con: A connection with the ``clean_*`` tables.
        as_of: The cut date.

    Yields:
        Nothing; unqualified table names resolve to the cut copies inside the block.
    """
    row = fetch_one(con, "SELECT current_database()")
    home = str(row[0]) if row else "memory"
    con.execute(f"ATTACH ':memory:' AS {CUT_DATABASE}")
    try:
        con.execute(f"USE {CUT_DATABASE}")
        for statement in _cut_statements(home, as_of):
            con.execute(statement)
        if excluded_pupils(con, database=home):  # exclusions are not dated: the cut sees them as they are
            con.execute(f'CREATE VIEW {EXCLUSIONS_TABLE} AS SELECT * FROM "{home}".main.{EXCLUSIONS_TABLE}')
        yield
    finally:
        con.execute(f'USE "{home}"')
        con.execute(f"DETACH {CUT_DATABASE}")


def compare_features(full: pd.DataFrame, cut: pd.DataFrame) -> dict[str, int]:
    """Features whose values differ between two builds of the same as-of date.

    Args:
        full: Features built on all data.
        cut: Features built on the data known before the as-of date.

    Returns:
        Feature (or ``rows``) -> number of pupils whose value differs; empty when equal.
    """
    keys = ["pupil_id", "as_of_date"]
    merged = full.merge(cut, on=keys, how="outer", suffixes=("_full", "_cut"), indicator=True)
    differences: dict[str, int] = {}
    unmatched = int((merged["_merge"] != "both").sum())
    if unmatched:
        differences["rows"] = unmatched
    both = merged[merged["_merge"] == "both"]
    for name in ["grade", "school_code", *FEATURE_NAMES]:
        left, right = both.get(f"{name}_full"), both.get(f"{name}_cut")
        if left is None or right is None:
            continue
        if name == "school_code":
            changed = int((left.astype(str) != right.astype(str)).sum())
        else:
            a = left.to_numpy(dtype="float64", na_value=np.nan)
            b = right.to_numpy(dtype="float64", na_value=np.nan)
            same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= TOLERANCE)
            changed = int((~same).sum())
        if changed:
            differences[name] = changed
    return differences


def check_no_lookahead(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    as_of_dates: Sequence[date],
    grades: Sequence[int] = SCORING_GRADES,
    build: FeatureBuilder = build_features,
) -> None:
    """Show that the features of each as-of date use only data dated before it.

    Args:
        con: A connection with the ``clean_*`` tables.
        config: The municipality config.
        as_of_dates: As-of dates to check.
        grades: Grades to build.
        build: The feature builder to check (the real one by default).

    Raises:
        LeakageError: Naming the as-of date and the features that changed when later data
            were removed.
    """
    for as_of in sorted(set(as_of_dates)):
        full = build(con, config, [as_of], grades)
        with warehouse_cut_at(con, as_of):
            cut = build(con, config, [as_of], grades)
        differences = compare_features(full, cut)
        if differences:
            listed = ", ".join(f"{name} ({count} pupils)" for name, count in sorted(differences.items()))
            raise LeakageError(
                f"as of {as_of}: features changed when data dated on or after the as-of date "
                f"were removed, so they look into the future: {listed}"
            )
