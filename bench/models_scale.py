"""Model training and scoring at a given size: wall time and peak memory, each in its own process.

Usage (from the repository root):

    # on a warehouse the pipeline built (e.g. from `ews synth` + `ews run`):
    .venv/bin/python bench/models_scale.py --warehouse data/versions/$(cat data/CURRENT)/warehouse.duckdb \
        --config data/synthetic/municipality.yaml
    # on a simulated clean warehouse (no ingest), Herning or national size:
    .venv/bin/python bench/models_scale.py --size herning
    .venv/bin/python bench/models_scale.py --size national

    # or through pytest-benchmark (small size unless BENCH_MODELS_SIZE is set):
    .venv/bin/pytest bench/models_scale.py --benchmark-only

Steps: ``train`` = features for every as-of date + training + held-out evaluation + model card
+ registry (``models.training.train_or_load_model`` with a fresh models folder); ``score`` =
features for one as-of date (``features.build.build_scoring_features``) + scoring + writing
(``models.scoring.score_pupils``). Each runs in
a fresh process so its peak resident memory (ru_maxrss of the child) is its own.

The simulated warehouse writes ``clean_*`` tables directly with one absence row per pupil and
month (the exports have one per week: about four times the rows); pupils, tests, contacts,
support and UPV outcomes are as in the exports. Prints one markdown row per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

SIZES = {"small": (4, 150), "herning": (20, 1000), "national": (1100, 65000)}
FIRST_YEAR, LAST_YEAR = 2014, 2025
TERM = "2025/26-H1"

TRAIN = """
import json, time
from pathlib import Path
import duckdb
from ews.config import load_config
from models.training import train_or_load_model
config = load_config(Path({config!r}))
con = duckdb.connect({warehouse!r}, config={{"memory_limit": {memory!r}}})
start = time.perf_counter()
bundle = train_or_load_model(con, config, {term!r}, Path({models!r}), "bench")
seconds = time.perf_counter() - start
con.close()
import resource
print(json.dumps({{"seconds": seconds, "model_id": bundle.model_id,
                  "rows": bundle.metrics["rows"], "auc": bundle.metrics["model"]["roc_auc"],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
SCORE = """
import json, time
from pathlib import Path
import duckdb
from ews.config import load_config
from ews.terms import Term
from features.build import build_scoring_features
from models.scoring import score_pupils
from models.training import load_bundle
config = load_config(Path({config!r}))
con = duckdb.connect({warehouse!r}, config={{"memory_limit": {memory!r}}})
bundle = load_bundle(Path({models!r}), {model_id!r})
start = time.perf_counter()
features = build_scoring_features(con, config, {term!r}, config.terms.as_of_date(Term.parse({term!r})))
scores = score_pupils(con, config, bundle, {term!r}, features, "bench")
seconds = time.perf_counter() - start
con.close()
import resource
print(json.dumps({{"seconds": seconds, "pupils": len(scores),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_step(code: str) -> tuple[float, float, dict]:
    """Run code in a child process; return (wall seconds, its own peak MiB, its JSON line)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, out["peak_mib"], out


def simulate_clean_warehouse(path: Path, config_path: Path, schools: int, pupils_per_grade: int,
                             seed: int = 11) -> None:
    """Write a clean warehouse and its config, cohort by cohort (bounded memory)."""
    import duckdb
    import yaml

    from ews.config import build_config_document
    from ews.warehouse import ensure_schema

    rng = np.random.default_rng(seed)
    codes = [f"S{i:04d}" for i in range(schools)]
    networks = [{"id": f"N{i:04d}", "name": f"Netværk {i}", "area": "Nord",
                 "capacity_per_term": max(1, int(0.06 * pupils_per_grade * 5 / schools))} for i in range(schools)]
    document = build_config_document(
        "Benchkommune", ["Nord"], networks,
        [{"code": c, "name": c, "area": "Nord", "network": f"N{i:04d}", "reports_absence": i % 10 != 0}
         for i, c in enumerate(codes)])
    config_path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    con = duckdb.connect(str(path))
    ensure_schema(con)

    def insert(table: str, frame: pd.DataFrame) -> None:
        frame = frame.assign(source_file="bench", source_line=np.arange(len(frame)))
        con.register("_bench", frame)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _bench")
        con.unregister("_bench")

    months = [(8 + i - 1) % 12 + 1 for i in range(11)]
    for start in range(FIRST_YEAR - 9, LAST_YEAR + 1):
        n = pupils_per_grade
        ids = np.char.add(f"p{start}x", np.arange(n).astype(str)).astype(object)
        r = rng.standard_normal(n)
        school = np.array(codes, dtype=object)[rng.integers(0, schools, n)]
        reports = school != np.array(codes, dtype=object)[0]
        for grade in range(10):
            year = start + grade
            if not FIRST_YEAR <= year <= LAST_YEAR:
                continue
            label = f"{year}/{(year + 1) % 100:02d}"
            insert("clean_pupils", pd.DataFrame({
                "pupil_id": ids, "school_year": label, "school_code": school, "grade": grade,
                "class_label": None, "sex": np.where(rng.random(n) < 0.5, "F", "M"), "origin": None,
                "birth_year": start - 6, "enrolled_from": date(year, 8, 1), "enrolled_to": None}))
            parts = []
            for month in months:
                calendar_year = year if month >= 8 else year + 1
                if (calendar_year, month) > (LAST_YEAR, 12):
                    continue
                first = pd.Timestamp(calendar_year, month, 1)
                unauth = rng.binomial(20, 1 / (1 + np.exp(3.2 - 0.9 * r)))
                parts.append(pd.DataFrame({
                    "pupil_id": ids[reports], "school_code": school[reports], "period_start": first.date(),
                    "period_end": (first + pd.offsets.MonthEnd(0)).date(), "school_days": 20.0,
                    "illness_days": rng.binomial(20, 0.03, n)[reports].astype(float), "authorised_days": 0.0,
                    "unauthorised_days": unauth[reports].astype(float),
                    "late_arrivals": rng.poisson(0.5, n)[reports]}))
            if parts:
                insert("clean_absence", pd.concat(parts, ignore_index=True))
            if grade in (2, 3, 4, 6, 8):
                insert("clean_tests", pd.DataFrame({
                    "pupil_id": ids, "school_code": school, "grade": grade, "subject": "dansk_laesning",
                    "test_date": date(year + 1, 3, 10), "scale": "NT",
                    "score": np.clip(50 - 18 * r + 12 * rng.standard_normal(n), 1, 100).round()}))
            count = rng.poisson(np.exp(-2.0 + 0.9 * r))
            who = np.repeat(np.arange(n), count)
            if len(who):
                insert("clean_contacts", pd.DataFrame({
                    "pupil_id": ids[who], "contact_date": (pd.Timestamp(year, 9, 1) + pd.to_timedelta(
                        rng.integers(0, 250, len(who)), unit="D")).date,
                    "discipline": "ppr", "contact_type": "kontakt"}))
            if grade == 8 and year <= 2023:
                insert("clean_outcomes", pd.DataFrame({
                    "pupil_id": ids, "outcome_definition": "upv_ikke_uddannelsesparat", "school_year": label,
                    "assessed_date": date(year, 12, 1), "outcome": r + 0.8 * rng.standard_normal(n) > 0.55}))
    con.execute("CHECKPOINT")
    con.close()


def measure(warehouse: Path, config: Path, workdir: Path, memory: str = "8GB") -> list[dict]:
    """Train, then score, each in a child process; return one entry per step.

    Args:
        warehouse: The warehouse (changed: the model is registered and the term scored).
        config: Its municipality config.
        workdir: Folder for the models.
        memory: DuckDB's memory limit in the children (it spills to disk beyond it).
    """
    models = workdir / "models"
    wall, peak, out = run_step(TRAIN.format(config=str(config), warehouse=str(warehouse), term=TERM,
                                            models=str(models), memory=memory))
    steps = [{"step": "train (features, fit, evaluate, card, registry)", "seconds": out["seconds"],
              "wall": wall, "peak_mib": peak,
              "note": f"{out['rows']} held-out rows, AUC {out['auc']:.3f}"}]
    wall, peak, scored = run_step(SCORE.format(config=str(config), warehouse=str(warehouse), term=TERM,
                                               models=str(models), model_id=out["model_id"], memory=memory))
    steps.append({"step": "score one term (features, risk, tiers, write)", "seconds": scored["seconds"],
                  "wall": wall, "peak_mib": peak, "note": f"{scored['pupils']} pupils"})
    return steps


def print_rows(size: str, steps: list[dict]) -> None:
    """Markdown rows for docs/benchmarks.md."""
    print("| step | size | time in step | wall time (with start-up) | peak memory | note |")
    print("|---|---|---:|---:|---:|---|")
    for s in steps:
        print(f"| {s['step']} | {size} | {s['seconds']:.1f} s | {s['wall']:.1f} s | {s['peak_mib']:.0f} MiB | "
              f"{s['note']} |")


def main() -> None:
    """Command-line entry: measure one size or one given warehouse."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="herning")
    parser.add_argument("--warehouse", type=Path, help="an existing warehouse (copied, never changed)")
    parser.add_argument("--config", type=Path, help="its municipality config")
    parser.add_argument("--memory-limit", default="8GB", help="DuckDB memory limit of each step (default 8GB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ews-bench-models-") as tmp:
        work = Path(tmp)
        warehouse, config = work / "warehouse.duckdb", work / "municipality.yaml"
        if args.warehouse:
            import shutil

            shutil.copy(args.warehouse, warehouse)
            config = args.config
            label = f"{args.warehouse.name} (given warehouse)"
        else:
            schools, ppg = SIZES[args.size]
            started = time.perf_counter()
            simulate_clean_warehouse(warehouse, config, schools, ppg)
            print(f"simulated {args.size}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
            label = f"{args.size} ({ppg} pupils/grade, {schools} schools, simulated)"
        print_rows(label, measure(warehouse, config, work, args.memory_limit))


def test_train_and_score(benchmark, tmp_path):  # pragma: no cover - run with --benchmark-only
    size = os.environ.get("BENCH_MODELS_SIZE", "small")
    schools, ppg = SIZES[size]
    warehouse, config = tmp_path / "warehouse.duckdb", tmp_path / "municipality.yaml"
    simulate_clean_warehouse(warehouse, config, schools, ppg)
    steps = benchmark.pedantic(measure, args=(warehouse, config, tmp_path), rounds=1, iterations=1)
    benchmark.extra_info.update({s["step"]: {"seconds": s["seconds"], "peak_mib": s["peak_mib"]} for s in steps})
    assert len(steps) == 2


if __name__ == "__main__":
    main()
