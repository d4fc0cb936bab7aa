"""A small synthetic run for the flag-list tests: features, a fitted model, scores, explanations.

Everything is synthetic: pseudonyms like ``p000000000000007`` and names like ``Fornavn7``.
Two terms are built: ``2024/25-H2`` (run ``run-prev``) and ``2025/26-H1`` (run ``run-cur``);
between them pupils move up a grade, the grade-9 pupils leave, new grade-5 pupils arrive and
two pupils change network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from ews.config import MunicipalityConfig, build_config_document
from ews.warehouse import ensure_identity_schema, ensure_schema, replace_rows
from features.build import features_table_ddl
from flags.selection import build_flag_lists, store_flag_lists
from models.explain import explain_pupils, store_explanations, summarise_families

FEATURES_USED = (
    "absence_unauthorised_pct_6m", "absence_total_pct_12m", "absence_concerning_12m",
    "test_reading_latest_z", "test_math_latest_z", "contacts_ppr_12m",
    "contacts_socialraadgiver_12m", "notifications_12m", "support_active_level",
    "school_moves_ever", "grade", "school_absence_pct_12m", "absence_data_available",
)
SCHOOLS = {"S1": "N1", "S2": "N1", "S3": "N2", "S4": "N3"}
PREV_TERM, CUR_TERM = "2024/25-H2", "2025/26-H1"
PREV_RUN, CUR_RUN = "run-prev", "run-cur"
MODEL_ID = "model-test-1"


@dataclass
class StubBundle:
    """Stands in for the model engineer's ModelBundle: same attributes the explainer uses."""

    model_id: str
    feature_names: tuple[str, ...]
    explained_model: HistGradientBoostingClassifier

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self.explained_model.decision_function(frame[list(self.feature_names)].to_numpy(float))
        return 1 / (1 + np.exp(-raw))


def make_config(capacity: int = 6, mode: str = "capacity", threshold: float = 0.5) -> MunicipalityConfig:
    document = build_config_document(
        "Testkommune", ["Nord", "Syd"],
        [{"id": "N1", "name": "Netværk Nord", "area": "Nord", "capacity_per_term": capacity},
         {"id": "N2", "name": "Netværk Syd", "area": "Syd", "capacity_per_term": capacity},
         {"id": "N3", "name": "Netværk Øst", "area": "Syd", "capacity_per_term": capacity}],
        [{"code": code, "name": f"Skole {code}", "area": "Nord" if net == "N1" else "Syd",
          "network": net, "reports_absence": code != "S4"} for code, net in SCHOOLS.items()],
    )
    document["flagging"] = {**document["flagging"], "mode": mode, "threshold": threshold}
    return MunicipalityConfig.model_validate(document)


def latent(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per pupil: absence, learning, wellbeing, mobility liabilities."""
    return rng.normal(size=(n, 4))


def features_from_latent(rng: np.random.Generator, z: np.ndarray, grade: np.ndarray,
                         schools: np.ndarray) -> pd.DataFrame:
    n = len(z)
    a, lrn, w, m = z.T
    reports = schools != "S4"
    frame = pd.DataFrame({
        "absence_unauthorised_pct_6m": np.clip(np.exp(0.9 * a) - 0.5 + rng.normal(0, 0.3, n), 0, 60),
        "absence_total_pct_12m": np.clip(5 + 3 * a + rng.normal(0, 1, n), 0, 80),
        "test_reading_latest_z": -0.8 * lrn + rng.normal(0, 0.5, n),
        "test_math_latest_z": -0.7 * lrn + rng.normal(0, 0.6, n),
        "contacts_ppr_12m": rng.poisson(np.exp(0.8 * lrn - 1.2)).astype(float),
        "contacts_socialraadgiver_12m": rng.poisson(np.exp(0.9 * w - 1.3)).astype(float),
        "notifications_12m": rng.poisson(np.exp(1.0 * w - 2.5)).astype(float),
        "support_active_level": np.clip(np.round(0.8 * lrn + 0.4 * w - 0.8 + rng.normal(0, 0.3, n)), 0, 3),
        "school_moves_ever": rng.poisson(np.exp(0.7 * m - 1.0)).astype(float),
        "grade": grade.astype(float),
        "school_absence_pct_12m": np.where(reports, 5.0 + (schools == "S2") * 1.5, np.nan),
        "absence_data_available": reports.astype(float),
    })
    frame["absence_concerning_12m"] = (frame["absence_total_pct_12m"] > 10).astype(float)
    for column in ("absence_unauthorised_pct_6m", "absence_total_pct_12m", "absence_concerning_12m"):
        frame.loc[~reports, column] = np.nan
    frame.loc[rng.random(n) < 0.05, "test_math_latest_z"] = np.nan
    return frame[list(FEATURES_USED)]


def fit_model(seed: int = 0, n: int = 2000) -> StubBundle:
    rng = np.random.default_rng(seed)
    z = latent(rng, n)
    grade = rng.integers(5, 10, n)
    schools = rng.choice(list(SCHOOLS), n)
    x = features_from_latent(rng, z, grade, schools)
    logit = z[:, 0] + z[:, 1] + z[:, 2] + 0.4 * z[:, 3] - 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    model = HistGradientBoostingClassifier(max_iter=40, max_depth=3, learning_rate=0.15, random_state=0)
    model.fit(x.to_numpy(float), y)
    return StubBundle(MODEL_ID, FEATURES_USED, model)


def pid(i: int) -> str:
    return f"p{i:015d}"


@dataclass
class Population:
    """Pupils of the previous term and how they look this term."""

    prev: pd.DataFrame  # pupil_id, grade, school_code, network_id, z (latent)
    cur: pd.DataFrame


def make_population(seed: int = 1, per_grade: int = 24) -> Population:
    rng = np.random.default_rng(seed)
    ids, grades, schools = [], [], []
    i = 0
    for grade in range(5, 10):
        for _ in range(per_grade):
            ids.append(pid(i))
            grades.append(grade)
            schools.append(list(SCHOOLS)[i % len(SCHOOLS)])
            i += 1
    z = latent(rng, len(ids))
    prev = pd.DataFrame({"pupil_id": ids, "grade": grades, "school_code": schools})
    prev["z"] = list(z)
    cur = prev[prev["grade"] < 9].copy()
    cur["grade"] += 1
    cur["z"] = [v + rng.normal(0, 0.35, 4) for v in cur["z"]]
    movers = cur.index[:2]  # two pupils change school (and network)
    cur.loc[movers, "school_code"] = ["S3", "S1"]
    new_ids = [pid(i + k) for k in range(per_grade)]
    fresh = pd.DataFrame({"pupil_id": new_ids, "grade": 5,
                          "school_code": [list(SCHOOLS)[k % 4] for k in range(per_grade)]})
    fresh["z"] = list(latent(rng, per_grade))
    cur = pd.concat([cur, fresh], ignore_index=True)
    for frame in (prev, cur):
        frame["network_id"] = frame["school_code"].map(SCHOOLS)
    return Population(prev=prev, cur=cur)


def scored_run(bundle: StubBundle, config: MunicipalityConfig, pupils: pd.DataFrame, term: str,
               run_id: str, as_of: date, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features frame, scores frame) of one run."""
    rng = np.random.default_rng(seed)
    z = np.vstack(pupils["z"].to_numpy())
    features = features_from_latent(rng, z, pupils["grade"].to_numpy(), pupils["school_code"].to_numpy())
    features.insert(0, "pupil_id", pupils["pupil_id"].to_numpy())
    features.insert(1, "as_of_date", as_of)
    risk = bundle.predict_risk(features)
    scores = pd.DataFrame({
        "run_id": run_id, "term": term, "as_of_date": as_of, "pupil_id": pupils["pupil_id"].to_numpy(),
        "model_id": bundle.model_id, "risk": risk,
        "tier": [config.tier_for(r).name for r in risk],
        "tier_step": [config.tier_for(r).step for r in risk],
        "network_id": pupils["network_id"].to_numpy(), "school_code": pupils["school_code"].to_numpy(),
        "grade": pupils["grade"].to_numpy().astype("int16"),
    })
    scores["rank_in_network"] = scores.groupby("network_id")["risk"].rank(ascending=False, method="first")
    return features, scores


def load_run(con: duckdb.DuckDBPyConnection, bundle: StubBundle, features: pd.DataFrame,
             scores: pd.DataFrame, run_id: str, term: str) -> pd.DataFrame:
    con.execute(features_table_ddl())  # the features table from its DDL, as the features step makes it
    # the table's key columns (NOT NULL in its DDL) from the scores of the same pupils
    keys = scores[["pupil_id", "school_code", "network_id"]]
    keyed = features.drop(columns=["school_code", "network_id"], errors="ignore").merge(keys, on="pupil_id")
    replace_rows(con, "features_pupil_term", keyed.assign(term=term),
                 where={"as_of_date": features["as_of_date"].iloc[0]})
    replace_rows(con, "scores_pupil_term", scores, where={"term": term})
    explanations = explain_pupils(bundle, features, run_id, term=term)
    store_explanations(con, explanations, summarise_families(explanations), run_id)
    return explanations


@dataclass
class TwoRuns:
    config: MunicipalityConfig
    con: duckdb.DuckDBPyConnection
    identity: duckdb.DuckDBPyConnection
    bundle: StubBundle
    population: Population
    features: dict[str, pd.DataFrame]
    scores: dict[str, pd.DataFrame]
    explanations: dict[str, pd.DataFrame]
    flags: dict[str, pd.DataFrame]


def build_two_runs(bundle: StubBundle, config: MunicipalityConfig, state_dir: Path | None = None) -> TwoRuns:
    """Both runs in memory, or in the warehouse files of ``state_dir`` when given."""
    from ews.warehouse import WarehousePaths

    paths = WarehousePaths(state_dir) if state_dir is not None else None
    if paths is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(paths.warehouse) if paths else ":memory:")
    ensure_schema(con)
    identity = duckdb.connect(str(paths.identity) if paths else ":memory:")
    ensure_identity_schema(identity)
    population = make_population()
    features, scores, explanations, flags = {}, {}, {}, {}
    for pupils, term, run_id, as_of, seed in (
        (population.prev, PREV_TERM, PREV_RUN, date(2025, 4, 15), 11),
        (population.cur, CUR_TERM, CUR_RUN, date(2025, 11, 15), 12),
    ):
        features[run_id], scores[run_id] = scored_run(bundle, config, pupils, term, run_id, as_of, seed)
        explanations[run_id] = load_run(con, bundle, features[run_id], scores[run_id], run_id, term)
        flags[run_id] = build_flag_lists(con, config, term, run_id)
        store_flag_lists(con, flags[run_id], term)
    everyone = pd.concat([population.prev, population.cur]).drop_duplicates("pupil_id", keep="last")
    idents = pd.DataFrame({
        "pupil_id": everyone["pupil_id"],
        "first_name": [f"Fornavn{int(p[1:])}" for p in everyone["pupil_id"]],
        "last_name": "Testesen",
        "school_code": everyone["school_code"],
        "class_label": [f"{g}.{'AB'[int(p[1:]) % 2]}"
                        for g, p in zip(everyone["grade"], everyone["pupil_id"], strict=True)],
        "school_year": "2025/26",
    })
    identity.register("_ids", idents)
    identity.execute("INSERT INTO identity_pupils BY NAME SELECT * FROM _ids")
    identity.unregister("_ids")
    return TwoRuns(config, con, identity, bundle, population, features, scores, explanations, flags)




def pdf_text(path) -> str:
    """The text a reportlab PDF shows (standard fonts, ASCII85 + Flate streams), one space between runs.

    Enough for our own PDFs without a PDF library: content streams are decoded and the strings of
    ``Tj`` / ``TJ`` operators collected and read as WinAnsi (cp1252).
    """
    import base64
    import re
    import zlib

    data = Path(path).read_bytes()
    texts = []
    for head, body in re.findall(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", data, re.S):
        if b"/FlateDecode" not in head:
            continue
        raw = body.strip()
        if b"/ASCII85Decode" in head:
            raw = base64.a85decode(raw.removesuffix(b"~>"))
        content = zlib.decompress(raw)
        for literal in re.findall(rb"\((.*?)(?<!\\)\)\s*Tj", content, re.S):
            texts.append(_pdf_string(literal))
    return re.sub(r"\s+", " ", " ".join(texts))


def _pdf_string(literal: bytes) -> str:
    import re

    def octal(match):
        return bytes([int(match.group(1), 8)])

    unescaped = re.sub(rb"\\([0-7]{1,3})", octal, literal)
    unescaped = unescaped.replace(rb"\(", b"(").replace(rb"\)", b")").replace(b"\\\\", b"\\")
    return unescaped.decode("cp1252")


def clone_warehouse(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """An in-memory copy of every table of a warehouse connection (for tests that change it)."""
    copy = duckdb.connect()
    for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
        frame = con.execute(f'SELECT * FROM "{table}"').df()
        copy.register("_frame", frame)
        copy.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _frame')
        copy.unregister("_frame")
    return copy
