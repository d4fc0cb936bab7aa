"""Scoring and explanations of one municipality split into chunks of pupils (issue 16 part 3).

Usage (from the repository root):

    .venv/bin/python bench/split_compute.py                       # national size, 325,000 pupils
    .venv/bin/python bench/split_compute.py --pupils 5000         # Herning size
    .venv/bin/python bench/split_compute.py --modes one,dask1     # a subset

Modes, each in a fresh process (its peak memory is its own, workers included):

* ``one``: one process, one chunk: the computation as it was before the split;
* ``chunks1``: one process, the chunks one after another (what the chunking alone changes);
* ``pool2``: chunks in a local pool of 2 processes (``ews run`` outside a fleet);
* ``dask1`` / ``dask2``: a local Dask cluster of 1 or 2 worker processes of one thread (the
  fleet's setting). The "run" is a task on the cluster, as a municipality's subflow is in
  ``ews fleet run``; it builds the features frame, then scores and explains it with
  ``models.scoring.predict_risk_chunked`` and ``models.explain.explain_pupils``, whose chunks
  go back to the cluster (``ews.compute.map_chunks``). The workers import scikit-learn and SHAP
  before the clock starts, as a fleet's workers have for their earlier municipalities.

The features are simulated as in ``bench/flags_explain.py`` (the 58 catalogue features with
realistic missingness); the model is that bench's boosted trees (200 trees of at most 15
leaves), calibrated as the real one (sigmoid on out-of-fold predictions, ``ensemble=False``),
trained once on 30,000 rows and handed to every mode as a file. Times are wall seconds of each
step inside the run; memory is the peak of the summed resident memory of the mode's process
and every process below it (Dask's nannies and workers), sampled every 0.2 s. Each mode prints
a digest of its risks and contributions: equal digests mean identical results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NATIONAL = 325_000


def features_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Simulated features of ``n`` pupils (as ``bench/flags_explain.py``) and outcomes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from flags_explain import simulated_features

    frame, y = simulated_features(n, seed)
    frame.insert(0, "pupil_id", [f"p{i:015d}" for i in range(n)])
    frame.insert(1, "as_of_date", date(2025, 11, 15))
    return frame, y


def train_model(path: Path) -> None:
    """Fit the calibrated boosted trees on 30,000 simulated rows and pickle the bundle's parts."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    from features.catalogue import FEATURE_NAMES, monotone_constraints
    from models.risk_model import boosting_threads

    frame, y = features_frame(30_000, seed=1)
    boosted = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                             monotonic_cst=monotone_constraints(), early_stopping=False,
                                             random_state=0)
    calibrated = CalibratedClassifierCV(boosted, method="sigmoid", ensemble=False, cv=3)
    with boosting_threads():  # one OpenMP thread, as the run fits (busy-waiting threads on a shared machine)
        calibrated.fit(frame[list(FEATURE_NAMES)].to_numpy(float), y)
    explained = calibrated.calibrated_classifiers_[0].estimator
    path.write_bytes(pickle.dumps({"calibrated": calibrated, "explained": explained,
                                   "feature_names": list(FEATURE_NAMES)}))


def the_run(model_path: str, pupils: int, chunk_pupils: int, local_workers: int) -> dict[str, Any]:
    """One municipality's scoring and explanations, timed (runs in the mode's process or on a Dask worker)."""
    from ews.compute import dask_worker_address
    from models.explain import explain_pupils
    from models.scoring import predict_risk_chunked

    parts = pickle.loads(Path(model_path).read_bytes())
    bundle = SimpleNamespace(model_id="bench-model", feature_names=parts["feature_names"],
                             calibrated=parts["calibrated"], explained_model=parts["explained"])
    frame, _ = features_frame(pupils, seed=4)
    started = time.perf_counter()
    risk, mapped = predict_risk_chunked(bundle, frame, chunk_pupils=chunk_pupils, local_workers=local_workers)
    score_seconds = time.perf_counter() - started
    started = time.perf_counter()
    explanations = explain_pupils(bundle, frame, "bench", term="2025/26-H1", n_jobs=local_workers,
                                  chunk_pupils=chunk_pupils)
    explain_seconds = time.perf_counter() - started
    digest = hashlib.sha256(np.ascontiguousarray(risk).tobytes())
    digest.update(np.ascontiguousarray(explanations["contribution"].to_numpy()).tobytes())
    return {"score_seconds": round(score_seconds, 1), "explain_seconds": round(explain_seconds, 1),
            "rows": len(explanations), "chunks": mapped.chunks, "backend": mapped.backend,
            "in_dask_worker": dask_worker_address() is not None, "digest": digest.hexdigest()[:16]}


def _warm_up() -> None:
    import shap  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import models.explain  # noqa: F401
    import models.scoring  # noqa: F401


def child(mode: str, model_path: str, pupils: int, chunk_pupils: int) -> dict[str, Any]:
    """Run one mode in this (fresh) process."""
    if mode == "one":
        return the_run(model_path, pupils, max(pupils, 1), 1)
    if mode == "chunks1":
        return the_run(model_path, pupils, chunk_pupils, 1)
    if mode == "pool2":
        return the_run(model_path, pupils, chunk_pupils, 2)
    workers = int(mode.removeprefix("dask"))
    from distributed import Client, LocalCluster

    # the split on the cluster is opt-in inside Dask (ews.compute): the worker processes inherit it
    os.environ["EWS_COMPUTE_ON_DASK"] = "1"
    started = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit="6GiB",
                      host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        cluster_seconds = time.perf_counter() - started
        client.run(_warm_up)  # a fleet's workers have imported these for their own municipalities' runs
        future = client.submit(the_run, model_path, pupils, chunk_pupils, 1, pure=False)
        result = future.result()
    return {**result, "cluster_start_seconds": round(cluster_seconds, 1)}


def measure(mode: str, model_path: Path, pupils: int, chunk_pupils: int) -> dict[str, Any]:
    """Run a mode in a fresh process and sample the resident memory of its process tree."""
    import psutil

    command = [sys.executable, __file__, "--child", mode, "--model", str(model_path), "--pupils", str(pupils),
               "--chunk-pupils", str(chunk_pupils)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = {"tree": 0}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                total = 0
                for proc in tree:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
                peak["tree"] = max(peak["tree"], total)
            except psutil.Error:
                pass
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"mode {mode} failed with exit code {process.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    return {"mode": mode, **result, "process_seconds": round(time.perf_counter() - started, 1),
            "peak_gib": round(peak["tree"] / 2**30, 2)}


def main() -> None:
    """Parse the arguments and run each mode (or, with ``--child``, one mode in this process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=NATIONAL)
    parser.add_argument("--chunk-pupils", type=int, default=10_000)
    parser.add_argument("--modes", default="one,dask1,dask2")
    parser.add_argument("--child")
    parser.add_argument("--model", help="the trained model file (trained there first when it is missing)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.pupils, args.chunk_pupils)), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="ews-split-bench-") as folder:
        model_path = Path(args.model) if args.model else Path(folder) / "model.pkl"
        if not model_path.exists():
            started = time.perf_counter()
            train_model(model_path)
            print(f"model trained in {time.perf_counter() - started:.0f} s", flush=True)
        rows = []
        for mode in args.modes.split(","):
            load_before = os.getloadavg()[0]
            row = measure(mode, model_path, args.pupils, args.chunk_pupils)
            row["load_average"] = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.pupils:,} pupils, chunks of {args.chunk_pupils:,}\n")
    print("| mode | scoring | explanations | peak memory (all processes) | chunks | digest | load average |")
    print("|---|---:|---:|---:|---:|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['score_seconds']} s | {row['explain_seconds']} s | {row['peak_gib']} GiB "
              f"| {row['chunks']} ({row['backend']}) | {row['digest']} | {row['load_average']} |")


if __name__ == "__main__":
    main()
