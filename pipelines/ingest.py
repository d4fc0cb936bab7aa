"""Ingest: every configured source from the inbox into the staged warehouse, incrementally.

Plain functions (no Prefect here; ``pipelines.flows`` wraps them). A file is read only when
its bytes, its source's config or the ingest code changed since the run that loaded it (the
warehouse's ``raw_*`` tables remember each loaded file's SHA-256, typed rows, typing
quarantine and check counts); a removed file's rows go. For the files it reads, one pass
per source, in chunks so that memory does not grow with the exports: read (file-level checks)
-> type and pseudonymise -> the checks of one file (Great Expectations) -> store; then the
volume (a volume stop is reported before a stop of the checks of one file).
Then the checks that span files (duplicate keys, unknown pupils) run in SQL over every loaded
row of the source, and the ``clean_*`` tables are rebuilt from the rows that passed. The head
of every file to read is checked before any file is read in full, and everything is written
to the run's staged copy of the warehouse, so a file-level problem stops the run with the
live warehouse untouched.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ews.config import MunicipalityConfig, SourceConfig
from ews.pseudonym import hex_as_letters
from ews.schema import SOURCE_KINDS
from ews.terms import Term, parse_school_year, school_year_label, school_year_of
from ews.warehouse import IngestStore, RowsWriter, WriteSession, replace_rows
from pipelines.readers import FILE_COLUMN, LINE_COLUMN, ExportStream, file_sha256
from validation.contracts import EVENT_DATES, LAST_UPV_YEAR, key_hashes, row_checks, school_year_of_file
from validation.engine import VerdictCache
from validation.errors import FileLevelError
from validation.gate import (
    CROSS_FILE_CHECKS,
    RESULT_COLUMNS,
    ValidationContext,
    check_across_files,
    check_rows,
    check_structure,
    check_volume,
    combine_results,
    results_by_file,
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
#: Rows read, typed and checked at a time (``EWS_INGEST_CHUNK_ROWS``): at most two chunks are held
#: at once (one being written while the next is typed and checked).
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
        seconds: Wall time by step (``read_and_type``, ``duplicates`` (the checks across
            files), ``contracts``, ``write``), summed over sources.
        files_read: Names of the files this run read (new or changed since they were loaded);
            the others were kept from an earlier run.
    """

    files: pd.DataFrame
    quarantine: pd.DataFrame
    validation: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files_read: list[str] = field(default_factory=list)


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




#: Source settings that decide whether a run may go on, never what a file's rows become: a
#: change to them does not make the source's files be read again.
GATE_FIELDS = ("quarantine_share_max", "accept_quarantine", "optional_school_years", "last_school_year",
               "first_term")
#: Source kinds whose file of a school year comes only in its spring term (H2) unless the
#: config says otherwise: the national tests are held in the spring.
SPRING_KINDS = ("tests",)


def check_school_years(config: MunicipalityConfig, sources: list[SourceFiles], term: Term) -> list[str]:
    """Stop the run when a source lacks its file for a school year of the run's window.

    A source's window runs from its earliest file's school year (not before the config's
    ``terms.first_school_year``) to the run's school year (not after the source's
    ``last_school_year``; for the UPV, not after 2023/24, its last year by law; for a source
    whose ``first_term`` is H2, such as the national tests, the run's school year only from its
    spring term). Every school
    year in it must have its file (the school year is read from the file name,
    ``fravaer_2025-26.csv``), unless the source lists the year in ``optional_school_years``:
    then the run goes on with a warning. A source without files, or
    whose files carry no school year in their names, is not checked here (a missing source is
    ``source_missing``).

    Args:
        config: The municipality config.
        sources: Sources and their files (from :func:`discover_sources`).
        term: The run's term.

    Returns:
        Warnings for missing files of optional school years.

    Raises:
        FileLevelError: ``source_year_missing``, naming the source, the missing school years
            and the file names expected.
    """
    first_window = parse_school_year(config.terms.first_school_year)
    warnings: list[str] = []
    for entry in sources:
        source = entry.source
        years = {year for year in (school_year_of_file(path.name) for path in entry.files)
                 if year is not None}
        if not years:
            continue
        first_term = source.first_term or ("H2" if source.kind in SPRING_KINDS else "H1")
        last = term.start_year if term.half >= int(first_term[1]) else term.start_year - 1
        if source.last_school_year is not None:
            last = min(last, parse_school_year(source.last_school_year))
        elif source.kind == "upv":
            last = min(last, LAST_UPV_YEAR)  # the law ended the UPV, whatever the config says
        first = max(min(years), first_window)
        missing = [year for year in range(first, last + 1) if year not in years]
        optional = {parse_school_year(text) for text in source.optional_school_years}
        required = [year for year in missing if year not in optional]
        if required:
            labels = ", ".join(school_year_label(year) for year in required)
            names = ", ".join(_expected_name(source.pattern, year) for year in required)
            raise FileLevelError(
                f"{names}: no such file: source '{source.name}' has no file for school year(s) "
                f"{labels}, although it has files from {school_year_label(min(years))} on and the run is "
                f"for {term.school_year}. Without it that source's data would be absent for every "
                "pupil and read as 'nothing happened'. Add the export, or, if the source really has "
                f"nothing for that year, list it in 'optional_school_years' of source '{source.name}'.",
                file=names.split(", ")[0], check="source_year_missing")
        warnings.extend(
            f"source '{source.name}': no file for school year {school_year_label(year)} (optional "
            "in the config): its features are empty for that year" for year in missing)
    return warnings


def _expected_name(pattern: str, year: int) -> str:
    """The file name a source's pattern gives for a school year (``fravaer_*.csv`` -> ``fravaer_2025-26.csv``)."""
    return pattern.replace("*", f"{year}-{(year + 1) % 100:02d}", 1)


#: Modules whose code decides what a file's rows become and how they are checked: when any
#: of them (or an ``ews/ingest_*.sql`` file) changes, every file is read again.
INGEST_MODULES = ("ews.schema", "ews.pseudonym", "ews.terms", "ews.warehouse", "pipelines.readers",
                  "pipelines.ingest", "validation.parsing", "validation.contracts",
                  "validation.gate", "validation.engine")


@functools.cache
def ingest_code_version() -> str:
    """A hash of the source of the modules and SQL files that read, type and check rows."""
    digest = hashlib.sha256()
    for name in INGEST_MODULES:
        module = importlib.import_module(name)
        digest.update(Path(str(module.__file__)).read_bytes())
    folder = Path(str(importlib.import_module("ews").__file__)).parent
    for path in sorted(folder.glob("ingest_*.sql")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def source_fingerprint(source: SourceConfig, config: MunicipalityConfig, key: bytes) -> str:
    """What, besides a file's bytes, decides its typed rows and the checks of one file.

    The source's config, the municipality's school codes and term calendar, the ingest code
    and the pseudonymisation key (through a keyed hash of a constant: the key itself is never
    stored). A file loaded under another fingerprint is read again.

    Args:
        source: The source's config.
        config: The municipality config.
        key: The pseudonymisation key.

    Returns:
        Sixteen hex digits.
    """
    document = {
        # what the steward accepts or expects of a source's files does not change their rows
        "source": source.model_dump(mode="json", exclude=set(GATE_FIELDS)),
        "schools": sorted(s.code for s in config.schools),
        "terms": config.terms.model_dump(mode="json"),
        "code": ingest_code_version(),
        "key": hmac.new(key, b"ews-ingest-fingerprint", hashlib.sha256).hexdigest()[:16],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class _SourcePlan:
    """Which files of a source are read, kept from an earlier run, or gone."""

    source: SourceConfig
    files: list[Path]
    to_read: list[Path]
    kept: list[str]
    removed: list[str]
    stored: pd.DataFrame


def _plan_source(store: IngestStore, entry: SourceFiles, fingerprint: str, hashes: dict[Path, str],
                 today: date) -> _SourcePlan:
    """Compare a source's files with what earlier runs loaded.

    A loaded file is kept when its SHA-256 and fingerprint are the same and the run's day
    cannot change a check of it (no event date of the file lies after the earlier or this
    run's day, unless the day is the same).
    """
    stored = store.loaded_files(entry.source.name)
    known = {row["source_file"]: row for row in stored.to_dict("records")}
    to_read, kept = [], []
    for path in entry.files:
        row = known.get(path.name)
        if row is None or row["file_sha256"] != hashes[path] or row["fingerprint"] != fingerprint:
            to_read.append(path)
            continue
        checked = pd.Timestamp(row["checked_today"]).date()
        latest = row["max_event_date"]
        same_verdict = checked == today or pd.isna(latest) or pd.Timestamp(latest).date() <= min(checked, today)
        (kept if same_verdict else to_read).append(path.name if same_verdict else path)
    current = {path.name for path in entry.files}
    removed = [name for name in known if name not in current]
    return _SourcePlan(source=entry.source, files=list(entry.files), to_read=to_read, kept=kept,
                       removed=removed, stored=stored)


def _clean_school_year(kind: str, typed: pd.DataFrame) -> pd.Series | None:
    """The school year a row of the clean table carries (pupils, outcomes), else None."""
    if kind == "pupils":
        # the school year of the register export the row came from (a pupil enrolled before
        # August is listed again in each year's register)
        names = typed["source_file"]
        labels = {name: school_year_label(school_year_of_file(name)) for name in names.unique()}
        return names.map(labels)
    if kind == "upv":
        dates = pd.to_datetime(typed["assessed_date"])
        years = dates.dt.year.where(dates.dt.month >= 8, dates.dt.year - 1)
        return years.map(lambda y: school_year_label(int(y)) if pd.notna(y) else None).astype(object)
    if kind == "designation":
        return typed["school_year"].astype(object)
    return None


def _clean_select(kind: str) -> str:
    """How a kind's rows of ``raw_rows`` become rows of its clean table (a SQL select list).

    Built from the column lists of this module, never from input data.
    """
    if kind == "pupils":
        columns = ["pupil_id", "_clean_school_year AS school_year", "school_code", "grade",
                   "class_label", "sex", "origin", "birth_year", "enrolled_from", "enrolled_to"]
    elif kind in OUTCOME_OF_KIND:
        positive = "ikke_parat" if kind == "upv" else "ja"
        columns = ["pupil_id", f"'{OUTCOME_OF_KIND[kind]}' AS outcome_definition",
                   "_clean_school_year AS school_year", "assessed_date",
                   f"coalesce(outcome = '{positive}', false) AS outcome"]
    else:
        columns = list(CLEAN_COLUMNS[TABLE_OF_KIND[kind]])
    return ", ".join([*columns, *LINEAGE])


def _empty_typed(source: SourceConfig, key: bytes) -> pd.DataFrame:
    """A source kind's typed frame with no rows (its columns and dtypes)."""
    raw = pd.DataFrame({name: pd.Series([], dtype=object) for name in source.columns})
    raw[FILE_COLUMN] = pd.Series([], dtype=object)
    raw[LINE_COLUMN] = pd.Series([], dtype="int64")
    return parse_source_frame(raw, source, key).typed


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
    file_hashes: dict[Path, str] | None = None,
) -> IngestResult:
    """Bring the staged warehouse up to date with the exports, reading only what changed.

    A file whose bytes were loaded by an earlier successful run under the same source config
    and ingest code is not read again: its typed rows stay. A changed file replaces exactly
    its own rows and a removed file's rows go. The head of every file to read (encoding,
    separator, header, mapped columns) is checked before any file is read in full. Then,
    source by source: the files to read are read, typed, checked by the checks of one file
    (Great Expectations, on the new rows only) and stored in one pass, ``chunk_rows`` rows at
    a time; the volume (every current file) is compared with the last run's (a volume stop
    is reported before a stop of the checks of one file); the checks across files (duplicate
    keys, unknown pupils) run in SQL over every loaded row of the source.
    Finally the ``clean_*`` slices whose sources changed are rebuilt from the rows that
    passed. Writes go to the staged copy only: a file-level problem anywhere leaves the live
    warehouse untouched.

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
        file_hashes: SHA-256 of the files, when the caller has them (the run's data snapshot);
            files not in it are hashed here.

    Returns:
        Counts per file (every current file, read or kept), the quarantined rows and the
        validation results of every current file.

    Raises:
        FileLevelError: On the first whole-file problem; the staged copy is then discarded.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    hashes = {path: (file_hashes or {}).get(path) or file_sha256(path)
              for entry in sources for path in entry.files}
    year_warnings = check_school_years(config, sources, term)
    store = IngestStore(session)
    try:
        plans = [_plan_source(store, entry, source_fingerprint(entry.source, config, key), hashes, today)
                 for entry in sources]
        # the head of every file to read, before any is read in full
        streams = {plan.source.name: [ExportStream(path, plan.source) for path in plan.to_read]
                   for plan in plans}
        state = _IngestState(file_hashes=hashes, warnings=list(year_warnings),
                             share_of=config.quarantine_share_of)
        pupils_sources = [plan.source.name for plan in plans if plan.source.kind == "pupils"]
        for plan in plans:
            if plan.source.kind != "pupils" and state.known_fingerprint is None:
                state.known_fingerprint = store.build_known(pupils_sources)
            context = ValidationContext(
                term=term, today=today, previous_rows=previous_rows, calendar=config.terms,
                school_codes=frozenset(s.code for s in config.schools))
            _ingest_source(store, plan, streams[plan.source.name], context, key,
                           source_fingerprint(plan.source, config, key), chunk_rows, state, progress)
        clock = time.perf_counter()
        _rebuild_clean(store, plans, state)
        identity = pd.DataFrame()
        if set(state.refresh) & set(pupils_sources):
            identity = store.latest_identity(pupils_sources)
            identity["school_year"] = [school_year_label(school_year_of(d))
                                       for d in identity.pop("enrolled_from")]
        _lap(state, "write", clock)
    finally:
        store.close()
    files = pd.DataFrame(state.file_rows, columns=[
        "source", "file", "file_sha256", "rows_read", "rows_loaded", "rows_quarantined",
        "extra_columns"])
    quarantine_all = (pd.concat(state.quarantines, ignore_index=True) if state.quarantines
                      else pd.DataFrame(columns=[*QUARANTINE_COLUMNS, "source"]))
    validation = pd.concat(state.results, ignore_index=True) if state.results else pd.DataFrame()
    _write_bookkeeping(session, identity, quarantine_all, validation, term, run_id)
    return IngestResult(files=files, quarantine=quarantine_all, validation=validation,
                        warnings=state.warnings, files_read=state.files_read,
                        seconds={k: round(v, 1) for k, v in state.seconds.items()})


@dataclass
class _IngestState:
    """What the ingest gathers across sources."""

    file_rows: list[dict] = field(default_factory=list)
    quarantines: list[pd.DataFrame] = field(default_factory=list)
    results: list[pd.DataFrame] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    file_hashes: dict[Path, str] = field(default_factory=dict)
    #: Sources whose rows or verdicts changed in this run -> the files whose clean rows are
    #: rebuilt (read, removed, or with other cross-file verdicts than before); None: every file.
    refresh: dict[str, set[str] | None] = field(default_factory=dict)
    files_read: list[str] = field(default_factory=list)
    known_fingerprint: str | None = None
    #: The largest share of a file's rows a source may quarantine (``MunicipalityConfig``).
    share_of: Callable[[SourceConfig], float] = field(default=lambda _source: 1.0)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("read_and_type", "duplicates", "contracts", "write"), 0.0))


@dataclass
class _Loaded:
    """The files a source reads in this run: typed, checked one by one and stored."""

    rows: int = 0
    #: File name -> typed rows.
    typed_rows: dict[str, int] = field(default_factory=dict)
    streams: dict[str, ExportStream] = field(default_factory=dict)
    max_event: dict[str, object] = field(default_factory=dict)
    #: Per chunk: the results of the checks of one file, split by file.
    file_results: list[pd.DataFrame] = field(default_factory=list)
    #: A check of one file that stops the run, held until the volume has been checked, with
    #: the chunk it stopped on and the typed rows of the source up to and including it.
    stop: FileLevelError | None = None
    stop_chunk: pd.DataFrame | None = None
    rows_at_stop: int = 0

    def final_stop(self, source: SourceConfig, context: ValidationContext) -> FileLevelError | None:
        """The held stop, its message saying whether typed rows of the source followed it.

        The stop was found not knowing what followed; when rows did, the chunk is checked
        again to say so ("checked so far", "the rest of the source was not checked").
        """
        if self.stop is None or self.rows == self.rows_at_stop or self.stop_chunk is None:
            return self.stop
        try:
            check_rows(self.stop_chunk, source, context, skip=CROSS_FILE_CHECKS, more_rows=True)
        except FileLevelError as stop:
            return stop
        return self.stop


def _load_files(store: IngestStore, source: SourceConfig, streams: list[ExportStream],
                context: ValidationContext, key: bytes, chunk_rows: int, state: _IngestState,
                progress: Callable[[str], None] | None) -> _Loaded:
    """Read, type, check and store the files to read, chunk by chunk, in one pass.

    Each chunk is typed (its typing quarantine, pupil ids (pupils) and names (to the identity
    store) are stored as they come), then checked by the checks of one file (Great
    Expectations, on the distinct value combinations not judged in an earlier chunk), and its
    rows go to ``raw_rows`` with their verdicts and key hashes. The checks across files and
    the volume need every row of the source, so they come after; a check of one file that
    stops the run is held (:attr:`_Loaded.stop`) and the remaining rows are only read and
    typed, so that the volume check can still come first, as a stop of its own. A chunk's
    rows are written on a thread of their own (:class:`ews.warehouse.RowsWriter`) while the
    next chunk is typed and checked.
    """
    loaded = _Loaded()
    with store.rows_writer() as writer:
        _load_streams(store, writer, source, streams, context, key, chunk_rows, state, progress, loaded)
        clock = time.perf_counter()
    _lap(state, "write", clock)  # waiting for the last chunk's write
    return loaded


def _load_streams(store: IngestStore, writer: RowsWriter, source: SourceConfig, streams: list[ExportStream],
                  context: ValidationContext, key: bytes, chunk_rows: int, state: _IngestState,
                  progress: Callable[[str], None] | None, loaded: _Loaded) -> None:
    """The pass of :func:`_load_files` over its files; rows go to ``raw_rows`` through ``writer``."""
    kind = source.kind
    dates = [c.name for c in SOURCE_KINDS[kind] if c.type == "date"]
    events = EVENT_DATES.get(kind, ())
    verdicts = VerdictCache()
    pseudonyms: dict[str, tuple[str | None, float]] = {}  # this source's CPR values, this run
    clock = time.perf_counter()
    for stream in streams:
        name = stream.path.name
        state.files_read.append(name)
        loaded.streams[name] = stream
        if progress:
            progress(f"reading {name}")
        first = loaded.rows
        ids: list[np.ndarray] = []
        latest = None
        for raw in stream.chunks(chunk_rows):
            parsed = parse_source_frame(raw, source, key, pseudonyms)
            check_structure(parsed.typed, source)
            if len(parsed.quarantine):
                store.add_quarantine(parsed.quarantine.assign(source=source.name, step="typing"))
            if kind == "pupils":
                ids.append(parsed.pupil_ids.to_numpy(dtype=object))
                store.add_names(parsed.identity[["first_name", "last_name"]].assign(
                    source=source.name, source_file=parsed.typed["source_file"].to_numpy(),
                    source_line=parsed.typed["source_line"].to_numpy()))
            typed = parsed.typed.reset_index(drop=True)
            for column in events:
                values = typed[column].dropna()
                if len(values):
                    top = max(values)
                    latest = top if latest is None else max(latest, top)
            for column in dates:
                # datetime64: faster to check and to store than date objects
                typed[column] = pd.to_datetime(typed[column]).astype("datetime64[s]")
            loaded.rows += len(typed)
            if progress:
                progress(f"reading {name}: {stream.rows_read:,} rows")
            clock = _lap(state, "read_and_type", clock)
            if loaded.stop is not None or not len(typed):
                continue
            try:
                outcome = check_rows(typed, source, context, skip=CROSS_FILE_CHECKS, verdicts=verdicts)
            except FileLevelError as stop:
                loaded.stop, loaded.stop_chunk, loaded.rows_at_stop = stop, typed, loaded.rows
                clock = _lap(state, "contracts", clock)
                continue
            loaded.file_results.append(results_by_file(outcome, typed, source, context))
            clock = _lap(state, "contracts", clock)
            reason = np.full(len(typed), None, dtype=object)
            column_name = np.full(len(typed), None, dtype=object)
            bad = ~outcome.kept
            reason[bad] = outcome.quarantine["reason"].to_numpy()
            column_name[bad] = outcome.quarantine["column_name"].to_numpy()
            stored = typed.assign(source=source.name, _local_reason=reason, _local_column=column_name)
            school_year = _clean_school_year(kind, typed)
            if school_year is not None:
                stored["_clean_school_year"] = school_year.to_numpy()
            keys = key_hashes(typed, kind)
            if keys is not None:
                stored["_key_a"], stored["_key_b"] = keys["_key_a"].to_numpy(), keys["_key_b"].to_numpy()
            writer.add(stored)  # waits for the previous chunk's write, then writes this one meanwhile
            clock = _lap(state, "write", clock)
        loaded.typed_rows[name] = loaded.rows - first
        loaded.max_event[name] = latest
        if ids:
            unique = pd.unique(np.concatenate(ids))
            store.add_pupil_ids(pd.DataFrame({"source": source.name, "source_file": name,
                                              "pupil_id": unique}).sort_values("pupil_id"))
            clock = _lap(state, "write", clock)


def _ingest_source(
    store: IngestStore,
    plan: _SourcePlan,
    streams: list[ExportStream],
    context: ValidationContext,
    key: bytes,
    fingerprint: str,
    chunk_rows: int,
    state: _IngestState,
    progress: Callable[[str], None] | None,
) -> None:
    """One source: forget changed and removed files, load the new ones, check across files."""
    source, kind = plan.source, plan.source.kind
    clock = time.perf_counter()
    changed = [*plan.removed, *(p.name for p in plan.to_read)]  # the files read again or gone
    store.forget_files(source.name, changed)
    if not plan.files:
        # no export of this (optional) source: nothing of it stays
        store.forget_outcome(source.name)
        store.forget_duplicates(source.name)
        if plan.removed:
            state.refresh[source.name] = None
        return
    if progress and plan.kept:
        progress(f"source {source.name}: {len(plan.kept)} file(s) unchanged since they were loaded")
    loaded = _load_files(store, source, streams, context, key, chunk_rows, state, progress)
    clock = time.perf_counter()
    typed_rows = {row["source_file"]: int(row["rows_typed"]) for row in plan.stored.to_dict("records")
                  if row["source_file"] in plan.kept}
    typed_rows.update(loaded.typed_rows)
    total = sum(typed_rows.values())
    # the volume before any check of the rows: a file of the wrong size is the first thing to say
    volume = check_volume({source.name: total, **typed_rows}, source, context.previous_rows)
    stop = loaded.final_stop(source, context)
    if stop is not None:
        raise stop
    empty = _empty_typed(source, key)
    structure = check_structure(empty, source)
    positions = {c.name: i for i, c in enumerate(row_checks(kind, context.today, context.school_codes))}
    if loaded.file_results:
        by_file = pd.concat(loaded.file_results, ignore_index=True)
        for name, group in by_file.groupby("source_file", sort=True):
            checks = combine_results([group[RESULT_COLUMNS]])
            store.add_checks(checks.assign(source_file=name, position=checks["expectation"].map(
                positions).astype("int32")))
    for path in plan.to_read:
        name = path.name
        stream = loaded.streams[name]
        latest = loaded.max_event[name]
        store.add_file({
            "source": source.name, "source_file": name, "file_sha256": state.file_hashes[path],
            "fingerprint": fingerprint, "checked_today": context.today,
            "max_event_date": pd.Timestamp(latest).date() if latest is not None else None,
            "rows_read": stream.rows_read, "rows_typed": loaded.typed_rows[name],
            "extra_columns": ", ".join(stream.extra_columns)})
    clock = _lap(state, "write", clock)
    # the checks across files, in SQL over every loaded row of the source
    known = state.known_fingerprint if kind != "pupils" else "-"
    if plan.to_read or plan.removed or store.known_fingerprint(source.name) != known:
        marks = store.outcome_marks(source.name)
        store.forget_outcome(source.name)
        if total:
            if progress:
                progress(f"checking source {source.name} across files ({total:,} rows)")
            columns = list(empty.columns)
            outcome = check_across_files(
                source, context, total, store.local_failures(source.name),
                store.unknown_pupil_rows(source.name) if kind != "pupils" else
                pd.DataFrame(columns=["source_file", "source_line"]),
                # with files kept, only the keys of the changed files are compared again
                store.duplicate_rows(source.name, changed if plan.kept else None),
                lambda where: store.typed_rows(source.name, where, columns))
            store.add_quarantine(outcome.quarantine.assign(source=source.name, step="contracts"))
            cross = pd.DataFrame(outcome.results, columns=RESULT_COLUMNS)
            store.add_checks(cross.assign(source_file=None, position=cross["expectation"].map(
                positions).astype("int32")))
        else:
            store.forget_duplicates(source.name)
        store.set_known_fingerprint(source.name, known)
        # the clean rows to rebuild: the files read or removed, and those whose verdicts changed
        after = store.outcome_marks(source.name)
        state.refresh[source.name] = {*changed, *(name for name in {*marks, *after}
                                                  if marks.get(name) != after.get(name))}
        clock = _lap(state, "duplicates", clock)
    _report_source(store, plan, structure, volume, empty, context, state)


def _report_source(store: IngestStore, plan: _SourcePlan, structure: list[dict], volume: list[dict],
                   empty: pd.DataFrame, context: ValidationContext, state: _IngestState) -> None:
    """The source's results, quarantine and per-file counts, over every current file."""
    source = plan.source
    file_checks = store.file_checks(source.name)
    parts = [group[RESULT_COLUMNS] for _name, group in file_checks.groupby("source_file", sort=True)]
    parts.append(store.source_checks(source.name)[RESULT_COLUMNS])
    rows = combine_results(parts)
    if not len(rows):
        # no file had a typed row (empty exports accepted by the config): check an empty frame
        rows = check_rows(empty, source, context).results
    results = [pd.DataFrame(structure, columns=RESULT_COLUMNS),
               pd.DataFrame(volume, columns=RESULT_COLUMNS), rows]
    state.results.append(pd.concat([r for r in results if len(r)], ignore_index=True))
    quarantine = store.quarantine(source.name)
    quarantine["source_line"] = quarantine["source_line"].astype("int64")
    state.quarantines.append(quarantine.drop(columns="step").assign(source=source.name))
    held = quarantine.groupby(["source_file", "step"]).size()
    loaded_files = store.loaded_files(source.name).set_index("source_file")
    for path in plan.files:
        name = path.name
        record = loaded_files.loc[name]
        extra = str(record["extra_columns"])
        if extra:
            state.warnings.append(f"{name}: unknown column(s) {extra.split(', ')} were not read; "
                                  "add them to the config's ignore_columns or columns")
        typing, contracts = (int(held.get((name, step), 0)) for step in ("typing", "contracts"))
        _check_quarantine_share(source, name, str(record["file_sha256"]), int(record["rows_read"]),
                                typing + contracts, quarantine, state.share_of(source))
        state.file_rows.append({
            "source": source.name, "file": name, "file_sha256": str(record["file_sha256"]),
            "rows_read": int(record["rows_read"]), "rows_quarantined": typing + contracts,
            "rows_loaded": int(record["rows_typed"]) - contracts,
            "extra_columns": extra,
        })


def content_mark(sha256: str) -> str:
    """A file's content mark for ``accept_quarantine``: 12 hex digits of its SHA-256 as letters.

    Written with the letters a-p (0 -> a, ..., f -> p), as pseudonyms are, so that no mark can
    ever look like a CPR number and be masked in a message.

    Args:
        sha256: The file's SHA-256 in hex.

    Returns:
        Twelve letters.
    """
    return hex_as_letters(sha256[:12])


def _check_quarantine_share(source: SourceConfig, name: str, sha256: str, rows_read: int,
                            quarantined: int, quarantine: pd.DataFrame, share_max: float) -> None:
    """Stop the run when more than ``share_max`` of a file's rows would be quarantined.

    A file with most of its rows kept out (every row outside its school year, a column of
    another meaning) is a file-level problem that a count alone would hide: the source-year
    would vanish from the features. The steward may accept the file in the config
    (``accept_quarantine``: its name, or its name and its :func:`content_mark`).

    Raises:
        FileLevelError: ``quarantine_share``, naming the file, the share and the main reasons.
    """
    if not rows_read or quarantined / rows_read <= share_max:
        return
    mark = content_mark(sha256)
    if name in source.accept_quarantine or f"{name}@{mark}" in source.accept_quarantine:
        return
    # rows per reason code (a row failing one check on two columns counts once)
    reasons = pd.Series([code for text in quarantine.loc[quarantine["source_file"] == name, "reason"]
                         for code in dict.fromkeys(part.split(":", 1)[0].strip()
                                                   for part in str(text).split(" | "))],
                        dtype="object").value_counts()
    main = ", ".join(f"{code} ({count:,} rows)" for code, count in reasons.head(3).items())
    raise FileLevelError(
        f"{name}: {quarantined:,} of {rows_read:,} rows ({quarantined / rows_read:.0%}) would be "
        f"quarantined, more than the {share_max:.0%} allowed for source '{source.name}' "
        f"(quarantine_share_max); main reasons: {main}. Check the export (another school year's "
        "rows? a column of another meaning?) and export it again; or, if these rows really are "
        f"to be kept out, accept the file: add '{name}@{mark}' to 'accept_quarantine' of "
        f"source '{source.name}' in the config.",
        file=name, check="quarantine_share")


def _rebuild_clean(store: IngestStore, plans: list[_SourcePlan], state: _IngestState) -> None:
    """Rebuild the clean rows of every file whose rows or verdicts changed, from the rows that passed.

    Only the files of :attr:`_IngestState.refresh` are rebuilt, and every file whose clean rows
    are not as many as its passing rows (:meth:`IngestStore.clean_out_of_step`); a slice all of
    whose files changed is rebuilt whole. At national size a term's re-export changes a few
    files of 80: rebuilding every clean table took most of the term's ingest.
    """
    slices: dict[tuple, tuple[str, dict | None, str, list[str]]] = {}
    for plan in plans:
        kind = plan.source.kind
        table, where = _target(kind)
        slice_key = (table, tuple(sorted((where or {}).items())))
        entry = slices.setdefault(slice_key, (table, where, kind, []))
        entry[3].append(plan.source.name)
    current = {plan.source.name: {path.name for path in plan.files} for plan in plans}
    for table, where, kind, names in slices.values():
        wanted = [state.refresh[name] for name in names if name in state.refresh]
        if not wanted:
            continue
        files = None if any(w is None for w in wanted) else set().union(*wanted)
        if files is not None:
            files |= store.clean_out_of_step(table, names, where)
            if files >= set().union(*(current[name] for name in names)):
                files = None  # every file: the whole slice at once
        store.rebuild_clean(table, _clean_select(kind), names, where, files)


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
