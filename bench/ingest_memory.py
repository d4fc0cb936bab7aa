"""Memory of the ingest's read-and-type pass as rows accumulate: it should stay flat.

Usage (from the repository root, after ``.venv/bin/ews synth --out /tmp/herning``):

    .venv/bin/python bench/ingest_memory.py /tmp/herning --scratch-limit 256MB --repeat 3

Reads every absence export of the folder ``--repeat`` times in chunks, types the rows and parks
them in the ingest's scratch store (as the ingest does), printing the resident memory after
each pass. With the scratch store's DuckDB buffer capped low, memory stays flat however many
rows pass through; with the default cap (4 GB) it grows until DuckDB's buffer pool is full.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import duckdb

from ews.config import load_config
from ews.warehouse import IngestScratch, WriteSession
from pipelines.ingest import DEFAULT_CHUNK_ROWS
from pipelines.readers import ExportStream
from validation.contracts import key_hashes
from validation.parsing import parse_source_frame


def resident_gib() -> float:
    """The process's resident memory now, in GiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**30


def main() -> None:
    """Run the passes and print one line per pass."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, help="a folder written by 'ews synth'")
    parser.add_argument("--scratch-limit", default="4GB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    args = parser.parse_args()
    config = load_config(args.folder / "municipality.yaml")
    source = next(s for s in config.sources if s.kind == "absence")
    work = Path(tempfile.mkdtemp(prefix="ews-bench-memory-"))
    session = WriteSession(con=duckdb.connect(str(work / "w.duckdb")),
                           identity=duckdb.connect(str(work / "i.duckdb")), state_dir=work)
    rows = 0
    with IngestScratch(session, memory_limit=args.scratch_limit) as scratch:
        scratch.start_source()
        for attempt in range(args.repeat):
            for path in sorted((args.folder / "exports").glob(source.pattern)):
                for raw in ExportStream(path, source).chunks(args.chunk_rows):
                    parsed = parse_source_frame(raw, source, b"bench-key")
                    scratch.add_typed(parsed.typed, key_hashes(parsed.typed, "absence"), rows,
                                      ["period_start", "period_end"])
                    rows += len(parsed.typed)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            print(f"pass {attempt + 1}: {rows:,} rows typed, resident {resident_gib():.2f} GiB, "
                  f"peak {peak:.2f} GiB (scratch cap {args.scratch_limit})", flush=True)


if __name__ == "__main__":
    main()
