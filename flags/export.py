"""Per-network list files: one Excel workbook, one PDF and one CSV each, for two audiences.

* **The UU consultant's working list** (``audience="uu"``), written by every run: every flag of
  the network, framed as "vurdering før kontakt" (each flag is reviewed in the app before the
  network sees it, before anyone contacts a family). These files never go to a network.
* **The network's list** (``audience="netvaerk"``), built by the review app on request from the
  flags a UU consultant has confirmed (or, with ``flagging.require_review: false``, every flag
  not dismissed), with the UU decision, its date and the step on the indsatstrappe.

These are the only outputs that carry names. Names and classes come from the identity store
(``identity_pupils``), read once for the run's flagged pupils in the run's own process, and each
network's rows are written only into that network's files; the warehouse, logs and the run
manifest keep pseudonyms only. Pupils who were on last term's list but have left the network are
counted, not named. Every text cell passes through :func:`ews.cells.spreadsheet_cell` (no
formula injection).

The run's file names are ``<out_dir>/<network_id>_uu-arbejdsliste.xlsx``, ``.pdf`` and ``.csv``.
The CSV is UTF-8 with a byte-order mark and ``;`` as separator so that Danish Excel opens it as
it is; its first line is the screening disclaimer, its second the header (``skiprows=1``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pandas as pd

from ews.cells import spreadsheet_cell
from ews.compute import map_chunks
from ews.config import MunicipalityConfig, safe_file_stem
from ews.formats import date_da
from ews.sql import load_sql
from ews.terms import term_name_da
from flags.labels import (
    AUDIENCE_CONSULTANT,
    AUDIENCE_NETWORK,
    DISCIPLINE_DA,
    DISCLAIMER_DA,
    LIST_AUDIENCE_NOTE_DA,
    LIST_PURPOSE_DA,
    LIST_PURPOSE_UNREVIEWED_DA,
    NOT_REVIEWED_DA,
    PATH_PATTERN_DA,
    RULE_LIST_SHORT_DA,
    SELECTION_MODE_DA,
    STATUS_DA,
    TRAJECTORY_DA,
    format_percent_da,
    join_da,
    list_basis_da,
)
from flags.rule_lists import RuleBasis
from flags.selection import read_flag_lists, summarise_lists

#: Column headers of the list (Excel sheet "Flagliste", CSV), in order.
LIST_HEADERS = (
    "Nr.", "Status", "Navn", "Klasse", "Skole", "Klassetrin", "Risiko (%)", "Niveau",
    "Trin på indsatstrappen", "Udvikling", "Mønster", "Årsager", "Kontekst", "Fagligheder",
    "Faglig vurdering påkrævet", "Listegrundlag", "Elev-id (pseudonym)",
)
#: Column headers of the network's list (served by the app): the UU decision, its date and the
#: step on the indsatstrappe instead of "review required" and the context column. No pseudonym:
#: the network knows the pupil by name, class and school (the lineage sheet names the run).
NETWORK_LIST_HEADERS = (
    "Nr.", "Status", "Navn", "Klasse", "Skole", "Klassetrin", "UU-vurdering", "Vurderet",
    "Trin på indsatstrappen", "Risiko (%)", "Niveau", "Udvikling", "Mønster", "Årsager",
    "Fagligheder",
)
#: Headers of the lineage sheet / PDF block, in order, with the lineage keys they show.
LINEAGE_LABELS = (
    ("Kørsel (run id)", "run_id"),
    ("Model", "model_id"),
    ("Termin", "term"),
    ("Skæringsdato", "as_of_date"),
    ("Konfiguration (hash)", "config_hash"),
    ("Datagrundlag (snapshot)", "data_snapshot"),
    ("Kodeversion", "code_version"),
)
UNKNOWN_NAME = "(ikke i identitetsregistret)"
#: File name suffix of the UU consultant's working list written by a run.
WORKLIST_SUFFIX = "_uu-arbejdsliste"


@dataclass(frozen=True)
class ReviewShown:
    """A UU consultant's decision on a flag, as the network's list shows it.

    Attributes:
        decision_da: The decision in Danish (e.g. "Bekræftet: drøftes i netværket").
        reviewed_on: The date of the review, ``dd-mm-åååå``.
        step: The step on the indsatstrappe the consultant chose, when the decision names one.
        carried_from: The earlier term the review carries over from, when it does.
    """

    decision_da: str
    reviewed_on: str
    step: str | None = None
    carried_from: str | None = None


@dataclass(frozen=True)
class NetworkList:
    """Everything one network's files show.

    Attributes:
        network_id: The network.
        network_name: Its name.
        municipality: The municipality's name.
        term: The term.
        summary: Counts (``flagged``, ``ny``, ``fortsat``, ``ikke_laengere``,
            ``ikke_laengere_i_netvaerket``, ``ikke_laengere_udenfor``, ``capacity``).
        selection_da: How the list was chosen, in Danish.
        rows: The flagged pupils, one dict per pupil keyed by :data:`LIST_HEADERS`, plus
            ``_reasons`` (list of Danish reason texts) and ``_context``.
        leaving: Pupils no longer flagged who are still in the network (same keys).
        disciplines: Discipline label -> flagged pupils whose reasons point to it.
        tiers: Tier -> flagged pupils.
        lineage: Lineage keys -> values (see :data:`LINEAGE_LABELS`).
        audience: ``uu`` (the consultant's working list) or ``netvaerk`` (the network's list).
        headers: The list's columns, in order (:data:`LIST_HEADERS` or
            :data:`NETWORK_LIST_HEADERS`).
        purpose_da: What the list is for and what happens before anyone acts on it.
        basis_da: "Listen er lavet med en enkel regel (...), ikke med modellen." for a rule
            list (``flags_pupil_term.list_basis``), else None.
    """

    network_id: str
    network_name: str
    municipality: str
    term: str
    summary: dict[str, int]
    selection_da: str
    rows: list[dict[str, Any]]
    leaving: list[dict[str, Any]]
    disciplines: dict[str, int]
    tiers: dict[str, int]
    lineage: dict[str, str]
    audience: str = AUDIENCE_CONSULTANT
    headers: tuple[str, ...] = LIST_HEADERS
    purpose_da: str = LIST_PURPOSE_DA[AUDIENCE_CONSULTANT]
    basis_da: str | None = None

    @property
    def term_da(self) -> str:
        """The term as Danish users name it (``2025/26-H1`` -> ``efterår 2025``)."""
        return term_name_da(self.term)


#: The columns of :func:`read_identities`.
IDENTITY_COLUMNS = ["pupil_id", "first_name", "last_name", "class_label", "school_code"]


def read_identities(identity_con: duckdb.DuckDBPyConnection, pupils: list[str]) -> pd.DataFrame:
    """Names and classes of some pupils from the identity store.

    Args:
        identity_con: A connection to the identity store.
        pupils: Pseudonyms.

    Returns:
        ``pupil_id``, ``first_name``, ``last_name``, ``class_label``, ``school_code``.
    """
    if not pupils:
        return pd.DataFrame(columns=IDENTITY_COLUMNS)
    sql = load_sql("flags", "identities.sql")
    return identity_con.execute(sql, {"pupils": pupils}).df()[IDENTITY_COLUMNS]


def _identities_of(identities: pd.DataFrame, pupils: set[str]) -> pd.DataFrame:
    """The rows of some pupils, in pupil order as :func:`read_identities` returns them."""
    return identities[identities["pupil_id"].isin(pupils)].reset_index(drop=True)


def _trajectory_text(row: pd.Series) -> str:
    code = row["trajectory"]
    if code is None or pd.isna(code):
        return ""
    text = TRAJECTORY_DA.get(code, str(code))
    change = row["risk_change"]
    if change is not None and not pd.isna(change) and code != "ingen_tidligere":
        points = round(float(change) * 100)
        text += f" ({'+' if points > 0 else ''}{points} point)"
    return text


def reason_texts(text: str | None) -> list[str]:
    """The Danish texts of a ``reasons_da`` / ``context_da`` column (JSON list of reasons)."""
    if not text or not isinstance(text, str):
        return []
    return [str(item.get("text_da", "")) for item in json.loads(text) if item.get("text_da")]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _display_row(row: pd.Series, identity: dict[str, dict[str, Any]], school_names: dict[str, str],
                 review: ReviewShown | None = None, network: bool = False) -> dict[str, Any]:
    person = identity.get(row["pupil_id"])
    if person is None:
        name, class_label = UNKNOWN_NAME, ""
    else:
        name = f"{person['first_name'] or ''} {person['last_name'] or ''}".strip() or UNKNOWN_NAME
        class_label = person["class_label"] or ""
    reasons = reason_texts(row["reasons_da"])
    context = reason_texts(row["context_da"])
    disciplines = [DISCIPLINE_DA.get(c, c) for c in json.loads(row["disciplines"] or "[]")]
    rank = row["list_rank"]
    grade = row["grade"]
    step = _text(row["tier_step"])
    decision, reviewed_on = "", ""
    if network:
        if review is None:
            decision = NOT_REVIEWED_DA
        else:
            decision = review.decision_da
            if review.carried_from:
                decision += f" (overført fra {review.carried_from})"
            reviewed_on = review.reviewed_on
        if review is not None and review.step:
            step = review.step
        elif step:
            step = f"{step} (forslag ud fra risikoniveau)"
    return {
        "Nr.": None if rank is None or pd.isna(rank) else int(rank),
        "Status": STATUS_DA[row["status"]],
        "Navn": name,
        "Klasse": class_label,
        "Skole": school_names.get(row["school_code"], row["school_code"] or ""),
        "Klassetrin": None if grade is None or pd.isna(grade) else int(grade),
        "UU-vurdering": decision,
        "Vurderet": reviewed_on,
        "Risiko (%)": None if pd.isna(row["risk"]) else round(float(row["risk"]) * 100),
        "Niveau": _text(row["tier"]),
        "Trin på indsatstrappen": step,
        "Udvikling": _trajectory_text(row),
        "Mønster": PATH_PATTERN_DA.get(row["path_pattern"], "") if isinstance(row["path_pattern"], str) else "",
        "Årsager": "\n".join(reasons),
        "Kontekst": "\n".join(context),
        "Fagligheder": join_da(disciplines),
        "Faglig vurdering påkrævet": "Ja" if bool(row["review_required"]) else "Nej",
        "Elev-id (pseudonym)": row["pupil_id"],
        "Listegrundlag": RULE_LIST_SHORT_DA if list_basis_da(row.get("list_basis")) else "Model",
        "_reasons": reasons,
        "_show_id": not network,
        "_context": context,
        "_disciplines": disciplines,
    }


def build_network_list(
    flags: pd.DataFrame,
    identities: pd.DataFrame,
    config: MunicipalityConfig,
    network_id: str,
    term: str,
    lineage: dict[str, Any],
    *,
    audience: str = AUDIENCE_CONSULTANT,
    reviews: dict[str, ReviewShown] | None = None,
    awaiting: int = 0,
    require_review: bool = True,
) -> NetworkList:
    """Gather one network's list for its files.

    Args:
        flags: Rows of ``flags_pupil_term`` of the run (all networks, or already only the rows
            the audience may see: for the network's list, the flags active for the network).
        identities: Rows of the identity store (at least this network's pupils).
        config: The municipality config.
        network_id: The network.
        term: The term.
        lineage: ``run_id``, ``model_id``, ``config_hash``, ``data_snapshot``, ``code_version``,
            ``as_of_date`` (missing keys are shown empty).
        audience: ``uu`` for the consultant's working list (every flag, framed as review before
            contact), ``netvaerk`` for the network's list (with the UU decisions).
        reviews: For the network's list: pupil id -> the decision in force.
        awaiting: For the network's list: flags not shown because they await review (counted
            on the summary, never named).
        require_review: For the network's list: the config's ``flagging.require_review`` (the
            list's wording says which flags it holds).

    Returns:
        The network's list; only its own pupils, and of those no longer flagged only the ones
        still in the network.
    """
    if audience not in (AUDIENCE_CONSULTANT, AUDIENCE_NETWORK):
        raise ValueError(f"unknown audience {audience!r}: use {AUDIENCE_CONSULTANT!r} or {AUDIENCE_NETWORK!r}")
    network = next(n for n in config.networks if n.id == network_id)
    for_network = audience == AUDIENCE_NETWORK
    own = flags[flags["network_id"] == network_id]
    summary = summarise_lists(flags, config, networks=[network_id]).set_index("network_id").loc[network_id]
    identity = {r["pupil_id"]: r for r in identities.to_dict("records")}
    school_names = {s.code: s.name for s in config.schools}
    reviews = reviews or {}
    flagged = own[own["status"] != "ikke_laengere"]
    staying = own[(own["status"] == "ikke_laengere") & own["in_network"].astype(bool)]
    rows = [_display_row(r, identity, school_names, reviews.get(r["pupil_id"]), for_network)
            for _, r in flagged.iterrows()]
    leaving = [_display_row(r, identity, school_names, reviews.get(r["pupil_id"]), for_network)
               for _, r in staying.iterrows()]
    disciplines: dict[str, int] = {}
    for codes in flagged["disciplines"]:
        for code in json.loads(codes or "[]"):
            label = DISCIPLINE_DA.get(code, code)
            disciplines[label] = disciplines.get(label, 0) + 1
    tiers = {t.name: int((flagged["tier"] == t.name).sum()) for t in reversed(config.tiers)}
    flagging = config.flagging
    selection = SELECTION_MODE_DA[flagging.mode].format(
        capacity=network.capacity_per_term, threshold=format_percent_da(flagging.threshold).rstrip(" %"))
    lineage_text = {key: "" if lineage.get(key) is None else str(lineage.get(key)) for _, key in LINEAGE_LABELS}
    lineage_text["term"] = lineage_text["term"] or term
    if lineage_text["as_of_date"]:
        lineage_text["as_of_date"] = date_da(lineage_text["as_of_date"])
    counts = {k: int(v) for k, v in summary.drop("network_name").items()}
    if for_network:
        counts["afventer_vurdering"] = int(awaiting)
    purpose = LIST_PURPOSE_DA[audience]
    if for_network and not require_review:
        purpose = LIST_PURPOSE_UNREVIEWED_DA
    return NetworkList(
        network_id=network_id,
        network_name=network.name,
        municipality=config.municipality,
        term=term,
        summary=counts,
        selection_da=selection,
        rows=rows,
        leaving=leaving,
        disciplines=disciplines,
        tiers=tiers,
        lineage=lineage_text,
        audience=audience,
        headers=NETWORK_LIST_HEADERS if for_network else LIST_HEADERS,
        purpose_da=purpose,
        basis_da=_basis(own),
    )


def _basis(flags: pd.DataFrame) -> str | None:
    """The rule-list line from ``list_basis`` when the column exists (added by the publication gate)."""
    if "list_basis" not in flags.columns:
        return None
    bases = sorted({b for b in flags["list_basis"].dropna() if isinstance(b, str)})
    lines = [line for line in (list_basis_da(b) for b in bases) if line]
    return " ".join(lines) or None


def first_line(network_list: NetworkList) -> str:
    """Line 1 of the CSV and row 1 of the Excel list.

    The screening-signal sentence; on the UU working list also who it is for ("vurderes før
    kontakt, gives ikke til netværket"); on a rule list the rule-list line.
    """
    parts = [DISCLAIMER_DA]
    if network_list.audience == AUDIENCE_CONSULTANT:
        parts.append(LIST_AUDIENCE_NOTE_DA[AUDIENCE_CONSULTANT] + ".")
    if network_list.basis_da:
        parts.append(network_list.basis_da)
    return " ".join(parts)


def csv_bytes(network_list: NetworkList) -> bytes:
    """The list as CSV for Danish Excel: UTF-8 with BOM, ``;``, CRLF, disclaimer first.

    Args:
        network_list: From :func:`build_network_list`.

    Returns:
        The file's bytes; every text cell passed through :func:`ews.cells.spreadsheet_cell`.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([spreadsheet_cell(first_line(network_list))])
    writer.writerow(network_list.headers)
    for row in network_list.rows + network_list.leaving:
        writer.writerow([_csv_cell(row[h]) for h in network_list.headers])
    return buffer.getvalue().encode("utf-8-sig")


def write_csv(network_list: NetworkList, path: Path) -> None:
    """Write the list as CSV (see :func:`csv_bytes`).

    Args:
        network_list: From :func:`build_network_list`.
        path: The file to write.
    """
    path.write_bytes(csv_bytes(network_list))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return spreadsheet_cell(value.replace("\n", " | "))
    return str(value)


def write_files(network_list: NetworkList, targets: dict[str, Path | BinaryIO]) -> None:
    """Write the list in the formats asked for.

    Args:
        network_list: From :func:`build_network_list`.
        targets: Format (``xlsx``, ``pdf``, ``csv``) -> file path or binary stream.
    """
    from flags.excel import write_workbook
    from flags.pdf import write_pdf

    for fmt, target in targets.items():
        if fmt == "xlsx":
            write_workbook(network_list, target)
        elif fmt == "pdf":
            write_pdf(network_list, target)
        elif fmt == "csv":
            data = csv_bytes(network_list)
            if isinstance(target, Path):
                target.write_bytes(data)
            else:
                target.write(data)
        else:
            raise ValueError(f"unknown list format {fmt!r}: use xlsx, pdf or csv")


def export_flag_lists(
    con: duckdb.DuckDBPyConnection,
    identity_con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    term: str,
    run_id: str,
    out_dir: Path,
    lineage: dict[str, Any],
    relative_to: Path | None = None,
) -> list[dict[str, Any]]:
    """Write the UU consultants' working lists of a run: one Excel, PDF and CSV per network.

    These name every flagged pupil of the network, before any review, so they are framed for
    the UU consultant ("vurdering før kontakt") and never for the network: the network's list
    is served by the review app from the confirmed flags (``dashboards``).

    Args:
        con: A warehouse connection holding the run's ``flags_pupil_term`` rows.
        identity_con: A connection to the identity store (names, classes).
        config: The municipality config.
        term: The run's term.
        run_id: The run.
        out_dir: Folder for the files (created if missing), e.g.
            ``data/runs/<run_id>/uu_worklists``.
        lineage: ``model_id``, ``config_hash``, ``data_snapshot``, ``code_version``,
            ``as_of_date`` (``run_id`` and ``term`` are filled in when missing).
        relative_to: When given, paths in the result are relative to this folder (the run
            folder, for a portable manifest); otherwise as written.

    Returns:
        One manifest entry per network: ``network``, ``audience`` (``uu``), ``flagged``,
        ``xlsx``, ``pdf``, ``csv``.
    """
    flags = read_flag_lists(con, run_id)
    lineage = {"run_id": run_id, "term": term, **{k: v for k, v in lineage.items() if v is not None}}
    if "model_id" not in lineage and len(flags):
        lineage["model_id"] = str(flags["model_id"].dropna().iloc[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    by_network = dict(tuple(flags.groupby("network_id", sort=False))) if len(flags) else {}
    # the identity store is read here, once for every network's named pupils (one connection,
    # this process; one query a network took 14 ms each, 15 s for a national config's 1,099);
    # each network's chunk gets only its own pupils' rows, and the files are written by
    # whichever process gets the chunk
    named = sorted(set(flags.loc[flags["in_network"].astype(bool), "pupil_id"])) if len(flags) else []
    identities = read_identities(identity_con, named)
    work = np.empty(len(config.networks), dtype=object)  # one item a network, never split apart
    for position, network in enumerate(config.networks):
        own = by_network.get(network.id, flags.iloc[0:0])
        mine = set(own.loc[own["in_network"].astype(bool), "pupil_id"])
        work[position] = (network.id, own, _identities_of(identities, mine))
    shared = _ExportJob(config, term, lineage, out_dir, relative_to)
    # the chunks carry names: never to a Dask cluster, whose workers serve other municipalities
    # and may spill to their own disks; inside a fleet they are written here, one after another
    mapped = map_chunks(_export_networks, shared, work, chunk_rows=NETWORKS_PER_CHUNK, on_dask=False)
    return [entry for chunk in mapped.results for entry in chunk]


#: Networks whose working lists one process writes at a time. A municipality up to about
#: Herning's size (19 networks) is one chunk, written in the run's own process; a national-sized
#: config (about 1,100 networks, 0.2-0.5 s of PDF and Excel each) is spread over the local
#: pool's processes (``ews.compute.map_chunks``; never the Dask cluster: the chunks hold names).
NETWORKS_PER_CHUNK = 25


@dataclass(frozen=True)
class _ExportJob:
    """What every chunk of :func:`export_flag_lists` shares."""

    config: MunicipalityConfig
    term: str
    lineage: dict[str, Any]
    out_dir: Path
    relative_to: Path | None


def _export_networks(job: _ExportJob, work: np.ndarray) -> list[dict[str, Any]]:
    """Write the working lists of a chunk of networks; their manifest entries, in order."""
    entries = []
    for network_id, own, identities in work:
        network_list = build_network_list(own, identities, job.config, network_id, job.term, job.lineage)
        stem = safe_file_stem(network_id) + WORKLIST_SUFFIX
        paths: dict[str, Path] = {ext: job.out_dir / f"{stem}.{ext}" for ext in ("xlsx", "pdf", "csv")}
        write_files(network_list, dict(paths))
        shown = {ext: str(p.relative_to(job.relative_to) if job.relative_to else p) for ext, p in paths.items()}
        entries.append({"network": network_id, "audience": AUDIENCE_CONSULTANT,
                        "flagged": network_list.summary["flagged"], **shown})
    return entries


def publish_flag_lists(
    con: duckdb.DuckDBPyConnection,
    identity_con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    term: str,
    run_id: str,
    out_dir: Path,
    lineage: dict[str, Any],
    relative_to: Path | None = None,
    rule: RuleBasis | None = None,
) -> list[dict[str, Any]]:
    """Build and store the run's flag lists and write the UU working lists: the flow's one call.

    Args:
        con: A connection from ``ews.warehouse.staged_write`` (scores and explanations of the
            run written).
        identity_con: The identity store's connection of the same session.
        config: The municipality config.
        term: The run's term.
        run_id: The run.
        out_dir: Folder for the per-network working lists.
        lineage: See :func:`export_flag_lists`.
        relative_to: See :func:`export_flag_lists`.
        rule: The rule that stands in for a model that did not pass the publication gate
            (``flags.rule_lists``); None: the model's lists.

    Returns:
        The manifest's ``uu_worklists``: one entry per network.
    """
    from flags.selection import build_flag_lists, store_flag_lists

    store_flag_lists(con, build_flag_lists(con, config, term, run_id, rule=rule), term)
    return export_flag_lists(con, identity_con, config, term, run_id, out_dir, lineage, relative_to)
