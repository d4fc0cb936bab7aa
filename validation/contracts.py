"""The data contracts: what every source's typed rows must satisfy, as Great Expectations suites.

One suite per source kind, built from ``ews.schema`` and the run's context (today, the
municipality's school codes). Checks that need more than one column or another source (pupil
known, duplicate keys, age for the grade, school days in the period) are evaluated on helper
columns (names starting with ``_``) that :func:`prepare_frame` adds; Great Expectations then
evaluates every check the same way and returns the failing rows by file and line.

Each check has a stable ``name`` (the ``expectation`` column of ``validation_results``), a
stable ``reason`` code (the start of the quarantine ``reason``), the column it reports, a
readable message template and a default severity (``row``: quarantine the row; ``file``: stop
the run). A source's config may override the severity of any check by name or reason code.
The contracts are documented, check by check, in ``docs/data-contract.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ews.schema import DISCIPLINES, SOURCE_KINDS
from ews.terms import school_year_label

if TYPE_CHECKING:  # Great Expectations is imported lazily: it takes seconds to import
    from great_expectations.expectations import Expectation

Severity = Literal["row", "file"]

#: National-test scales: allowed score range and the school years (start years) they cover.
SCALES: dict[str, tuple[float, float, int, int]] = {
    "NT": (1, 100, 0, 2021),
    "OVERGANG": (100, 900, 2022, 2025),
    "FAERDIGHED": (0, 60, 2026, 9999),
}
#: Last school year (start year) with UPV assessments: abolished from 2024/25 (L 71, 2023-24).
LAST_UPV_YEAR = 2023
#: Marks as written on the 7-point scale.
MARK_TEXT = {0: "00", 2: "02"}
#: Grades of the Danish folkeskole: 0 (børnehaveklasse) to 10.
GRADES = (0, 10)
#: Plausible school start year minus birth year minus grade (6 is the usual: a pupil starts
#: grade 0 in the calendar year of the sixth birthday; 4-9 allows early starts, repeated
#: grades and late arrivals in the Danish system).
AGE_GAP = (4, 9)

#: Rows with the same values in these columns are the same fact: the first (by file, line) is
#: kept, later ones are quarantined as ``duplicate_key``. ``_school_year`` is the school year
#: of the file: a pupil is listed again in every school year's pupils export, an ongoing
#: support spell in every school year's support export, and a pupil who changes school within
#: a school year has one row per school. Contacts have no key: several contacts on one day
#: with the same discipline are real (the exports carry no contact id to tell them apart).
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "pupils": ("pupil_id", "_school_year", "school_code", "enrolled_from"),
    "absence": ("pupil_id", "school_code", "period_start", "period_end"),
    "tests": ("pupil_id", "subject", "scale", "test_date"),
    "marks": ("pupil_id", "subject", "mark_kind", "mark_date"),
    "support": ("pupil_id", "support_type", "start_date", "_school_year"),
    "upv": ("pupil_id", "assessed_date"),
    "designation": ("pupil_id", "school_year"),
}

#: Dates that record something that has happened: none may lie after today.
EVENT_DATES: dict[str, tuple[str, ...]] = {
    "pupils": ("enrolled_from",),
    "absence": ("period_start",),
    "tests": ("test_date",),
    "marks": ("mark_date",),
    "contacts": ("contact_date",),
    "support": ("start_date",),
    "upv": ("assessed_date",),
    "designation": ("assessed_date",),
}
#: Dates that must fall inside the school year of their file (1 August to 31 July).
IN_YEAR_DATES: dict[str, tuple[str, ...]] = {
    "absence": ("period_start", "period_end"),
    "tests": ("test_date",),
    "marks": ("mark_date",),
    "contacts": ("contact_date",),
    "upv": ("assessed_date",),
}
#: (start, end) of spells that must overlap the school year of their file; end may be empty.
SPELLS: dict[str, tuple[str, str]] = {
    "pupils": ("enrolled_from", "enrolled_to"),
    "support": ("start_date", "end_date"),
}
#: The date whose school year gives a row's age and scale (else the file's school year).
EVENT_YEAR_DATE = {"tests": "test_date", "marks": "mark_date", "upv": "assessed_date"}

#: Checks made outside Great Expectations, on the frame as a whole.
TABLE_CHECKS: dict[str, tuple[str, Severity, str]] = {
    "columns_present": ("missing_column", "file",
                        "Every canonical column of the source kind is present."),
    "column_types": ("wrong_type", "file",
                     "Every column has the type of its canonical schema (int, float, date, text)."),
    "volume_within_range": ("volume_change", "file",
                            "Rows of the source (or file) within volume_change_max of the last "
                            "successful run."),
}
#: File-level checks made by the readers whose severity may be lowered to ``row``.
READER_CHECKS: dict[str, str] = {
    "truncated": "The last line is complete (row: quarantine it as wrong_field_count).",
    "empty_file": "The file has data rows (row: accept a header-only file as empty).",
}


@dataclass(frozen=True)
class RowCheck:
    """One row-level check of a source kind.

    Attributes:
        name: Stable, unique name; the ``expectation`` in ``validation_results``.
        reason: Stable reason code that starts the quarantine ``reason``.
        column: Canonical column the check is about (``column_name`` of quarantine rows).
        message: Readable text for one failing row; ``{column}`` fields are the row's values.
        description: One line for the report and ``docs/data-contract.md``.
        expectation: Builds the Great Expectations expectation over the prepared frame.
        severity: Default severity (a source's config may override it).
    """

    name: str
    reason: str
    column: str
    message: str
    description: str
    expectation: Callable[[], Expectation]
    severity: Severity = "row"
    #: ``(column, value)`` when the check looks only at rows with column == value (its
    #: ``element_count`` counts those rows).
    where: tuple[str, Any] | None = None


def _gxe() -> Any:
    import great_expectations.expectations as gxe

    return gxe


def _in_set(column: str, values: list[Any]) -> Callable[[], Expectation]:
    return lambda: _gxe().ExpectColumnValuesToBeInSet(column=column, value_set=list(values))


def _between(column: str, low: Any = None, high: Any = None,
             where: tuple[str, str] | None = None) -> Callable[[], Expectation]:
    """``low <= column <= high``; ``where=(other, value)`` limits it to rows with other == value."""
    def build() -> Expectation:
        extra: dict[str, Any] = {}
        if where is not None:
            from great_expectations.expectations.row_conditions import Column as GxColumn

            extra["row_condition"] = GxColumn(where[0]) == where[1]
        return _gxe().ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high,
                                                    **extra)
    return build


def _at_least(column_a: str, column_b: str) -> Callable[[], Expectation]:
    """``column_a >= column_b`` where both are present."""
    return lambda: _gxe().ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=column_a, column_B=column_b, or_equal=True, ignore_row_if="either_value_is_missing")


def _equal(column_a: str, column_b: str) -> Callable[[], Expectation]:
    return lambda: _gxe().ExpectColumnPairValuesToBeEqual(
        column_A=column_a, column_B=column_b, ignore_row_if="either_value_is_missing")


def _is_null(column: str) -> Callable[[], Expectation]:
    return lambda: _gxe().ExpectColumnValuesToBeNull(column=column)


def _regex(column: str, pattern: str) -> Callable[[], Expectation]:
    return lambda: _gxe().ExpectColumnValuesToMatchRegex(column=column, regex=pattern)


def _allowed_values(kind: str) -> list[RowCheck]:
    checks = []
    for column in SOURCE_KINDS[kind]:
        if column.allowed is None or column.type == "cpr" or column.identity:
            continue
        shown = ", ".join(MARK_TEXT.get(v, str(v)) if column.name == "mark" else str(v)
                          for v in column.allowed)
        if column.name == "mark":
            checks.append(RowCheck(
                "mark_on_7_point_scale", "mark_not_7_point", "mark",
                f"value {{mark}} is not on the 7-point scale ({shown})",
                "Marks are on the 7-point scale: -3, 00, 02, 4, 7, 10, 12 and nothing else.",
                _in_set("mark", list(column.allowed))))
        elif column.name == "discipline":
            checks.append(RowCheck(
                "discipline_known", "unknown_discipline", "discipline",
                f"'{{discipline}}' is not a known discipline ({shown}); map it in the config's "
                "values for discipline",
                "The discipline (Faggruppe) maps to one of the known disciplines.",
                _in_set("discipline", list(DISCIPLINES))))
        else:
            checks.append(RowCheck(
                f"{column.name}_allowed", "value_not_allowed", column.name,
                f"'{{{column.name}}}' is not one of {shown}; map it in the config's values for "
                f"{column.name}",
                f"{column.name} is one of {shown} (after the config's value mapping).",
                _in_set(column.name, list(column.allowed))))
    return checks


def row_checks(kind: str, today: date, school_codes: frozenset[str] | None,
               grades: tuple[int, int] = GRADES) -> list[RowCheck]:
    """The row-level checks of a source kind, in the order reasons are reported.

    Args:
        kind: The source kind (``pupils``, ``absence``, ...).
        today: Dates after this are in the future.
        school_codes: The municipality's school codes; None skips the school check.
        grades: First and last grade the source's rows may carry (the source config's
            ``grades``; default the whole folkeskole, 0-10).

    Returns:
        The checks; names are unique within the kind.
    """
    columns = {c.name for c in SOURCE_KINDS[kind]}
    checks: list[RowCheck] = []
    if "school_code" in columns and school_codes is not None:
        checks.append(RowCheck(
            "school_code_known", "unknown_school", "school_code",
            "school code '{school_code}' is not a school in the config",
            "The school code is one of the municipality's schools in the config.",
            _in_set("school_code", sorted(school_codes))))
    if "grade" in columns:
        configured = "" if tuple(grades) == GRADES else " this source is configured for"
        checks.append(RowCheck(
            "grade_in_range", "grade_out_of_range", "grade",
            f"grade {{grade}} is not a grade{configured or ' of the folkeskole'} "
            f"({grades[0]}-{grades[1]})",
            "Grades are 0 (børnehaveklasse) to 10, or the source config's grades.",
            _between("grade", grades[0], grades[1])))
    checks.extend(_allowed_values(kind))
    if kind == "designation":
        checks.append(RowCheck(
            "school_year_format", "bad_school_year", "school_year",
            "'{school_year}' is not a school year like 2025/26",
            "The school year is written like 2025/26.", _regex("school_year", r"^\d{4}/\d{2}$")))
        checks.append(RowCheck(
            "school_year_of_file", "school_year_not_file_year", "school_year",
            "school year {school_year} in a file of school year {_school_year}",
            "The school year is the school year of the file.", _equal("school_year", "_school_year")))
    for column in EVENT_DATES.get(kind, ()):
        checks.append(RowCheck(
            f"{column}_not_in_future", "date_in_future", column,
            f"{column} {{{column}}} is after today ({today:%d-%m-%Y})",
            "Dates of events are not after the day of the run.",
            _between(column, high=pd.Timestamp(today).as_unit("ns"))))
    for column in IN_YEAR_DATES.get(kind, ()):
        checks.append(RowCheck(
            f"{column}_not_before_school_year", "date_outside_school_year", column,
            f"{column} {{{column}}} is before the school year {{_school_year}} of the file",
            "The date falls in the school year of the file (from 1 August).",
            _at_least(column, "_year_start")))
        checks.append(RowCheck(
            f"{column}_not_after_school_year", "date_outside_school_year", column,
            f"{column} {{{column}}} is after the school year {{_school_year}} of the file",
            "The date falls in the school year of the file (to 31 July).",
            _at_least("_year_end", column)))
    if kind in SPELLS:
        start, end = SPELLS[kind]
        checks.append(RowCheck(
            f"{start}_not_after_school_year", "date_outside_school_year", start,
            f"{start} {{{start}}} is after the school year {{_school_year}} of the file",
            "The spell starts before the end of the school year of the file.",
            _at_least("_year_end", start)))
        checks.append(RowCheck(
            f"{end}_not_before_school_year", "date_outside_school_year", end,
            f"{end} {{{end}}} is before the school year {{_school_year}} of the file",
            "The spell, if ended, ends after the start of the school year of the file.",
            _at_least(end, "_year_start")))
        checks.append(RowCheck(
            f"{end}_not_before_{start}", "end_before_start", end,
            f"{end} {{{end}}} is before {start} {{{start}}}",
            "The end of a spell is not before its start.", _at_least(end, start)))
    if kind == "absence":
        checks.append(RowCheck(
            "period_end_not_before_start", "end_before_start", "period_end",
            "period_end {period_end} is before period_start {period_start}",
            "The period ends on or after its start.", _at_least("period_end", "period_start")))
        for column in ("school_days", "illness_days", "authorised_days", "unauthorised_days",
                       "late_arrivals"):
            checks.append(RowCheck(
                f"{column}_not_negative", "negative_value", column,
                f"{column} is {{{column}}}, below 0",
                "Days and counts are not negative.", _between(column, low=0)))
        checks.append(RowCheck(
            "school_days_within_period", "school_days_exceed_period", "school_days",
            "{school_days} school days in a period with {_weekdays} weekdays "
            "({period_start} to {period_end})",
            "School days are at most the weekdays (Monday to Friday) of the period.",
            _at_least("_weekdays", "school_days")))
        checks.append(RowCheck(
            "absence_within_school_days", "absence_exceeds_school_days", "school_days",
            "{_absence_days} days of absence (illness, authorised, unauthorised) in "
            "{school_days} school days",
            "Illness + authorised + unauthorised absence is at most the school days of the period.",
            _at_least("school_days", "_absence_days")))
        checks.append(RowCheck(
            "late_arrivals_within_school_days", "late_arrivals_exceed_school_days", "late_arrivals",
            "{late_arrivals} late arrivals in {school_days} school days",
            "Late arrivals are at most one a school day.",
            _at_least("school_days", "late_arrivals")))
    if kind == "tests":
        for scale, (low, high, _first, _last) in SCALES.items():
            checks.append(RowCheck(
                f"score_in_scale_{scale}", "score_out_of_scale", "score",
                f"score {{score}} is outside the {scale} scale ({low:g}-{high:g})",
                f"Scores on the {scale} scale are {low:g}-{high:g}.",
                _between("score", low, high, where=("scale", scale)), where=("scale", scale)))
        checks.append(RowCheck(
            "scale_of_school_year", "scale_wrong_for_school_year", "scale",
            "scale {scale} was not used in school year {_event_school_year} (expected "
            "{_expected_scale})",
            "The scale is the one in use in the test's school year: NT to 2021/22, OVERGANG "
            "2022/23-2025/26, FAERDIGHED from 2026/27.",
            _equal("scale", "_expected_scale")))
    if kind == "upv":
        checks.append(RowCheck(
            "upv_before_abolition", "upv_after_abolition", "assessed_date",
            "UPV dated {assessed_date} (school year {_event_school_year}); UPV was abolished from "
            "2024/25",
            "UPV assessments exist up to school year 2023/24 only (abolished by L 71, 2023-24).",
            _between("_event_year", high=LAST_UPV_YEAR)))
    if kind in ("pupils", "tests", "marks"):
        checks.append(RowCheck(
            "age_plausible_for_grade", "age_implausible_for_grade", "grade",
            "born {birth_year}, in grade {grade} in school year {_age_school_year}: expected "
            "born about {_expected_birth_year}",
            f"School start year minus birth year (from the CPR) minus grade is {AGE_GAP[0]}-"
            f"{AGE_GAP[1]} (6 is usual).",
            _between("_age_gap", *AGE_GAP)))
    if kind != "pupils":
        checks.append(RowCheck(
            "pupil_known", "unknown_pupil", "cpr",
            "the pupil is not in the pupils export (elever)",
            "Every pupil referred to is in the pupils source.",
            _in_set("_pupil_known", [True])))
    key = UNIQUE_KEYS.get(kind)
    if key is None:
        return checks
    checks.append(RowCheck(
        "key_unique", "duplicate_key", ",".join(c for c in key if not c.startswith("_")),
        "same " + ", ".join(c.lstrip("_") for c in key) + " as line {_duplicate_of} of "
        "{_duplicate_file}",
        "Rows are unique by " + ", ".join(c.lstrip("_") for c in key) + "; the first is kept.",
        _is_null("_duplicate_of")))
    return checks


def configurable_checks(kind: str) -> set[str]:
    """Names and reason codes a source of this kind may set a severity for."""
    checks = row_checks(kind, date(2000, 1, 1), frozenset())
    table = {name for name in TABLE_CHECKS if name != "columns_present"}
    table |= {TABLE_CHECKS[name][0] for name in table}
    return {c.name for c in checks} | {c.reason for c in checks} | table | set(READER_CHECKS)


def severity_of(severities: dict[str, Severity], name: str, reason: str, default: Severity
                ) -> Severity:
    """A check's severity: the config's setting for its name, else for its reason, else default."""
    return severities.get(name) or severities.get(reason) or default


def describe_check(name: str) -> str:
    """A one-line description of a check by its name (for the report)."""
    if name in TABLE_CHECKS:
        return TABLE_CHECKS[name][2]
    for kind in SOURCE_KINDS:
        for check in row_checks(kind, date(2000, 1, 1), frozenset()):
            if check.name == name:
                return check.description
    return ""


# ---------------------------------------------------------------------------------------------
# The prepared frame: typed columns Great Expectations can compare, plus helper columns.

YEAR_IN_NAME = re.compile(r"(?<!\d)(\d{4})[-_](\d{2})(?!\d)")


def school_year_of_file(name: str) -> int | None:
    """Start year of the school year in an export's file name (``fravaer_2019-20.csv`` -> 2019).

    Args:
        name: File name.

    Returns:
        The start year, or None when the name carries no school year.
    """
    match = YEAR_IN_NAME.search(name)
    if match is None or (int(match.group(1)) + 1) % 100 != int(match.group(2)):
        return None
    return int(match.group(1))


def _as_datetime(values: pd.Series) -> pd.Series:
    """Dates as ``datetime64[ns]``: Great Expectations compares only that unit vectorised."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    return pd.to_datetime(values, errors="coerce").astype("datetime64[ns]")


def _year_bound(years: pd.Series, month: int, day: int, offset: int) -> pd.Series:
    codes, uniques = pd.factorize(years)  # per distinct year; a missing year (-1) gives NaT
    bounds = np.array([np.datetime64(pd.Timestamp(int(y) + offset, month, day), "ns") for y in uniques]
                      + [np.datetime64("NaT", "ns")], dtype="datetime64[ns]")
    return pd.Series(bounds[codes], index=years.index)


def _school_year_start(dates: pd.Series) -> pd.Series:
    """Start year of the school year each date falls in (school years start 1 August)."""
    years = dates.dt.year.astype("float64")
    return years.where(dates.dt.month >= 8, years - 1)


def _labels(years: pd.Series) -> pd.Series:
    codes, uniques = pd.factorize(years)  # per distinct year; a missing year (-1) gives None
    labels = np.array([school_year_label(int(y)) for y in uniques] + [None], dtype=object)
    return pd.Series(labels[codes], index=years.index, dtype="object")


def _expected_scale(years: pd.Series) -> pd.Series:
    result = pd.Series(None, index=years.index, dtype="object")
    for scale, (_low, _high, first, last) in SCALES.items():
        result[(years >= first) & (years <= last)] = scale
    return result


def _file_years(frame: pd.DataFrame, kind: str) -> pd.Series:
    """Per row, the school year (start year) of its file; for pupils, else its own school_year."""
    index = pd.RangeIndex(len(frame))
    file_codes, file_names = pd.factorize(frame["source_file"].reset_index(drop=True))
    file_years = pd.Series(
        np.array([school_year_of_file(str(n)) or np.nan for n in file_names], dtype="float64")
        .take(file_codes) if len(file_names) else np.full(len(frame), np.nan), index=index)
    if kind == "pupils" and "school_year" in frame:
        from_column = pd.Series(
            [int(v[:4]) if isinstance(v, str) and re.fullmatch(r"\d{4}/\d{2}", v) else np.nan
             for v in frame["school_year"]], index=index, dtype="float64")
        file_years = file_years.fillna(from_column)
    return file_years


#: Seeds of the two independent 64-bit hashes of a row's key (16 bytes each).
_KEY_HASH_SEEDS = ("ews-unique-key-a", "ews-unique-key-b")


def key_hashes(frame: pd.DataFrame, kind: str) -> pd.DataFrame | None:
    """Two independent 64-bit hashes of each row's unique key (:data:`UNIQUE_KEYS`).

    Lets the ingest find duplicate keys across chunks and files in SQL without keeping the
    rows in memory. Equal keys give equal hashes; two different keys give the same pair with
    a chance of about 2**-128.

    Args:
        frame: Typed rows of one source (or a chunk), with ``source_file``.
        kind: The source kind.

    Returns:
        ``_key_a`` and ``_key_b`` (uint64), row for row; None when the kind has no key.
    """
    if kind not in UNIQUE_KEYS:
        return None
    columns = {}
    for name in UNIQUE_KEYS[kind]:
        if name == "_school_year":
            columns[name] = _labels(_file_years(frame, kind))
        else:
            columns[name] = frame[name].reset_index(drop=True)
    keys = pd.DataFrame(columns)
    return pd.DataFrame({
        f"_key_{part}": pd.util.hash_pandas_object(keys, index=False, hash_key=seed).to_numpy()
        for part, seed in zip("ab", _KEY_HASH_SEEDS, strict=True)})


def prepare_frame(frame: pd.DataFrame, kind: str, known_pupils: pd.Index | None,
                  duplicates: tuple[pd.Series, pd.Series] | None = None) -> pd.DataFrame:
    """The typed rows in the form the contracts evaluate, with helper columns.

    Dates become ``datetime64``, nullable numbers ``float64`` (Great Expectations cannot
    compare pandas' ``NA``); the input is not changed.

    Args:
        frame: Typed canonical rows of one source (``pupil_id``, ``birth_year``, lineage).
        kind: The source kind.
        known_pupils: Pupil ids of the pupils source (ignored for the pupils source itself).
        duplicates: Per row, the line and file of an earlier row with the same key, when the
            caller found them across more rows than ``frame`` (a chunk of a large source);
            None finds them within ``frame``.

    Returns:
        A new frame, row for row aligned with ``frame``, with ``_row`` and helper columns.
    """
    columns = {c.name: c for c in SOURCE_KINDS[kind]}
    prepared: dict[str, pd.Series] = {}
    for name in frame.columns:
        values = frame[name].reset_index(drop=True)
        column = columns.get(name)
        if column is not None and column.type == "date":
            values = _as_datetime(values)
        elif column is not None and column.type in ("int", "float") or name == "birth_year":
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        elif name not in ("pupil_id", "source_line") and (
                values.dtype == object or pd.api.types.is_string_dtype(values)):
            values = _as_objects(values)
        prepared[name] = values
    out = pd.DataFrame(prepared, index=pd.RangeIndex(len(frame)))
    out["_row"] = np.arange(len(frame), dtype="int64")

    file_years = _file_years(out, kind)
    out["_school_year"] = _labels(file_years)
    out["_year_start"] = _year_bound(file_years, 8, 1, 0)
    out["_year_end"] = _year_bound(file_years, 7, 31, 1)

    if kind in EVENT_YEAR_DATE:
        event_year = _school_year_start(out[EVENT_YEAR_DATE[kind]])
    else:
        event_year = file_years
    out["_event_year"] = event_year
    out["_event_school_year"] = _labels(event_year)
    if kind == "tests":
        out["_expected_scale"] = _expected_scale(event_year)
    if "grade" in out:
        age_year = file_years if kind == "pupils" else event_year
        out["_age_gap"] = age_year - out["birth_year"] - out["grade"]
        out["_age_school_year"] = _labels(age_year)
        out["_expected_birth_year"] = age_year - out["grade"] - 6
    if kind == "absence":
        start, end = out["period_start"], out["period_end"]
        ok = start.notna() & end.notna() & (end >= start)
        weekdays = np.full(len(out), np.nan)
        if ok.any():
            weekdays[ok.to_numpy()] = np.busday_count(
                start[ok].to_numpy().astype("datetime64[D]"),
                (end[ok] + pd.Timedelta(days=1)).to_numpy().astype("datetime64[D]"))
        out["_weekdays"] = weekdays
        out["_absence_days"] = out[["illness_days", "authorised_days", "unauthorised_days"]].sum(
            axis=1, min_count=1)
    if kind != "pupils":
        known = known_pupils if known_pupils is not None else pd.Index([])
        out["_pupil_known"] = out["pupil_id"].isin(known)
    if kind not in UNIQUE_KEYS:
        return out
    if duplicates is None:
        out["_duplicate_of"], out["_duplicate_file"] = _duplicates(out, list(UNIQUE_KEYS[kind]))
    else:
        line, file = duplicates
        out["_duplicate_of"] = pd.Series(np.asarray(line, dtype="float64"), index=out.index)
        out["_duplicate_file"] = _as_objects(pd.Series(np.asarray(file, dtype=object), index=out.index))
    return out


def _as_objects(values: pd.Series) -> pd.Series:
    """Strings as plain Python objects (None for missing), one object per distinct value.

    Great Expectations filters rows many times; numpy takes of objects are far cheaper than
    Arrow-backed strings (pandas 3's default) for that.
    """
    codes, uniques = pd.factorize(values)
    table = np.append(np.asarray(uniques, dtype=object), None)
    return pd.Series(table.take(np.where(codes < 0, len(uniques), codes)), dtype=object)


def _duplicates(out: pd.DataFrame, key: list[str]) -> tuple[pd.Series, pd.Series]:
    """For rows repeating an earlier row's key (by file name, then line): that row's line, file."""
    file_rank = pd.factorize(out["source_file"], sort=True)[0]
    lines = out["source_line"].to_numpy()
    in_order = bool(np.all((np.diff(file_rank) > 0) | ((np.diff(file_rank) == 0) & (np.diff(lines) > 0))))
    ordered = out if in_order else out.iloc[np.lexsort((lines, file_rank))]
    keys = ordered[key]
    repeat = keys.duplicated(keep="first")
    line = pd.Series(np.nan, index=out.index)
    file = pd.Series(None, index=out.index, dtype=object)
    if repeat.any():
        firsts = ordered.loc[keys.duplicated(keep=False) & ~repeat, [*key, "source_file", "source_line"]]
        later = ordered.loc[repeat, key].reset_index()
        matched = later.merge(firsts, on=key, how="left").set_index("index")
        line.loc[matched.index] = matched["source_line"].astype("float64")
        file.loc[matched.index] = matched["source_file"]
    return line, file


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as :func:`display` writes it, column by column (for many rows at once)."""
    shown = {}
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            text = values.dt.strftime("%d-%m-%Y")
        elif pd.api.types.is_float_dtype(values):
            whole = values.notna() & (values == values.round())
            text = values.map("{:g}".format).where(~whole, values.where(whole, 0).astype("int64").astype(str))
        else:
            text = values.map(display, na_action="ignore")
        shown[name] = text.astype(object).where(values.notna(), "(empty)")
    return pd.DataFrame(shown, index=frame.index)


def display(value: object) -> str:
    """A value as a data steward would write it in a message."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "(empty)"
    if isinstance(value, pd.Timestamp | date):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value).replace("|", "/")
