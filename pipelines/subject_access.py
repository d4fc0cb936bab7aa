"""Subject access (GDPR art. 15): everything held about one pupil, as one JSON and one Danish PDF.

Built from the published warehouse (every loaded row of every source, derived outcomes,
features, scores, explanations, flags, withdrawn flags), the identity store (the pupil's own
names and classes), the exclusion store and the review app's store (reviews, and who viewed
the pupil or a list the pupil stood on, from the audit log). Every query is filtered on the
one pseudonym, so no other pupil's rows can enter; reference values that describe other
pupils (network ranks are kept, other pupils' ids never) are not read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ews.schema import SOURCE_KINDS
from ews.warehouse import table_exists

#: Columns of ``raw_rows`` that are bookkeeping, not data about the pupil.
_RAW_BOOKKEEPING = ("_key_a", "_key_b", "_clean_school_year")


@dataclass(frozen=True)
class SubjectAccessFiles:
    """The two files written, and how many rows each section holds."""

    json_path: Path
    pdf_path: Path
    counts: dict[str, int]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.astype(object).where(frame.notna(), None)
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return value.date().isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _rows(con: duckdb.DuckDBPyConnection, table: str, sql: str, pupil_id: str) -> pd.DataFrame:
    if not table_exists(con, table):
        return pd.DataFrame()
    return con.execute(sql, {"p": pupil_id}).df()


def source_rows(con: duckdb.DuckDBPyConnection, pupil_id: str,
                kinds: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Every loaded row of the pupil per source, with its file, line and check verdict.

    Args:
        con: The warehouse.
        pupil_id: The pseudonym.
        kinds: Source name -> kind (from the config): only the columns of the source's kind are
            kept (``raw_rows`` is one wide table).

    Returns:
        Source name -> rows.
    """
    frame = _rows(con, "raw_rows", "SELECT * FROM raw_rows WHERE pupil_id = $p ORDER BY source, source_file, "
                                   "source_line", pupil_id)
    result: dict[str, list[dict[str, Any]]] = {}
    for source, part in frame.groupby("source", sort=True) if len(frame) else []:
        kind = kinds.get(str(source))
        columns = [c.name for c in SOURCE_KINDS.get(kind, ()) if c.name != "cpr" and not c.identity]
        keep = ["source_file", "source_line", "pupil_id", *[c for c in columns if c in part.columns],
                *(["birth_year"] if kind == "pupils" else []), "_local_reason"]
        result[str(source)] = _records(part[[c for c in keep if c in part.columns]]
                                       .rename(columns={"_local_reason": "check_failed"}))
    return result


def explanations_in_words(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each stored SHAP contribution as a Danish sentence (what the value is, which way it pulled)."""
    from features.catalogue import FEATURE_NAMES, feature_spec

    rows = []
    for row in frame.to_dict("records"):
        name = str(row["feature"])
        described = feature_spec(name).description_da if name in FEATURE_NAMES else name
        value = row.get("feature_value")
        shown = "ukendt" if value is None or pd.isna(value) else f"{float(value):.2f}".replace(".", ",")
        direction = "trak risikoen op" if float(row["contribution"]) > 0 else "trak risikoen ned"
        rows.append({"run_id": row["run_id"], "term": row.get("term"), "feature": name,
                     "value": None if shown == "ukendt" else float(value),
                     "contribution": round(float(row["contribution"]), 4),
                     "text_da": f"{described}: {shown} ({direction})"})
    return rows


def collect_subject_data(con: duckdb.DuckDBPyConnection, identity: duckdb.DuckDBPyConnection | None,
                         pupil_id: str, *, kinds: dict[str, str], reviews: list[dict[str, Any]],
                         audit: list[dict[str, Any]], exclusions: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything held about one pupil, as plain data.

    Args:
        con: The published warehouse (read-only).
        identity: The identity store of the same version (None when there is none).
        pupil_id: The pseudonym.
        kinds: Source name -> kind (from the config).
        reviews: The pupil's reviews (``AppStore.reviews_of_pupil``).
        audit: Audit entries about the pupil or a list they stood on.
        exclusions: The pupil's exclusions from screening.

    Returns:
        The sections of the report (each a list of rows).
    """
    identity_rows: list[dict[str, Any]] = []
    person: list[dict[str, Any]] = []
    if identity is not None and table_exists(identity, "identity_pupils"):
        person = _records(identity.execute(
            "SELECT pupil_id, first_name, last_name, school_code, class_label, school_year FROM identity_pupils "
            "WHERE pupil_id = $p", {"p": pupil_id}).df())
        if table_exists(identity, "identity_rows") and table_exists(con, "raw_rows"):
            lines = con.execute("SELECT source, source_file, source_line FROM raw_rows WHERE pupil_id = $p",
                                {"p": pupil_id}).df()
            identity.register("subject_lines", lines)
            identity_rows = _records(identity.execute(
                "SELECT r.source, r.source_file, r.source_line, r.first_name, r.last_name FROM identity_rows r "
                "JOIN subject_lines USING (source, source_file, source_line) ORDER BY 1, 2, 3").df())
            identity.unregister("subject_lines")
    explanations = _rows(con, "explanations_pupil_term",
                         "SELECT e.*, s.term FROM explanations_pupil_term e LEFT JOIN scores_pupil_term s "
                         "USING (run_id, pupil_id) WHERE e.pupil_id = $p ORDER BY e.run_id, abs(e.contribution) DESC",
                         pupil_id)
    flags = _rows(con, "flags_pupil_term", "SELECT * FROM flags_pupil_term WHERE pupil_id = $p ORDER BY term, run_id",
                  pupil_id)
    for column in ("reasons_da", "context_da", "reason_families"):
        if column in flags.columns:
            flags[column] = [json.loads(v) if isinstance(v, str) and v.startswith("[") else v for v in flags[column]]
    return {
        "pupil_id": pupil_id,
        "person": person,
        "names_per_source_row": identity_rows,
        "sources": source_rows(con, pupil_id, kinds),
        "quarantined_rows": _records(_rows(
            con, "raw_quarantine", "SELECT source, step, source_file, source_line, column_name, reason, raw_values "
                                   "FROM raw_quarantine WHERE contains(raw_values, $p) ORDER BY 1, 3, 4", pupil_id)),
        "outcomes": _records(_rows(con, "clean_outcomes", "SELECT * EXCLUDE (source_file, source_line) "
                                   "FROM clean_outcomes WHERE pupil_id = $p ORDER BY assessed_date", pupil_id)),
        "features": _records(_rows(con, "features_pupil_term", "SELECT * FROM features_pupil_term "
                                   "WHERE pupil_id = $p ORDER BY as_of_date", pupil_id)),
        "scores": _records(_rows(con, "scores_pupil_term", "SELECT term, as_of_date, run_id, model_id, risk, tier, "
                                 "tier_step, network_id, school_code, grade, rank_in_network FROM scores_pupil_term "
                                 "WHERE pupil_id = $p ORDER BY as_of_date, run_id", pupil_id)),
        "explanations": explanations_in_words(explanations) if len(explanations) else [],
        "flags": _records(flags),
        "withdrawn_flags": _records(_rows(con, "flags_withdrawn", "SELECT * FROM flags_withdrawn WHERE pupil_id = $p",
                                          pupil_id)),
        "exclusions": exclusions,
        "reviews": reviews,
        "views": audit,
    }


def audit_entries_about(audit_rows: list[dict[str, Any]], pupil_id: str,
                        flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit entries that show who saw the pupil: their own page, and lists they stood on.

    Args:
        audit_rows: The whole audit log (newest first or any order).
        pupil_id: The pseudonym.
        flags: The pupil's flag rows (network, school, run).

    Returns:
        ``at``, ``username``, ``role``, ``action``, ``outcome``, ``what`` (``elevside`` or
        ``liste``) per entry, oldest first; no other pupil's id is in them (list entries name
        a network or schools).
    """
    on_lists = {(f.get("run_id"), f.get("network_id")) for f in flags}
    schools = {(f.get("run_id"), f.get("school_code")) for f in flags}
    chosen = []
    for entry in audit_rows:
        object_id = str(entry.get("object_id") or "")
        run_id = entry.get("run_id")
        what = None
        if object_id == pupil_id:
            what = {"view_pupil": "elevside", "review": "vurdering", "subject_access": "indsigt",
                    "exclude": "udtagelse"}.get(str(entry.get("action")), str(entry.get("action")))
        elif entry.get("action") in ("view_list", "export") and entry.get("outcome") == "allowed":
            if entry.get("object_type") == "network" and (run_id, object_id) in on_lists:
                what = "netværksliste"
            elif entry.get("object_type") == "school" and any(
                    (run_id, code) in schools for code in object_id.split(",")):
                what = "skoleliste"
        if what is not None:
            chosen.append({"at": entry["at"], "username": entry.get("username"), "role": entry.get("role"),
                           "action": entry["action"], "outcome": entry["outcome"], "what": what,
                           "object_id": object_id if what != "skoleliste" else None, "run_id": run_id})
    return sorted(chosen, key=lambda e: str(e["at"]))


def write_subject_access(data: dict[str, Any], out_dir: Path, generated_by: str) -> SubjectAccessFiles:
    """Write the JSON and the Danish PDF (mode 600: they hold the pupil's personal data).

    Args:
        data: From :func:`collect_subject_data`.
        out_dir: The folder to write to (created).
        generated_by: Who asked (shown in the files).

    Returns:
        The two paths and the row count of each section.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {"generated_at": stamp, "generated_by": generated_by, **data}
    counts = {k: (sum(len(v) for v in data[k].values()) if k == "sources" else len(data[k]))
              for k in data if isinstance(data[k], list | dict)}
    json_path = out_dir / f"indsigt_{data['pupil_id']}_{stamp}.json"
    pdf_path = json_path.with_suffix(".pdf")
    _private_write(json_path, json.dumps(document, indent=2, ensure_ascii=False, default=str).encode())
    from pipelines.subject_access_pdf import render_pdf

    _private_write(pdf_path, render_pdf(document))
    return SubjectAccessFiles(json_path, pdf_path, counts)


def _private_write(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
