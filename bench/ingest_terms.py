"""The incremental ingest over a municipality's terms: first load, a re-export, a re-run.

Usage (from the repository root):

    .venv/bin/python bench/ingest_terms.py                      # Herning size, synth first
    .venv/bin/python bench/ingest_terms.py --work DIR --skip-synth

Steps, each in a fresh process (wall time and the child's peak memory):

1. ``duckdb read_csv``: DuckDB's plain ``read_csv`` of every CSV export, with declared types,
   separator, decimal separator and date format (the physical reference for the ratios);
2. ``first load``: the ingest of all school years into an empty warehouse, with the current
   school year's exports as they were earlier in the year (the last fifth of their rows cut);
3. ``term after a re-export``: the current school year's exports re-exported in full (every
   other file unchanged);
4. ``re-run, same files``: the same exports again.

Each ingest step is ``staged_write`` + ``ingest_sources`` (the warehouse copy, the ingest and
the swap), not the model stages. Prints markdown rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CURRENT_YEAR = "2025-26"
SIZES = {"small": (3, 60), "herning": (20, 1000)}
SYNTH = """
from pathlib import Path
from pipelines.synth import SynthParams, generate_municipality
generate_municipality(Path({out!r}), SynthParams(schools={schools}, pupils_per_grade={ppg}))
"""
PLAIN_READ = """
import time, duckdb
from pathlib import Path
from ews.config import load_config
from ews.schema import SOURCE_KINDS
config = load_config(Path({config!r}))
inbox = Path({inbox!r})
con = duckdb.connect()
types = {{"int": "BIGINT", "float": "DOUBLE", "date": "DATE"}}
rows = 0
for source in config.sources:
    files = sorted(str(p) for p in inbox.glob(source.pattern))
    if source.format != "csv" or not files:
        continue
    kinds = {{c.name: c.type for c in SOURCE_KINDS[source.kind]}}
    header = files and open(files[0], encoding="utf-8-sig" if "utf" in source.encoding else "latin-1").readline()
    names = [h.strip() for h in header.rstrip("\\r\\n").split(source.delimiter)]
    canonical = {{v: k for k, v in source.columns.items()}}
    columns = {{n: types.get(kinds.get(canonical.get(n), ""), "VARCHAR") for n in names}}
    encoding = "utf-8" if "utf" in source.encoding else "latin-1"
    # materialised, so that every value is typed (a bare count(*) may skip the typing)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE typed AS SELECT * FROM read_csv($files, delim = $delim, "
        "decimal_separator = $decimal, dateformat = $fmt, header = true, columns = $columns, "
        "encoding = $encoding, auto_detect = false)",
        {{"files": files, "delim": source.delimiter, "decimal": source.decimal,
          "fmt": source.date_formats[0], "columns": columns, "encoding": encoding}})
    rows += con.execute("SELECT count(*) FROM typed").fetchall()[0][0]
print(f"{{rows:,}} rows typed")
"""
INGEST = """
import time
from ews.settings import get_settings
from ews.config import load_config
from ews.terms import Term
from ews.warehouse import staged_write
from pipelines.ingest import discover_sources, ingest_sources
settings = get_settings()
config = load_config(settings.resolved_config_path)
sources = discover_sources(config, settings.resolved_inbox)
with staged_write(settings.state_dir) as session:
    result = ingest_sources(session, config, sources, key=settings.key_bytes(), term=Term.parse("2025/26-H1"),
                            today=settings.today_date(), run_id="bench", previous_rows={},
                            chunk_rows=settings.ingest_chunk_rows)
read, held = int(result.files["rows_read"].sum()), int(result.files["rows_quarantined"].sum())
print(f"{len(result.files_read)} of {len(result.files)} files read; {read:,} rows in the files, "
      f"{held:,} quarantined; seconds {result.seconds}")
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
        raise SystemExit(f"{name} failed:\n{done.stderr[-6000:]}")
    lines = done.stdout.strip().splitlines()
    return seconds, int(lines[-1].split()[1]) / 1024, (lines[:-1] or [""])[-1]


def cut_current_year(exports: Path, inbox: Path) -> None:
    """The inbox as earlier in the year: current-year files with their last fifth of rows cut."""
    if inbox.exists():
        shutil.rmtree(inbox)
    shutil.copytree(exports, inbox)
    for path in sorted(inbox.glob(f"*_{CURRENT_YEAR}.*")):
        if path.suffix == ".csv":
            data = path.read_bytes()
            lines = data.splitlines(keepends=True)
            keep = 1 + (len(lines) - 1) * 4 // 5
            path.write_bytes(b"".join(lines[:keep]))
        elif path.suffix == ".xlsx":
            from openpyxl import load_workbook

            book = load_workbook(path)
            for sheet in book.worksheets:
                keep = 1 + (sheet.max_row - 1) * 4 // 5
                sheet.delete_rows(keep + 1, sheet.max_row - keep)
            book.save(path)


def main() -> None:
    """Run the steps and print markdown rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="herning")
    parser.add_argument("--work", type=Path, help="work folder; with --skip-synth, one written before")
    parser.add_argument("--skip-synth", action="store_true", help="use the exports already in --work")
    parser.add_argument("--repeat", type=int, default=1, help="repeat the re-run step (median)")
    args = parser.parse_args()
    schools, ppg = SIZES[args.size]
    work = args.work or Path(tempfile.mkdtemp(prefix=f"ews-terms-{args.size}-"))
    out = work / "synthetic"
    inbox = work / "inbox"
    state = work / "state-terms"
    env = {**os.environ, "EWS_STATE_DIR": str(state), "EWS_CONFIG_PATH": str(out / "municipality.yaml"),
           "EWS_INBOX": str(inbox), "EWS_PSEUDONYM_KEY": "bench"}
    rows = []
    if not args.skip_synth:
        seconds, peak, _ = run_step("synth", SYNTH.format(out=str(out), schools=schools, ppg=ppg), env)
        rows.append(f"| synth | {seconds:.1f} s | {peak:.0f} MiB | |")
    size_mb = sum(p.stat().st_size for p in (out / "exports").iterdir()) / 2**20
    plain, peak, note = run_step("plain read", PLAIN_READ.format(
        config=str(out / "municipality.yaml"), inbox=str(out / "exports")), env)
    rows.append(f"| DuckDB plain read_csv of every CSV export | {plain:.1f} s | {peak:.0f} MiB | {note} |")
    shutil.rmtree(state, ignore_errors=True)
    cut_current_year(out / "exports", inbox)
    steps = [("first load, twelve school years", None)]
    steps.append(("term after the current school year is re-exported", "reexport"))
    steps += [("re-run, same files", None)] * max(1, args.repeat)
    for name, action in steps:
        if action == "reexport":
            for path in sorted((out / "exports").glob(f"*_{CURRENT_YEAR}.*")):
                shutil.copyfile(path, inbox / path.name)
        seconds, peak, note = run_step(name, INGEST, env)
        rows.append(f"| {name} | {seconds:.1f} s ({seconds / plain:.1f}x plain read) | {peak:.0f} MiB | {note} |")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} cores, {memory:.0f} GiB; {args.size}: {size_mb:.0f} MiB of exports")
    print("| step | wall time | peak memory | note |")
    print("|---|---:|---:|---|")
    print("\n".join(rows))
    print(f"(work folder {work}; remove it when done)")


if __name__ == "__main__":
    main()
