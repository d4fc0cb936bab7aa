"""The network's list as a PDF, Excel workbook or CSV, built by the app from confirmed flags.

The run writes only the UU consultants' working lists. A network's own files are made here, on
request, from exactly the rows the network's page shows (the flags a UU consultant has
confirmed, or with ``flagging.require_review: false`` every flag not dismissed), with the UU
decision, its date and the step on the indsatstrappe. The files are built with the same
builders as the run's lists (``flags.export``, ``flags.excel``, ``flags.pdf``), so every format
carries the screening-signal sentence, and a rule list (``list_basis``) says so.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from ews.config import MunicipalityConfig, safe_file_stem
from flags.export import ReviewShown, build_network_list, write_files
from flags.labels import AUDIENCE_NETWORK

#: Formats a network may download, with their media types.
MEDIA_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}
_LINEAGE_KEYS = ("model_id", "as_of_date", "config_hash", "data_snapshot", "code_version")


def review_shown(review: dict[str, Any] | None, reviewed_on: str) -> ReviewShown | None:
    """A review as the network's list shows it.

    Args:
        review: The effective review from ``dashboards.views.review_view`` (or None).
        reviewed_on: Its date as ``dd-mm-åååå``.

    Returns:
        The decision, date, chosen step and the term it carries over from; None without review.
    """
    if review is None:
        return None
    return ReviewShown(
        decision_da=str(review.get("decision_label") or review.get("decision")),
        reviewed_on=reviewed_on,
        step=review.get("step") or None,
        carried_from=str(review["term"]) if review.get("carried") else None,
    )


def network_file(
    fmt: str,
    config: MunicipalityConfig,
    network_id: str,
    term: str,
    flags: pd.DataFrame,
    rows: list[dict[str, Any]],
    reviewed_on: dict[str, str],
    awaiting: int,
    require_review: bool,
    manifest: dict[str, Any] | None,
) -> tuple[bytes, str]:
    """Build one network's list file.

    Args:
        fmt: ``pdf``, ``xlsx`` or ``csv``.
        config: The municipality config.
        network_id: The network.
        term: The term shown.
        flags: The network's flag rows of the run (``flags_pupil_term`` columns).
        rows: The rows the network may see (from ``dashboards.views.list_rows``, with names).
        reviewed_on: Pupil id -> the date of the review in force (``dd-mm-åååå``).
        awaiting: Flags hidden because they await review (counted, never named).
        require_review: The config's ``flagging.require_review``.
        manifest: The run's manifest, for the lineage (or None).

    Returns:
        The file's bytes and its download name.

    Raises:
        ValueError: For an unknown format.
    """
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown list format {fmt!r}")
    shown = {r["pupil_id"] for r in rows}
    visible = flags[flags["pupil_id"].isin(shown)]
    identities = pd.DataFrame(
        [{"pupil_id": r["pupil_id"], "first_name": r.get("name"), "last_name": None,
          "class_label": r.get("class_label"), "school_code": r.get("school_code")}
         for r in rows if r.get("name")],
        columns=["pupil_id", "first_name", "last_name", "class_label", "school_code"])
    reviews = {r["pupil_id"]: review for r in rows
               if (review := review_shown(r["review"], reviewed_on.get(r["pupil_id"], ""))) is not None}
    lineage: dict[str, Any] = {"term": term}
    if len(flags):
        lineage["run_id"] = str(flags["run_id"].iloc[0])
        lineage["model_id"] = str(flags["model_id"].dropna().iloc[0]) if flags["model_id"].notna().any() else None
    for key in _LINEAGE_KEYS:
        if manifest and manifest.get(key) is not None:
            lineage[key] = manifest[key]
    network_list = build_network_list(
        visible, identities, config, network_id, term, lineage, audience=AUDIENCE_NETWORK,
        reviews=reviews, awaiting=awaiting, require_review=require_review)
    buffer = io.BytesIO()
    write_files(network_list, {fmt: buffer})
    name = f"flagliste_{safe_file_stem(network_id)}_{safe_file_stem(term)}.{fmt}"
    return buffer.getvalue(), name
