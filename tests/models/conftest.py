"""A small simulated warehouse for model tests: clean_* tables with a known risk signal.

Pupils carry a latent risk ``r``; unauthorised absence, national tests and PPR contacts are
noisy functions of it, and the grade-8 UPV outcome is ``r + noise > threshold``. The true
probability of the outcome given ``r`` is returned as a ground truth (like the synthetic
municipality's ``asof.csv``, already pseudonymous). Synthetic pupils only.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from ews.config import MunicipalityConfig, build_config_document
from ews.pseudonym import pseudonymise
from ews.warehouse import ensure_schema

FIRST_YEAR, LAST_YEAR = 2014, 2025  # school years 2014/15 .. 2025/26 (H1)
PUPILS_PER_COHORT = 140
SCHOOLS = ("S1", "S2", "S3", "S4")
NOISE, THRESHOLD = 0.8, 0.55
#: The pseudonymisation key of the simulated warehouse (pupil ids are keyed hashes of
#: synthetic CPR-shaped numbers, so a ground-truth file can be pseudonymised to match).
SIM_KEY = b"test-key-not-secret"


def make_config(capacity: int = 6) -> MunicipalityConfig:
    document = build_config_document(
        "Simkommune", ["Nord", "Syd"],
        [{"id": "N1", "name": "Netværk Nord", "area": "Nord", "capacity_per_term": capacity},
         {"id": "N2", "name": "Netværk Syd", "area": "Syd", "capacity_per_term": capacity}],
        [{"code": "S1", "name": "Skole 1", "area": "Nord", "network": "N1", "reports_absence": True},
         {"code": "S2", "name": "Skole 2", "area": "Nord", "network": "N1", "reports_absence": True},
         {"code": "S3", "name": "Skole 3", "area": "Syd", "network": "N2", "reports_absence": True},
         {"code": "S4", "name": "Skole 4", "area": "Syd", "network": "N2", "reports_absence": False}],
    )
    return MunicipalityConfig.model_validate(document)


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    frame = frame.assign(source_file=f"{table}.csv", source_line=np.arange(2, len(frame) + 2))
    con.register("_sim", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _sim")
    con.unregister("_sim")


def simulate_warehouse(con: duckdb.DuckDBPyConnection, seed: int = 3) -> pd.DataFrame:
    """Fill the clean tables; return the ground truth (pupil_id, cpr, as_of_date, term, grade, p_true)."""
    rng = np.random.default_rng(seed)
    rows_p, rows_a, rows_t, rows_c, rows_o = [], [], [], [], []
    truth = []
    for start in range(FIRST_YEAR - 9, LAST_YEAR + 1):  # cohort by its grade-0 school year
        n = PUPILS_PER_COHORT
        cprs = np.array([f"{i % 28 + 1:02d}{start % 12 + 1:02d}{(start - 6) % 100:02d}{1000 + i:04d}"
                         for i in range(n)], dtype=object)
        ids = np.array([pseudonymise(c, SIM_KEY) for c in cprs], dtype=object)
        r = rng.standard_normal(n)
        school = rng.choice(SCHOOLS, size=n)
        sex = rng.choice(["F", "M"], size=n)
        origin = rng.choice(["dansk", "indvandrer", "efterkommer"], size=n, p=[0.8, 0.1, 0.1])
        y_upv = (r + NOISE * rng.standard_normal(n)) > THRESHOLD
        p_true = ndtr((r - THRESHOLD) / NOISE)
        for grade in range(0, 10):
            year = start + grade
            if not FIRST_YEAR <= year <= LAST_YEAR:
                continue
            label = f"{year}/{(year + 1) % 100:02d}"
            rows_p.append(pd.DataFrame({
                "pupil_id": ids, "school_year": label, "school_code": school, "grade": grade,
                "class_label": f"{grade}.A", "sex": sex, "origin": origin, "birth_year": start - 6,
                "enrolled_from": date(year, 8, 1), "enrolled_to": None}))
            # monthly absence rows (Aug-Jun), unauthorised days grow with r; S4 reports none
            reporting = school != "S4"
            for month_index in range(11):
                month = (8 + month_index - 1) % 12 + 1
                calendar_year = year if month >= 8 else year + 1
                if date(calendar_year, month, 1) > date(LAST_YEAR, 12, 31):
                    continue
                first = date(calendar_year, month, 1)
                last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
                p_abs = 1 / (1 + np.exp(-(-3.2 + 0.9 * r)))
                unauth = rng.binomial(20, p_abs)
                ill = rng.binomial(20, 0.03, size=n)
                rows_a.append(pd.DataFrame({
                    "pupil_id": ids[reporting], "school_code": school[reporting],
                    "period_start": first, "period_end": last, "school_days": 20.0,
                    "illness_days": ill[reporting].astype(float), "authorised_days": 0.0,
                    "unauthorised_days": unauth[reporting].astype(float),
                    "late_arrivals": rng.poisson(0.5, size=n)[reporting]}))
            if grade in (3, 6, 8):
                for subject in ("dansk_laesning", "matematik"):
                    rows_t.append(pd.DataFrame({
                        "pupil_id": ids, "school_code": school, "grade": grade, "subject": subject,
                        "test_date": date(year + 1, 3, 10), "scale": "NT",
                        "score": np.clip(50 - 18 * r + 12 * rng.standard_normal(n), 1, 100).round()}))
            contacts = rng.poisson(np.exp(-2.0 + 0.9 * r))
            for i in np.flatnonzero(contacts):
                for k in range(contacts[i]):
                    rows_c.append({"pupil_id": ids[i], "contact_date": date(year, 9, 1) + timedelta(days=20 * k),
                                   "discipline": "ppr", "contact_type": "kontakt"})
            if grade == 8 and year <= 2023:
                rows_o.append(pd.DataFrame({
                    "pupil_id": ids, "outcome_definition": "upv_ikke_uddannelsesparat",
                    "school_year": label, "assessed_date": date(year, 12, 1), "outcome": y_upv}))
            for half, as_of in ((1, date(year, 11, 15)), (2, date(year + 1, 4, 15))):
                if 5 <= grade <= 9 and as_of <= date(LAST_YEAR, 11, 15):
                    truth.append(pd.DataFrame({"pupil_id": ids, "cpr": cprs, "as_of_date": as_of,
                                               "term": f"{year}/{(year + 1) % 100:02d}-H{half}",
                                               "grade": grade, "p_true": p_true}))
    _insert(con, "clean_pupils", pd.concat(rows_p, ignore_index=True))
    _insert(con, "clean_absence", pd.concat(rows_a, ignore_index=True))
    _insert(con, "clean_tests", pd.concat(rows_t, ignore_index=True))
    _insert(con, "clean_contacts", pd.DataFrame(rows_c))
    _insert(con, "clean_outcomes", pd.concat(rows_o, ignore_index=True))
    return pd.concat(truth, ignore_index=True)


@pytest.fixture(scope="session")
def sim_config() -> MunicipalityConfig:
    return make_config()


@pytest.fixture(scope="session")
def sim_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A DuckDB file with simulated clean tables, and the ground truth."""
    path = tmp_path_factory.mktemp("sim") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    ensure_schema(con)
    truth = simulate_warehouse(con)
    con.close()
    return path, truth


@pytest.fixture
def sim_con(sim_warehouse, tmp_path) -> duckdb.DuckDBPyConnection:
    """A writable copy of the simulated warehouse for one test."""
    import shutil

    path = tmp_path / "warehouse.duckdb"
    shutil.copy(sim_warehouse[0], path)
    con = duckdb.connect(str(path))
    yield con
    con.close()


TERM = "2025/26-H1"


@pytest.fixture(scope="session")
def trained(sim_warehouse, sim_config, tmp_path_factory):
    """The model for the simulated municipality's latest term, trained once per session.

    Returns the warehouse file it was registered in, the models folder, and the bundle.
    """
    import shutil

    from models.training import train_or_load_model

    folder = tmp_path_factory.mktemp("trained")
    path = folder / "warehouse.duckdb"
    shutil.copy(sim_warehouse[0], path)
    con = duckdb.connect(str(path))
    try:
        bundle = train_or_load_model(con, sim_config, TERM, folder / "models", "test-version",
                                     fairness_bootstrap=5)
    finally:
        con.close()
    return path, folder / "models", bundle
