"""The fairness audit's bootstrap against an earlier version of ``models/fairness.py``, same input.

Usage (from the repository root):

    git show 53548be~1:models/fairness.py > /tmp/fairness_before.py
    .venv/bin/python bench/fairness_bootstrap.py --before /tmp/fairness_before.py

Builds held-out rows of two sizes (3,000 rows of 1,500 pupils at 3 schools, as a small test
world; 200,000 rows of 100,000 pupils at 1,100 schools, as the national bench), runs
``fairness_report`` (sex, area, school, origin; 50 bootstrap replicates) of both versions in
this process, prints each one's seconds and whether the two reports are identical.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def rows(n: int, schools: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    pupil = rng.integers(0, n // 2, n)
    frame = pd.DataFrame({"pupil_id": [f"p{i}" for i in pupil], "sex": np.where(pupil % 2, "F", "M"),
                          "area": np.where(pupil % 5 == 0, "by", "land"),
                          "school_code": (pupil % schools).astype(str), "origin": None})
    risk = rng.random(n)
    return frame, (rng.random(n) < risk).astype(int), risk, risk > 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="an earlier models/fairness.py")
    args = parser.parse_args()
    versions = {"before": load(args.before, "fairness_before"), "now": load(ROOT / "models" / "fairness.py",
                                                                          "fairness_now")}
    print("| rows | schools | before | now | identical reports |")
    print("|---:|---:|---:|---:|---|")
    for n, schools in ((3_000, 3), (200_000, 1_100)):
        frame, y, risk, flagged = rows(n, schools)
        seconds, reports = {}, {}
        for name, module in versions.items():
            started = time.perf_counter()
            reports[name] = module.fairness_report(frame, y, risk, flagged)
            seconds[name] = time.perf_counter() - started
        print(f"| {n:,} | {schools:,} | {seconds['before']:.2f} s | {seconds['now']:.2f} s | "
              f"{reports['before'] == reports['now']} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
