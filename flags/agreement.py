"""How often the named reasons agree with the synthetic municipality's known causes.

The synthetic generator knows why each pupil is at risk (``ground_truth/pupils.csv``: the
families of its latent liability that drive the risk, in ``causes``). For each flagged pupil
with at least one known cause, the reasons *agree* when the family of at least one named reason
is among the pupil's causes; the top-1 share asks the same of the first reason only. The
ground truth is pseudonymised on reading with the same keyed hash as the exports, and its
CPR numbers are dropped at once. Only ``ews demo`` / ``ews evaluate --ground-truth`` call this;
the pipeline never reads the ground truth.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ews.pseudonym import pseudonymise_series

#: Separators accepted between causes in the ground truth (``fravaer|laering``).
_CAUSE_SPLIT = re.compile(r"[|,;+ ]+")


def parse_causes(text: object) -> tuple[str, ...]:
    """``'fravaer|laering'`` -> ``('fravaer', 'laering')``; empty or missing -> ``()``."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return ()
    parts = [p.strip() for p in _CAUSE_SPLIT.split(str(text)) if p.strip()]
    return tuple(p for p in parts if p not in ("-", "ingen", "none"))


def read_ground_truth(path: Path, key: bytes) -> pd.DataFrame:
    """Read the generator's ``pupils.csv`` and pseudonymise it.

    Args:
        path: ``ground_truth/pupils.csv`` (``cpr;...;path;causes;...``).
        key: The pseudonymisation key of the run.

    Returns:
        ``pupil_id``, ``path`` (when present) and ``causes`` (tuple of families); no CPR.

    Raises:
        ValueError: When the file lacks the ``cpr`` or ``causes`` column.
    """
    raw = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in ("cpr", "causes") if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} not found (have {list(raw.columns)})")
    ids = pseudonymise_series(raw["cpr"], key)["pupil_id"]
    truth = pd.DataFrame({"pupil_id": ids.to_numpy(), "causes": raw["causes"].map(parse_causes)})
    if "path" in raw.columns:
        truth["path"] = raw["path"].replace("", None).to_numpy()
    return truth[truth["pupil_id"].notna()].drop_duplicates("pupil_id").reset_index(drop=True)


def reason_agreement(flags: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Share of flagged pupils whose named reasons agree with their known causes.

    Args:
        flags: Rows of ``flags_pupil_term`` of one run (``pupil_id``, ``status``,
            ``reason_families`` as a JSON list, and ``path_pattern``).
        truth: From :func:`read_ground_truth`.

    Returns:
        ``share`` (any named reason's family among the causes, over flagged pupils with known
        causes), ``top1_share`` (the first reason's family), ``family_precision`` (share of the
        named reasons' families that are true causes), ``pupils`` (that denominator),
        ``agreeing``, ``flagged``,
        ``flagged_without_causes``, and, when the truth has paths, ``path_share`` (flagged
        pupils labelled early or late starter whose label matches the generator's path) with
        ``path_pupils``.
    """
    flagged = flags[flags["status"] != "ikke_laengere"][["pupil_id", "reason_families", "path_pattern"]]
    merged = flagged.merge(truth, on="pupil_id", how="left")
    merged["causes"] = merged["causes"].map(lambda c: c if isinstance(c, tuple) else ())
    named = merged["reason_families"].map(lambda t: json.loads(t) if t else [])
    with_causes = merged["causes"].map(len) > 0
    agree = [bool(set(n) & set(c)) for n, c in zip(named, merged["causes"], strict=True)]
    top1 = [bool(n) and n[0] in c for n, c in zip(named, merged["causes"], strict=True)]
    pairs = [(n, c) for n, c, w in zip(named, merged["causes"], with_causes, strict=True) if w]
    named_in_causes = sum(len(set(n) & set(c)) for n, c in pairs)
    named_total = sum(len(n) for n, _ in pairs)
    agree_s = pd.Series(agree, index=merged.index)[with_causes]
    top1_s = pd.Series(top1, index=merged.index)[with_causes]
    result: dict[str, Any] = {
        "share": round(float(agree_s.mean()), 4) if len(agree_s) else None,
        "top1_share": round(float(top1_s.mean()), 4) if len(top1_s) else None,
        "family_precision": round(named_in_causes / named_total, 4) if named_total else None,
        "pupils": int(with_causes.sum()),
        "agreeing": int(agree_s.sum()),
        "flagged": len(merged),
        "flagged_without_causes": int((~with_causes).sum()),
        "definition": "a flagged pupil agrees when a named reason's family is among the "
                      "generator's causes; share over flagged pupils with at least one cause",
    }
    if "path" in merged.columns:
        labelled = merged[merged["path_pattern"].notna() & merged["path"].notna()]
        matches = [_path_matches(label, path) for label, path in
                   zip(labelled["path_pattern"], labelled["path"], strict=True)]
        result["path_pupils"] = len(labelled)
        result["path_share"] = round(sum(matches) / len(matches), 4) if matches else None
    return result


def _path_matches(label: str, path: str) -> bool:
    """``tidlig_starter`` matches a path containing ``tidlig`` / ``early``; likewise late."""
    path = str(path).lower()
    if label == "tidlig_starter":
        return "tidlig" in path or "early" in path
    if label == "sen_starter":
        return "sen" in path or "late" in path
    return False
