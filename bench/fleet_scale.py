"""A fleet of small synthetic municipalities of mixed sizes on a local Dask cluster (issue 16).

Usage (from the repository root):

    .venv/bin/python bench/fleet_scale.py --work /tmp/fleet-bench
    .venv/bin/python bench/fleet_scale.py --work /tmp/fleet-bench --sizes 1x20,2x40,3x60,4x100 --workers 1 2

Writes one synthetic municipality per size (``SCHOOLSxPUPILS_PER_GRADE``, each with its own seed
and key), then runs ``ews fleet run --term 2025/26-H1 --json`` once per worker count on fresh
state folders (the same exports, so every configuration does the same work: a first run that
reads every file and trains every model). Prints markdown for docs/benchmarks.md: wall time per
configuration, each municipality's time, the share of run time per step, and a per-pupil fit
(fixed seconds per municipality + seconds per scored pupil) for the estimate on paper.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TERM = "2025/26-H1"
ROOT = Path(__file__).resolve().parent.parent
EWS = str(ROOT / ".venv" / "bin" / "ews")

SYNTH = """
from pathlib import Path
from pipelines.synth import SynthParams, generate_municipality
generate_municipality(Path({out!r}), SynthParams(seed={seed}, schools={schools}, pupils_per_grade={ppg},
                      first_school_year={first!r}, last_term={last!r}))
"""


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(part) for part in size.split("x")) for size in text.split(",")]  # type: ignore[misc]


def write_municipalities(work: Path, sizes: list[tuple[int, int]], first: str) -> list[dict]:
    entries = []
    (work / "keys").mkdir(parents=True, exist_ok=True)
    for i, (schools, ppg) in enumerate(sizes):
        name = f"m{i + 1}-{schools}x{ppg}"
        out = work / "files" / name
        key = work / "keys" / f"{name}.key"
        key.write_text(f"bench-key-{name}-{os.urandom(8).hex()}" if not key.exists() else key.read_text())
        if not (out / "municipality.yaml").exists():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", SYNTH.format(out=str(out), seed=100 + i, schools=schools, ppg=ppg,
                                                               first=first, last=TERM)], check=True, cwd=ROOT)
            print(f"synth {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        entries.append({"id": name, "name": f"Bench {name}", "config_path": str(out / "municipality.yaml"),
                        "inbox": str(out / "exports"), "pseudonym_key": {"file": str(key)},
                        "app": {"port": 8200 + i}})
    return entries


def run_configuration(work: Path, entries: list[dict], workers: int,
                      memory_limit: str | None = None) -> tuple[float, dict]:
    root = work / f"workers-{workers}"
    if root.exists():
        subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir(parents=True)
    fleet = {"fleet_version": 1, "operator": "bench", "state_dir": str(root / "operator"),
             "dask": {"n_workers": workers, "threads_per_worker": 1, "processes": True,
                      **({"memory_limit": memory_limit} if memory_limit else {})},
             "municipalities": [{**e, "state_dir": str(root / e["id"])} for e in entries]}
    path = root / "fleet.yaml"
    path.write_text(json.dumps(fleet))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EWS_", "PREFECT_API_URL"))}
    env.update({"PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1"})
    started = time.perf_counter()
    done = subprocess.run([EWS, "fleet", "run", "--fleet", str(path), "--term", TERM, "--json"],
                          capture_output=True, text=True, env=env, cwd=root)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 6):
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"fleet run with {workers} worker(s) exited {done.returncode}")
    return wall, json.loads((root / "operator" / "fleet_runs" / "latest.json").read_text())


def fit(lines: list[dict]) -> tuple[float, float]:
    """Least squares: run seconds = fixed + per_pupil * pupils scored."""
    xs = [line["pupils_scored"] for line in lines]
    ys = [line["duration_seconds"] for line in lines]
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs) or 1.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope if n > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sizes", default="1x20,2x40,3x60,4x100")
    parser.add_argument("--first-school-year", default="2018/19")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-limit", default=None,
                        help="each Dask worker's memory cap (default: the fleet config's, 6GiB); a national-sized "
                             "fleet's largest municipality needs more")
    args = parser.parse_args()
    entries = write_municipalities(args.work, parse_sizes(args.sizes), args.first_school_year)
    results = {}
    for workers in args.workers:
        wall, summary = run_configuration(args.work, entries, workers, args.memory_limit)
        results[workers] = (wall, summary)
        print(f"{workers} worker(s): {wall:.1f} s wall, fleet flow {summary['duration_seconds']} s, "
              f"status {summary['status']}", file=sys.stderr)
    (args.work / "results.json").write_text(json.dumps({w: {"wall": r[0], "summary": r[1]} for w, r in results.items()},
                                                       indent=2, default=str))
    print("| workers | `ews fleet run` wall | fleet flow | sum of municipality times | status |")
    print("|---:|---:|---:|---:|---|")
    for workers, (wall, summary) in results.items():
        total = sum(line["duration_seconds"] for line in summary["municipalities"])
        print(f"| {workers} | {wall:.0f} s | {summary['duration_seconds']:.0f} s | {total:.0f} s | "
              f"{summary['totals']['succeeded']}/{summary['totals']['municipalities']} succeeded |")
    print()
    header = " | ".join(f"{w} worker(s)" for w in results)
    print(f"| municipality | pupils scored | rows read | {header} |")
    print("|---|---:|---:|" + "---:|" * len(results))
    first = next(iter(results.values()))[1]
    for i, line in enumerate(first["municipalities"]):
        times = " | ".join(f"{r[1]['municipalities'][i]['duration_seconds']:.0f} s" for r in results.values())
        print(f"| {line['id']} | {line['pupils_scored']:,} | {line['rows_read']:,} | {times} |")
    print()
    print("| step | " + " | ".join(f"share, {w} worker(s)" for w in results) + " |")
    print("|---|" + "---:|" * len(results))
    steps = list(first["totals"]["step_share"])
    for step in steps:
        shares = " | ".join(f"{100 * r[1]['totals']['step_share'].get(step, 0):.0f} %" for r in results.values())
        print(f"| {step} | {shares} |")
    for workers, (_wall, summary) in results.items():
        fixed, per_pupil = fit(summary["municipalities"])
        print(f"\nfit, {workers} worker(s): {fixed:.1f} s per municipality + {1000 * per_pupil:.1f} s per 1,000 "
              "pupils scored")


if __name__ == "__main__":
    main()
