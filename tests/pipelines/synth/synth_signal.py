"""Signal check of a synthetic municipality: a quick model on as-of features vs the oracle.

Features are computed from the written export files only (strictly before the as-of
date), the label from the UPV files, the oracle from ``ground_truth/asof.csv``. Used by the
slow test and runnable by hand::

    python tests/pipelines/synth/synth_signal.py data/synthetic
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

EPOCH = pd.Timestamp("1970-01-01")


def _days(values: pd.Series, fmt: str) -> np.ndarray:
    return ((pd.to_datetime(values, format=fmt) - EPOCH).dt.days).to_numpy()


def _excel_days(values: pd.Series) -> np.ndarray:
    return values.astype(int).to_numpy() - 25569


def load_exports(out_dir: Path) -> dict[str, pd.DataFrame]:
    """Every export as a typed frame (day numbers for dates)."""
    from pipelines.synth.xlsx import read_xlsx

    exports = Path(out_dir) / "exports"
    frames: dict[str, pd.DataFrame] = {}
    parts = [pd.read_csv(p, sep=";", decimal=",", encoding="utf-8",
                         dtype={"CPR": str, "Skolekode": str})
             for p in sorted(exports.glob("fravaer_*.csv"))]
    absence = pd.concat(parts, ignore_index=True)
    absence["end"] = _days(absence["Periode til"], "%d-%m-%Y")
    frames["absence"] = absence
    tests = pd.concat([pd.read_csv(p, dtype={"cpr": str}) for p in
                       sorted(exports.glob("nationale_test_*.csv"))], ignore_index=True)
    tests["day"] = _days(tests["testdato"], "%d.%m.%Y")
    tests["year"] = np.where(tests["day"] >= 0, pd.to_datetime(tests["testdato"],
                                                               format="%d.%m.%Y").dt.year, 0)
    tests["z"] = tests.groupby(["year", "klassetrin", "fag"])["resultat"].transform(
        lambda s: (s - s.mean()) / (s.std() or 1.0))
    frames["tests"] = tests
    contacts = pd.concat([pd.read_csv(p, sep=";", encoding="cp1252", dtype={"CPR": str},
                                      keep_default_na=False)
                          for p in sorted(exports.glob("kontakter_*.csv"))], ignore_index=True)
    contacts["day"] = _days(contacts["Dato"], "%d.%m.%Y")
    frames["contacts"] = contacts
    support = pd.concat([pd.read_csv(p, sep=";", dtype=str, keep_default_na=False)
                         for p in sorted(exports.glob("specialstoette_*.csv"))], ignore_index=True)
    support["start"] = _days(support["Fra"], "%d-%m-%Y")
    frames["support"] = support
    pupils = pd.concat([pd.read_csv(p, sep=";", encoding="utf-8-sig", dtype=str,
                                    keep_default_na=False)
                        for p in sorted(exports.glob("elever_*.csv"))], ignore_index=True)
    pupils["start"] = _days(pupils["Indskrevet fra"], "%d-%m-%Y")
    frames["pupils"] = pupils
    upv = pd.concat([read_xlsx(p, "UPV") for p in sorted(exports.glob("upv_*.xlsx"))],
                    ignore_index=True)
    upv["day"] = _excel_days(upv["Vurderingsdato"])
    upv["label"] = (upv["Vurdering"] == "Ikke uddannelsesparat").astype(int)
    frames["upv"] = upv
    marks = pd.concat([read_xlsx(p, "Karakterer") for p in
                       sorted(exports.glob("karakterer_*.xlsx"))], ignore_index=True)
    marks["day"] = _excel_days(marks["Dato"])
    marks["value"] = marks["Karakter"].astype(int)
    frames["marks"] = marks
    return frames


def features_asof(frames: dict[str, pd.DataFrame], cprs: pd.Index, as_of: int) -> pd.DataFrame:
    """Per-pupil aggregates from data dated strictly before ``as_of`` (a day number)."""
    out = pd.DataFrame(index=cprs)
    a = frames["absence"]
    a = a[(a["end"] < as_of) & a["CPR"].isin(cprs)]
    for window, days in (("6m", 182), ("12m", 365), ("all", 10_000)):
        w = a[a["end"] >= as_of - days]
        g = w.groupby("CPR")[["Skoledage", "Sygdom", "Lovligt fravær", "Ulovligt fravær",
                              "For sent"]].sum()
        for col, name in (("Sygdom", "ill"), ("Lovligt fravær", "auth"),
                          ("Ulovligt fravær", "unauth"), ("For sent", "late")):
            out[f"{name}_{window}"] = g[col] / g["Skoledage"]
        out[f"total_{window}"] = (g["Sygdom"] + g["Lovligt fravær"] + g["Ulovligt fravær"]
                                  ) / g["Skoledage"]
    prev = a[(a["end"] < as_of - 182) & (a["end"] >= as_of - 364)]
    g = prev.groupby("CPR")[["Skoledage", "Ulovligt fravær", "Sygdom"]].sum()
    out["unauth_prev6m"] = g["Ulovligt fravær"] / g["Skoledage"]
    out["unauth_trend"] = out["unauth_6m"] - out["unauth_prev6m"]
    out["ill_trend"] = out["ill_6m"] - g["Sygdom"] / g["Skoledage"]
    t = frames["tests"]
    t = t[(t["day"] < as_of) & t["cpr"].isin(cprs)].sort_values("day")
    for fag, name in (("Dansk/læsning", "read"), ("Matematik", "math")):
        s = t[t["fag"] == fag].groupby("cpr")["z"]
        out[f"{name}_last"] = s.last()
        out[f"{name}_mean"] = s.mean()
        sub = t[t["fag"] == fag]
        previous = sub[sub.groupby("cpr").cumcount(ascending=False) == 1].set_index("cpr")["z"]
        out[f"{name}_change"] = s.last() - previous
    m = frames["marks"]
    m = m[(m["day"] < as_of) & m["CPR"].isin(cprs) & (m["Karaktertype"] == "Standpunkt")]
    if len(m):
        last_day = m.groupby("CPR")["day"].transform("max")
        out["marks_mean"] = m[m["day"] == last_day].groupby("CPR")["value"].mean()
    c = frames["contacts"]
    c = c[(c["day"] < as_of) & c["CPR"].isin(cprs)]
    for (fag, typ), grp in c.groupby(["Faggruppe", "Type"]):
        key = f"{fag}_{typ}"
        out[f"{key}_ever"] = grp.groupby("CPR").size()
        out[f"{key}_12m"] = grp[grp["day"] >= as_of - 365].groupby("CPR").size()
    for col in out.columns:
        if col.endswith(("_ever", "_12m")) and "_" in col and col.split("_")[0] in {
                "PPR", "Socialrådgiver", "Sundhedsplejerske", "Talehørelærer", "Ergoterapeut",
                "UU-vejleder"}:
            out[col] = out[col].fillna(0)
    s = frames["support"]
    s = s[(s["start"] < as_of) & s["CPR"].isin(cprs)]
    level = s["Støtteform"].map({"Støttetimer": 1, "Specialklasse": 2, "Specialskole": 3})
    out["support_max"] = level.groupby(s["CPR"]).max()
    out["support_max"] = out["support_max"].fillna(0)
    p = frames["pupils"]
    p = p[(p["start"] < as_of) & p["CPR"].isin(cprs)]
    out["n_schools"] = p.groupby("CPR")["Skolekode"].nunique()
    out["n_rows"] = p.groupby("CPR").size()
    out["first_seen"] = as_of - p.groupby("CPR")["start"].min()
    return out


def signal_check(out_dir: Path, grade: int = 8, half: int = 1, seed: int = 0,
                 min_history_years: int = 3, frames: dict[str, pd.DataFrame] | None = None
                 ) -> dict[str, float]:
    """Quick gradient-boosted model vs the oracle at one grade and term.

    Args:
        out_dir: A generated municipality.
        grade: Grade of the as-of date (7 or 8).
        half: 1 for the November as-of date, 2 for April.
        seed: Seed of the model and folds.
        min_history_years: Only cohorts with at least this many school years on record
            before the as-of date.
        frames: Exports already loaded with :func:`load_exports`.

    Returns:
        ``n``, ``base_rate``, ``auc_oracle``, ``auc_model``, ``ece_model``, ``ece_oracle``.
    """
    frames = frames if frames is not None else load_exports(out_dir)
    first_year = int(pd.to_datetime(frames["pupils"]["start"].min(), unit="D").year)
    asof = pd.read_csv(Path(out_dir) / "ground_truth" / "asof.csv", sep=";",
                       dtype={"cpr": str})
    upv = frames["upv"]
    rows = []
    for label_year in sorted(pd.to_datetime(upv["day"], unit="D").dt.year.unique()):
        cohort = upv[pd.to_datetime(upv["day"], unit="D").dt.year == label_year]
        start_year = int(label_year) - (8 - grade)
        if start_year - first_year < min_history_years:
            continue
        term_year = start_year if half == 1 else start_year + 1
        as_of_date = pd.Timestamp(term_year, 11, 15) if half == 1 else pd.Timestamp(term_year, 4, 15)
        term = f"{start_year}/{(start_year + 1) % 100:02d}-H{half}"
        oracle = asof[(asof["term"] == term) & (asof["grade"] == grade)].set_index("cpr")["p_upv"]
        cprs = pd.Index(cohort["CPR"]).intersection(oracle.index)
        if len(cprs) < 50:
            continue
        feats = features_asof(frames, cprs, int((as_of_date - EPOCH).days))
        feats["year"] = start_year
        feats["label"] = cohort.set_index("CPR").loc[cprs, "label"]
        feats["oracle"] = oracle.loc[cprs]
        rows.append(feats)
    data = pd.concat(rows)
    y = data["label"].to_numpy()
    x = data.drop(columns=["label", "oracle"])
    model = HistGradientBoostingClassifier(
        max_depth=2, learning_rate=0.05, max_iter=300, min_samples_leaf=100,
        l2_regularization=1.0, monotonic_cst=monotone_constraints(list(x.columns)),
        random_state=seed)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    pred = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return {
        "n": float(len(y)),
        "base_rate": float(y.mean()),
        "auc_oracle": float(roc_auc_score(y, data["oracle"])),
        "auc_model": float(roc_auc_score(y, pred)),
        "ece_model": expected_calibration_error(y, pred),
        "ece_oracle": expected_calibration_error(y, data["oracle"].to_numpy()),
    }


def monotone_constraints(columns: list[str]) -> list[int]:
    """+1 for absence, contacts, support and moves; -1 for tests and marks; 0 otherwise."""
    out = []
    for column in columns:
        if column.startswith(("read_", "math_", "marks_")) and not column.endswith("_change"):
            out.append(-1)
        elif (column in ("year", "first_seen", "n_rows") or "trend" in column
              or column.startswith(("auth_", "Sundhedsplejerske", "read_", "math_"))):
            out.append(0)
        else:
            out.append(1)
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed - predicted| over equal-count bins, weighted by bin size."""
    order = np.argsort(p)
    total = 0.0
    for chunk in np.array_split(order, bins):
        total += abs(y[chunk].mean() - p[chunk].mean()) * len(chunk)
    return float(total / len(y))


if __name__ == "__main__":
    target = Path(sys.argv[1])
    loaded = load_exports(target)
    for grade, half in ((7, 1), (7, 2), (8, 1)):
        result = signal_check(target, grade, half, frames=loaded)
        print(f"grade {grade} H{half}: " + ", ".join(f"{k}={v:.3f}" for k, v in result.items()))
