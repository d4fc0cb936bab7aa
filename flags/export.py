"""Per-network exports of the flag lists: one Excel workbook, one PDF and one CSV each.

These are the only outputs that carry names. Names and classes come from the identity store
(``identity_pupils``), read here for the pupils of one network at a time and written only into
that network's files; the warehouse, logs and the run manifest keep pseudonyms only. A
network's files contain the pupils of its own list and nobody else: pupils who were on last
term's list but have left the network are counted, not named.

File names are ``<out_dir>/<network_id>.xlsx``, ``.pdf`` and ``.csv``. The CSV is UTF-8 with a
byte-order mark and ``;`` as separator so that Danish Excel opens it as it is; its first line
is the screening disclaimer, its second the header (read it with ``skiprows=1``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ews.config import MunicipalityConfig
from flags.labels import (
    DISCIPLINE_DA,
    DISCLAIMER_DA,
    PATH_PATTERN_DA,
    RULE_LIST_SHORT_DA,
    SELECTION_MODE_DA,
    STATUS_DA,
    TRAJECTORY_DA,
    format_percent_da,
    join_da,
    list_basis_da,
)
from flags.reasons import reasons_from_json
from flags.rule_lists import RuleBasis
from flags.selection import read_flag_lists, summarise_lists

#: Column headers of the list (Excel sheet "Flagliste", CSV), in order.
LIST_HEADERS = (
    "Nr.", "Status", "Navn", "Klasse", "Skole", "Klassetrin", "Risiko (%)", "Niveau",
    "Trin på indsatstrappen", "Udvikling", "Mønster", "Årsager", "Kontekst", "Fagligheder",
    "Faglig vurdering påkrævet", "Listegrundlag", "Elev-id (pseudonym)",
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
        basis_da: For a rule list (the model did not pass the publication gate), the Danish
            sentence saying so (``flags.labels.list_basis_da``); None for the model's list.
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
    basis_da: str | None = None

    @property
    def heading_da(self) -> str:
        """The first line of every list: the disclaimer, and for a rule list what it is."""
        return DISCLAIMER_DA if self.basis_da is None else f"{DISCLAIMER_DA} {self.basis_da}"


def safe_file_stem(network_id: str) -> str:
    """A network id usable as a file name (letters, digits, ``-`` and ``_`` kept)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", network_id).strip("_")
    return stem or "netvaerk"


def read_identities(identity_con: duckdb.DuckDBPyConnection, pupils: list[str]) -> pd.DataFrame:
    """Names and classes of some pupils from the identity store.

    Args:
        identity_con: A connection to the identity store.
        pupils: Pseudonyms.

    Returns:
        ``pupil_id``, ``first_name``, ``last_name``, ``class_label``, ``school_code``.
    """
    columns = ["pupil_id", "first_name", "last_name", "class_label", "school_code"]
    if not pupils:
        return pd.DataFrame(columns=columns)
    sql = resources.files("flags").joinpath("identities.sql").read_text(encoding="utf-8")
    return identity_con.execute(sql, {"pupils": pupils}).df()[columns]


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


def _display_row(row: pd.Series, identity: dict[str, dict[str, Any]], school_names: dict[str, str],
                 status_override: str | None = None) -> dict[str, Any]:
    person = identity.get(row["pupil_id"])
    if person is None:
        name, class_label = UNKNOWN_NAME, ""
    else:
        name = f"{person['first_name'] or ''} {person['last_name'] or ''}".strip() or UNKNOWN_NAME
        class_label = person["class_label"] or ""
    reasons = [r.text_da for r in reasons_from_json(row["reasons_da"])]
    context = [r.text_da for r in reasons_from_json(row["context_da"])]
    disciplines = [DISCIPLINE_DA.get(c, c) for c in json.loads(row["disciplines"] or "[]")]
    rank = row["list_rank"]
    grade = row["grade"]
    return {
        "Nr.": None if rank is None or pd.isna(rank) else int(rank),
        "Status": STATUS_DA[status_override or row["status"]],
        "Navn": name,
        "Klasse": class_label,
        "Skole": school_names.get(row["school_code"], row["school_code"] or ""),
        "Klassetrin": None if grade is None or pd.isna(grade) else int(grade),
        "Risiko (%)": None if pd.isna(row["risk"]) else round(float(row["risk"]) * 100),
        "Niveau": row["tier"] if isinstance(row["tier"], str) else "",
        "Trin på indsatstrappen": row["tier_step"] if isinstance(row["tier_step"], str) else "",
        "Udvikling": _trajectory_text(row),
        "Mønster": PATH_PATTERN_DA.get(row["path_pattern"], "") if isinstance(row["path_pattern"], str) else "",
        "Årsager": "\n".join(reasons),
        "Kontekst": "\n".join(context),
        "Fagligheder": join_da(disciplines),
        "Faglig vurdering påkrævet": "Ja" if bool(row["review_required"]) else "Nej",
        "Elev-id (pseudonym)": row["pupil_id"],
        "Listegrundlag": RULE_LIST_SHORT_DA if list_basis_da(row.get("list_basis")) else "Model",
        "_reasons": reasons,
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
) -> NetworkList:
    """Gather one network's list for its files.

    Args:
        flags: Rows of ``flags_pupil_term`` of the run (all networks).
        identities: Rows of the identity store (at least this network's pupils).
        config: The municipality config.
        network_id: The network.
        term: The term.
        lineage: ``run_id``, ``model_id``, ``config_hash``, ``data_snapshot``, ``code_version``,
            ``as_of_date`` (missing keys are shown empty).

    Returns:
        The network's list; only its own pupils, and of those no longer flagged only the ones
        still in the network.
    """
    network = next(n for n in config.networks if n.id == network_id)
    own = flags[flags["network_id"] == network_id]
    summary = summarise_lists(flags, config).set_index("network_id").loc[network_id]
    identity = {r["pupil_id"]: r for r in identities.to_dict("records")}
    school_names = {s.code: s.name for s in config.schools}
    flagged = own[own["status"] != "ikke_laengere"]
    staying = own[(own["status"] == "ikke_laengere") & own["in_network"].astype(bool)]
    rows = [_display_row(r, identity, school_names) for _, r in flagged.iterrows()]
    leaving = [_display_row(r, identity, school_names) for _, r in staying.iterrows()]
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
    return NetworkList(
        network_id=network_id,
        network_name=network.name,
        municipality=config.municipality,
        term=term,
        summary={k: int(v) for k, v in summary.drop("network_name").items()},
        selection_da=selection,
        rows=rows,
        leaving=leaving,
        disciplines=disciplines,
        tiers=tiers,
        lineage=lineage_text,
        basis_da=next((text for text in map(list_basis_da, own.get("list_basis", pd.Series(dtype=object)))
                       if text), None),
    )


def write_csv(network_list: NetworkList, path: Path) -> None:
    """Write the list as CSV for Danish Excel: UTF-8 with BOM, ``;``, disclaimer first.

    Args:
        network_list: From :func:`build_network_list`.
        path: The file to write.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([network_list.heading_da])
    writer.writerow(LIST_HEADERS)
    for row in network_list.rows + network_list.leaving:
        writer.writerow([_csv_cell(row[h]) for h in LIST_HEADERS])
    path.write_text(buffer.getvalue(), encoding="utf-8-sig", newline="")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\n", " | ")
    return str(value)


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
    """Write one Excel workbook, one PDF and one CSV per network for a run's flag lists.

    Args:
        con: A warehouse connection holding the run's ``flags_pupil_term`` rows.
        identity_con: A connection to the identity store (names, classes).
        config: The municipality config.
        term: The run's term.
        run_id: The run.
        out_dir: Folder for the files (created if missing), e.g. ``data/runs/<run_id>/lister``.
        lineage: ``model_id``, ``config_hash``, ``data_snapshot``, ``code_version``,
            ``as_of_date`` (``run_id`` and ``term`` are filled in when missing).
        relative_to: When given, paths in the result are relative to this folder (the run
            folder, for a portable manifest); otherwise as written.

    Returns:
        One manifest entry per network: ``network``, ``flagged``, ``xlsx``, ``pdf``, ``csv``.
    """
    from flags.excel import write_workbook
    from flags.pdf import write_pdf

    flags = read_flag_lists(con, run_id)
    lineage = {"run_id": run_id, "term": term, **{k: v for k, v in lineage.items() if v is not None}}
    if "model_id" not in lineage and len(flags):
        lineage["model_id"] = str(flags["model_id"].dropna().iloc[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for network in config.networks:
        own = flags[flags["network_id"] == network.id]
        named = own.loc[own["in_network"].astype(bool), "pupil_id"].tolist()
        identities = read_identities(identity_con, named)
        network_list = build_network_list(own, identities, config, network.id, term, lineage)
        stem = safe_file_stem(network.id)
        paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("xlsx", "pdf", "csv")}
        write_workbook(network_list, paths["xlsx"])
        write_pdf(network_list, paths["pdf"])
        write_csv(network_list, paths["csv"])
        shown = {ext: str(p.relative_to(relative_to) if relative_to else p) for ext, p in paths.items()}
        entries.append({"network": network.id, "flagged": network_list.summary["flagged"], **shown})
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
    """Build, store and export the run's flag lists: the one call the termly flow makes.

    Args:
        con: A connection from ``ews.warehouse.staged_write`` (scores and explanations of the
            run written).
        identity_con: The identity store's connection of the same session.
        config: The municipality config.
        term: The run's term.
        run_id: The run.
        out_dir: Folder for the per-network files.
        lineage: See :func:`export_flag_lists`.
        relative_to: See :func:`export_flag_lists`.
        rule: The rule that stands in for a model that did not pass the publication gate
            (``flags.rule_lists``); None: the model's lists.

    Returns:
        The manifest's ``flag_lists``: one entry per network.
    """
    from flags.selection import build_flag_lists, store_flag_lists

    store_flag_lists(con, build_flag_lists(con, config, term, run_id, rule=rule), term)
    return export_flag_lists(con, identity_con, config, term, run_id, out_dir, lineage, relative_to)
