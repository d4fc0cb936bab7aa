"""Benchmarks of the validation gate (``make bench``): typed rows in, valid + quarantine out.

Sizes follow the synthetic Herning-sized municipality (``ews synth``: about 10,500 pupils a
school year, 12 school years): absence 5.15 M rows, pupils 126 k, contacts 149 k. Rows are built
directly as the parsing step types them (no file reading), with 0.1 % of absence rows broken so
the quarantine path is measured too. National size (about 65 times Herning) is extrapolated from
the per-row rate at several sizes: see docs/benchmarks.md.

Run: ``.venv/bin/pytest bench/validation_gate_test.py --benchmark-only -q`` (add
``--benchmark-json=FILE`` for rows per second, peak memory and the machine's load average)
(``EWS_BENCH_SCALE=0.1`` for a quick look).
"""

from __future__ import annotations

import os
import resource
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ews.config import SourceConfig, default_sources
from ews.terms import Term
from validation.gate import ValidationContext, validate_source

SCALE = float(os.environ.get("EWS_BENCH_SCALE", "1"))
PUPILS_PER_YEAR = 10_500
YEARS = 12
WEEKS = 40
SOURCES = {s["name"]: SourceConfig.model_validate(s) for s in default_sources()}
LETTERS = str.maketrans("0123456789", "abcdefghij")


def pupil_ids(count: int) -> np.ndarray:
    return np.array([f"p{i:015d}".translate(LETTERS) for i in range(count)], dtype=object)


def absence_frame(pupils: int, years: int, broken: float = 0.001, seed: int = 1) -> pd.DataFrame:
    """Weekly absence rows: ``pupils`` pupils, ``WEEKS`` weeks in each of ``years`` school years."""
    rng = np.random.default_rng(seed)
    ids = pupil_ids(pupils)
    parts = []
    for offset in range(years):
        start_year = 2025 - offset
        first_monday = pd.Timestamp(start_year, 8, 1) + pd.offsets.Week(weekday=0)
        rows = pupils * WEEKS
        weeks = np.tile(np.arange(WEEKS), pupils)
        starts = (np.datetime64(first_monday.date()) + weeks * 7).astype("datetime64[s]")
        illness = rng.choice([0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 2.0], rows)
        illness[rng.random(rows) < broken] = 9.0  # more than the 5 school days
        parts.append(pd.DataFrame({
            "pupil_id": pd.array(np.repeat(ids, WEEKS), dtype="str"),
            "birth_year": 2012.0,
            "school_code": pd.array(rng.choice(["101", "102", "103"], rows), dtype="str"),
            "period_start": starts,
            "period_end": starts + np.timedelta64(4, "D"),
            "school_days": pd.array(np.full(rows, 5.0), dtype="Float64"),
            "illness_days": pd.array(illness, dtype="Float64"),
            "authorised_days": pd.array(rng.choice([0.0, 0.0, 1.0], rows), dtype="Float64"),
            "unauthorised_days": pd.array(np.zeros(rows), dtype="Float64"),
            "late_arrivals": pd.array(rng.integers(0, 2, rows), dtype="Int64"),
            "source_file": f"fravaer_{start_year}-{(start_year + 1) % 100:02d}.csv",
            "source_line": np.arange(2, rows + 2, dtype="int64"),
        }))
    return pd.concat(parts, ignore_index=True)


def pupils_frame(pupils: int, years: int, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = pupil_ids(pupils)
    parts = []
    for offset in range(years):
        start_year = 2025 - offset
        grade = rng.integers(0, 11, pupils)
        parts.append(pd.DataFrame({
            "pupil_id": pd.array(ids, dtype="str"),
            "birth_year": (start_year - 6 - grade).astype("float64"),
            "school_code": pd.array(rng.choice(["101", "102", "103"], pupils), dtype="str"),
            "grade": pd.array(grade, dtype="Int64"),
            "class_label": pd.array([f"{g}.A" for g in grade], dtype="str"),
            "sex": pd.array(rng.choice(["F", "M"], pupils), dtype="str"),
            "origin": pd.array(rng.choice(["dansk", "efterkommer", None], pupils), dtype="str"),
            "enrolled_from": np.full(pupils, np.datetime64(f"{start_year}-08-01"), dtype="datetime64[s]"),
            "enrolled_to": np.full(pupils, np.datetime64("NaT"), dtype="datetime64[s]"),
            "source_file": f"elever_{start_year}-{(start_year + 1) % 100:02d}.csv",
            "source_line": np.arange(2, pupils + 2, dtype="int64"),
        }))
    return pd.concat(parts, ignore_index=True)


def contacts_frame(rows: int, pupils: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = pupil_ids(pupils)
    days = rng.integers(0, 300, rows)
    return pd.DataFrame({
        "pupil_id": pd.array(rng.choice(ids, rows), dtype="str"),
        "birth_year": 2012.0,
        "contact_date": (np.datetime64("2024-08-05") + days).astype("datetime64[s]"),
        "discipline": pd.array(rng.choice(["ppr", "socialraadgiver", "uu", "sundhedsplejerske"], rows),
                               dtype="str"),
        "contact_type": pd.array(rng.choice(["kontakt", "underretning"], rows), dtype="str"),
        "source_file": "kontakter_2024-25.csv",
        "source_line": np.arange(2, rows + 2, dtype="int64"),
    })


def context(pupils: int) -> ValidationContext:
    return ValidationContext(term=Term.parse("2025/26-H1"), today=date(2026, 7, 31),
                             known_pupils=pd.Index(pupil_ids(pupils)),
                             school_codes=frozenset({"101", "102", "103"}))


def run_once(benchmark, frame: pd.DataFrame, source: str, pupils: int) -> None:  # noqa: ANN001
    ctx = context(pupils)
    outcome = benchmark.pedantic(validate_source, args=(frame, SOURCES[source], ctx),
                                 rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update({
        "rows": len(frame), "quarantined": len(outcome.quarantine),
        "rows_per_second": round(len(frame) / benchmark.stats["mean"]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average_1min": round(os.getloadavg()[0], 1),  # the machine is shared: say how busy
    })
    assert len(outcome.valid) + len(outcome.quarantine) == len(frame)


@pytest.fixture(scope="module", autouse=True)
def warm_up_great_expectations() -> None:
    """Import Great Expectations and build its context once, outside the timings."""
    validate_source(absence_frame(10, 1), SOURCES["absence"], context(10))


@pytest.mark.parametrize("years", [1, 3, YEARS], ids=["1-year", "3-years", "herning-12-years"])
def test_absence_herning(benchmark, years: int) -> None:  # noqa: ANN001
    pupils = max(int(PUPILS_PER_YEAR * SCALE), 10)
    run_once(benchmark, absence_frame(pupils, years), "absence", pupils)


def test_pupils_herning(benchmark) -> None:  # noqa: ANN001
    pupils = max(int(PUPILS_PER_YEAR * SCALE), 10)
    run_once(benchmark, pupils_frame(pupils, YEARS), "pupils", pupils)


def test_contacts_herning(benchmark) -> None:  # noqa: ANN001
    pupils = max(int(PUPILS_PER_YEAR * SCALE), 10)
    run_once(benchmark, contacts_frame(int(149_000 * SCALE) + 10, pupils), "contacts", pupils)
