"""SHAP once per distinct path through each tree, against SHAP on every pupil (``models.explain``).

Run: ``.venv/bin/python bench/explain_paths.py [--pupils 325000] [--train 150000]``

For each boosted candidate of automatic model selection (``models.risk_model.DEFAULT_CANDIDATES``:
500 trees of 4 or 8 leaves, leaves scaled to the rows), fitted on simulated features
(``bench/flags_explain.py``: the catalogue's 58 features, 12 % missing, four latent
families), the script times in the same process, one after the other:

* ``whole``: ``shap.TreeExplainer(model).shap_values`` on every pupil, as before;
* ``paths``: :func:`models.explain.tree_paths` once and :func:`models.explain._shap_chunk` on
  chunks of ``EWS_COMPUTE_CHUNK_PUPILS`` (10,000) pupils, one process, as a run does;

and prints both, their ratio and the largest difference between the two sets of
contributions (floating-point rounding only). Both paths use one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flags_explain import simulated_features  # noqa: E402

from features.catalogue import FEATURE_NAMES  # noqa: E402
from models.explain import _import_shap, _shap_chunk, tree_paths  # noqa: E402
from models.risk_model import DEFAULT_CANDIDATES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=325_000, help="pupils explained (national: 325,000)")
    parser.add_argument("--train", type=int, default=150_000, help="training rows of each candidate")
    parser.add_argument("--chunk", type=int, default=10_000, help="pupils a chunk")
    args = parser.parse_args()
    shap = _import_shap()
    frame, outcome = simulated_features(args.train, seed=1)
    names = [*FEATURE_NAMES, "grade"]
    pupils = simulated_features(args.pupils, seed=2)[0][names].to_numpy("float64")
    print(f"{args.pupils:,} pupils, models fitted on {args.train:,} rows, chunks of {args.chunk:,}", flush=True)
    for candidate in (c for c in DEFAULT_CANDIDATES if c.kind == "boosting"):
        model = candidate.estimator(names, args.train, seed=0).fit(frame[names].to_numpy("float64"), outcome)
        started = time.perf_counter()
        prepared = tree_paths(model)
        parts = [_shap_chunk(prepared, pupils[start:start + args.chunk])
                 for start in range(0, len(pupils), args.chunk)]
        paths_seconds = time.perf_counter() - started
        started = time.perf_counter()
        whole = np.asarray(shap.TreeExplainer(model).shap_values(pupils, check_additivity=False))
        whole_seconds = time.perf_counter() - started
        contributions = np.vstack([part for part, _ in parts])
        print(f"{candidate.name}: {model.n_iter_} trees; whole {whole_seconds:.1f} s, paths {paths_seconds:.1f} s, "
              f"ratio {whole_seconds / paths_seconds:.1f}; largest difference "
              f"{np.abs(contributions - whole).max():.1e}", flush=True)


if __name__ == "__main__":
    main()
