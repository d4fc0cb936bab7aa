"""Synthetic municipalities written once per session for the generator's tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.synth import SynthParams, SynthSummary, describe_municipality, generate_municipality

#: Small but complete: four schools (one daily, one silent on absence), the NT and OVERGANG
#: scales, UPV years and designation years, a last school year cut after H1.
FORMAT_PARAMS = SynthParams(seed=5, schools=4, pupils_per_grade=60, first_school_year="2020/21",
                            last_term="2025/26-H1")
#: Moderate sizes for the published base rates, in two windows to keep each run short.
BASE_RATE_EARLY = SynthParams(seed=21, schools=6, pupils_per_grade=1000,
                              first_school_year="2014/15", last_term="2017/18-H2")
BASE_RATE_LATE = SynthParams(seed=22, schools=6, pupils_per_grade=1000,
                             first_school_year="2020/21", last_term="2022/23-H2")


@pytest.fixture(scope="session")
def format_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    """A small municipality for format and consistency checks."""
    out = tmp_path_factory.mktemp("synth_format") / "municipality"
    summary = generate_municipality(out, FORMAT_PARAMS)
    return out, summary


@pytest.fixture(scope="session")
def base_rates_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two moderate municipalities (early and late years)."""
    dirs = []
    for name, params in (("early", BASE_RATE_EARLY), ("late", BASE_RATE_LATE)):
        out = tmp_path_factory.mktemp(f"synth_rates_{name}") / "municipality"
        generate_municipality(out, params)
        dirs.append(out)
    return dirs


@pytest.fixture(scope="session")
def base_rates(base_rates_dirs: list[Path]) -> pd.DataFrame:
    """``describe_municipality`` over both moderate municipalities."""
    return pd.concat([describe_municipality(out) for out in base_rates_dirs], ignore_index=True)
