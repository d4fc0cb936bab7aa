"""Build as-of features from the clean tables (DuckDB SQL in ``pupil_features.sql``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from ews.config import MunicipalityConfig, TermCalendar
from ews.exclusions import excluded_pupils
from ews.sql import load_sql
from ews.tables import FEATURES_TABLE, table_ddl
from ews.terms import Term, month_day, school_year_of
from ews.warehouse import fetch_one, replace_rows
from features.catalogue import FEATURE_NAMES

KEY_COLUMNS = ("pupil_id", "as_of_date", "term", "grade", "school_code", "network_id")
SCORING_GRADES = (5, 6, 7, 8, 9)
#: Fewest tests a sitting needs (before the as-of date) for its scores to be standardised.
MIN_SITTING_SIZE = 10
#: Decimals kept: removes float noise from parallel sums so the same data give the same bytes.
FEATURE_DECIMALS = 6
#: Most (pupil, as-of date) rows one features query builds; more as-of dates are built in
#: batches. The query's memory grows with its rows: one national as-of date (325,771 pupils)
#: peaked at 5.6 GB, while a national training's 22 dates in one query spilled more than 30 GB
#: to disk and failed (docs/benchmarks.md). A Herning-sized training (about 110,000 rows) stays
#: one query.
MAX_ROWS_PER_QUERY = 400_000


def _sql() -> str:
    return load_sql("features", "pupil_features.sql")


def term_of_date(calendar: TermCalendar, day: date) -> Term:
    """The term a date falls in, by the calendar's term start days.

    Args:
        calendar: The municipality's term calendar.
        day: Any date.

    Returns:
        The term (the summer holiday counts to the spring term before it).
    """
    start_year = school_year_of(day)
    h1_start = month_day(calendar.h1.start, start_year)
    h2_start = month_day(calendar.h2.start, start_year + 1)
    if day >= h2_start:
        return Term(start_year, 2)
    if day >= h1_start:
        return Term(start_year, 1)
    return Term(start_year - 1, 2)  # pragma: no cover - only when h1 starts after 1 August


def term_start(calendar: TermCalendar, term: Term) -> date:
    """First day of a term."""
    if term.half == 1:
        return month_day(calendar.h1.start, term.start_year)
    return month_day(calendar.h2.start, term.start_year + 1)


@contextlib.contextmanager
def _asof_joins_as_merges(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep DuckDB from running the ASOF joins as nested loops.

    DuckDB plans an ASOF join as a nested loop when it estimates the left side to be small,
    and it estimates the unnested as-of list at a handful of rows: that plan is a hundred
    times slower here. The setting is restored afterwards.
    """
    row = fetch_one(con, "SELECT current_setting('asof_loop_join_threshold')")
    previous = int(row[0]) if row else 64
    con.execute("SET asof_loop_join_threshold = 0")
    try:
        yield
    finally:
        con.execute(f"SET asof_loop_join_threshold = {previous:d}")


def _month_day_number(text: str) -> int:
    month, day = (int(part) for part in text.split("-"))
    return month * 100 + day


def feature_query_parameters(
    config: MunicipalityConfig, as_of_dates: Sequence[date], grades: Sequence[int]
) -> dict[str, object]:
    """Bind parameters of ``pupil_features.sql`` for a list of as-of dates.

    Args:
        config: The municipality config (its term calendar).
        as_of_dates: As-of dates.
        grades: Grades to include.

    Returns:
        Parameter name -> value.
    """
    dates = sorted(set(as_of_dates))
    terms = [term_of_date(config.terms, d) for d in dates]
    return {
        "as_of_dates": dates,
        "terms": [str(t) for t in terms],
        "term_starts": [term_start(config.terms, t) for t in terms],
        "school_years": [t.school_year for t in terms],
        "grades": [int(g) for g in grades],
        "min_sitting": MIN_SITTING_SIZE,
        "h1_md": _month_day_number(config.terms.h1.start),
        "h2_md": _month_day_number(config.terms.h2.start),
    }


def as_of_batches(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    as_of_dates: Sequence[date],
    grades: Sequence[int],
    max_rows: int | None = None,
) -> list[list[date]]:
    """The as-of dates in date order, grouped so one query builds at most ``max_rows`` rows.

    Rows are counted from the enrolments (``enrolled_counts.sql``, which repeats the enrolment
    join of ``pupil_features.sql``: change both together) before any feature is built; a date
    with more rows than ``max_rows`` is a batch of its own, and a single date is not counted.
    Every (pupil, as-of date) row depends only on its own date, so the batches give the rows one
    query would.

    Args:
        con: A connection with ``clean_pupils``.
        config: The municipality config (term calendar).
        as_of_dates: As-of dates (duplicates are ignored).
        grades: Grades included.
        max_rows: Most rows a batch builds (:data:`MAX_ROWS_PER_QUERY` when None).

    Returns:
        Batches of dates, oldest first; one batch when everything fits.
    """
    cap = MAX_ROWS_PER_QUERY if max_rows is None else max_rows
    if len(set(as_of_dates)) <= 1:  # a scoring's one date: nothing to split, nothing to count
        return [sorted(set(as_of_dates))] if as_of_dates else []
    params = feature_query_parameters(config, as_of_dates, grades)
    counts = con.execute(load_sql("features", "enrolled_counts.sql"), {
        "as_of_dates": params["as_of_dates"], "school_years": params["school_years"],
        "grades": params["grades"]}).fetchall()
    batches: list[list[date]] = []
    rows = 0
    for day, pupils in counts:
        if not batches or rows + pupils > cap:
            batches.append([])
            rows = 0
        batches[-1].append(day)
        rows += pupils
    return batches


def build_features(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    as_of_dates: Sequence[date],
    grades: Sequence[int] = SCORING_GRADES,
) -> pd.DataFrame:
    """Features for every pupil enrolled on each as-of date, from data dated before it.

    Many as-of dates (a training's) are built in batches of at most :data:`MAX_ROWS_PER_QUERY`
    rows (:func:`as_of_batches`), so the query's memory and spill stay those of about one
    national as-of date.

    Pupils excluded from screening (``clean_exclusions``, ``ews.exclusions``) get no row.

    Args:
        con: A connection with the ``clean_*`` tables.
        config: The municipality config (term calendar, school -> network).
        as_of_dates: As-of dates (duplicates are ignored).
        grades: Grades to include: 5-9 for scoring (default), 5-8 for training.

    Returns:
        One row per (pupil, as-of date): ``pupil_id``, ``as_of_date`` (a ``date``), ``term``,
        ``grade``, ``school_code``, ``network_id``, then the features of
        :data:`features.catalogue.FEATURE_NAMES` as floats (NaN = missing, never zero),
        sorted by as-of date and pupil.

    Raises:
        RuntimeError: When the SQL and the feature catalogue disagree.
    """
    if not as_of_dates:
        return empty_features()
    parts = list(feature_batches(con, config, as_of_dates, grades))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def feature_batches(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    as_of_dates: Sequence[date],
    grades: Sequence[int] = SCORING_GRADES,
) -> Iterator[pd.DataFrame]:
    """The rows of :func:`build_features`, one batch of as-of dates (:func:`as_of_batches`) at a time.

    Concatenated, the batches are :func:`build_features`'s frame. A caller that keeps only part
    of each batch (a training keeps its labelled rows) never holds every as-of date's rows.

    Args:
        con: A connection with the ``clean_*`` tables.
        config: The municipality config.
        as_of_dates: As-of dates (duplicates are ignored).
        grades: Grades to include.

    Yields:
        Each batch's rows, oldest batch first, as :func:`build_features` returns them.
    """
    if not as_of_dates:
        return
    excluded = excluded_pupils(con)
    networks = config.network_of_school()
    for batch in as_of_batches(con, config, as_of_dates, grades):
        params = feature_query_parameters(config, batch, grades)
        with _asof_joins_as_merges(con):
            raw = con.execute(_sql(), params).df()
        # each batch is shaped as soon as it is read, so that only one batch's raw query
        # result is held beside the shaped rows (the peak of a national training)
        shaped = _shaped(raw, excluded, networks)
        del raw
        yield shaped
        del shaped  # the caller's copy is all that is left while the next batch is read


def _shaped(frame: pd.DataFrame, excluded: set[str], networks: dict[str, str]) -> pd.DataFrame:
    """The query's rows as :func:`build_features` returns them (key columns, then float features)."""
    if excluded:  # excluded from screening (ews.exclusions): no features, so no score, flag or training row
        frame = frame[~frame["pupil_id"].astype(str).isin(excluded)].reset_index(drop=True)
    produced = [c for c in frame.columns if c not in ("pupil_id", "as_of_date", "term", "grade", "school_code")]
    missing = sorted(set(FEATURE_NAMES) - set(produced) - {"grade"})
    extra = sorted(set(produced) - set(FEATURE_NAMES))
    if missing or extra:
        raise RuntimeError(
            f"features/pupil_features.sql and features/catalogue.py disagree: "
            f"missing {missing}, not in the catalogue {extra}"
        )
    keys = pd.DataFrame({
        "pupil_id": frame["pupil_id"].astype(str),
        "as_of_date": pd.to_datetime(frame["as_of_date"]).dt.date,
        "term": frame["term"].astype(str),
        "grade": frame["grade"].astype("int64"),
        "school_code": frame["school_code"].astype(str),
        "network_id": frame["school_code"].map(networks).astype(object),
    })
    # ``grade`` is both a key column (int) and a feature: it appears once, as the key.
    names = [f for f in FEATURE_NAMES if f != "grade"]
    values = frame.reindex(columns=names).astype("float64").round(FEATURE_DECIMALS)
    return pd.concat([keys, values], axis=1)


def build_scoring_features(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    term: str,
    as_of: date,
) -> pd.DataFrame:
    """The features a term is scored on: grades 5-9 on its as-of date, stored and returned.

    Replaces the as-of date's rows of ``features_pupil_term``. Training builds its own features
    for many as-of dates (``models.training``), only when the model is retrained.

    Args:
        con: A connection from ``ews.warehouse.staged_write`` (``clean_*`` and
            ``clean_exclusions`` written).
        config: The municipality config.
        term: The term, e.g. ``2025/26-H1`` (the ``term`` of every row).
        as_of: Its as-of date.

    Returns:
        The rows written (as :func:`build_features`, with ``term`` set to ``term``).
    """
    features = build_features(con, config, [as_of], SCORING_GRADES).assign(term=term)
    write_features(con, features)
    return features


def empty_features() -> pd.DataFrame:
    """A features frame with no rows and the right columns."""
    columns = {c: pd.Series(dtype=object) for c in KEY_COLUMNS}
    columns["grade"] = pd.Series(dtype="int64")
    columns.update({f: pd.Series(dtype="float64") for f in FEATURE_NAMES if f != "grade"})
    return pd.DataFrame(columns)


def write_features(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
    """Replace the rows of ``features_pupil_term`` for each as-of date in the frame.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        frame: From :func:`build_features`.

    Returns:
        Rows written.
    """
    existing = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $t ORDER BY ordinal_position",
        {"t": FEATURES_TABLE}).fetchall()]
    if existing and existing != _feature_column_names():
        # derived data from another code version (the catalogue changed): rebuilt, not patched
        con.execute(f"DROP TABLE {FEATURES_TABLE}")
    con.execute(features_table_ddl())
    written = 0
    for as_of in sorted(frame["as_of_date"].unique()):
        part = frame[frame["as_of_date"] == as_of]
        written += replace_rows(con, FEATURES_TABLE, part, where={"as_of_date": as_of})
    return written


def _feature_column_names() -> list[str]:
    keys = ["pupil_id", "as_of_date", "term", "grade", "school_code", "network_id"]
    return keys + [name for name in FEATURE_NAMES if name != "grade"]


def features_table_ddl() -> str:
    """The DDL of ``features_pupil_term`` (``ews/tables_warehouse.sql``) with the catalogue's columns.

    Column names come from the catalogue (code constants, never data).
    """
    return table_ddl(FEATURES_TABLE, [name for name in FEATURE_NAMES if name != "grade"])


def design_matrix(frame: pd.DataFrame, names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """The feature matrix the models take: the catalogue's columns, in order, as float64.

    Args:
        frame: A features frame (extra columns are ignored).
        names: Feature names, in the model's order.

    Returns:
        An array of shape (rows, features); NaN where a value is missing.
    """
    return frame.loc[:, list(names)].to_numpy(dtype="float64", na_value=np.nan)
