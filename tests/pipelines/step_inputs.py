"""Typed inputs for calling one step of a termly run on its own (``pipelines.steps``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ews.config import load_config
from ews.settings import Settings
from ews.terms import Term
from pipelines.steps import RunInputs


def run_inputs(settings: Settings, term: str, run_id: str, run_dir: Path, code_version: str = "test") -> RunInputs:
    """The inputs of a run of ``term`` under ``settings``, without hashing files or logging a run.

    Args:
        settings: The settings (state folder, config, inbox).
        term: The term, e.g. ``2025/26-H1``.
        run_id: The run id the step writes its rows under.
        run_dir: Where the step writes its files.
        code_version: The code version (part of the model id: the finished run's, to reuse its model).

    Returns:
        Inputs with no files found and no exclusions: enough for every step after the ingest.
    """
    config = load_config(settings.resolved_config_path)
    parsed = Term.parse(term)
    return RunInputs(
        settings=settings, config=config, term=parsed, as_of_date=config.terms.as_of_date(parsed),
        run_id=run_id, attempt=1, config_hash="test", code_version=code_version, data_snapshot="test",
        run_dir=run_dir, started_at=datetime.now(UTC).replace(tzinfo=None), sources=(), file_hashes={},
        previous_rows={}, exclusions=pd.DataFrame(columns=["pupil_id", "excluded_on", "reason"]),
    )
