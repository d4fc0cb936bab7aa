"""The model on larger synthetic worlds: AUC against the oracle and the best rule.

Usage (from the repository root; each world is a full synth + termly run + evaluation, so
Herning size takes several minutes):

    .venv/bin/python bench/model_matrix.py                       # every bench world
    .venv/bin/python bench/model_matrix.py medium_bench herning  # some of them
    .venv/bin/python bench/model_matrix.py --ci                  # the CI worlds of the test matrix
    .venv/bin/python bench/model_matrix.py --json out.json herning

The worlds are in ``tests/pipelines/model_matrix.py`` (``bench_worlds``, ``ci_worlds``). Prints
one markdown row per world: held-out rows and pupils, AUC of the model, the oracle and the best
rule (by precision at capacity), the gap to the oracle, precision at capacity (model / oracle /
best rule), the model's calibration error, the logistic regression's AUC, and whether the data
allow the 0.02 margin (at least 1,000 held-out pupils) and it holds.

Not a pytest benchmark: ``make bench`` collects this file and finds no benchmark in it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COLUMNS = ("world", "rows", "pupils", "positive_share", "auc_model", "auc_oracle", "gap",
           "best_rule", "auc_best_rule", "p_at_cap_model", "p_at_cap_oracle", "p_at_cap_best_rule",
           "calibration_error", "auc_logistic", "data_allow", "within_0.02", "seconds", "cpu_seconds")


def _row(figures: dict) -> str:
    cells = []
    for column in COLUMNS:
        value = figures.get(column)
        cells.append(f"{value:.3f}" if isinstance(value, float) and not column.endswith("seconds") else str(value))
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen worlds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("worlds", nargs="*", help="world names (default: every bench world)")
    parser.add_argument("--ci", action="store_true", help="the CI worlds instead of the bench worlds")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--full", action="store_true", help="run every stage (explanations, flags)")
    parser.add_argument("--keep", type=Path, help="keep the worlds' files in this folder")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.pipelines.model_matrix import MAX_ORACLE_GAP, bench_worlds, ci_worlds, run_world

    worlds = {w.name: w for w in (ci_worlds() if args.ci else bench_worlds())}
    unknown = sorted(set(args.worlds) - set(worlds))
    if unknown:
        parser.error(f"unknown world(s) {unknown}; known: {sorted(worlds)}")
    chosen = [worlds[name] for name in (args.worlds or worlds)]
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    figures = []
    with tempfile.TemporaryDirectory(prefix="ews-model-matrix-") as scratch:
        base = args.keep or Path(scratch)
        for world in chosen:
            result = run_world(world, base / world.name, full_pipeline=args.full)
            entry = {**result.figures, "within_0.02": result.gap <= MAX_ORACLE_GAP, "note": world.note}
            figures.append(entry)
            print(_row(entry), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
