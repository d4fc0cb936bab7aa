"""Scoring per chunk of pupils: the same risks, tiers and ranks as one computation, here or on Dask."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier

from features.catalogue import FEATURE_NAMES
from models.scoring import SCORE_COLUMNS, predict_risk_chunked, score_frame

NAMES = list(FEATURE_NAMES[:6])


def _features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, len(NAMES)))
    values[rng.random(values.shape) < 0.1] = np.nan
    frame = pd.DataFrame(values, columns=NAMES)
    y = (rng.random(n) < 1 / (1 + np.exp(-np.nan_to_num(values[:, 0] + values[:, 1]) + 1))).astype(int)
    frame.insert(0, "pupil_id", [f"p{seed}{i:08d}" for i in range(n)])
    frame["term"] = "2025/26-H1"
    frame["as_of_date"] = date(2025, 11, 20)
    frame["network_id"] = np.where(np.arange(n) % 3 == 0, "N1", "N2")
    frame["school_code"] = np.where(np.arange(n) % 3 == 0, "S1", "S3")
    frame["grade"] = 5 + np.arange(n) % 5
    return frame, y


@pytest.fixture(scope="module")
def bundle() -> SimpleNamespace:
    frame, y = _features(600, seed=1)
    model = CalibratedClassifierCV(HistGradientBoostingClassifier(max_iter=20, random_state=0),
                                   method="sigmoid", ensemble=False, cv=3)
    model.fit(frame[NAMES].to_numpy(float), y)
    return SimpleNamespace(model_id="model-s", feature_names=NAMES, calibrated=model)


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    return _features(257, seed=2)[0]


def test_chunked_scores_equal_one_computation(bundle, scored, sim_config, monkeypatch):
    monkeypatch.setenv("EWS_COMPUTE_WORKERS", "1")  # one after another here (a pool: test_explain.py)
    whole, mapped = predict_risk_chunked(bundle, scored, chunk_pupils=10_000)
    assert mapped.describe() == {"chunks": 1, "backend": "inline", "workers": 1}
    np.testing.assert_array_equal(whole, bundle.calibrated.predict_proba(scored[NAMES].to_numpy(float))[:, 1])
    chunked, mapped = predict_risk_chunked(bundle, scored, chunk_pupils=50, local_workers=1)
    assert mapped.chunks == 6
    np.testing.assert_array_equal(chunked, whole)
    frames = [score_frame(sim_config, bundle, scored, "run-1", chunk_pupils=size) for size in (10_000, 50)]
    assert list(frames[0].columns) == list(SCORE_COLUMNS)
    pd.testing.assert_frame_equal(frames[1], frames[0])


def test_no_pupils_no_chunks(bundle, scored):
    risk, mapped = predict_risk_chunked(bundle, scored.head(0))
    assert len(risk) == 0 and mapped.chunks == 0


def _score_on_a_worker(bundle, scored):
    risk, mapped = predict_risk_chunked(bundle, scored, chunk_pupils=100)
    return risk, mapped.describe()


def test_inside_a_dask_task_the_cluster_scores_the_chunks(bundle, scored, monkeypatch):
    from distributed import Client, LocalCluster

    monkeypatch.setenv("EWS_COMPUTE_ON_DASK", "1")  # opt-in inside Dask (ews.compute); the worker is a thread here

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        risk, compute = client.submit(_score_on_a_worker, bundle, scored, pure=False).result(timeout=300)
    assert compute == {"chunks": 3, "backend": "dask", "workers": 1}
    np.testing.assert_array_equal(risk, predict_risk_chunked(bundle, scored, chunk_pupils=10_000)[0])
