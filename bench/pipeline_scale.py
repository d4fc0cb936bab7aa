"""Synth and ingest at a given size: wall time and peak memory, each in its own process.

Usage (from the repository root):

    .venv/bin/python bench/pipeline_scale.py --size herning
    .venv/bin/python bench/pipeline_scale.py --size national --first-school-year 2024/25

Prints one markdown row per step for docs/benchmarks.md. Each step runs in a fresh process so
that its peak resident memory (ru_maxrss of the child) is its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"small": (3, 60), "herning": (20, 1000), "national": (1100, 65000)}

SYNTH = """
from pathlib import Path
from pipelines.synth import SynthParams, generate_municipality
generate_municipality(Path({out!r}), SynthParams(schools={schools}, pupils_per_grade={ppg},
                      first_school_year={first!r}, last_term={last!r}))
"""
INGEST = """
from ews.settings import get_settings
from ews.config import load_config
from ews.terms import Term
from ews.warehouse import staged_write
from pipelines.ingest import discover_sources, ingest_sources
settings = get_settings()
config = load_config(settings.resolved_config_path)
inbox = settings.resolved_inbox
# a run over the latest school years only has no file of sources that ended before them (UPV
# ended with 2023/24): such sources are optional for the benchmark
config = config.model_copy(update={{"sources": [
    s if any(inbox.glob(s.pattern)) else s.model_copy(update={{"required": False}})
    for s in config.sources]}})
sources = discover_sources(config, inbox)
term = Term.parse({last!r})
with staged_write(settings.state_dir, settings.warehouse_memory_limit) as session:
    result = ingest_sources(session, config, sources, key=settings.key_bytes(), term=term,
                            today=settings.today_date(), run_id="bench", previous_rows={{}},
                            chunk_rows=settings.ingest_chunk_rows)
read, held = int(result.files["rows_read"].sum()), int(result.files["rows_quarantined"].sum())
print(f"{{read:,}} rows read, {{held:,}} quarantined; seconds {{result.seconds}}")
"""


PEAK = """
import resource
print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_step(name: str, code: str, env: dict[str, str]) -> tuple[float, float, str]:
    """Run code in a child process; return (seconds, the child's own peak MiB, its last line)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + PEAK], env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    peak = int(lines[-1].split()[1]) / 1024
    return seconds, peak, (lines[:-1] or [""])[-1]


def main() -> None:
    """Run synth then ingest at the chosen size and print markdown rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="herning")
    parser.add_argument("--first-school-year", default="2014/15")
    parser.add_argument("--last-term", default="2025/26-H1")
    parser.add_argument("--work", type=Path, help="work folder; with --skip-synth, one written before")
    parser.add_argument("--skip-synth", action="store_true", help="ingest the exports already in --work")
    args = parser.parse_args()
    schools, ppg = SIZES[args.size]
    work = args.work or Path(tempfile.mkdtemp(prefix=f"ews-bench-{args.size}-"))
    out = work / "synthetic"
    env = {**os.environ, "EWS_STATE_DIR": str(work / "state"), "EWS_CONFIG_PATH": str(out / "municipality.yaml"),
           "EWS_INBOX": str(out / "exports"), "EWS_PSEUDONYM_KEY": "bench"}
    rows = []
    if not args.skip_synth:
        seconds, peak, _ = run_step("synth", SYNTH.format(out=str(out), schools=schools, ppg=ppg,
                                                          first=args.first_school_year, last=args.last_term), env)
        size_mb = sum(p.stat().st_size for p in (out / "exports").iterdir()) / 2**20
        rows.append(f"| synth | {args.size} ({schools} schools, {ppg}/grade, {args.first_school_year}.."
                    f"{args.last_term}) | {seconds:.1f} s | {peak:.0f} MiB | {size_mb:.0f} MiB of exports |")
    chunk = env.get("EWS_INGEST_CHUNK_ROWS", "500000")
    seconds, peak, note = run_step("ingest", INGEST.format(last=args.last_term), env)
    note += f", chunks of {int(chunk):,} rows"
    rows.append(f"| ingest + validation | {args.size} | {seconds:.1f} s | {peak:.0f} MiB | {note} |")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} cores, {memory:.0f} GiB")
    print("| step | size | wall time | peak memory | note |")
    print("|---|---|---:|---:|---|")
    print("\n".join(rows))
    print(f"(work folder {work}; remove it when done)")


if __name__ == "__main__":
    main()
