"""Exclusion from screening (issue 15, part 4): CPR handling and the exclusion store.

The end-to-end test (an excluded pupil is in no later output) is in ``test_lifecycle_runs.py``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ews.exclusions import ExclusionError, ExclusionStore, pupil_id_from_cpr
from ews.pseudonym import normalise_cpr, pseudonymise
from tests.conftest import TEST_KEY

runner = CliRunner()


def cpr_of(synthetic_dir: Path, pupil_id: str) -> str:
    """The CPR number of a pseudonym, from the synthetic municipality's pupils exports."""
    for path in sorted((synthetic_dir / "exports").glob("elever_*.csv")):
        frame = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
        column = next(c for c in frame.columns if "cpr" in c.lower())
        for value in frame[column].dropna():
            digits = normalise_cpr(value)
            if digits and pseudonymise(digits, TEST_KEY.encode()) == pupil_id:
                return value
    raise AssertionError(f"no CPR number for {pupil_id}")


def test_a_typed_cpr_becomes_the_ingest_pseudonym_and_a_bad_one_is_refused_without_echo() -> None:
    assert pupil_id_from_cpr("010203-4006", b"k") == pseudonymise("0102034006", b"k")
    with pytest.raises(ExclusionError) as caught:
        pupil_id_from_cpr("310299-1234", b"k")  # 31 February
    assert "310299" not in str(caught.value)


def test_the_store_keeps_one_active_exclusion_per_pupil_and_lifts_it(tmp_path: Path) -> None:
    store = ExclusionStore(tmp_path)
    first = store.add("pabc", "indsigelse", date(2026, 1, 10), "admin")
    again = store.add("pabc", "fejl_i_data", date(2026, 2, 1), "admin")
    assert again.exclusion_id == first.exclusion_id
    with pytest.raises(ExclusionError):
        store.add("pdef", "because I said so", date(2026, 1, 10), "admin")
    assert list(store.active(date(2026, 1, 9))["pupil_id"]) == []  # not yet in effect
    assert list(store.active(date(2026, 1, 10))["pupil_id"]) == ["pabc"]
    store.lift(first.exclusion_id, date(2026, 3, 1), "admin")
    assert list(store.active(date(2026, 3, 1))["pupil_id"]) == []
    with pytest.raises(ExclusionError):
        store.lift(first.exclusion_id, date(2026, 3, 2), "admin")
