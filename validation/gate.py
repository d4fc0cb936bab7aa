"""The validation gate: one source's typed rows in, valid rows, quarantine and results out.

Order for one source:

1. structure (columns present, column types): a failure stops the run (:class:`FileLevelError`);
2. volume against the last successful run: stops the run unless its severity is ``row``;
3. the source kind's contracts (:mod:`validation.contracts`) through Great Expectations; a
   failing check with severity ``file`` stops the run naming the first failing file, line and
   column; with severity ``row`` its rows go to quarantine.

A row failing several checks is quarantined once, with every reason; every row ends in exactly
one of ``valid`` and ``quarantine``. Nothing here writes anything: the ingest writes only when
every source has passed the gate.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from ews.config import MunicipalityConfig, SourceConfig, TermCalendar
from ews.pseudonym import mask_cpr as _mask_cpr
from ews.schema import SOURCE_KINDS
from ews.terms import Term
from validation.contracts import (
    TABLE_CHECKS,
    RowCheck,
    configurable_checks,
    display_frame,
    prepare_frame,
    row_checks,
    severity_of,
)
from validation.engine import CheckResult, VerdictCache, run_checks
from validation.errors import FileLevelError

RESULT_COLUMNS = ["source", "expectation", "column_name", "success", "unexpected_count",
                  "element_count", "severity"]
QUARANTINE_COLUMNS = ["source_file", "source_line", "column_name", "reason", "raw_values"]
LINEAGE = ["source_file", "source_line"]
#: Joins the reasons of a row that fails several checks (messages never contain it).
REASON_SEPARATOR = " | "
#: At most this many failing rows are named in a file-level message.
_SHOWN_LINES = 5


@dataclass(frozen=True)
class ValidationContext:
    """What the contracts need besides the rows themselves.

    Attributes:
        term: The run's term.
        today: Dates after this are in the future.
        known_pupils: Pupil ids of the (valid) pupils source; other sources must refer to them.
        pupil_grades: Valid pupil rows (``pupil_id``, ``grade``, ``birth_year``, ...). Not read
            by the current contracts (the age check uses each row's own grade and birth year);
            kept so the ingest's call stays the same when a cross-source check needs it.
        previous_rows: Rows loaded by the last successful run, by source name or file name.
        calendar: The term calendar.
        school_codes: The municipality's school codes; None skips the school check.
    """

    term: Term
    today: date
    known_pupils: pd.Index = field(default_factory=lambda: pd.Index([]))
    pupil_grades: pd.DataFrame = field(default_factory=pd.DataFrame)
    previous_rows: Mapping[str, int] = field(default_factory=dict)
    calendar: TermCalendar = field(default_factory=TermCalendar)
    school_codes: frozenset[str] | None = None


@dataclass
class ValidationOutcome:
    """What the gate let through, kept out and found.

    Attributes:
        valid: The rows that passed, with the input's columns.
        quarantine: ``source_file``, ``source_line``, ``column_name``, ``reason``,
            ``raw_values`` (JSON without CPR or names).
        results: One row per check: ``source``, ``expectation``, ``column_name``, ``success``,
            ``unexpected_count``, ``element_count``, ``severity``.
        kept: Per input row, whether it is in ``valid``.
        failing: Per check name, the positions of the rows that failed it (checks without
            failures are left out).
    """

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    results: pd.DataFrame
    kept: np.ndarray | None = None
    failing: dict[str, np.ndarray] = field(default_factory=dict)


def severity_problems(config: MunicipalityConfig) -> list[str]:
    """Severity settings in the config that name no check (call before any task runs).

    Args:
        config: The municipality config.

    Returns:
        One message per unknown check name, naming the source; empty when all are known.
    """
    problems = []
    for source in config.sources:
        known = configurable_checks(source.kind)
        for name in sorted(set(source.severity) - known):
            problems.append(
                f"sources[{source.name}].severity: '{name}' is not a check of kind "
                f"'{source.kind}' (known: {', '.join(sorted(known))})")
    return problems


def _expected_columns(kind: str) -> dict[str, str]:
    expected = {"pupil_id": "string", "birth_year": "float", "source_file": "string",
                "source_line": "int"}
    for column in SOURCE_KINDS[kind]:
        if column.type != "cpr" and not column.identity:
            expected[column.name] = column.type
    return expected


def _type_ok(values: pd.Series, kind: str) -> bool:
    types = pd.api.types
    if kind == "int":
        return bool(types.is_integer_dtype(values) or (values.isna().all()))
    if kind == "float":
        return bool(types.is_numeric_dtype(values) and not types.is_bool_dtype(values))
    if kind == "date":
        if types.is_datetime64_any_dtype(values):
            return True
        # date objects (datetime is a date too), in one C pass rather than one isinstance a row
        return bool(values.dtype == object and types.infer_dtype(values, skipna=True) in (
            "date", "datetime", "empty"))
    present = values.dropna()
    return bool(types.is_string_dtype(values) or values.dtype == object) and all(
        isinstance(v, str) for v in present.head(1000))


def _structure(frame: pd.DataFrame, source: SourceConfig) -> list[dict]:
    expected = _expected_columns(source.kind)
    missing = [name for name in expected if name not in frame.columns]
    files = ", ".join(sorted(frame["source_file"].unique())) if "source_file" in frame else "?"
    results = [_result(source, "columns_present", ",".join(missing) or None, not missing,
                       len(missing), len(expected), "file")]
    if missing:
        raise FileLevelError(
            f"{files}: typed rows of source '{source.name}' lack column(s) {missing}; check the "
            "config's column mapping for this source.",
            file=files, column=missing[0], check="columns_present")
    wrong = [name for name, kind in expected.items() if not _type_ok(frame[name], kind)]
    results.append(_result(source, "column_types", ",".join(wrong) or None, not wrong,
                           len(wrong), len(expected), "file"))
    if wrong:
        details = ", ".join(f"{name} ({frame[name].dtype}, expected {expected[name]})" for name in wrong)
        raise FileLevelError(
            f"{files}: column(s) of source '{source.name}' have the wrong type: {details}.",
            file=files, column=wrong[0], check="column_types")
    return results


def _volume(counts: Mapping[str, int], source: SourceConfig, previous: Mapping[str, int]) -> list[dict]:
    severity = severity_of(source.severity, "volume_within_range", "volume_change",
                           TABLE_CHECKS["volume_within_range"][1])
    results = []
    if not any(previous.get(key) for key in counts):
        # no earlier successful run to compare with: recorded as passed, so that a run's
        # results do not depend on whether it is the first
        return [_result(source, "volume_within_range", None, True, 0, counts[source.name], severity)]
    for key, before in previous.items():
        if key not in counts or not before:
            continue
        now = counts[key]
        change = (now - before) / before
        ok = abs(change) <= source.volume_change_max
        results.append(_result(source, "volume_within_range", None, ok,
                               0 if ok else abs(now - before), now, severity))
        if not ok and severity == "file":
            what = f"source '{source.name}'" if key == source.name else key
            raise FileLevelError(
                f"{what}: {now} rows now against {before} in the last successful run "
                f"({change:+.0%}; at most ±{source.volume_change_max:.0%} allowed). Check that the "
                f"export is complete and is the right one. If the change is real, raise "
                f"volume_change_max for source '{source.name}' in the config, or set its severity "
                "'volume_within_range: row' to record the change and go on.",
                file=None if key == source.name else key, check="volume_within_range")
    return results


def _result(source: SourceConfig, name: str, column: str | None, success: bool,
            unexpected: int, elements: int, severity: str) -> dict:
    return {"source": source.name, "expectation": name, "column_name": column,
            "success": bool(success), "unexpected_count": int(unexpected),
            "element_count": int(elements), "severity": severity}


def _messages(check: RowCheck, rows: pd.DataFrame) -> list[str]:
    fields = list(dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(check.message) if f))
    records = display_frame(rows[fields]).to_dict("records") if fields else [{}] * len(rows)
    return [f"{check.reason}: {check.message.format_map(shown)}" for shown in records]


def mask_cpr(text: str) -> str:
    """Text with anything shaped like a CPR number replaced (a CPR typed into a wrong column)."""
    return _mask_cpr(text)


def _stop(source: SourceConfig, outcome: CheckResult, prepared: pd.DataFrame,
          more_rows: bool = False) -> FileLevelError:
    check = outcome.check
    failing = prepared.iloc[outcome.rows]
    first = failing.iloc[[0]]
    reason = _messages(check, first)[0]
    file, line = str(first["source_file"].iloc[0]), int(first["source_line"].iloc[0])
    lines = ", ".join(str(int(v)) for v in failing["source_line"].head(_SHOWN_LINES))
    more = f" and {len(failing) - _SHOWN_LINES} more" if len(failing) > _SHOWN_LINES else ""
    return FileLevelError(
        f"{file}, line {line}, column {check.column}: {mask_cpr(reason)}. {len(failing)} row(s) "
        f"{'checked so far ' if more_rows else ''}fail '{check.name}' (lines {lines}{more}"
        f"{'; the rest of the source was not checked' if more_rows else ''}). Source "
        f"'{source.name}' is set to stop the run on this check (severity: file): correct the "
        f"export and run again, or set its severity "
        f"'{check.name}: row' to quarantine such rows instead.",
        file=file, line=line, column=check.column, check=check.name)


def _raw_values(rows: pd.DataFrame, frame_columns: list[str]) -> list[str]:
    keep = [c for c in frame_columns if c not in LINEAGE and c != "birth_year"]
    payload = display_frame(rows[keep]).replace("(empty)", "")
    return [json.dumps(record, ensure_ascii=False) for record in payload.to_dict("records")]


def validate_source(frame: pd.DataFrame, source: SourceConfig, context: ValidationContext
                    ) -> ValidationOutcome:
    """Check one source's typed rows against its contract.

    Args:
        frame: Typed canonical columns of one source (all its files) with ``pupil_id``,
            ``birth_year``, ``source_file`` and ``source_line``; no CPR numbers or names.
        source: The source's config (kind, severities, volume limit).
        context: Today, the term, the known pupils and schools, last run's volumes.

    Returns:
        Valid rows, quarantined rows and one result per check.

    Raises:
        FileLevelError: A structural problem, a volume far from the last run's, or a failing
            check whose severity is ``file``; the message names file, line and column and
            says what to do.
    """
    results = check_structure(frame, source)
    counts = {source.name: len(frame), **frame["source_file"].value_counts().to_dict()}
    results.extend(check_volume(counts, source, context.previous_rows))
    outcome = check_rows(frame, source, context)
    return ValidationOutcome(
        valid=outcome.valid, quarantine=outcome.quarantine,
        results=pd.DataFrame([*results, *outcome.results.to_dict("records")], columns=RESULT_COLUMNS),
        kept=outcome.kept)


def check_structure(frame: pd.DataFrame, source: SourceConfig) -> list[dict]:
    """Columns present and of the right type (a failure stops the run).

    Args:
        frame: Typed rows of the source, or of one chunk of it.
        source: The source's config.

    Returns:
        Two results (``columns_present``, ``column_types``) as dicts of ``RESULT_COLUMNS``.

    Raises:
        FileLevelError: A column missing or of the wrong type.
    """
    return _structure(frame, source)


def check_volume(counts: Mapping[str, int], source: SourceConfig, previous: Mapping[str, int]
                 ) -> list[dict]:
    """The source's and each file's rows against the last successful run's.

    Args:
        counts: Typed rows by source name and by file name.
        source: The source's config (severity and largest change allowed).
        previous: Rows loaded by the last successful run, by source name or file name.

    Returns:
        One result per compared count.

    Raises:
        FileLevelError: A change beyond ``volume_change_max`` with severity ``file``.
    """
    return _volume(counts, source, previous)


def check_rows(frame: pd.DataFrame, source: SourceConfig, context: ValidationContext,
               duplicates: tuple[pd.Series, pd.Series] | None = None,
               more_rows: bool = False, skip: frozenset[str] = frozenset(),
               verdicts: VerdictCache | None = None) -> ValidationOutcome:
    """The source kind's row contracts through Great Expectations, for all rows or a chunk.

    Args:
        frame: Typed rows (see :func:`validate_source`).
        source: The source's config.
        context: Today, the known pupils and schools.
        duplicates: For a chunk of a larger source: per row, the line and file of the earlier
            row with the same key (NaN/None when none), found across every file of the source.
            None finds duplicates within ``frame``.
        more_rows: Whether rows of the source follow this chunk (a stop message then counts
            the failing rows checked so far, not all of them).
        skip: Names of checks not to evaluate here (the ingest evaluates
            :data:`CROSS_FILE_CHECKS` in SQL over every file, see :func:`check_across_files`).
        verdicts: The verdicts on value combinations of earlier chunks of the same source
            (see :class:`validation.engine.VerdictCache`), reused and added to.

    Returns:
        Valid rows, quarantined rows, one result per check and the mask of rows kept.

    Raises:
        FileLevelError: A failing check whose severity is ``file``.
    """
    if duplicates is None and "key_unique" in skip:
        # not evaluated here: no need to look for them
        duplicates = (pd.Series(np.nan, index=range(len(frame))),
                      pd.Series(None, index=range(len(frame)), dtype=object))
    prepared = prepare_frame(frame, source.kind, context.known_pupils, duplicates=duplicates)
    checks = [c for c in row_checks(source.kind, context.today, context.school_codes, source.grade_range)
              if c.name not in skip]
    outcomes = run_checks(prepared, checks, source.name, verdicts=verdicts)
    results: list[dict] = []
    quarantined: list[pd.DataFrame] = []
    failing_rows = {o.check.name: o.rows for o in outcomes if len(o.rows)}
    for outcome in outcomes:
        check = outcome.check
        severity = severity_of(source.severity, check.name, check.reason, check.severity)
        results.append(_result(source, check.name, check.column, outcome.success,
                               outcome.unexpected_count, outcome.element_count, severity))
        if outcome.success or not len(outcome.rows):
            continue
        if severity == "file":
            raise _stop(source, outcome, prepared, more_rows)
        rows = prepared.iloc[outcome.rows]
        quarantined.append(pd.DataFrame({
            "_row": outcome.rows, "column_name": check.column, "reason": _messages(check, rows)}))
    results_frame = pd.DataFrame(results, columns=RESULT_COLUMNS)
    if not quarantined:
        return ValidationOutcome(valid=frame.reset_index(drop=True),
                                 quarantine=pd.DataFrame(columns=QUARANTINE_COLUMNS),
                                 results=results_frame, kept=np.ones(len(frame), dtype=bool),
                                 failing=failing_rows)
    reasons = pd.concat(quarantined, ignore_index=True)
    merged = reasons.groupby("_row", sort=True).agg(
        column_name=("column_name", lambda s: ",".join(dict.fromkeys(s))),
        reason=("reason", REASON_SEPARATOR.join))
    bad_rows = merged.index.to_numpy()
    failing = prepared.iloc[bad_rows]
    quarantine = pd.DataFrame({
        "source_file": failing["source_file"].to_numpy(),
        "source_line": failing["source_line"].to_numpy().astype("int64"),
        "column_name": merged["column_name"].to_numpy(),
        "reason": [mask_cpr(text) for text in merged["reason"]],
        "raw_values": [mask_cpr(text) for text in _raw_values(failing, list(frame.columns))],
    })
    keep = np.ones(len(frame), dtype=bool)
    keep[bad_rows] = False
    valid = frame.reset_index(drop=True)[keep].reset_index(drop=True)
    return ValidationOutcome(valid=valid, quarantine=quarantine, results=results_frame, kept=keep,
                             failing=failing_rows)


def combine_results(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One result per check from the results of several chunks of a source.

    A check succeeds when it succeeded in every chunk; counts are summed.

    Args:
        parts: Result frames (``RESULT_COLUMNS``) in chunk order.

    Returns:
        One row per (source, expectation, column, severity), in first-seen order.
    """
    frames = [p for p in parts if len(p)]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    stacked = pd.concat(frames, ignore_index=True)
    keys = ["source", "expectation", "column_name", "severity"]
    combined = stacked.groupby(keys, sort=False, dropna=False).agg(
        success=("success", "all"), unexpected_count=("unexpected_count", "sum"),
        element_count=("element_count", "sum")).reset_index()
    names = combined["column_name"].astype(object)
    combined["column_name"] = names.where(names.notna(), None)  # grouping made None NaN
    return combined[RESULT_COLUMNS].astype({"success": bool, "unexpected_count": "int64",
                                            "element_count": "int64"})


#: Row checks whose outcome for a row depends on rows of other files: the ingest evaluates
#: them in SQL over every loaded file of a source (duplicate keys) or over the pupils source
#: (unknown pupils), so that an unchanged file need not be read again. They are the last
#: checks of every kind, so a row's reasons keep their order.
CROSS_FILE_CHECKS = frozenset({"pupil_known", "key_unique"})


@dataclass
class CrossFileOutcome:
    """The verdict on a source's rows once the checks across files are made.

    Attributes:
        quarantine: Every row that failed a check of its file or across files
            (``QUARANTINE_COLUMNS``), by file and line, with all its reasons in check order.
        results: One result per cross-file check (dicts of ``RESULT_COLUMNS``).
    """

    quarantine: pd.DataFrame
    results: list[dict]


def check_across_files(
    source: SourceConfig,
    context: ValidationContext,
    total_rows: int,
    local: pd.DataFrame,
    unknown: pd.DataFrame,
    duplicates: pd.DataFrame,
    typed_rows: Callable[[pd.DataFrame], pd.DataFrame],
) -> CrossFileOutcome:
    """Combine the per-file verdicts with the checks across files of one source.

    Args:
        source: The source's config.
        context: The run's context (today, school codes).
        total_rows: Typed rows of the source (every current file).
        local: Rows that failed a check of their file: ``source_file``, ``source_line``,
            ``_local_reason``, ``_local_column``.
        unknown: Rows whose pupil is not in the pupils source: ``source_file``, ``source_line``.
        duplicates: Rows repeating an earlier row's key: ``source_file``, ``source_line``,
            ``duplicate_of``, ``duplicate_file``.
        typed_rows: Gives the typed rows (the source kind's typed columns) of a frame of
            ``source_file``, ``source_line``, in its order (for the quarantine's raw values).

    Returns:
        The source's contract quarantine and the cross-file checks' results.

    Raises:
        FileLevelError: A failing cross-file check whose severity is ``file``.
    """
    checks = {c.name: c for c in row_checks(source.kind, context.today, context.school_codes, source.grade_range)}
    lineage = ["source_file", "source_line"]
    found = {"pupil_known": unknown.assign(_duplicate_of=np.nan, _duplicate_file=None),
             "key_unique": duplicates.rename(columns={"duplicate_of": "_duplicate_of",
                                                      "duplicate_file": "_duplicate_file"})}
    results: list[dict] = []
    parts = [local.rename(columns={"_local_reason": "reason", "_local_column": "column_name"})[
        [*lineage, "column_name", "reason"]].assign(_order=0)]
    for order, name in enumerate(("pupil_known", "key_unique"), start=1):
        if name not in checks:
            continue
        check = checks[name]
        failing = found[name].sort_values(lineage, kind="stable").reset_index(drop=True)
        failing["_duplicate_of"] = failing["_duplicate_of"].astype("float64")
        severity = severity_of(source.severity, check.name, check.reason, check.severity)
        results.append(_result(source, check.name, check.column, not len(failing), len(failing),
                               total_rows, severity))
        if not len(failing):
            continue
        if severity == "file":
            outcome = CheckResult(check=check, success=False, element_count=total_rows,
                                  unexpected_count=len(failing), rows=np.arange(len(failing)))
            raise _stop(source, outcome, failing)
        parts.append(pd.DataFrame({
            "source_file": failing["source_file"].to_numpy(),
            "source_line": failing["source_line"].to_numpy(),
            "column_name": check.column, "reason": _messages(check, failing), "_order": order}))
    reasons = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(
        len(p) for p in parts) else pd.DataFrame(columns=[*lineage, "column_name", "reason", "_order"])
    if not len(reasons):
        return CrossFileOutcome(quarantine=pd.DataFrame(columns=QUARANTINE_COLUMNS), results=results)
    reasons = reasons.sort_values([*lineage, "_order"], kind="stable")
    merged = reasons.groupby(lineage, sort=True).agg(
        column_name=("column_name", lambda s: ",".join(dict.fromkeys(s))),
        reason=("reason", REASON_SEPARATOR.join)).reset_index()
    typed = typed_rows(merged[lineage])
    prepared = prepare_frame(typed, source.kind, None, duplicates=(
        pd.Series(np.nan, index=range(len(typed))), pd.Series(None, index=range(len(typed)), dtype=object)))
    quarantine = pd.DataFrame({
        "source_file": merged["source_file"].to_numpy(),
        "source_line": merged["source_line"].to_numpy().astype("int64"),
        "column_name": merged["column_name"].to_numpy(),
        "reason": [mask_cpr(text) for text in merged["reason"]],
        "raw_values": [mask_cpr(text) for text in _raw_values(prepared, list(typed.columns))],
    })
    return CrossFileOutcome(quarantine=quarantine, results=results)


def results_by_file(outcome: ValidationOutcome, frame: pd.DataFrame, source: SourceConfig,
                    context: ValidationContext) -> pd.DataFrame:
    """The results of :func:`check_rows` over rows of several files, split by file.

    Counted the way Great Expectations counts: a check's ``element_count`` is the rows it
    looked at (all of them, or those its ``where`` condition selects), its
    ``unexpected_count`` the rows that failed it. Summing a file's results over chunks, and
    the files' results over a source, gives the source's results.

    Args:
        outcome: From :func:`check_rows` over ``frame``.
        frame: The rows checked (with ``source_file``).
        source: The source's config.
        context: The run's context (the checks it builds).

    Returns:
        ``RESULT_COLUMNS`` plus ``source_file``, one row per file and check.
    """
    checks = {c.name: c for c in row_checks(source.kind, context.today, context.school_codes, source.grade_range)}
    codes, files = pd.factorize(frame["source_file"].reset_index(drop=True))
    rows_per_file = np.bincount(codes, minlength=len(files))
    parts = []
    for result in outcome.results.to_dict("records"):
        check = checks[result["expectation"]]
        if check.where is None:
            elements = rows_per_file
        else:
            column, value = check.where
            chosen = (frame[column].reset_index(drop=True) == value).fillna(False).to_numpy(dtype=bool)
            elements = np.bincount(codes[chosen], minlength=len(files))
        failed = np.bincount(codes[outcome.failing.get(check.name, np.array([], dtype="int64"))],
                             minlength=len(files))
        parts.append(pd.DataFrame({
            "source": result["source"], "expectation": result["expectation"],
            "column_name": result["column_name"], "success": failed == 0,
            "unexpected_count": failed.astype("int64"), "element_count": elements.astype("int64"),
            "severity": result["severity"], "source_file": np.asarray(files, dtype=object)}))
    if not parts:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "source_file"])
    return pd.concat(parts, ignore_index=True)
