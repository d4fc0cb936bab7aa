"""What each page shows, built from the reads (no HTTP here, so it is easy to test)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import duckdb
import pandas as pd
from markupsafe import Markup

from dashboards import reads
from dashboards.access import active_for_network, effective_review
from dashboards.charts import (
    WaterfallStep,
    fmt_number,
    fmt_pct,
    fmt_signed,
    trajectory_svg,
    waterfall_narrow_svg,
    waterfall_svg,
)
from dashboards.labels import ACTIVE_DECISIONS, DECISIONS, DISMISS_REASONS, FLAG_STATUSES, feature_label
from ews.config import MunicipalityConfig
from ews.terms import term_name_da

#: Bars in the waterfall before the rest are grouped.
WATERFALL_BARS = 8


@dataclass(frozen=True)
class FeatureInfo:
    """What the feature catalogue says about a feature."""

    label: str
    unit: str
    family: str


@cache
def feature_catalogue() -> dict[str, FeatureInfo]:
    """Danish labels, units and families of the features, from ``features.catalogue``."""
    try:
        from features.catalogue import FAMILIES, FEATURES
    except ImportError:
        return {}
    return {f.name: FeatureInfo(f.description_da, f.unit, FAMILIES.get(f.family, (f.family,))[0])
            for f in FEATURES}


def describe_feature(name: str) -> FeatureInfo:
    """Label, unit and family of a feature (a readable fallback when it is not catalogued)."""
    return feature_catalogue().get(name) or FeatureInfo(feature_label(name), "", "")


def format_value(value: Any, unit: str) -> str:
    """A feature value in its unit, the Danish way."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "mangler"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if unit == "pct":
        return f"{fmt_number(number, 1)} %"
    if unit == "pp":
        return f"{fmt_signed(number, 1)} procentpoint"
    if unit == "dage":
        return f"{fmt_number(number, 0)} dage"
    if unit == "antal":
        return fmt_number(number, 0 if number == int(number) else 1)
    if unit == "z":
        return fmt_signed(number, 2)
    if unit == "flag":
        return "ja" if number >= 0.5 else "nej"
    if unit == "share":
        return fmt_pct(number)
    return fmt_number(number, 1 if number != int(number) else 0)


def feature_value_text(name: str, value: Any, unit: str) -> str:
    """A pupil's value of a feature as people read it: coded values by their label.

    Support levels say "specialskole", not "3", and grades "8. klasse", with the same words as
    the reasons on the lists (``flags.reasons.format_value``); other units as :func:`format_value`.
    """
    if unit in ("niveau", "karakter"):
        try:
            from flags.reasons import format_value as reason_value

            number = None if value is None else float(value)
            return reason_value(name, number)
        except (ImportError, KeyError, TypeError, ValueError):
            pass
    return format_value(value, unit)


#: Short explanations of the path patterns (what a UU consultant or network reads).
PATH_PATTERN_HELP_DA: dict[str, str] = {
    "tidlig_starter": ("Tidlig starter: signalerne (fx fravær eller støttebehov) har været der siden de "
                       "første skoleår."),
    "sen_starter": ("Sen starter: signalerne er kommet til inden for de seneste år; eleven klarede sig "
                    "uden bekymring tidligere."),
}


def _flag_labels() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    try:
        from flags.labels import DISCIPLINE_DA, PATH_PATTERN_DA, TRAJECTORY_DA
    except ImportError:
        return {}, {}, {}
    return TRAJECTORY_DA, PATH_PATTERN_DA, DISCIPLINE_DA


def trajectory_label(code: Any) -> str | None:
    """The Danish word for a trajectory code (``stigende`` -> ``Stigende``)."""
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return None
    return _flag_labels()[0].get(str(code), str(code).replace("_", " "))


def path_pattern_label(code: Any) -> str | None:
    """The Danish name of a path pattern (``tidlig_starter`` -> ``Tidlig starter``)."""
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return None
    return _flag_labels()[1].get(str(code), str(code).replace("_", " "))


def discipline_labels(codes: list[str]) -> list[str]:
    """Danish names of discipline codes."""
    labels = _flag_labels()[2]
    return [labels.get(code, code) for code in codes]


def review_view(review: dict[str, Any] | None, carried: bool = False) -> dict[str, Any] | None:
    """A review with its Danish labels."""
    if review is None:
        return None
    return {
        **review,
        "decision_label": DECISIONS.get(str(review["decision"]), str(review["decision"])),
        "reason_label": DISMISS_REASONS.get(str(review.get("dismiss_reason")), ""),
        "active": review["decision"] in ACTIVE_DECISIONS,
        "carried": carried,
    }


def list_rows(
    flags: pd.DataFrame,
    latest_reviews: dict[str, dict[str, Any]],
    names: dict[str, dict[str, Any]],
    require_review: bool,
) -> list[dict[str, Any]]:
    """Rows of a flag list, each with its review state and (when allowed) name and class.

    Args:
        flags: Flags from :func:`dashboards.reads.network_flags` or ``school_flags``.
        latest_reviews: Pupil id -> latest review for this term or earlier.
        names: Pupil id -> identity row (only for people who work with the pupil).
        require_review: Whether the network sees only confirmed flags.

    Returns:
        One dict per flag.
    """
    rows = []
    for flag in flags.to_dict("records"):
        review = effective_review(flag, latest_reviews.get(flag["pupil_id"]))
        carried = review is not None and review["term"] != flag["term"]
        identity = names.get(flag["pupil_id"], {})
        required = flag.get("review_required")
        required = require_review if required is None or required is pd.NA else bool(required)
        rows.append({
            **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in flag.items()},
            "status_label": FLAG_STATUSES.get(flag["status"], flag["status"]),
            "trajectory_label": trajectory_label(flag.get("trajectory")),
            "review": review_view(review, carried),
            "active": active_for_network(flag, review, required),
            "name": " ".join(p for p in (identity.get("first_name"), identity.get("last_name")) if p) or None,
            "class_label": identity.get("class_label"),
        })
    return rows


def waterfall(explanation: pd.DataFrame, bars: int = WATERFALL_BARS) -> tuple[Any, list[dict[str, Any]]]:
    """The SHAP waterfall chart and its table.

    Args:
        explanation: The pupil's contributions (largest first).
        bars: Bars before the remaining factors are grouped in one.

    Returns:
        The SVG and the rows of the table beside it (``label``, ``value``, ``contribution``,
        ``family``).
    """
    if explanation.empty:
        return None, []
    ordered = explanation.reindex(explanation["contribution"].abs().sort_values(ascending=False).index)
    rows: list[dict[str, Any]] = []
    steps: list[WaterfallStep] = []
    for record in ordered.head(bars).to_dict("records"):
        info = describe_feature(record["feature"])
        value = feature_value_text(record["feature"], record["feature_value"], info.unit)
        steps.append(WaterfallStep(info.label, f"Elevens værdi: {value}", float(record["contribution"])))
        rows.append({"feature": record["feature"], "label": info.label, "value": value,
                     "contribution": float(record["contribution"]), "family": info.family or record.get("family")})
    rest = ordered.iloc[bars:]
    if len(rest):
        total = float(rest["contribution"].sum())
        steps.append(WaterfallStep(f"Øvrige {len(rest)} forhold", "", total))
        rows.append({"feature": None, "label": f"Øvrige {len(rest)} forhold", "value": "",
                     "contribution": total, "family": ""})
    base = float(ordered["base_value"].iloc[0])
    wide = waterfall_svg(base, steps)
    narrow = waterfall_narrow_svg(base, steps)
    return Markup(f'<div class="chart-wide">{wide}</div><div class="chart-narrow">{narrow}</div>'), rows


def trajectory(history: pd.DataFrame, config: MunicipalityConfig | None) -> tuple[Any, list[dict[str, Any]]]:
    """The risk-over-terms chart and its table."""
    if history.empty:
        return None, []
    records = history.to_dict("records")
    terms = [term_name_da(r["term"]) for r in records]
    risks = [None if r["risk"] is None or math.isnan(r["risk"]) else float(r["risk"]) for r in records]
    flagged = [r.get("status") in ("ny", "fortsat") for r in records]
    tiers = [(t.name, t.min_risk) for t in config.tiers] if config else []
    rows = [{"term": t, "risk": fmt_pct(r) if r is not None else "–", "tier": rec.get("tier"),
             "flagged": f} for t, r, f, rec in zip(terms, risks, flagged, records, strict=True)]
    wide = trajectory_svg(terms, risks, flagged, tiers)
    narrow = trajectory_svg(terms, risks, flagged, tiers, chart_id="trajectory-narrow", width=360)
    # The style sheet shows one of the two: the narrow drawing on a phone, the wide one elsewhere.
    chart = Markup(f'<div class="chart-wide">{wide}</div><div class="chart-narrow">{narrow}</div>')
    return chart, rows


def comparison(con: duckdb.DuckDBPyConnection, flag: dict[str, Any],
               waterfall_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pupil's values beside the school's and the municipality's (same grade, same date).

    Args:
        con: Warehouse connection.
        flag: The pupil's flag (run, as-of date, school, grade).
        waterfall_rows: Rows of :func:`waterfall` (feature and the pupil's formatted value).

    Returns:
        One row per feature: ``label``, ``pupil``, ``school``, ``municipality``, ...
    """
    values = {r["feature"]: r["value"] for r in waterfall_rows if r["feature"]}
    features = list(values)
    if not features or flag.get("as_of_date") is None or flag.get("grade") is None:
        return []
    frame = reads.feature_comparison(
        con, run_id=flag["run_id"], as_of_date=flag["as_of_date"], school_code=flag["school_code"],
        grade=int(flag["grade"]), features=features)
    rows = []
    for record in frame.to_dict("records"):
        info = describe_feature(record["feature"])
        statistic = "mean" if info.unit == "flag" else "median"
        rows.append({
            "label": info.label,
            "pupil": values[record["feature"]],
            "school": _reference_text(record["feature"], record.get(f"school_{statistic}"), info.unit),
            "municipality": _reference_text(record["feature"], record.get(f"municipality_{statistic}"), info.unit),
            "statistic": "andel" if statistic == "mean" else "median",
            "school_pupils": record["school_pupils"],
            "municipality_pupils": record["municipality_pupils"],
        })
    return rows


def _reference_text(name: str, value: Any, unit: str) -> str:
    """A school's or the municipality's median (or share, for yes/no) in the feature's words."""
    if unit == "flag":
        return format_value(value, "share")
    if unit == "niveau" and value is not None and not (isinstance(value, float) and math.isnan(value)):
        return feature_value_text(name, round(float(value)), unit)  # a median level: its label
    return feature_value_text(name, value, unit)


def tier_step(config: MunicipalityConfig | None, tier: str | None) -> str | None:
    """The indsatstrappe step the municipality maps a tier to."""
    if config is None or tier is None:
        return None
    return next((t.step for t in config.tiers if t.name == tier), None)


def card_paths(model: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(column, path) of the model-card files named in a registry row."""
    if not model:
        return []
    return [(key, str(value)) for key, value in model.items()
            if value and isinstance(value, str) and "card" in key.lower()]


def risk_outcome(con: duckdb.DuckDBPyConnection | None, flags: pd.DataFrame) -> dict[str, str] | None:
    """Which outcome the risks of a list refer to (issue 14: never mix definitions silently).

    Args:
        con: The read-only warehouse.
        flags: The list's flags (``model_id``).

    Returns:
        ``definition`` (``name@vN``) and ``label`` (Danish), or None without a model.
    """
    if con is None or flags.empty or "model_id" not in flags or not flags["model_id"].notna().any():
        return None
    if "list_basis" in flags and not (flags["list_basis"].fillna("model") == "model").any():
        return None  # a rule list shows no risk
    model = reads.model_record(con, str(flags["model_id"].dropna().iloc[0]))
    if not model or not model.get("outcome_definition"):
        return None
    from models.outcomes import OUTCOMES

    definition = str(model["outcome_definition"])
    spec = OUTCOMES.get(definition.split("@", 1)[0])
    return {"definition": definition, "label": spec.description_da if spec else definition}


#: Registry columns shown on the model card page, with their Danish labels, in this order.
MODEL_FIELDS_DA: tuple[tuple[str, str], ...] = (
    ("model_id", "Model"),
    ("term", "Trænet til terminen"),
    ("as_of_date", "Skæringsdato"),
    ("outcome_definition", "Udfald"),
    ("training_first_cohort", "Første træningsårgang"),
    ("training_last_cohort", "Sidste træningsårgang"),
    ("evaluation_cohorts", "Afprøvet på årgangene"),
    ("label_cutoff", "Udfald kendt til og med"),
    ("training_rows", "Træningsrækker"),
    ("training_pupils", "Elever i træningen"),
    ("evaluation_rows", "Afprøvningsrækker"),
    ("seed", "Frø (tilfældighed)"),
    ("code_version", "Kodeversion"),
    ("model_config_hash", "Modelkonfiguration (hash)"),
    ("data_snapshot", "Datagrundlag (snapshot)"),
)


def model_fields(model: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The registry row as (Danish label, value) pairs; dates ``dd-mm-åååå``, counts grouped."""
    if not model:
        return []
    shown = []
    for key, label in MODEL_FIELDS_DA:
        value = model.get(key)
        if value is None or value == "":
            continue
        if key in ("as_of_date", "label_cutoff"):
            text = pd.Timestamp(value).strftime("%d-%m-%Y")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = fmt_number(float(value), 0)
        elif key == "evaluation_cohorts":
            text = ", ".join(str(v) for v in reads.parse_list(value))
        else:
            text = str(value)
        shown.append((label, text))
    return shown


def model_metrics(model: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The registry's top-level numeric metrics as (name, value) pairs, Danish number format."""
    if not model or not model.get("metrics_json"):
        return []
    try:
        metrics = json.loads(str(model["metrics_json"]))
    except json.JSONDecodeError:
        return []
    return [(str(k), fmt_number(float(v), 3)) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)]
