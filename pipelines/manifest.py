"""The run manifest: what a run read, loaded, kept out and produced, as JSON.

Scripts of the municipality's own rely on these names: ``run_id``, ``term``, ``as_of_date``,
``status``, ``warehouse``, ``sources`` (``name``, ``file``, ``rows_read``, ``rows_loaded``,
``rows_quarantined``) and ``outputs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def source_entries(files: pd.DataFrame) -> list[dict[str, Any]]:
    """Per-file counts for the manifest; read = loaded + quarantined holds for each.

    Args:
        files: Per-file counts from the ingest.

    Returns:
        One object per file.

    Raises:
        AssertionError: Never in a correct ingest; guards the invariant the steward relies on.
    """
    entries = []
    for row in files.to_dict("records"):
        if row["rows_read"] != row["rows_loaded"] + row["rows_quarantined"]:
            raise AssertionError(
                f"{row['file']}: rows read {row['rows_read']} != loaded {row['rows_loaded']} + "
                f"quarantined {row['rows_quarantined']}"
            )
        entries.append({
            "name": row["source"],
            "file": row["file"],
            "sha256": row["file_sha256"],
            "rows_read": int(row["rows_read"]),
            "rows_loaded": int(row["rows_loaded"]),
            "rows_quarantined": int(row["rows_quarantined"]),
            "extra_columns": [c for c in str(row.get("extra_columns") or "").split(", ") if c],
        })
    return entries


def write_manifest(manifest: dict[str, Any], path: Path) -> Path:
    """Write the manifest as indented UTF-8 JSON.

    Args:
        manifest: The manifest.
        path: Where to write it.

    Returns:
        The path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8")
    return path
