"""The features query on a finished warehouse: time, DuckDB's peak memory and spill, and a comparison.

Run: ``.venv/bin/python bench/features_asof.py WAREHOUSE CONFIG [--term 2025/26-H1] [--training]
[--reference OLD.sql] [--memory-limit 8GB] [--threads 2]``

* ``WAREHOUSE``: a ``warehouse.duckdb`` of a finished run (``<state>/versions/<v>/``), opened
  read-only; ``CONFIG``: its municipality config.
* Scoring (default): the term's as-of date, grades 5-9, as a termly run builds them.
  ``--training``: the 22 as-of dates of 2015/16-2025/26, grades 5-8, as training builds them.
* ``--reference OLD.sql``: another version of ``features/pupil_features.sql`` (e.g.
  ``git show cb264e3~1:features/pupil_features.sql > old.sql``), timed in the same process
  after the current one; the script then reports every feature column whose values differ
  (``features.leakage.compare_features``: rows, and values beyond 1e-9). The first query reads
  the warehouse cold: run both orders before trusting a difference of a few seconds.

DuckDB runs with the given memory limit and threads and a spill folder beside the warehouse
(``<warehouse>.bench_tmp``, removed afterwards). Peak memory and spill are DuckDB's own
profiling metrics (``peak_buffer_memory``, ``peak_temp_dir_size``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ews.config import load_config  # noqa: E402
from ews.terms import Term  # noqa: E402
from features.build import SCORING_GRADES, _sql, feature_query_parameters  # noqa: E402
from features.leakage import compare_features  # noqa: E402


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: dict, profile: Path) -> tuple[pd.DataFrame, dict]:
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    started = time.perf_counter()
    frame = con.execute(sql, params).df()
    seconds = time.perf_counter() - started
    con.execute("PRAGMA disable_profiling")
    system = json.loads(profile.read_text()).get("system", {})
    return frame, {"seconds": seconds, "rows": len(frame),
                   "peak_memory_gb": system.get("peak_buffer_memory", 0) / 1e9,
                   "peak_spill_gb": system.get("peak_temp_dir_size", 0) / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("config", type=Path)
    parser.add_argument("--term", default="2025/26-H1", help="the scoring term (default 2025/26-H1)")
    parser.add_argument("--training", action="store_true", help="training's as-of dates and grades instead")
    parser.add_argument("--reference", type=Path, help="another version of pupil_features.sql to compare with")
    parser.add_argument("--memory-limit", default="8GB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config = load_config(args.config)
    if args.training:
        dates = [config.terms.as_of_date(Term(year, half)) for year in range(2015, 2026) for half in (1, 2)]
        grades: tuple[int, ...] = (5, 6, 7, 8)
    else:
        dates, grades = [config.terms.as_of_date(Term.parse(args.term))], SCORING_GRADES
    params = feature_query_parameters(config, dates, grades)
    spill = Path(f"{args.warehouse}.bench_tmp")
    con = duckdb.connect(str(args.warehouse), read_only=True, config={
        "memory_limit": args.memory_limit, "threads": args.threads, "temp_directory": str(spill)})
    con.execute("SET enable_progress_bar = false")
    con.execute("SET asof_loop_join_threshold = 0")  # as features.build does
    print(f"{len(dates)} as-of date(s), grades {list(grades)}, {args.threads} threads, "
          f"memory limit {args.memory_limit}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as folder:
            results = {}
            versions = [("current", _sql())]
            if args.reference:
                versions.append(("reference", args.reference.read_text(encoding="utf-8")))
            for name, sql in versions:
                results[name], figures = _run(con, sql, params, Path(folder) / f"{name}.json")
                print(f"{name:>9}: {figures['rows']:,} rows in {figures['seconds']:.1f} s, DuckDB peak "
                      f"{figures['peak_memory_gb']:.2f} GB, spill {figures['peak_spill_gb']:.2f} GB", flush=True)
            if args.reference:
                found = compare_features(results["reference"], results["current"])
                print("identical features" if not found else "DIFFERENT (column: pupils): " + "; ".join(
                    f"{name}: {count}" for name, count in sorted(found.items())))
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


if __name__ == "__main__":
    main()
