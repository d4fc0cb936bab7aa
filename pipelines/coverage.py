"""Which sources a run lacks, and which features, baselines and outcomes that disables.

A municipality may not export every source (no national tests on file, no contacts system, a
source marked ``required: false`` whose files did not come). The model still runs, but the
features computed from a missing source are empty for every pupil, and the rule baselines
that read them lose a part: the ABC rule without tests and notifications *is* the absence
rule. The run manifest names this (``source_coverage``) and ``ews run`` prints it, so that
nobody reads "better than the ABC rule" without knowing which ABC rule.

The mapping source -> features comes from the feature catalogue
(:func:`features.catalogue.features_by_source`); the baselines' inputs are listed here,
checked against ``models.baselines`` by ``tests/pipelines/test_coverage.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ews.config import MunicipalityConfig
from features.catalogue import FEATURE_NAMES, FEATURE_SOURCE_KINDS, feature_spec, features_by_source


@dataclass(frozen=True)
class BaselinePart:
    """One part of a baseline and what it reads.

    Attributes:
        name: The part, e.g. ``behaviour`` of the ABC rule.
        features: Catalogue features the part reads.
        sources: Source kinds it needs besides its features' (e.g. the school of a pupil).
    """

    name: str
    features: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def needs(self) -> set[str]:
        """Source kinds the part needs."""
        kinds = set(self.sources)
        for name in self.features:
            kinds |= set(feature_spec(name).sources)
        return kinds


#: Baseline name (``models.baselines``) -> its parts. A rule whose parts are all lost scores
#: every pupil alike.
BASELINE_PARTS: dict[str, tuple[BaselinePart, ...]] = {
    "fravaer_over_10pct": (BaselinePart("attendance", ("absence_total_pct_12m",)),),
    "abc_regel": (
        BaselinePart("attendance", ("absence_total_pct_12m",)),
        BaselinePart("behaviour", ("notifications_12m",)),
        BaselinePart("course performance", ("test_reading_latest_z", "test_math_latest_z")),
    ),
    "kun_skole": (BaselinePart("school", sources=("pupils",)),),
    "logistisk_regression": tuple(BaselinePart(name, (name,)) for name in FEATURE_NAMES),
}
#: (baseline, the parts it keeps) -> the baseline it then equals.
BASELINE_EQUIVALENTS: dict[tuple[str, frozenset[str]], str] = {
    ("abc_regel", frozenset({"attendance"})): "fravaer_over_10pct",
}
#: Source kind -> the outcome definitions whose labels it carries.
OUTCOME_SOURCES: dict[str, tuple[str, ...]] = {
    "upv": ("upv_ikke_uddannelsesparat",),
    "designation": ("maalrettet_indsats",),
    "marks": ("afgangsproeve_krav_ikke_opfyldt",),
}
#: Every source kind coverage is reported for.
COVERED_KINDS: tuple[str, ...] = (*FEATURE_SOURCE_KINDS, "upv", "designation")


def absent_kinds(config: MunicipalityConfig, files: dict[str, Sequence[Any]],
                 rows_loaded: dict[str, int] | None = None) -> dict[str, str]:
    """The source kinds a run lacks, each with why.

    Args:
        config: The municipality config.
        files: Source name -> the files found for it.
        rows_loaded: Source name -> rows loaded (None: before the ingest).

    Returns:
        Kind -> ``not configured``, ``no files`` or ``no rows loaded``, for the absent kinds
        of :data:`COVERED_KINDS`, in that order.
    """
    absent: dict[str, str] = {}
    for kind in COVERED_KINDS:
        names = [s.name for s in config.sources if s.kind == kind]
        if not names:
            absent[kind] = "not configured"
        elif not any(files.get(name) for name in names):
            absent[kind] = "no files"
        elif rows_loaded is not None and sum(rows_loaded.get(name, 0) for name in names) == 0:
            absent[kind] = "no rows loaded"
    return absent


def baseline_effects(absent: set[str]) -> dict[str, dict[str, Any]]:
    """What absent source kinds do to each baseline.

    Args:
        absent: Absent source kinds.

    Returns:
        Baseline -> ``status`` (``complete``, ``reduced`` or ``disabled``), ``lost_parts``,
        ``kept_parts`` and ``equals`` (the baseline it becomes, or None).
    """
    effects = {}
    for baseline, parts in BASELINE_PARTS.items():
        lost = [p.name for p in parts if p.needs() & absent]
        kept = [p.name for p in parts if not p.needs() & absent]
        status = "complete" if not lost else ("disabled" if not kept else "reduced")
        equals = BASELINE_EQUIVALENTS.get((baseline, frozenset(kept))) if lost else None
        effects[baseline] = {"status": status, "lost_parts": lost, "kept_parts": kept,
                             "equals": equals}
    return effects


def source_coverage(config: MunicipalityConfig, files: dict[str, Sequence[Any]],
                    rows_loaded: dict[str, int] | None = None) -> dict[str, Any]:
    """The manifest's ``source_coverage``: absent sources and what they disable.

    Args:
        config: The municipality config.
        files: Source name -> the files found for it.
        rows_loaded: Source name -> rows loaded (None: before the ingest).

    Returns:
        ``absent`` (one entry per absent kind: ``kind``, ``reason``, ``features``,
        ``baselines`` it takes parts from, ``outcomes`` whose labels it carries),
        ``features_disabled`` (all of them), ``baselines`` (:func:`baseline_effects`) and
        ``notes`` (one readable line per absent kind and per changed baseline).
    """
    absent = absent_kinds(config, files, rows_loaded)
    by_source = features_by_source()
    effects = baseline_effects(set(absent))
    entries = []
    for kind, reason in absent.items():
        touched = sorted(b for b, parts in BASELINE_PARTS.items()
                         if any(kind in p.needs() for p in parts))
        entries.append({
            "kind": kind,
            "reason": reason,
            "sources": [s.name for s in config.sources if s.kind == kind],
            "features": list(by_source.get(kind, ())),
            "baselines": touched,
            "outcomes": list(OUTCOME_SOURCES.get(kind, ())),
        })
    disabled = [name for name in FEATURE_NAMES if set(feature_spec(name).sources) & set(absent)]
    return {"absent": entries, "features_disabled": disabled, "baselines": effects,
            "notes": coverage_notes(entries, effects, config.outcome)}


def coverage_notes(entries: list[dict[str, Any]], effects: dict[str, dict[str, Any]],
                   outcome: str) -> list[str]:
    """One line per absent source kind and per baseline it changes, for ``ews run``."""
    notes = []
    for entry in entries:
        if not entry["features"] and outcome not in entry["outcomes"]:
            continue  # e.g. the UPV export of a municipality whose outcome is another
        features = entry["features"]
        shown = ", ".join(features[:4]) + (f" and {len(features) - 4} more" if len(features) > 4 else "")
        line = f"source '{entry['kind']}' is absent ({entry['reason']})"
        if features:
            line += f": {len(features)} features are empty for every pupil ({shown})"
        if outcome in entry["outcomes"]:
            line += f"; it carries the labels of the outcome '{outcome}'"
        notes.append(line)
    for baseline, effect in effects.items():
        if effect["status"] == "complete" or baseline == "logistisk_regression":
            continue
        if effect["status"] == "disabled":
            notes.append(f"baseline {baseline} has none of its inputs and ranks every pupil alike")
            continue
        line = f"baseline {baseline} loses {', '.join(effect['lost_parts'])}"
        if effect["equals"]:
            line += f": it is the rule {effect['equals']}"
        notes.append(line)
    return notes


def rows_loaded_by_source(files: pd.DataFrame) -> dict[str, int]:
    """Source name -> rows loaded, from the ingest's per-file counts."""
    if files is None or not len(files):
        return {}
    return {str(k): int(v) for k, v in files.groupby("source")["rows_loaded"].sum().items()}
