"""Determinism, ground truth, base rates and the two developmental paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.synth import SynthParams, describe_municipality, generate_municipality
from pipelines.synth.model import FAMILIES

TINY = SynthParams(seed=3, schools=3, pupils_per_grade=15, first_school_year="2022/23",
                   last_term="2024/25-H1")


def _digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_parameters_give_identical_files(tmp_path):
    first = _digest_after(tmp_path / "a", TINY)
    second = _digest_after(tmp_path / "b", TINY)
    assert first == second
    assert any(name.endswith(".xlsx") for name in first)
    other = _digest_after(tmp_path / "c", SynthParams(**{**TINY.__dict__, "seed": 4}))
    assert other.keys() == first.keys() and other != first


def _digest_after(out: Path, params: SynthParams) -> dict[str, str]:
    generate_municipality(out, params)
    return _digest(out)


def test_rerun_replaces_earlier_files(tmp_path):
    generate_municipality(tmp_path, SynthParams(**{**TINY.__dict__, "last_term": "2024/25-H2"}))
    assert (tmp_path / "exports" / "nationale_test_2024-25.csv").exists()
    generate_municipality(tmp_path, TINY)
    assert not (tmp_path / "exports" / "nationale_test_2024-25.csv").exists()


def test_one_school_municipality(tmp_path):
    summary = generate_municipality(tmp_path, SynthParams(seed=2, schools=1, pupils_per_grade=20,
                                                          first_school_year="2023/24",
                                                          last_term="2023/24-H2"))
    assert summary.schools == 1
    pupils = pd.read_csv(tmp_path / "exports" / "elever_2023-24.csv", sep=";", dtype=str,
                         encoding="utf-8-sig")
    assert set(pupils["Skolekode"]) == {"S01"}
    assert 200 <= pupils["CPR"].nunique() <= 260
    assert summary.rows["absence"] > 0


def test_progress_is_reported(tmp_path):
    calls: list[tuple[str, float]] = []
    generate_municipality(tmp_path, TINY, progress=lambda m, f: calls.append((m, f)))
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("2023/24" in m for m, _ in calls)


@pytest.mark.parametrize("field, value", [("last_term", "2013/14-H1"), ("schools", 0),
                                          ("first_school_year", "2014-15")])
def test_bad_parameters_are_refused(tmp_path, field, value):
    with pytest.raises(ValueError):
        generate_municipality(tmp_path, SynthParams(**{**TINY.__dict__, field: value}))


def test_ground_truth_pupils(format_run):
    out, summary = format_run
    truth = pd.read_csv(out / "ground_truth" / "pupils.csv", sep=";", dtype={"cpr": str},
                        keep_default_na=False)
    assert list(truth.columns) == ["cpr", "grade8_school_year", "path", "causes", "p_upv",
                                   "p_exam"]
    assert truth["cpr"].is_unique
    exported = set()
    for path in (out / "exports").glob("elever_*.csv"):
        exported |= set(pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")["CPR"])
    assert set(truth["cpr"]) == exported
    assert summary.pupils == len(truth)
    for column in ("p_upv", "p_exam"):
        assert truth[column].between(0, 1, inclusive="neither").all()
    assert set(truth["path"]) == {"tidlig_starter", "sen_starter", "ingen"}
    causes = {c for value in truth["causes"] for c in value.split("|") if c}
    assert causes <= set(FAMILIES) and len(causes) >= 3
    assert truth["grade8_school_year"].str.match(r"^\d{4}/\d{2}$").all()


def test_ground_truth_asof(format_run):
    out, _ = format_run
    asof = pd.read_csv(out / "ground_truth" / "asof.csv", sep=";", dtype={"cpr": str})
    truth = pd.read_csv(out / "ground_truth" / "pupils.csv", sep=";", dtype={"cpr": str},
                        keep_default_na=False).set_index("cpr")
    assert list(asof.columns) == ["cpr", "term", "as_of_date", "grade", "p_upv"]
    assert not asof.duplicated(["cpr", "term"]).any()
    assert asof["grade"].between(5, 9).all()
    assert asof["p_upv"].between(0, 1, inclusive="neither").all()
    assert set(asof["cpr"]) <= set(truth.index)
    h1 = asof["term"].str.endswith("H1")
    assert (asof.loc[h1, "as_of_date"].str[5:] == "11-15").all()
    assert (asof.loc[~h1, "as_of_date"].str[5:] == "04-15").all()
    assert asof["term"].max() == "2025/26-H1"
    # from grade 8 H1 on, the as-of probability is the final one
    late = asof[(asof["grade"] == 9) | ((asof["grade"] == 8) & h1)]
    assert np.allclose(late["p_upv"].to_numpy(), truth.loc[late["cpr"], "p_upv"].to_numpy(),
                       atol=2e-6)


def test_oracle_is_calibrated_against_the_written_outcome(base_rates_dirs):
    """The grade-8 as-of probabilities average to the UPV share actually written."""
    from pipelines.synth.xlsx import read_xlsx

    for out in base_rates_dirs:
        asof = pd.read_csv(out / "ground_truth" / "asof.csv", sep=";", dtype={"cpr": str})
        for path in sorted((out / "exports").glob("upv_*.xlsx")):
            year = int(path.name[4:8])
            upv = read_xlsx(path, "UPV").set_index("CPR")
            for grade, half in ((7, 1), (8, 1)):
                term_year = year - (8 - grade)
                term = f"{term_year}/{(term_year + 1) % 100:02d}-H{half}"
                p = asof[(asof["term"] == term)].set_index("cpr")["p_upv"]
                both = upv.index.intersection(p.index)
                if len(both) < 800:
                    continue
                observed = (upv.loc[both, "Vurdering"] == "Ikke uddannelsesparat").mean()
                assert abs(p.loc[both].mean() - observed) < 0.04, (path.name, grade)


def _rate(table: pd.DataFrame, measure: str, year: str) -> tuple[float, float]:
    row = table[(table["measure"] == measure) & (table["school_year"] == year)]
    assert len(row) == 1, (measure, year)
    return float(row["value"].iloc[0]), float(row["published"].iloc[0])


@pytest.mark.parametrize("measure, year, tolerance", [
    ("upv_ikke_uddannelsesparat", "2014/15", 3.0),
    ("upv_ikke_uddannelsesparat", "2015/16", 3.0),
    ("upv_ikke_uddannelsesparat", "2016/17", 3.0),
    ("upv_ikke_uddannelsesparat", "2020/21", 3.0),
    ("fravaer_over_10pct_andel", "2017/18", 2.0),
    ("fravaer_over_10pct_andel", "2021/22", 2.0),
    ("fravaer_over_10pct_andel", "2022/23", 2.0),
    ("fravaer_gennemsnit_pct", "2022/23", 0.75),
    ("fravaer_gennemsnit_pct", "2016/17", 0.75),
    ("afgangsproeve_krav_ikke_opfyldt", "2022/23", 3.0),
])
def test_published_base_rates(base_rates, measure, year, tolerance):
    value, published = _rate(base_rates, measure, year)
    assert abs(value - published) <= tolerance, (measure, year, value, published)


def test_describe_reads_the_files(base_rates):
    pre_covid = base_rates[(base_rates["measure"] == "fravaer_gennemsnit_pct")
                           & (base_rates["school_year"] < "2019/20")]
    assert pre_covid["value"].between(5.0, 6.2).all()
    assert (pre_covid["published_text"] == "5-6 % before COVID").all()
    covid = _rate(base_rates, "fravaer_over_10pct_andel", "2021/22")[0]
    assert covid > _rate(base_rates, "fravaer_over_10pct_andel", "2020/21")[0]
    assert set(base_rates["measure"]) >= {"upv_ikke_uddannelsesparat",
                                           "fravaer_gennemsnit_pct",
                                           "fravaer_over_10pct_andel",
                                           "afgangsproeve_krav_ikke_opfyldt"}


def test_describe_without_exports(tmp_path):
    with pytest.raises(FileNotFoundError):
        describe_municipality(tmp_path)


def test_paths_leave_their_traces(base_rates_dirs):
    """Tidlig startere are visible early; sen startere drift in unauthorised absence."""
    out = next(p for p in base_rates_dirs if (p / "exports" / "fravaer_2022-23.csv").exists())
    truth = pd.read_csv(out / "ground_truth" / "pupils.csv", sep=";", dtype={"cpr": str},
                        keep_default_na=False).set_index("cpr")
    pupils = pd.read_csv(out / "exports" / "elever_2020-21.csv", sep=";", dtype=str,
                         encoding="utf-8-sig").drop_duplicates("CPR").set_index("CPR")

    def unauthorised(year: str) -> pd.Series:
        frame = pd.read_csv(out / "exports" / f"fravaer_{year}.csv", sep=";", decimal=",",
                            dtype={"CPR": str})
        sums = frame.groupby("CPR")[["Skoledage", "Ulovligt fravær"]].sum()
        return sums["Ulovligt fravær"] / sums["Skoledage"]

    grade5 = pupils.index[pupils["Klassetrin"] == "5"]  # grade 7 in 2022/23
    before, after = unauthorised("2020-21"), unauthorised("2022-23")
    both = grade5.intersection(before.index).intersection(after.index)
    path = truth.loc[both, "path"]
    rise = (after.loc[both] - before.loc[both]).groupby(path).mean()
    level = before.loc[both].groupby(path).mean()
    assert rise["sen_starter"] > 3 * rise["ingen"] + 0.005
    assert level["tidlig_starter"] > 2 * level["ingen"]
    assert level["sen_starter"] < level["tidlig_starter"]
    tests = pd.read_csv(out / "exports" / "nationale_test_2020-21.csv", dtype={"cpr": str})
    tests = tests[tests["klassetrin"].isin([2, 3, 4])]
    z = tests.groupby(["klassetrin", "fag"])["resultat"].transform(lambda s: (s - s.mean()) / s.std())
    by_path = z.groupby(truth.reindex(tests["cpr"])["path"].to_numpy()).mean()
    assert by_path["tidlig_starter"] < by_path["ingen"] - 0.5
