"""Base rates of a written synthetic municipality, read back from its export files.

Nothing here uses the generator's memory: every figure is computed from the files in
``exports/``, so it checks what a pipeline would actually read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.synth.xlsx import read_xlsx

#: Published national figures (percent) from the domain brief, by school year. The
#: ministry's "2015" UPV figure is read as the school year 2014/15, whose grade-8
#: assessments were made in the autumn and winter of 2014/15.
PUBLISHED: dict[tuple[str, str], tuple[float, str]] = {
    ("upv_ikke_uddannelsesparat", "2014/15"): (26.0, "26 % (2015)"),
    ("upv_ikke_uddannelsesparat", "2015/16"): (27.0, "27 % (2016)"),
    ("upv_ikke_uddannelsesparat", "2016/17"): (28.0, "28 % (2017)"),
    ("upv_ikke_uddannelsesparat", "2020/21"): (30.0, "about 3 in 10 (2021)"),
    ("fravaer_over_10pct_andel", "2017/18"): (14.7, "14.7 % (2017/18)"),
    ("fravaer_over_10pct_andel", "2021/22"): (26.0, "26 % (2021/22)"),
    ("fravaer_over_10pct_andel", "2022/23"): (20.0, "20 % (2022/23)"),
    ("fravaer_gennemsnit_pct", "2022/23"): (7.0, "7 % (2022/23)"),
    ("afgangsproeve_krav_ikke_opfyldt", "2022/23"): (12.5, "12.5 % of grade 9 (2023)"),
}
PRE_COVID_MEAN_ABSENCE = (5.5, "5-6 % before COVID")
MIN_SCHOOL_DAYS = 20
MEASURES = (
    "upv_ikke_uddannelsesparat",
    "afgangsproeve_krav_ikke_opfyldt",
    "maalrettet_indsats_andel",
    "fravaer_gennemsnit_pct",
    "fravaer_over_10pct_andel",
)
_YEAR = re.compile(r"_(\d{4})-(\d{2})\.")


def _school_year(path: Path) -> str:
    match = _YEAR.search(path.name)
    if match is None:
        raise ValueError(f"{path.name}: no school year (YYYY-YY) in the file name")
    return f"{match.group(1)}/{match.group(2)}"


def _sheet_rows(path: Path, sheet: str) -> pd.DataFrame:
    return read_xlsx(path, sheet)


def _published(measure: str, school_year: str) -> tuple[float, str]:
    if (measure, school_year) in PUBLISHED:
        return PUBLISHED[(measure, school_year)]
    if measure == "fravaer_gennemsnit_pct" and int(school_year[:4]) <= 2018:
        return PRE_COVID_MEAN_ABSENCE
    return np.nan, ""


def describe_municipality(out_dir: Path) -> pd.DataFrame:
    """Base rates per school year, computed from the written export files.

    Measures (all in percent):

    - ``upv_ikke_uddannelsesparat``: share of grade-8 pupils assessed *ikke
      uddannelsesparat* (``upv_*.xlsx``, up to 2023/24);
    - ``afgangsproeve_krav_ikke_opfyldt``: share of grade-9 pupils with a leaving-exam mark
      below 02 in Danish or mathematics (``karakterer_*.xlsx``, *Afgangsprøve* rows);
    - ``maalrettet_indsats_andel``: share of grade-8 pupils designated for a targeted effort
      (``maalrettet_indsats_*.csv``, from 2024/25);
    - ``fravaer_gennemsnit_pct``: absence days of all kinds over school days, all pupils;
    - ``fravaer_over_10pct_andel``: share of pupils (with at least 20 school days on
      record) whose absence exceeds 10 % of their school days.

    Args:
        out_dir: Folder written by ``generate_municipality`` (with ``exports/``).

    Returns:
        One row per measure and school year: ``measure``, ``school_year``, ``value``,
        ``published`` (the domain brief's figure, NaN where none), ``published_text``,
        ``difference`` (value - published) and ``n`` (pupils behind the value).
    """
    exports = Path(out_dir) / "exports"
    if not exports.is_dir():
        raise FileNotFoundError(f"{exports}: no exports folder; run generate_municipality first")
    records: list[dict[str, object]] = []

    def add(measure: str, path: Path, value: float, n: int) -> None:
        year = _school_year(path)
        published, text = _published(measure, year)
        records.append({"measure": measure, "school_year": year, "value": value,
                        "published": published, "published_text": text,
                        "difference": value - published, "n": n})

    for path in sorted(exports.glob("upv_*.xlsx")):
        frame = _sheet_rows(path, "UPV")
        add("upv_ikke_uddannelsesparat", path,
            100 * float((frame["Vurdering"] == "Ikke uddannelsesparat").mean()), len(frame))
    for path in sorted(exports.glob("karakterer_*.xlsx")):
        frame = _sheet_rows(path, "Karakterer")
        exam = frame[(frame["Karaktertype"] == "Afgangsprøve")
                     & frame["Fag"].isin(["Dansk", "Matematik"])]
        if exam.empty:
            continue
        marks = exam.assign(value=exam["Karakter"].astype(int)).pivot_table(
            index="CPR", columns="Fag", values="value", aggfunc="min")
        both = marks.dropna()
        if both.empty:
            continue
        failed = (both.min(axis=1) < 2).mean()
        add("afgangsproeve_krav_ikke_opfyldt", path, 100 * float(failed), len(both))
    for path in sorted(exports.glob("maalrettet_indsats_*.csv")):
        frame = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8")
        add("maalrettet_indsats_andel", path, 100 * float((frame["Udpeget"] == "Ja").mean()),
            len(frame))
    for path in sorted(exports.glob("fravaer_*.csv")):
        frame = pd.read_csv(
            path, sep=";", decimal=",", encoding="utf-8",
            usecols=["CPR", "Skoledage", "Sygdom", "Lovligt fravær", "Ulovligt fravær"],
            dtype={"CPR": str, "Skoledage": float, "Sygdom": float, "Lovligt fravær": float,
                   "Ulovligt fravær": float})
        frame = frame.assign(absent=frame["Sygdom"] + frame["Lovligt fravær"]
                             + frame["Ulovligt fravær"])
        per_pupil = frame.groupby("CPR")[["Skoledage", "absent"]].sum()
        add("fravaer_gennemsnit_pct", path,
            100 * float(per_pupil["absent"].sum() / per_pupil["Skoledage"].sum()),
            len(per_pupil))
        counted = per_pupil[per_pupil["Skoledage"] >= MIN_SCHOOL_DAYS]
        add("fravaer_over_10pct_andel", path,
            100 * float((counted["absent"] / counted["Skoledage"] > 0.10).mean()), len(counted))
    table = pd.DataFrame.from_records(
        records, columns=["measure", "school_year", "value", "published", "published_text",
                          "difference", "n"])
    order = {m: i for i, m in enumerate(MEASURES)}
    table = table.assign(_order=table["measure"].map(order)).sort_values(
        ["_order", "school_year"]).drop(columns="_order").reset_index(drop=True)
    return table
