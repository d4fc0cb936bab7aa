"""Ingest: every configured source from the inbox into the staged warehouse.

Plain functions (no Prefect here; ``pipelines.flows`` wraps them). Order per source: read
(file-level checks) -> type and pseudonymise -> validate (row quarantine) -> write. All files
of all sources are read and checked before the first write, so a file-level problem stops the
run with the warehouse untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from ews.config import MunicipalityConfig, SourceConfig
from ews.terms import Term, school_year_label, school_year_of
from ews.warehouse import WriteSession, replace_rows
from pipelines.readers import RawExport, read_export
from validation.contracts import school_year_of_file
from validation.errors import FileLevelError
from validation.gate import ValidationContext, validate_source
from validation.parsing import QUARANTINE_COLUMNS, ParsedSource, parse_source_frame

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
    """

    files: pd.DataFrame
    quarantine: pd.DataFrame
    validation: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


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


def _clean_frame(kind: str, typed: pd.DataFrame) -> tuple[str, pd.DataFrame, dict | None]:
    """Canonical typed rows -> (clean table, rows, slice to replace)."""
    if kind == "pupils":
        # the school year of the register export the row came from (a pupil enrolled before
        # August is listed again in each year's register)
        years = typed["source_file"].map(lambda name: school_year_label(school_year_of_file(name)))
        frame = typed.assign(school_year=years)[[
            "pupil_id", "school_year", "school_code", "grade", "class_label", "sex", "origin",
            "birth_year", "enrolled_from", "enrolled_to", *LINEAGE]]
        return "clean_pupils", frame, None
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
        return "clean_outcomes", frame, {"outcome_definition": OUTCOME_OF_KIND[kind]}
    table = TABLE_OF_KIND[kind]
    return table, typed[[*CLEAN_COLUMNS[table], *LINEAGE]], None


def _identity_frame(typed: pd.DataFrame, identity: pd.DataFrame) -> pd.DataFrame:
    """Latest name and class per pupil, for the identity store only."""
    joined = pd.concat([identity.drop(columns="pupil_id"), typed], axis=1)
    latest = joined.sort_values(["pupil_id", "enrolled_from"]).drop_duplicates("pupil_id", keep="last")
    return latest[["pupil_id", "first_name", "last_name", "school_code", "class_label"]].assign(
        school_year=[school_year_label(school_year_of(d)) for d in latest["enrolled_from"]]
    ).reset_index(drop=True)


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
) -> IngestResult:
    """Read, type, validate and load every source; write only when all passed the file checks.

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

    Returns:
        Counts per file, the quarantined rows and the validation results.

    Raises:
        FileLevelError: On the first whole-file problem, before anything is written.
    """
    staged: list[tuple[str, pd.DataFrame, dict | None]] = []
    file_rows, quarantines, results, warnings = [], [], [], []
    identity = pd.DataFrame()
    pupil_grades = pd.DataFrame(columns=["pupil_id", "school_year", "grade", "birth_year"])
    known_pupils = pd.Index([])
    for entry in sources:
        source = entry.source
        exports: list[RawExport] = []
        for path in entry.files:
            if progress:
                progress(f"reading {path.name}")
            exports.append(read_export(path, source))
        for export in exports:
            if export.extra_columns:
                warnings.append(f"{export.path.name}: unknown column(s) {export.extra_columns} were "
                                "not read; add them to the config's ignore_columns or columns")
        raw = pd.concat([e.frame for e in exports], ignore_index=True) if exports else None
        if raw is None:
            continue
        parsed = parse_source_frame(raw, source, key)
        context = ValidationContext(
            term=term, today=today, known_pupils=known_pupils, pupil_grades=pupil_grades,
            previous_rows=previous_rows, calendar=config.terms,
            school_codes=frozenset(s.code for s in config.schools),
        )
        outcome = validate_source(parsed.typed, source, context)
        valid = outcome.valid
        quarantine = pd.concat([parsed.quarantine, outcome.quarantine[QUARANTINE_COLUMNS]],
                               ignore_index=True)
        if source.kind == "pupils":
            # every pupil with a valid CPR in the register, also when their own row was
            # quarantined: their other rows are not "unknown pupil", only their register row is bad
            known_pupils = parsed.pupil_ids
            pupil_grades = valid[["pupil_id", "school_code", "enrolled_from", "grade", "birth_year"]]
            identity = _identity_lookup(parsed, valid)
        staged.append(_clean_frame(source.kind, valid))
        quarantines.append(quarantine.assign(source=source.name))
        results.append(outcome.results.assign(source=source.name))
        loaded = valid.groupby("source_file").size()
        held = quarantine.groupby("source_file").size() if len(quarantine) else pd.Series(dtype=int)
        for export in exports:
            name = export.path.name
            file_rows.append({
                "source": source.name, "file": name, "file_sha256": export.sha256,
                "rows_read": export.rows_read, "rows_loaded": int(loaded.get(name, 0)),
                "rows_quarantined": int(held.get(name, 0)),
                "extra_columns": ", ".join(export.extra_columns),
            })
    files = pd.DataFrame(file_rows)
    quarantine_all = (pd.concat(quarantines, ignore_index=True) if quarantines
                      else pd.DataFrame(columns=[*QUARANTINE_COLUMNS, "source"]))
    validation = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    _write(session, staged, identity, quarantine_all, validation, term, run_id)
    return IngestResult(files=files, quarantine=quarantine_all, validation=validation,
                        warnings=warnings)


def _identity_lookup(parsed: ParsedSource, valid: pd.DataFrame) -> pd.DataFrame:
    """Names of the valid pupil rows, joined back by file and line."""
    names = pd.concat([parsed.typed[["pupil_id", "source_file", "source_line"]],
                       parsed.identity[["first_name", "last_name"]]], axis=1)
    joined = valid.merge(names, on=["pupil_id", "source_file", "source_line"], how="left")
    return _identity_frame(joined.drop(columns=["first_name", "last_name"]),
                           joined[["pupil_id", "first_name", "last_name"]])


def _write(
    session: WriteSession,
    staged: list[tuple[str, pd.DataFrame, dict | None]],
    identity: pd.DataFrame,
    quarantine: pd.DataFrame,
    validation: pd.DataFrame,
    term: Term,
    run_id: str,
) -> None:
    con = session.con
    for table, frame, where in staged:
        # None rebuilds the table in full from the files present: same files, same table
        replace_rows(con, table, frame, where)
    replace_rows(con, "quarantine_rows",
                 quarantine.assign(run_id=run_id, term=str(term))[
                     ["run_id", "term", "source", *QUARANTINE_COLUMNS]],
                 {"term": str(term)})
    if len(validation):
        replace_rows(con, "validation_results",
                     validation.assign(run_id=run_id, term=str(term)), {"term": str(term)})
    if len(identity):
        replace_rows(session.identity, "identity_pupils", identity)
