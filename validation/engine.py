"""Running the contracts' expectations over a frame with Great Expectations' pandas path.

One ephemeral context per process (no files, no Data Docs, progress bars off), one pandas data
source and one whole-frame batch definition, reused for every check. Each check is validated
over only the columns it reads, with the ``COMPLETE`` result format: its
``unexpected_index_list`` holds the positions of the failing rows (the frame's index is the row
position, ``_row``), from which the gate takes file and line. Asking Great Expectations for the
lineage columns instead (``unexpected_index_column_names``) makes it look up every failing row
one by one, about a millisecond a row: a badly broken export of a million rows would take hours.

An expectation that raises inside Great Expectations is a defect of the contracts, never a data
problem: it stops the run with :class:`ContractError` instead of counting as passed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from validation.contracts import RowCheck


class ContractError(RuntimeError):
    """An expectation could not be evaluated: a defect in the contracts, not in the data."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one row check.

    Attributes:
        check: The check.
        success: Whether every row passed.
        element_count: Rows the check looked at.
        unexpected_count: Rows that failed.
        rows: Positions (``_row``) of the failing rows.
    """

    check: RowCheck
    success: bool
    element_count: int
    unexpected_count: int
    rows: np.ndarray


_lock = threading.Lock()
_state: dict[str, Any] = {}


def _batch_definition() -> Any:
    if "batch_definition" not in _state:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        # in memory only: no Data Docs site (a temporary folder per run), no usage statistics
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False)
        context = gx.get_context(mode="ephemeral", project_config=config)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("ews_sources").add_dataframe_asset("typed_rows")
        _state["batch_definition"] = asset.add_batch_definition_whole_dataframe("whole_frame")
    return _state["batch_definition"]


def _columns_of(expectation: Any) -> list[str]:
    """The columns an expectation reads (its domain and its row condition)."""
    columns = [getattr(expectation, name, None) for name in ("column", "column_A", "column_B")]
    columns += list(getattr(expectation, "column_list", None) or [])
    condition = getattr(expectation, "row_condition", None)
    condition_column = getattr(getattr(condition, "column", None), "name", None)
    return [c for c in dict.fromkeys([*columns, condition_column]) if isinstance(c, str)]


@dataclass(frozen=True)
class _Combinations:
    """The distinct combinations of some columns' values over a frame's rows.

    Attributes:
        frame: One row per combination (its first row's values), index 0..k-1.
        codes: Per row of the full frame, its combination.
        counts: Rows per combination.
    """

    frame: pd.DataFrame
    codes: np.ndarray
    counts: np.ndarray


def _combinations(frame: pd.DataFrame, columns: list[str]) -> _Combinations:
    """Factorize each column (a missing value is its own code) and combine the codes."""
    combined = np.zeros(len(frame), dtype="int64")
    size = 1
    for name in columns:
        codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
        cardinality = len(uniques) + 1
        if size * cardinality >= 2**62:  # renumber before the product could overflow
            combined, kept = pd.factorize(combined)
            size = len(kept)
        combined = combined * cardinality + (codes + 1)
        size *= cardinality
    codes, kept = pd.factorize(combined)
    first = np.empty(len(kept), dtype="int64")
    first[codes[::-1]] = np.arange(len(frame) - 1, -1, -1, dtype="int64")
    return _Combinations(frame=frame[columns].iloc[first].reset_index(drop=True),
                         codes=codes.astype("int64"), counts=np.bincount(codes, minlength=len(kept)))


def _distinct_applies(expectation: Any) -> bool:
    """Whether an expectation decides each row from that row's values alone.

    Then it can be evaluated on the distinct combinations of the columns it reads. A ``mostly``
    below 1 (a share of rows), or any expectation that is not a map over rows, is evaluated on
    every row.
    """
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    row_wise = isinstance(expectation, ColumnMapExpectation | ColumnPairMapExpectation
                          | MulticolumnMapExpectation)
    return row_wise and getattr(expectation, "mostly", 1) in (None, 1)


def run_checks(frame: pd.DataFrame, checks: list[RowCheck], suite_name: str, *,
               distinct: bool = True, verdicts: VerdictCache | None = None) -> list[CheckResult]:
    """Evaluate row checks over a prepared frame.

    Each check is validated over only the columns it reads, and, when it decides each row from
    that row's values (every row check of the contracts), over the distinct combinations of
    those values only: a check of dates or codes sees a few hundred combinations instead of a
    million rows. Great Expectations decides which combinations fail; the failing rows are the
    rows of those combinations, and the counts are weighted by rows, so the result is the one
    of the whole frame. Should Great Expectations count the combinations in a way the weighting
    cannot reproduce, the check is evaluated over every row instead.

    Args:
        frame: From :func:`validation.contracts.prepare_frame`: index = row position.
        checks: The checks; their names must be unique.
        suite_name: The source (named in errors and in each expectation's meta).
        distinct: Whether row-wise checks may run on the distinct combinations (False: every
            check over every row, the reference the combinations are tested against).
        verdicts: Verdicts on combinations evaluated before (earlier chunks of the source);
            new verdicts are added to it.

    Returns:
        One result per check, in the order of ``checks``.

    Raises:
        ContractError: When Great Expectations could not evaluate an expectation.
    """
    results = []
    for check in checks:
        expectation = check.expectation()
        expectation.meta = {"check": check.name, "reason": check.reason, "source": suite_name}
        needed = [c for c in _columns_of(expectation) if c in frame.columns]
        outcome = None
        if distinct and needed and _distinct_applies(expectation):
            outcome = _run_distinct(frame, check, expectation, needed, suite_name, verdicts)
        if outcome is None:
            outcome = _check_result(check, _validate(frame[needed or ["_row"]], expectation),
                                    suite_name, len(frame))
        results.append(outcome)
    return results


def _validate(frame: pd.DataFrame, expectation: Any) -> Any:
    """One expectation over a frame through Great Expectations (the whole-frame batch)."""
    from great_expectations.validator.v1_validator import Validator

    # what Batch.validate does, without fetching (and fingerprinting) the batch twice
    validator = Validator(batch_definition=_batch_definition(), batch_parameters={"dataframe": frame},
                          result_format={"result_format": "COMPLETE"})
    with _lock:
        return validator.validate_expectation(expectation)


class VerdictCache:
    """Great Expectations' verdicts on the value combinations it has already evaluated.

    The verdict of a row-wise check on a row depends only on that row's values in the columns
    the check reads, so a combination evaluated in one chunk of a source need not be evaluated
    again in the next: the chunks of a source with dates, codes and day counts share nearly
    all their combinations, and most chunks need no call to Great Expectations at all. One
    cache serves one source's checks in one run (the checks are built from one context).

    Args:
        limit: Combinations kept per check; beyond it, new ones are evaluated but not kept.
    """

    def __init__(self, limit: int = 1_000_000) -> None:
        self.limit = limit
        self._known: dict[tuple[str, ...], pd.DataFrame] = {}

    def lookup(self, key: tuple[str, ...], combos: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per combination: whether it is known, and if so whether it fails and is in the domain."""
        rows = len(combos)
        known = self._known.get(key)
        nothing = (np.zeros(rows, dtype=bool), np.zeros(rows, dtype=bool), np.zeros(rows, dtype=bool))
        if known is None or not rows:
            return nothing
        matched = combos.merge(known, on=list(combos.columns), how="left", sort=False)
        if len(matched) != rows:  # the same combination twice in the cache: do not trust it
            return nothing
        found = matched[_FAILING].notna().to_numpy(dtype=bool)
        return (found, matched[_FAILING].fillna(False).to_numpy(dtype=bool),
                matched[_IN_DOMAIN].fillna(False).to_numpy(dtype=bool))

    def store(self, key: tuple[str, ...], combos: pd.DataFrame, failing: np.ndarray,
              in_domain: np.ndarray) -> None:
        """Keep the verdicts on combinations just evaluated (not known before)."""
        known = self._known.get(key)
        if known is not None and len(known) + len(combos) > self.limit:
            return
        fresh = combos.assign(**{_FAILING: pd.array(failing, dtype="boolean"),
                                 _IN_DOMAIN: pd.array(in_domain, dtype="boolean")})
        self._known[key] = fresh if known is None else pd.concat([known, fresh], ignore_index=True)


_FAILING = "__verdict_failing"
_IN_DOMAIN = "__verdict_in_domain"


def _run_distinct(frame: pd.DataFrame, check: RowCheck, expectation: Any, needed: list[str],
                  suite_name: str, verdicts: VerdictCache | None) -> CheckResult | None:
    """A row-wise check on the distinct combinations of its columns; None to check every row."""
    combos = _combinations(frame, needed)
    key = (check.name, *needed)
    found, failing, in_domain = (verdicts.lookup(key, combos.frame) if verdicts is not None else
                                 (np.zeros(len(combos.counts), dtype=bool),) * 3)
    new = ~found
    if int(new.sum()) * 2 > len(frame):
        return None  # hardly any repetition: the rows themselves are as cheap
    if new.any():
        fresh = combos.frame[new].reset_index(drop=True)
        evaluated = _evaluate_combinations(fresh, check, expectation, suite_name)
        if evaluated is None:
            return None
        failing, in_domain = failing.copy(), in_domain.copy()
        failing[new], in_domain[new] = evaluated
        if verdicts is not None:
            verdicts.store(key, fresh, *evaluated)
    unexpected = int(combos.counts[failing].sum())
    rows = np.flatnonzero(failing[combos.codes]).astype("int64")
    return CheckResult(check=check, success=unexpected == 0,
                       element_count=int(combos.counts[in_domain].sum()),
                       unexpected_count=unexpected, rows=rows)


def _evaluate_combinations(combos: pd.DataFrame, check: RowCheck, expectation: Any, suite_name: str
                           ) -> tuple[np.ndarray, np.ndarray] | None:
    """Great Expectations' verdict per combination: (fails, in the check's domain).

    None when its counts cannot be attributed to combinations (the rows are checked instead).
    """
    result = _check_result(check, _validate(combos, expectation), suite_name, len(combos))
    # the domain: every combination, or those its row condition (``where``) selects
    if result.element_count == len(combos):
        in_domain = np.ones(len(combos), dtype=bool)
    elif check.where is not None:
        column, value = check.where
        in_domain = (combos[column] == value).fillna(False).to_numpy(dtype=bool)
        if int(in_domain.sum()) != result.element_count:
            return None
    else:
        return None
    if result.unexpected_count != len(result.rows) or result.success != (not len(result.rows)):
        return None
    failing = np.zeros(len(combos), dtype=bool)
    failing[result.rows] = True
    return failing, in_domain


def _check_result(check: RowCheck, result: Any, suite_name: str, rows: int) -> CheckResult:
    info = result.exception_info or {}
    raised = info.get("raised_exception") if "raised_exception" in info else any(
        isinstance(v, dict) and v.get("raised_exception") for v in info.values())
    if raised:
        messages = [info.get("exception_message")] if "exception_message" in info else [
            v.get("exception_message") for v in info.values() if isinstance(v, dict)]
        raise ContractError(
            f"contract '{check.name}' of '{suite_name}' could not be evaluated: "
            f"{'; '.join(str(m) for m in messages if m)}")
    detail = result.result or {}
    failing = np.unique(np.asarray(detail.get("unexpected_index_list") or [], dtype="int64"))
    return CheckResult(
        check=check,
        success=bool(result.success),
        element_count=int(detail.get("element_count", rows) or 0),
        unexpected_count=int(detail.get("unexpected_count", len(failing)) or 0),
        rows=failing,
    )
