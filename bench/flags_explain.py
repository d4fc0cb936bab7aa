"""Benchmarks of issue 5: SHAP explanations of every scored pupil, flag lists and exports.

Run: ``.venv/bin/pytest bench/flags_explain.py --benchmark-only -p no:randomly -q``
(``EWS_BENCH_NATIONAL=1`` adds the national-size explanation, about 5 minutes a round).

Sizes: Herning has about 1,000 pupils a grade, so about 5,000 pupils are scored in grades 5-9;
Denmark has about 65,000 a grade, so about 325,000. The model is a HistGradientBoostingClassifier
over every catalogue feature (58) with the catalogue's monotone constraints, 200 trees of at most
15 leaves, trained on synthetic rows with realistic missingness; the figures scale with the
number of trees and leaves of the model actually trained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ews.config import MunicipalityConfig, build_config_document
from ews.warehouse import ensure_identity_schema, ensure_schema, replace_rows
from features.catalogue import FEATURE_NAMES, monotone_constraints
from flags.export import export_flag_lists
from flags.selection import build_flag_lists, store_flag_lists
from models.explain import explain_pupils, raw_model_output, store_explanations, summarise_families

HERNING = 5_000
NATIONAL = 325_000


@dataclass
class Bundle:
    model_id: str
    feature_names: tuple[str, ...]
    explained_model: HistGradientBoostingClassifier


def simulated_features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Simulated features of ``n`` pupils (four latent families, 12 % missing) and outcomes."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 4))
    loadings = rng.normal(0.6, 0.2, size=(4, len(FEATURE_NAMES)))
    families = rng.integers(0, 4, len(FEATURE_NAMES))
    values = latent[:, families] * loadings[families, np.arange(len(FEATURE_NAMES))] + rng.normal(
        0, 1, (n, len(FEATURE_NAMES)))
    values[rng.random(values.shape) < 0.12] = np.nan
    frame = pd.DataFrame(values, columns=list(FEATURE_NAMES))
    frame["grade"] = rng.integers(5, 10, n).astype(float)
    y = (rng.random(n) < 1 / (1 + np.exp(-(latent.sum(axis=1) - 1.2)))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    frame, y = simulated_features(30_000, seed=1)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                           monotonic_cst=monotone_constraints(), early_stopping=False,
                                           random_state=0)
    model.fit(frame.to_numpy(float), y)
    return Bundle("bench-model", FEATURE_NAMES, model)


def _scored(n: int, seed: int) -> pd.DataFrame:
    frame, _ = simulated_features(n, seed)
    frame.insert(0, "pupil_id", [f"p{i:015d}" for i in range(n)])
    frame.insert(1, "as_of_date", date(2025, 11, 15))
    return frame


def test_explain_herning_size(benchmark, bundle):
    scored = _scored(HERNING, seed=2)
    result = benchmark.pedantic(explain_pupils, args=(bundle, scored, "run-b"), kwargs={"term": "2025/26-H1"},
                                rounds=3, iterations=1)
    assert len(result) == HERNING * len(FEATURE_NAMES)


def test_explain_herning_size_two_processes(benchmark, bundle):
    scored = _scored(HERNING * 2, seed=2).head(HERNING)
    result = benchmark.pedantic(explain_pupils, args=(bundle, scored, "run-b"),
                                kwargs={"term": "2025/26-H1", "n_jobs": 2}, rounds=3, iterations=1)
    assert len(result) == HERNING * len(FEATURE_NAMES)


def test_store_explanations_herning_size(benchmark, bundle):
    scored = _scored(HERNING, seed=3)
    explanations = explain_pupils(bundle, scored, "run-b", term="2025/26-H1")
    families = summarise_families(explanations, raw_model_output(bundle, scored))
    con = duckdb.connect()
    ensure_schema(con)
    benchmark.pedantic(store_explanations, args=(con, explanations, families, "run-b"), rounds=3, iterations=1)


@pytest.mark.skipif(os.environ.get("EWS_BENCH_NATIONAL") != "1", reason="set EWS_BENCH_NATIONAL=1 (minutes)")
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_explain_national_size(benchmark, bundle, n_jobs):
    scored = _scored(NATIONAL, seed=4)
    result = benchmark.pedantic(explain_pupils, args=(bundle, scored, "run-n"),
                                kwargs={"term": "2025/26-H1", "n_jobs": n_jobs}, rounds=1, iterations=1)
    assert len(result) == NATIONAL * len(FEATURE_NAMES)


def _municipality(networks: int, schools_per_network: int) -> MunicipalityConfig:
    document = build_config_document(
        "Benchkommune", ["Nord"],
        [{"id": f"N{i:02d}", "name": f"Netværk {i}", "area": "Nord", "capacity_per_term": 25}
         for i in range(networks)],
        [{"code": f"S{i:02d}{j}", "name": f"Skole {i}-{j}", "area": "Nord", "network": f"N{i:02d}",
          "reports_absence": True} for i in range(networks) for j in range(schools_per_network)],
    )
    return MunicipalityConfig.model_validate(document)


@pytest.fixture(scope="module")
def herning_run(bundle, tmp_path_factory):
    config = _municipality(networks=10, schools_per_network=2)
    con = duckdb.connect()
    ensure_schema(con)
    identity = duckdb.connect()
    ensure_identity_schema(identity)
    schools = [s.code for s in config.schools]
    for term, run_id, seed in (("2024/25-H2", "run-a", 5), ("2025/26-H1", "run-b", 6)):
        scored = _scored(HERNING, seed=seed)
        raw = raw_model_output(bundle, scored)
        school = np.array(schools)[np.arange(HERNING) % len(schools)]
        scores = pd.DataFrame({
            "run_id": run_id, "term": term, "as_of_date": scored["as_of_date"], "pupil_id": scored["pupil_id"],
            "model_id": bundle.model_id, "risk": 1 / (1 + np.exp(-raw)), "network_id":
            [config.network_of_school()[s] for s in school], "school_code": school,
            "grade": scored["grade"].astype("int16")})
        scores["tier"] = [config.tier_for(r).name for r in scores["risk"]]
        scores["tier_step"] = [config.tier_for(r).step for r in scores["risk"]]
        scores["rank_in_network"] = scores.groupby("network_id")["risk"].rank(ascending=False, method="first")
        replace_rows(con, "scores_pupil_term", scores, where={"term": term})
        explanations = explain_pupils(bundle, scored, run_id, term=term)
        store_explanations(con, explanations, summarise_families(explanations, raw), run_id)
        if run_id == "run-a":
            store_flag_lists(con, build_flag_lists(con, config, term, run_id), term)
    identity.register("_ids", pd.DataFrame({
        "pupil_id": [f"p{i:015d}" for i in range(HERNING)], "first_name": "Fornavn", "last_name": "Efternavn",
        "school_code": "S000", "class_label": "6.A", "school_year": "2025/26"}))
    identity.execute("INSERT INTO identity_pupils SELECT * FROM _ids")
    return config, con, identity, tmp_path_factory.mktemp("exports")


def test_build_flag_lists_herning_size(benchmark, herning_run):
    config, con, _, _ = herning_run
    flags = benchmark.pedantic(build_flag_lists, args=(con, config, "2025/26-H1", "run-b"), rounds=3, iterations=1)
    store_flag_lists(con, flags, "2025/26-H1")
    assert (flags["status"] != "ikke_laengere").sum() == 250


def test_export_flag_lists_herning_size(benchmark, herning_run):
    config, con, identity, out = herning_run
    store_flag_lists(con, build_flag_lists(con, config, "2025/26-H1", "run-b"), "2025/26-H1")
    entries = benchmark.pedantic(
        export_flag_lists, args=(con, identity, config, "2025/26-H1", "run-b", Path(out), {"model_id": "m"}),
        rounds=3, iterations=1)
    assert len(entries) == 10
