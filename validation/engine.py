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


def run_checks(frame: pd.DataFrame, checks: list[RowCheck], suite_name: str) -> list[CheckResult]:
    """Evaluate row checks over a prepared frame.

    Each check is validated over only the columns it reads: Great Expectations copies its
    whole batch while filtering rows, so narrow batches keep large sources fast, and its fixed
    cost is per expectation either way.

    Args:
        frame: From :func:`validation.contracts.prepare_frame`: index = row position.
        checks: The checks; their names must be unique.
        suite_name: The source (named in errors and in each expectation's meta).

    Returns:
        One result per check, in the order of ``checks``.

    Raises:
        ContractError: When Great Expectations could not evaluate an expectation.
    """
    from great_expectations.validator.v1_validator import Validator

    batch_definition = _batch_definition() if checks else None
    results = []
    for check in checks:
        expectation = check.expectation()
        expectation.meta = {"check": check.name, "reason": check.reason, "source": suite_name}
        needed = [c for c in _columns_of(expectation) if c in frame.columns]
        # what Batch.validate does, without fetching (and fingerprinting) the batch twice
        validator = Validator(batch_definition=batch_definition,
                              batch_parameters={"dataframe": frame[needed or ["_row"]]},
                              result_format={"result_format": "COMPLETE"})
        with _lock:
            result = validator.validate_expectation(expectation)
        results.append(_check_result(check, result, suite_name, len(frame)))
    return results


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
