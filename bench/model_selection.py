"""The cost of model selection and of reusing a model: time and peak memory per step.

Usage (from the repository root, on a warehouse the pipeline built, e.g. after `ews demo`):

    .venv/bin/python bench/model_selection.py --warehouse data/versions/$(cat data/CURRENT)/warehouse.duckdb \
        --config data/synthetic/municipality.yaml

Each step runs in a fresh process on its own copy of the warehouse and a fresh models folder,
so its peak resident memory (``ru_maxrss`` of the child) is its own:

* ``train, automatic selection``: the default: rolling-origin validation of every candidate,
  then the winner's fit and calibration, held-out evaluation, card, registry;
* ``reuse``: the same call again: the training fingerprint matches, the model is loaded (what
  a termly run does when no training cohort changed);
* ``train, pinned candidate``: ``model.candidate`` set to the winner of the first step, so
  only that candidate is validated (the cost of training without a choice).

Prints one markdown row per step and the selection's figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TERM = "2025/26-H1"
STEP = """
import json, resource, sys, time
from pathlib import Path
import duckdb
from ews.config import load_config
from models.training import train_or_load_model
config = load_config(Path({config!r}))
if {pin!r}:
    config = config.model_copy(update={{"model": config.model.model_copy(update={{"candidate": {pin!r}}})}})
con = duckdb.connect({warehouse!r}, config={{"memory_limit": "8GB"}})
marks = []
start = time.perf_counter()
bundle = train_or_load_model(con, config, {term!r}, Path({models!r}), "bench",
                             progress=lambda m: marks.append([round(time.perf_counter() - start, 1), m]))
seconds = time.perf_counter() - start
con.close()
print(json.dumps({{"seconds": seconds, "model_id": bundle.model_id, "candidate": bundle.candidate,
                  "auc": bundle.metrics["model"]["roc_auc"], "marks": marks,
                  "selection": {{n: e["mean"] for n, e in bundle.selection.get("candidates", {{}}).items()}},
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_step(code: str) -> dict:
    """Run one step in a fresh interpreter; return its JSON line with the wall time added."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - start
    return out


def main() -> None:
    """Measure the three steps and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ews-bench-selection-"))
    try:
        rows = []
        auto_wh, pinned_wh = work / "auto.duckdb", work / "pinned.duckdb"
        shutil.copy(args.warehouse, auto_wh)
        shutil.copy(args.warehouse, pinned_wh)
        common = {"config": str(args.config), "term": TERM}
        auto = run_step(STEP.format(warehouse=str(auto_wh), models=str(work / "auto"), pin="", **common))
        rows.append(("train, automatic selection", auto))
        rows.append(("reuse (same training data)",
                     run_step(STEP.format(warehouse=str(auto_wh), models=str(work / "auto"), pin="", **common))))
        rows.append((f"train, pinned {auto['candidate']}",
                     run_step(STEP.format(warehouse=str(pinned_wh), models=str(work / "pinned"),
                                          pin=auto["candidate"], **common))))
        print("| step | time in step | wall time (with start-up) | peak memory | model |")
        print("|---|---:|---:|---:|---|")
        for name, out in rows:
            print(f"| {name} | {out['seconds']:.1f} s | {out['wall']:.1f} s | {out['peak_mib'] / 1024:.2f} GiB | "
                  f"{out['candidate']}, AUC {out['auc']:.3f} |")
        for name, out in rows:
            print(f"\n{name}: " + "; ".join(f"{t} s {m}" for t, m in out["marks"]))
        print("\nselection (mean validation figures):")
        for name, mean in auto["selection"].items():
            print(f"  {name}: {mean}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
