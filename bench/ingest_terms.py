"""The incremental ingest over a municipality's terms: first load, a re-export, a re-run.

Usage (from the repository root):

    .venv/bin/python bench/ingest_terms.py                      # Herning size, synth first
    .venv/bin/python bench/ingest_terms.py --work DIR --skip-synth

Steps, each in a fresh process (wall time and the child's peak memory):

1. ``duckdb read_csv``: DuckDB's plain ``read_csv`` of every CSV export, with declared types,
   separator, decimal separator and date format (the physical reference for the ratios);
2. ``first load``: the ingest of all school years into an empty warehouse, with the current
   school year's exports as they were earlier in the year (rows dated from 1 October 2025 cut);
3. ``term after a re-export``: the current school year's exports re-exported in full (every
   other file unchanged);
4. ``re-run, same files``: the same exports again.

Each ingest step is ``staged_write`` + ``ingest_sources`` (the warehouse copy, the ingest and
the swap), not the model stages. With ``--end-to-end`` each step is instead the command a user
types, ``ews run --term 2025/26-H1 --json`` (ingest, validation, features, model trained or
reused, scoring, explanations, flag lists, outcomes, retention, publication), and the step's
manifest gives the split; ``--prefect-server`` starts a Prefect server for the bench and
points the runs at it (``PREFECT_API_URL``), as an operator would, instead of each ``ews run``
starting a temporary server of its own (10-20 s on this machine). Prints markdown rows for
docs/benchmarks.md.

The inbox is built from hard links to the exports (only the cut current-year files are new
files), so a national-size work folder does not need its 18 GiB of exports twice.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

CURRENT_YEAR = "2025-26"
SIZES = {"small": (3, 60), "herning": (20, 1000), "national": (1100, 65000)}
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
with staged_write(settings.state_dir, settings.warehouse_memory_limit) as session:
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


def run_command(name: str, command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command as a user would; return (seconds, its peak MiB, its standard output)."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "peak_kib %M", *command], env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 6):  # 6: the model did not pass the gate (a rule list is published)
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-6000:]}")
    peak = next(int(line.split()[1]) for line in reversed(done.stderr.splitlines()) if line.startswith("peak_kib"))
    return seconds, peak / 1024, done.stdout


def describe_run(stdout: str) -> str:
    """One line from a run's JSON manifest: files read, the model's reuse, the steps' seconds."""
    manifest = json.loads(stdout)
    model = f"model {str(manifest.get('model', {}).get('model_id'))[:12]}"  # the same id: reused
    steps = manifest.get("step_seconds") or {}
    split = ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()) if steps else ""
    ingest = sum((manifest.get("ingest_seconds") or {}).values())
    return (f"{len(manifest.get('files_read', []))} of {len(manifest.get('sources', []))} files read; "
            f"ingest {ingest:.1f} s; {model}; run {manifest.get('duration_seconds')} s"
            + (f"; {split}" if split else ""))


#: The day the first load's current-year exports were taken: rows dated on or after it are not
#: in them yet (a re-export later in the year adds rows; it does not change the earlier ones).
EXPORTED_ON = date(2025, 10, 1)
_DATE = re.compile(rb"(\d{2})[-.](\d{2})[-.](\d{4})")


def _dated_before(first: date | None) -> bool:
    return first is None or first < EXPORTED_ON


def _csv_first_date(line: bytes) -> date | None:
    found = _DATE.search(line)
    return None if found is None else date(int(found[3]), int(found[2]), int(found[1]))


def cut_current_year(exports: Path, inbox: Path) -> None:
    """The inbox as exported earlier in the year: current-year files without the rows dated from
    :data:`EXPORTED_ON` on (a row's date is its first date: enrolment, period, contact, mark,
    start of a support spell). A file that would keep no row is left whole.

    Every other file is a hard link to the export (nothing the ingest does writes to the
    inbox; retention may unlink a file, which leaves the export in place).
    """
    if inbox.exists():
        shutil.rmtree(inbox)
    shutil.copytree(exports, inbox, copy_function=os.link)
    for path in sorted(inbox.glob(f"*_{CURRENT_YEAR}.*")):
        if path.suffix == ".csv":
            lines = path.read_bytes().splitlines(keepends=True)
            kept = [line for line in lines[1:] if _dated_before(_csv_first_date(line))]
            if kept and len(kept) < len(lines) - 1:
                path.unlink()  # a new file, never a write through the link into the export
                path.write_bytes(b"".join([lines[0], *kept]))
        elif path.suffix == ".xlsx":
            from openpyxl import Workbook, load_workbook

            book, cut = load_workbook(path), Workbook()
            cut.remove(cut.active)
            changed = False
            for sheet in book.worksheets:
                rows = list(sheet.iter_rows(values_only=True))
                first = [next((v.date() for v in row if isinstance(v, datetime)), None) for row in rows[1:]]
                kept = [row for row, day in zip(rows[1:], first, strict=True) if _dated_before(day)]
                changed |= bool(kept) and len(kept) < len(rows) - 1
                target = cut.create_sheet(sheet.title)
                for row in [rows[0], *(kept or rows[1:])]:
                    target.append(row)
            if changed:
                path.unlink()
                cut.save(path)


def main() -> None:
    """Run the steps and print markdown rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="herning")
    parser.add_argument("--work", type=Path, help="work folder; with --skip-synth, one written before")
    parser.add_argument("--skip-synth", action="store_true", help="use the exports already in --work")
    parser.add_argument("--repeat", type=int, default=1, help="repeat the re-run step (median)")
    parser.add_argument("--end-to-end", action="store_true",
                        help="each step is 'ews run --term 2025/26-H1' (the whole termly run), not the ingest only")
    parser.add_argument("--prefect-server", action="store_true",
                        help="with --end-to-end: the runs report to a Prefect server started for the bench "
                             "(PREFECT_API_URL, as an operator runs it), not each to a temporary server of its own")
    parser.add_argument("--skip-plain-read", action="store_true",
                        help="leave out DuckDB's plain read (at national size it holds every absence row in one table)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix=f"ews-terms-{args.size}-"))
    out = work / "synthetic"
    inbox = work / "inbox"
    state = work / "state-terms"
    env = {**os.environ, "EWS_STATE_DIR": str(state), "EWS_CONFIG_PATH": str(out / "municipality.yaml"),
           "EWS_INBOX": str(inbox), "EWS_PSEUDONYM_KEY": "bench"}
    rows = []
    server = start_prefect_server(work, env) if args.prefect_server else None
    try:
        measure(args, work, out, inbox, state, env, rows)
    finally:
        if server is not None:
            server.stop()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    mode = "whole termly runs (ews run)" if args.end_to_end else "ingest only"
    if server is not None:
        mode += ", reporting to a running Prefect server"
    size_mb = sum(p.stat().st_size for p in (out / "exports").iterdir()) / 2**20
    print(f"machine: {os.cpu_count()} cores, {memory:.0f} GiB, load average now {load}; {args.size}: "
          f"{size_mb:.0f} MiB of exports; {mode}")
    print("| step | wall time | peak memory | note |")
    print("|---|---:|---:|---|")
    print("\n".join(rows))
    print(f"(work folder {work}; remove it when done)")


def start_prefect_server(work: Path, env: dict[str, str]) -> Any:
    """Start Prefect's server in a subprocess (as ``ews fleet run`` does); put its API URL into ``env``."""
    home = work / "prefect-server"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)  # before Prefect is imported: the server's database
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=180)
    env["PREFECT_API_URL"] = server.api_url
    return server


def measure(args: argparse.Namespace, work: Path, out: Path, inbox: Path, state: Path, env: dict[str, str],
            rows: list[str]) -> None:
    """Synth (unless skipped), the plain read and the ingest steps; appends markdown rows."""
    schools, ppg = SIZES[args.size]
    if not args.skip_synth:
        seconds, peak, _ = run_step("synth", SYNTH.format(out=str(out), schools=schools, ppg=ppg), env)
        rows.append(f"| synth | {seconds:.1f} s | {peak:.0f} MiB | |")
    plain = None
    if not args.skip_plain_read:
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
                if not (inbox / path.name).samefile(path):  # files left whole are links already
                    (inbox / path.name).unlink()
                    shutil.copyfile(path, inbox / path.name)
        if args.end_to_end:
            ews = str(Path(sys.executable).with_name("ews"))
            seconds, peak, stdout = run_command(name, [ews, "run", "--term", "2025/26-H1", "--json"], env)
            note = describe_run(stdout)
        else:
            seconds, peak, note = run_step(name, INGEST, env)
        ratio = f" ({seconds / plain:.1f}x plain read)" if plain else ""
        rows.append(f"| {name} | {seconds:.1f} s{ratio} | {peak:.0f} MiB | {note} |")


if __name__ == "__main__":
    main()
