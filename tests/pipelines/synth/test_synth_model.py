"""The generating model: true probabilities, ids, calendar and the Excel writer."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from openpyxl import load_workbook
from scipy.special import ndtr

from pipelines.synth import model
from pipelines.synth.calendar import build_school_year, easter_sunday
from pipelines.synth.population import _cpr_numbers, build_schools, day_number
from pipelines.synth.xlsx import read_xlsx, write_xlsx


def _population(n: int, seed: int) -> model.Latent:
    rng = np.random.default_rng(seed)
    boy = (rng.random(n) < 0.5).astype(np.int8)
    origin = np.zeros(n, dtype=np.int8)
    shift = np.zeros((n, 3))
    return model.simulate_latent(rng, boy, origin, shift, np.zeros(n, dtype=np.int64))


@pytest.mark.parametrize("k", [10, 12, 14, 15])
def test_asof_probability_is_calibrated(k):
    """P(Y | state at k) in closed form matches outcomes simulated forward by the model."""
    latent = _population(60_000, seed=k)
    threshold = np.full(60_000, model.reference().upv_threshold(2020))
    rng = np.random.default_rng(100 + k)
    y = latent.liability(model.K_UPV) + model.UPV_NOISE_SD * rng.standard_normal(60_000) > threshold
    p = model.upv_probability_asof(latent, k, threshold)
    assert abs(p.mean() - y.mean()) < 0.01
    order = np.argsort(p)
    for chunk in np.array_split(order, 10):
        assert abs(p[chunk].mean() - y[chunk].mean()) < 0.025


def test_asof_probability_sharpens_towards_grade_8():
    latent = _population(20_000, seed=1)
    threshold = np.full(20_000, model.reference().upv_threshold(2020))
    spread = [model.upv_probability_asof(latent, k, threshold).std() for k in (10, 13, 16)]
    assert spread[0] < spread[1] < spread[2]
    final = ndtr((latent.liability(model.K_UPV) - threshold) / model.UPV_NOISE_SD)
    assert np.allclose(model.upv_probability_asof(latent, 17, threshold), final)


def test_paths_and_causes():
    latent = _population(20_000, seed=2)
    paths = model.pupil_paths(latent)
    shares = {p: (paths == p).mean() for p in ("tidlig_starter", "sen_starter", "ingen")}
    assert 0.07 < shares["tidlig_starter"] < 0.13 and 0.06 < shares["sen_starter"] < 0.12
    causes = model.pupil_causes(latent, model.reference())
    early = causes[paths == "tidlig_starter"]
    assert np.mean([len(c.split("|")) >= 2 for c in early]) > 0.5
    assert np.mean(causes[paths == "ingen"] == "") > 0.5


def test_reference_thresholds_follow_the_published_trend():
    ref = model.reference()
    thresholds = [ref.upv_threshold(y) for y in (2014, 2015, 2016, 2020)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert ref.upv_threshold(2030) == ref.upv_threshold(2020)


def test_cpr_ids_are_unique_and_carry_birth_date_and_sex():
    rng = np.random.default_rng(0)
    n = 150_000  # a national cohort
    birth = day_number(2012, 1, 1) + rng.integers(0, 366, size=n)
    offset = rng.choice([-1, 0, 1], size=n, p=[0.01, 0.91, 0.08])
    boy = (rng.random(n) < 0.5).astype(np.int64)
    ids = _cpr_numbers(rng, birth, offset, boy)
    assert len(set(ids)) == n
    first = ids[0]
    born = (np.datetime64("1970-01-01") + np.timedelta64(int(birth[0]), "D")).astype(object)
    assert first[:6] == born.strftime("%d%m%y")
    assert int(first[-1]) % 2 == boy[0]
    assert all(c[7] in "456789" for c in ids[:1000])  # century digit for 2000-2036


def test_school_table_for_a_national_size():
    schools = build_schools(1100, 65_000, np.random.default_rng(0))
    assert len(set(schools.codes)) == 1100 and schools.codes[0] == "S0001"
    assert len(set(schools.names)) == 1100
    assert abs(schools.weights.sum() - 1) < 1e-9
    assert np.allclose((schools.weights[:, None] * schools.shift).sum(axis=0), 0, atol=1e-12)


def test_school_calendar():
    year = build_school_year(2023)
    days = year.days.astype(object)
    assert 195 <= len(days) <= 205
    assert all(d.weekday() < 5 for d in days)
    assert date(2023, 12, 27) not in days and date(2024, 6, 5) not in days
    assert easter_sunday(2024) == date(2024, 3, 31)
    assert date(2024, 3, 28) not in days  # skærtorsdag
    assert days[0] == date(2023, 8, 14)


def test_xlsx_roundtrip(tmp_path):
    path = tmp_path / "t.xlsx"
    columns = {
        "CPR": np.array(["010203-4567", "020304-5678"], dtype=object),
        "Klassetrin": np.array([8, 9]),
        "Dato": np.array(["2020-01-15", "2020-06-20"], dtype="datetime64[D]"),
        "Karakter": np.array(["00", "-3"], dtype=object),
        "Fag": np.array(["Dansk & <ting>", "Matematik"], dtype=object),
    }
    kinds = {"CPR": "text", "Klassetrin": "int", "Dato": "date", "Karakter": "text",
             "Fag": "text"}
    write_xlsx(path, "Karakterer", columns, kinds)
    first = path.read_bytes()
    write_xlsx(path, "Karakterer", columns, kinds)
    assert path.read_bytes() == first
    rows = list(load_workbook(path, read_only=True).active.iter_rows(values_only=True))
    assert rows[1][2].date() == date(2020, 1, 15)
    assert rows[1][3] == "00" and rows[2][1] == 9 and rows[1][4] == "Dansk & <ting>"
    frame = read_xlsx(path, "Karakterer")
    assert list(frame["Karakter"]) == ["00", "-3"] and list(frame["Fag"])[0] == "Dansk & <ting>"


def test_drift_increments_enter_the_liability_in_full():
    """The closed-form oracle assumes each drift increment adds fully to L."""
    assert sum(p.drift_share for p in model.FAMILY_PARAMS) == pytest.approx(1.0)
    latent = _population(5_000, seed=3)
    drifting = latent.switch_term >= 0
    assert (latent.drift[~drifting] == 0).all()
    done = latent.drift[drifting, -1]  # all steps taken by grade 10
    assert 0.9 * model.DRIFT_MEAN < done.mean() / model.DRIFT_STEPS < 1.1 * model.DRIFT_MEAN
