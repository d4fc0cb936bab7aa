"""Ingest: every configured source from the inbox into the staged warehouse.

Plain functions (no Prefect here; ``pipelines.flows`` wraps them). Order per source: read
(file-level checks) -> type and pseudonymise -> validate (row quarantine) -> write, in chunks
so that memory does not grow with the exports. The head of every file is checked before any
file is read in full, and everything is written to the run's staged copy of the warehouse, so
a file-level problem stops the run with the live warehouse untouched.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ews.config import MunicipalityConfig, SourceConfig
from ews.schema import SOURCE_KINDS
from ews.terms import Term, school_year_label, school_year_of
from ews.warehouse import IngestScratch, WriteSession, append_rows, delete_rows, replace_rows
from pipelines.readers import ExportStream, file_sha256
from validation.contracts import key_hashes, school_year_of_file
from validation.errors import FileLevelError
from validation.gate import (
    RESULT_COLUMNS,
    ValidationContext,
    check_rows,
    check_structure,
    check_volume,
    combine_results,
)
from validation.parsing import QUARANTINE_COLUMNS, parse_source_frame

#: Sources are loaded in this order: pupils first, so references can be checked against them.
KIND_ORDER = ("pupils", "absence", "tests", "marks", "contacts", "support", "upv", "designation")
OUTCOME_OF_KIND = {"upv": "upv_ikke_uddannelsesparat", "designation": "maalrettet_indsats"}
CLEAN_COLUMNS = {
    "clean_absence": ["pupil_id", "school_code", "period_start", "period_end", "school_days",
                      "illness_days", "authorised_days", "unauthorised_days", "late_arrivals"],
    "clean_tests": ["pupil_id", "school_code", "grade", "subject", "test_date", "score", "scale"],
    "clean_marks": ["pupil_id", "school_code", "grade", "subject", "mark_kind", "mark_date", "mark"],
    "clean_contacts": ["pupil_id", "contact_date", "discipline", "contact_type"],
    "clean_support": ["pupil_id", "support_type", "start_date", "end_date"],
}
TABLE_OF_KIND = {"absence": "clean_absence", "tests": "clean_tests", "marks": "clean_marks",
                 "contacts": "clean_contacts", "support": "clean_support"}
LINEAGE = ["source_file", "source_line"]
#: Rows read, typed and checked at a time (``EWS_INGEST_CHUNK_ROWS``): about 0.7 GB at peak.
DEFAULT_CHUNK_ROWS = 500_000


@dataclass
class SourceFiles:
    """The files found for one source."""

    source: SourceConfig
    files: list[Path]


@dataclass
class IngestResult:
    """What an ingest read, loaded and kept out.

    Attributes:
        files: One row per file: ``source``, ``file``, ``file_sha256``, ``rows_read``,
            ``rows_loaded``, ``rows_quarantined``, ``extra_columns``.
        quarantine: Quarantined rows (with ``source``).
        validation: One row per expectation and source.
        warnings: Unknown columns and the like: reported, not fatal.
        seconds: Wall time by step (``read_and_type``, ``duplicates``, ``contracts``,
            ``write``), summed over sources.
    """

    files: pd.DataFrame
    quarantine: pd.DataFrame
    validation: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def discover_sources(config: MunicipalityConfig, inbox: Path) -> list[SourceFiles]:
    """Find each configured source's files in the inbox.

    Args:
        config: The municipality config.
        inbox: The export folder.

    Returns:
        Sources in load order with their files (sorted by name).

    Raises:
        FileLevelError: When the inbox is missing or a required source has no file.
    """
    if not inbox.is_dir():
        raise FileLevelError(
            f"{inbox}: the export folder does not exist. Put the term's exports there or set "
            "EWS_INBOX.", check="source_missing")
    found = []
    for source in sorted(config.sources, key=lambda s: KIND_ORDER.index(s.kind)):
        files = sorted(inbox.glob(source.pattern))
        if not files and source.required:
            raise FileLevelError(
                f"{inbox}: no file matching '{source.pattern}' for source '{source.name}'. The "
                "source is missing entirely: add its export, or mark it 'required: false'.",
                check="source_missing")
        found.append(SourceFiles(source=source, files=files))
    return found


def data_snapshot(sources: list[SourceFiles], hashes: dict[Path, str]) -> str:
    """A hash of the names and contents of every input file: the run's data snapshot."""
    digest = hashlib.sha256()
    for entry in sources:
        for path in entry.files:
            digest.update(f"{entry.source.name}\t{path.name}\t{hashes[path]}\n".encode())
    return digest.hexdigest()[:16]


def _clean_frame(kind: str, typed: pd.DataFrame) -> pd.DataFrame:
    """Canonical typed rows -> the rows of the kind's clean table (see :func:`_target`)."""
    if kind == "pupils":
        # the school year of the register export the row came from (a pupil enrolled before
        # August is listed again in each year's register)
        years = typed["source_file"].map(lambda name: school_year_label(school_year_of_file(name)))
        frame = typed.assign(school_year=years)[[
            "pupil_id", "school_year", "school_code", "grade", "class_label", "sex", "origin",
            "birth_year", "enrolled_from", "enrolled_to", *LINEAGE]]
        return frame
    if kind in OUTCOME_OF_KIND:
        positive = "ikke_parat" if kind == "upv" else "ja"
        school_year = (typed["school_year"] if kind == "designation" else pd.Series(
            [school_year_label(school_year_of(d)) for d in typed["assessed_date"]],
            index=typed.index, dtype="object"))
        frame = pd.DataFrame({
            "pupil_id": typed["pupil_id"],
            "outcome_definition": OUTCOME_OF_KIND[kind],
            "school_year": school_year,
            "assessed_date": typed["assessed_date"],
            "outcome": typed["outcome"] == positive,
            "source_file": typed["source_file"],
            "source_line": typed["source_line"],
        })
        return frame
    return typed[[*CLEAN_COLUMNS[TABLE_OF_KIND[kind]], *LINEAGE]]


def ingest_sources(
    session: WriteSession,
    config: MunicipalityConfig,
    sources: list[SourceFiles],
    *,
    key: bytes,
    term: Term,
    today: date,
    run_id: str,
    previous_rows: dict[str, int],
    progress: Callable[[str], None] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scratch_memory: str = "4GB",
    file_hashes: dict[Path, str] | None = None,
) -> IngestResult:
    """Read, type, validate and load every source into the staged warehouse, chunk by chunk.

    The head of every file (encoding, separator, header, mapped columns) is checked before
    any file is read in full. Then, source by source: the files are read and typed in chunks
    of ``chunk_rows`` rows into a scratch store; the volume is compared with the last run's;
    duplicate keys are found across all the source's files; and the rows go through the
    contracts chunk by chunk, valid rows to the clean table and the others to quarantine. So
    memory depends on the chunk size, not on the size of the exports. Writes go to the staged
    copy only: a file-level problem anywhere leaves the live warehouse untouched.

    Args:
        session: Connections to the staged warehouse and identity store.
        config: The municipality config.
        sources: Sources and their files (from :func:`discover_sources`).
        key: Pseudonymisation key.
        term: The run's term.
        today: Dates after this are in the future.
        run_id: The run's id (for quarantine and validation rows).
        previous_rows: Rows loaded per source by the previous successful run (volume check).
        progress: Called with a short English status per file.
        chunk_rows: Rows read, typed and checked at a time.
        scratch_memory: DuckDB's memory cap for the scratch store (it works from disk beyond).
        file_hashes: SHA-256 of the files, when the caller has them (the run's data snapshot);
            files not in it are hashed here.

    Returns:
        Counts per file, the quarantined rows and the validation results.

    Raises:
        FileLevelError: On the first whole-file problem; the staged copy is then discarded.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    streams = {entry.source.name: [ExportStream(path, entry.source) for path in entry.files]
               for entry in sources}
    state = _IngestState(file_hashes=dict(file_hashes or {}))
    with IngestScratch(session, memory_limit=scratch_memory) as scratch:
        for entry in sources:
            if not streams[entry.source.name]:
                continue
            context = ValidationContext(
                term=term, today=today, known_pupils=state.known_pupils,
                previous_rows=previous_rows, calendar=config.terms,
                school_codes=frozenset(s.code for s in config.schools))
            _ingest_source(session, scratch, entry.source, streams[entry.source.name], context,
                           key, chunk_rows, state, progress)
        identity = scratch.latest_identity()
    identity["school_year"] = [school_year_label(school_year_of(d)) for d in identity.pop("enrolled_from")]
    files = pd.DataFrame(state.file_rows)
    quarantine_all = (pd.concat(state.quarantines, ignore_index=True) if state.quarantines
                      else pd.DataFrame(columns=[*QUARANTINE_COLUMNS, "source"]))
    validation = pd.concat(state.results, ignore_index=True) if state.results else pd.DataFrame()
    _write_bookkeeping(session, identity, quarantine_all, validation, term, run_id)
    return IngestResult(files=files, quarantine=quarantine_all, validation=validation,
                        warnings=state.warnings,
                        seconds={k: round(v, 1) for k, v in state.seconds.items()})


@dataclass
class _IngestState:
    """What the ingest gathers across sources."""

    known_pupils: pd.Index = field(default_factory=lambda: pd.Index([], dtype="object"))
    file_rows: list[dict] = field(default_factory=list)
    quarantines: list[pd.DataFrame] = field(default_factory=list)
    results: list[pd.DataFrame] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cleared: set[tuple] = field(default_factory=set)
    #: Where the next source's rows start in the identity store's temporary tables: those
    #: tables hold the rows of every pupils source, so their ``_seq`` runs across sources.
    identity_seq: int = 0
    file_hashes: dict[Path, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("read_and_type", "duplicates", "contracts", "write"), 0.0))


@dataclass
class _Staged:
    """One source's rows as typed into the scratch store."""

    rows: int = 0
    per_file: dict[str, int] = field(default_factory=dict)
    structure: list[dict] = field(default_factory=list)
    quarantines: list[pd.DataFrame] = field(default_factory=list)
    empty: pd.DataFrame | None = None


def _stage_source(scratch: IngestScratch, source: SourceConfig, streams: list[ExportStream],
                  key: bytes, chunk_rows: int, state: _IngestState,
                  progress: Callable[[str], None] | None) -> _Staged:
    """Read and type a source's files chunk by chunk into the scratch store."""
    kind = source.kind
    dates = [c.name for c in SOURCE_KINDS[kind] if c.type == "date"]
    scratch.start_source()
    staged = _Staged()
    pupil_ids: list[pd.Index] = []
    for stream in streams:
        name = stream.path.name
        if stream.extra_columns:
            state.warnings.append(f"{name}: unknown column(s) {stream.extra_columns} were not read; "
                                  "add them to the config's ignore_columns or columns")
        if progress:
            progress(f"reading {name}")
        staged.per_file[name] = 0
        for raw in stream.chunks(chunk_rows):
            parsed = parse_source_frame(raw, source, key)
            checked = check_structure(parsed.typed, source)
            staged.structure = staged.structure or checked
            if len(parsed.quarantine):
                staged.quarantines.append(parsed.quarantine)
            if staged.empty is None:
                staged.empty = parsed.typed.iloc[:0]
            if kind == "pupils":
                pupil_ids.append(parsed.pupil_ids)
                first = state.identity_seq + staged.rows
                scratch.add_names(parsed.identity.assign(
                    _seq=np.arange(first, first + len(parsed.typed), dtype="int64")))
            scratch.add_typed(parsed.typed, key_hashes(parsed.typed, kind), staged.rows, dates)
            staged.rows += len(parsed.typed)
            staged.per_file[name] += len(parsed.typed)
            if progress:
                progress(f"reading {name}: {stream.rows_read:,} rows")
    if staged.empty is None:
        # no file had a row (empty exports accepted by the config): check an empty frame
        parsed = parse_source_frame(streams[0].empty_frame(), source, key)
        staged.empty = parsed.typed
        staged.structure = check_structure(parsed.typed, source)
    if kind == "pupils":
        # every pupil with a valid CPR in the register, also when their own row was
        # quarantined: their other rows are not "unknown pupil", only their register row is bad
        ids = (np.concatenate([i.to_numpy(dtype=object) for i in pupil_ids]) if pupil_ids
               else np.array([], dtype=object))
        state.known_pupils = state.known_pupils.append(pd.Index(ids, dtype="object")).unique()
    return staged


def _ingest_source(
    session: WriteSession,
    scratch: IngestScratch,
    source: SourceConfig,
    streams: list[ExportStream],
    context: ValidationContext,
    key: bytes,
    chunk_rows: int,
    state: _IngestState,
    progress: Callable[[str], None] | None,
) -> None:
    """One source: stage its typed rows, then check and load them chunk by chunk."""
    kind = source.kind
    clock = time.perf_counter()
    staged = _stage_source(scratch, source, streams, key, chunk_rows, state, progress)
    clock = _lap(state, "read_and_type", clock)
    volume = check_volume({source.name: staged.rows, **staged.per_file}, source, context.previous_rows)
    if progress:
        progress(f"checking source {source.name} ({staged.rows:,} rows)")
    scratch.find_duplicates()
    clock = _lap(state, "duplicates", clock)
    table, where = _target(kind)
    slice_key = (table, tuple(sorted((where or {}).items())))
    if slice_key not in state.cleared:
        # the slice is rebuilt in full from the files present: same files, same table
        delete_rows(session.con, table, where)
        state.cleared.add(slice_key)
    dtypes = staged.empty.dtypes
    quarantines = list(staged.quarantines)
    loaded: dict[str, int] = {}
    row_results: list[pd.DataFrame] = []
    for first in range(0, max(staged.rows, 1), chunk_rows):
        typed = (scratch.typed_chunk(first, chunk_rows, dtypes) if staged.rows
                 else staged.empty.assign(_seq=np.array([], dtype="int64")))
        seqs = typed.pop("_seq").to_numpy(dtype="int64")
        outcome = check_rows(typed, source, context, duplicates=scratch.duplicates_of(seqs),
                             more_rows=first + chunk_rows < staged.rows)
        clock = _lap(state, "contracts", clock)
        row_results.append(outcome.results)
        if len(outcome.quarantine):
            quarantines.append(outcome.quarantine)
        valid = outcome.valid
        if kind == "pupils" and len(valid):
            scratch.add_valid_pupils(valid.assign(_seq=state.identity_seq + seqs[outcome.kept]))
        for name, count in valid["source_file"].value_counts().items():
            loaded[name] = loaded.get(name, 0) + int(count)
        append_rows(session.con, table, _clean_frame(kind, valid))
        clock = _lap(state, "write", clock)
        if progress and staged.rows > chunk_rows:
            progress(f"checking source {source.name}: {min(first + chunk_rows, staged.rows):,} of "
                     f"{staged.rows:,} rows")
    if kind == "pupils":
        state.identity_seq += staged.rows
    results = [pd.DataFrame(staged.structure, columns=RESULT_COLUMNS),
               pd.DataFrame(volume, columns=RESULT_COLUMNS), combine_results(row_results)]
    state.results.append(pd.concat([r for r in results if len(r)], ignore_index=True))
    quarantine = (pd.concat(quarantines, ignore_index=True) if quarantines
                  else pd.DataFrame(columns=QUARANTINE_COLUMNS))
    state.quarantines.append(quarantine.assign(source=source.name))
    held = quarantine.groupby("source_file").size() if len(quarantine) else pd.Series(dtype=int)
    for stream in streams:
        name = stream.path.name
        state.file_rows.append({
            "source": source.name, "file": name,
            "file_sha256": state.file_hashes.get(stream.path) or file_sha256(stream.path),
            "rows_read": stream.rows_read, "rows_loaded": loaded.get(name, 0),
            "rows_quarantined": int(held.get(name, 0)),
            "extra_columns": ", ".join(stream.extra_columns),
        })


def _lap(state: _IngestState, step: str, since: float) -> float:
    now = time.perf_counter()
    state.seconds[step] += now - since
    return now


def _target(kind: str) -> tuple[str, dict | None]:
    """The clean table of a source kind and the slice of it the kind owns (None: all of it)."""
    if kind == "pupils":
        return "clean_pupils", None
    if kind in OUTCOME_OF_KIND:
        return "clean_outcomes", {"outcome_definition": OUTCOME_OF_KIND[kind]}
    return TABLE_OF_KIND[kind], None


def _write_bookkeeping(
    session: WriteSession,
    identity: pd.DataFrame,
    quarantine: pd.DataFrame,
    validation: pd.DataFrame,
    term: Term,
    run_id: str,
) -> None:
    con = session.con
    replace_rows(con, "quarantine_rows",
                 quarantine.assign(run_id=run_id, term=str(term))[
                     ["run_id", "term", "source", *QUARANTINE_COLUMNS]],
                 {"term": str(term)})
    if len(validation):
        replace_rows(con, "validation_results",
                     validation.assign(run_id=run_id, term=str(term)), {"term": str(term)})
    if len(identity):
        replace_rows(session.identity, "identity_pupils", identity)
