"""Reasons in plain Danish: the few largest factors behind a flag, each with a value to check.

A reason names an *actionable* feature (see ``features.catalogue``) that pushed the pupil's
risk up, the pupil's value and a reference value from the same term, e.g.
``Ulovligt fravær seneste halvår: 9 % (kommunens median for 6. klasse: 1 %)``. The reference is
the median of all scored pupils of the same grade in the run (for yes/no features and
support levels: the share of those pupils who have it), so a consultant can check both
numbers against what the school knows.

Correlated features share credit, so reasons are chosen by family first: families (attendance,
learning, wellbeing and support, mobility) are ranked by the sum of their actionable
contributions, and each family that raises the risk enough names its largest contributor;
free places go to a second feature of the strongest families. Features of the ``kontekst``
family (school level, data availability) and features whose value is missing are never
reasons: they are shown apart as context.

Everything here works on frames; nothing reads the warehouse.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass

import pandas as pd

from features.catalogue import DISCIPLINE_LABELS, FAMILIES, feature_spec
from flags.labels import format_number_da

#: Family -> the disciplines its reasons point to. The UU consultant is on every list.
FAMILY_DISCIPLINES: dict[str, tuple[str, ...]] = {
    "fravaer": ("skole", "sundhedsplejerske"),
    "laering": ("ppr", "laerere"),
    "trivsel_stoette": ("socialraadgiver",),
    "mobilitet": ("skole",),
}
ALWAYS_DISCIPLINES: tuple[str, ...] = ("uu",)
#: Order in which disciplines are listed.
DISCIPLINE_ORDER: tuple[str, ...] = (
    "skole", "laerere", "sundhedsplejerske", "ppr", "socialraadgiver", "uu",
)
#: Families whose features may be reasons.
REASON_FAMILIES: tuple[str, ...] = ("fravaer", "laering", "trivsel_stoette", "mobilitet")
#: At most this many reasons per pupil.
MAX_REASONS = 3
#: A family (and a feature) must raise the log-odds by at least this much to be a reason.
MIN_CONTRIBUTION = 0.05
#: At most this many context items per pupil.
MAX_CONTEXT = 2

#: Features coded 0 none, 1 support hours, 2 special class, 3 special school.
SUPPORT_LEVEL_FEATURES = ("support_active_level", "support_max_level")
_SUPPORT_LEVELS_DA = {0: "ingen", 1: "støttetimer", 2: "specialklasse", 3: "specialskole"}
_SUPPORT_LEVELS_EN = {0: "none", 1: "support hours", 2: "special class", 3: "special school"}
_WINDOWS = {
    "6m": ("seneste halvår", "last six months"),
    "12m": ("seneste år", "last year"),
    "all": ("hele skoleforløbet", "all school years"),
}
_ABSENCE_KINDS = {
    "total": ("Samlet fravær", "Total absence"),
    "illness": ("Sygefravær", "Illness absence"),
    "authorised": ("Lovligt fravær", "Authorised absence"),
    "unauthorised": ("Ulovligt fravær", "Unauthorised absence"),
}
_SUBJECTS = {"reading": ("dansk/læsning", "reading"), "math": ("matematik", "mathematics")}
_FIXED_LABELS: dict[str, tuple[str, str]] = {
    "absence_trend_pp": ("Udvikling i samlet fravær pr. halvår", "Trend of total absence per term"),
    "absence_longest_spell_days_12m": (
        "Længste sammenhængende fravær seneste år", "Longest absence spell, last year"),
    "absence_concerning_12m": (
        "Bekymrende fravær (over 10 %) seneste år", "Concerning absence (above 10 %), last year"),
    "absence_concerning_terms": (
        "Halvår med bekymrende fravær", "Terms with concerning absence"),
    "late_arrivals_per_100_days_6m": (
        "For sent fremmøde pr. 100 skoledage seneste halvår",
        "Late arrivals per 100 school days, last six months"),
    "late_arrivals_per_100_days_12m": (
        "For sent fremmøde pr. 100 skoledage seneste år",
        "Late arrivals per 100 school days, last year"),
    "marks_mean_latest": (
        "Gennemsnit af seneste standpunktskarakterer", "Mean of the latest standing marks"),
    "marks_below_02_count": (
        "Fag med standpunktskarakter under 02", "Subjects with a standing mark below 02"),
    "notifications_12m": ("Underretninger seneste år", "Notifications of concern, last year"),
    "notifications_ever": ("Underretninger i alt", "Notifications of concern, all years"),
    "support_active_level": (
        "Aktuel specialpædagogisk støtte", "Current special-needs support"),
    "support_ever": ("Har haft specialpædagogisk støtte", "Has had special-needs support"),
    "support_max_level": (
        "Højeste specialpædagogiske støtte hidtil", "Highest special-needs support so far"),
    "notifications_per_year": (
        "Underretninger pr. år i skoleforløbet", "Notifications of concern per year on record"),
    "test_mean_z": (
        "Gennemsnit af nationale test (standardiseret)", "Mean of the national tests (standardised)"),
    "arrived_from_outside": (
        "Kom til kommunens skoler efter skolestart", "Joined the municipality's schools after school start"),
    "years_on_record": ("År med data om eleven", "Years of records on the pupil"),
    "school_moves_ever": ("Skoleskift i alt", "School moves, all years"),
    "school_moves_12m": ("Skoleskift seneste år", "School moves, last year"),
    "days_at_current_school": ("Tid på nuværende skole", "Time at the current school"),
    "grade": ("Klassetrin", "Grade"),
    "school_absence_pct_12m": (
        "Skolens gennemsnitlige fravær seneste år", "The school's mean absence, last year"),
    "absence_data_available": ("Fraværsdata seneste år", "Absence data for the last year"),
    "test_data_available": ("Nationale test registreret", "National tests on record"),
    "marks_data_available": ("Standpunktskarakterer registreret", "Standing marks on record"),
}


@dataclass(frozen=True)
class Reason:
    """One reason (or context item) for a pupil's flag.

    Attributes:
        feature: Feature name from the catalogue.
        family: Its family.
        value: The pupil's value (None when missing).
        reference: The reference value (median or share, see ``reference_kind``).
        reference_kind: ``median`` or ``share`` (of pupils of the grade with the feature).
        contribution: The feature's SHAP contribution (log-odds).
        family_contribution: Sum of the actionable contributions of its family.
        text_da: The reason in Danish.
        text_en: The same in English (documentation).
    """

    feature: str
    family: str
    value: float | None
    reference: float | None
    reference_kind: str
    contribution: float
    family_contribution: float
    text_da: str
    text_en: str


def feature_label(name: str) -> tuple[str, str]:
    """A short Danish and English label of a feature, window included.

    Args:
        name: Feature name from the catalogue.

    Returns:
        (Danish, English). Unknown patterns fall back to the catalogue's descriptions.
    """
    if name in _FIXED_LABELS:
        return _FIXED_LABELS[name]
    match = re.fullmatch(r"absence_(total|illness|authorised|unauthorised)_pct_(6m|12m|all)", name)
    if match:
        kind_da, kind_en = _ABSENCE_KINDS[match.group(1)]
        window_da, window_en = _WINDOWS[match.group(2)]
        return f"{kind_da} {window_da}", f"{kind_en}, {window_en}"
    match = re.fullmatch(r"test_(reading|math)_(latest|change)_z", name)
    if match:
        subject_da, subject_en = _SUBJECTS[match.group(1)]
        if match.group(2) == "latest":
            return (f"Seneste nationale test i {subject_da} (standardiseret)",
                    f"Latest national {subject_en} test (standardised)")
        return (f"Ændring siden forrige test i {subject_da} (standardiseret)",
                f"Change since the previous {subject_en} test (standardised)")
    match = re.fullmatch(r"contacts_([a-z]+)_(12m|ever|per_year|days_since)", name)
    if match and match.group(1) in DISCIPLINE_LABELS:
        label_da, label_en = DISCIPLINE_LABELS[match.group(1)]
        if match.group(2) == "12m":
            return f"Kontakter med {label_da} seneste år", f"Contacts with {label_en}, last year"
        if match.group(2) == "ever":
            return f"Kontakter med {label_da} i alt", f"Contacts with {label_en}, all years"
        if match.group(2) == "per_year":
            return f"Kontakter med {label_da} pr. år", f"Contacts with {label_en} per year"
        return (f"Dage siden seneste kontakt med {label_da}",
                f"Days since the last contact with {label_en}")
    spec = feature_spec(name)
    return spec.description_da, spec.description_en


def reference_kind(name: str) -> str:
    """``share`` for yes/no features and support levels, ``median`` otherwise."""
    spec = feature_spec(name)
    return "share" if spec.unit == "flag" or name in SUPPORT_LEVEL_FEATURES else "median"


def format_value(name: str, value: float | None, lang: str = "da") -> str:
    """A feature value as people read it, in the feature's unit.

    Args:
        name: Feature name.
        value: The value; None or NaN means missing.
        lang: ``da`` or ``en``.

    Returns:
        E.g. ``'9 %'``, ``'+1,5 procentpoint'``, ``'ja'``, ``'støttetimer'``.
    """
    da = lang == "da"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "mangler" if da else "missing"
    unit = feature_spec(name).unit

    def number(x: float, decimals: int = 1) -> str:
        text = format_number_da(x, decimals)
        return text if da else text.replace(",", ".")

    if unit == "pct":
        return f"{number(value, 1 if abs(value) < 10 else 0)} %"
    if unit == "pp":
        return f"{_signed(number(value))} " + ("procentpoint" if da else "percentage points")
    if unit == "dage":
        word = ("skoledage" if "spell" in name else "dage") if da else (
            "school days" if "spell" in name else "days")
        return f"{number(value, 0)} {word}"
    if unit == "z":
        return _signed(number(value))
    if unit == "flag":
        return ("ja" if da else "yes") if value >= 0.5 else ("nej" if da else "no")
    if unit == "niveau":
        if name in SUPPORT_LEVEL_FEATURES:
            levels = _SUPPORT_LEVELS_DA if da else _SUPPORT_LEVELS_EN
            return levels.get(int(round(value)), number(value, 0))
        if name == "grade":
            return f"{int(value)}. klasse" if da else f"grade {int(value)}"
        return number(value, 0)
    return number(value)


def _signed(text: str) -> str:
    """``'1,5'`` -> ``'+1,5'``; ``'0'`` and negative numbers unchanged."""
    return text if text.startswith("-") or text == "0" else "+" + text


def format_reference(name: str, reference: float | None, grade: int | None, lang: str = "da") -> str:
    """The reference value with what it is, e.g. ``'kommunens median for 6. klasse: 1 %'``.

    Args:
        name: Feature name.
        reference: Median of the grade (or share with the feature, see :func:`reference_kind`).
        grade: The pupil's grade (None: the whole municipality).
        lang: ``da`` or ``en``.

    Returns:
        The text, or an empty string when there is no reference.
    """
    if reference is None or (isinstance(reference, float) and math.isnan(reference)):
        return ""
    if name == "grade" or name.endswith("_data_available"):
        return ""
    da = lang == "da"
    if reference_kind(name) == "share":
        share = format_number_da(reference * 100, 0) + " %"
        if grade is None:
            return f"andel i kommunen: {share}" if da else f"share in the municipality: {share}"
        return (f"andel i kommunens {grade}. klasser: {share}" if da
                else f"share of the municipality's grade {grade} pupils: {share}")
    shown = format_value(name, reference, lang)
    if grade is None:
        return f"kommunens median: {shown}" if da else f"municipal median: {shown}"
    return (f"kommunens median for {grade}. klasse: {shown}" if da
            else f"municipal median for grade {grade}: {shown}")


def reason_text(
    name: str, value: float | None, reference: float | None, grade: int | None
) -> tuple[str, str]:
    """A reason (or context item) in Danish and English.

    Args:
        name: Feature name.
        value: The pupil's value (None/NaN: missing).
        reference: The reference value for the pupil's grade.
        grade: The pupil's grade.

    Returns:
        (Danish, English), e.g. ``('Ulovligt fravær seneste halvår: 9 % (kommunens median for
        6. klasse: 1 %)', 'Unauthorised absence, last six months: 9 % (municipal median for
        grade 6: 1 %)')``.
    """
    label_da, label_en = feature_label(name)
    texts = []
    for lang, label in (("da", label_da), ("en", label_en)):
        text = f"{label}: {format_value(name, value, lang)}"
        ref = format_reference(name, reference, grade, lang)
        texts.append(f"{text} ({ref})" if ref and value is not None and not _isnan(value) else text)
    return texts[0], texts[1]


def _isnan(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def disciplines_for(families: list[str]) -> list[str]:
    """The disciplines a pupil's reasons point to, UU always included.

    Args:
        families: Families of the pupil's reasons.

    Returns:
        Discipline codes (see ``flags.labels.DISCIPLINE_DA``) in a fixed order.
    """
    codes = set(ALWAYS_DISCIPLINES)
    for family in families:
        codes.update(FAMILY_DISCIPLINES.get(family, ()))
    return [code for code in DISCIPLINE_ORDER if code in codes]


def select_reasons(
    explanation: pd.DataFrame | list[tuple[str, float, float, str, bool]],
    references: dict[str, float],
    grade: int | None,
    max_reasons: int = MAX_REASONS,
    min_contribution: float = MIN_CONTRIBUTION,
) -> tuple[list[Reason], list[Reason]]:
    """Choose one pupil's reasons and context items.

    Args:
        explanation: The pupil's rows of ``explanations_pupil_term`` (``feature``,
            ``feature_value``, ``contribution``, ``family``, ``actionable``), as a frame or as
            tuples in that order.
        references: Feature -> reference value for the pupil's grade.
        grade: The pupil's grade.
        max_reasons: Reasons at most.
        min_contribution: Smallest family and feature contribution (log-odds) named.

    Returns:
        (reasons, context). Reasons are actionable features with a value that raise the
        risk, chosen family first (see the module docstring); context items are the largest
        risk-raising ``kontekst`` features and missing values. A reason's value lies on
        the risky side of its reference (:func:`on_risky_side`).
    """
    if isinstance(explanation, pd.DataFrame):
        columns = ["feature", "feature_value", "contribution", "family", "actionable"]
        rows = list(explanation[columns].itertuples(index=False, name=None))
    else:
        rows = explanation
    candidates, context_rows = [], []
    family_totals: dict[str, float] = {}
    for feature, value, contribution, family, actionable in rows:
        missing = value is None or value != value  # NaN
        if family in REASON_FAMILIES and actionable and not missing:
            candidates.append((feature, value, contribution, family))
            family_totals[family] = family_totals.get(family, 0.0) + contribution
        elif contribution >= min_contribution:
            context_rows.append((feature, value, contribution, family))
    strong = sorted((f for f, total in family_totals.items() if total >= min_contribution),
                    key=lambda f: (-family_totals[f], f))
    positive = sorted(
        (c for c in candidates
         if c[2] >= min_contribution and on_risky_side(c[0], c[1], references.get(c[0]))),
        key=lambda c: (-c[2], c[0]))
    chosen: list[tuple[str, float, float, str]] = []
    for family in strong:  # first pass: the best feature of each strong family
        best = [c for c in positive if c[3] == family]
        if best and len(chosen) < max_reasons:
            chosen.append(best[0])
    for family in strong:  # second pass: a second feature of the strongest families
        extra = [c for c in positive if c[3] == family and c not in chosen]
        if extra and len(chosen) < max_reasons:
            chosen.append(extra[0])
    rank = {family: i for i, family in enumerate(strong)}
    chosen.sort(key=lambda c: (rank[c[3]], -c[2], c[0]))
    reasons = [_reason(f, v, c, fam, references, grade, family_totals[fam]) for f, v, c, fam in chosen]
    context_rows.sort(key=lambda c: (-c[2], c[0]))
    context = [_reason(f, v, c, fam, references, grade, c)
               for f, v, c, fam in context_rows[:MAX_CONTEXT]]
    return reasons, context


def on_risky_side(name: str, value: float, reference: float | None) -> bool:
    """Whether a value lies on the risky side of its reference, so the reason can be checked.

    A feature whose direction is known (``monotone`` +1 or -1 in the catalogue) is named only
    when the pupil's value is above (below) the reference; a yes/no feature or support level
    only when the pupil has it. Features without a known direction or reference pass.

    Args:
        name: Feature name.
        value: The pupil's value.
        reference: The reference value of the pupil's grade.

    Returns:
        True when the reason reads as a risk next to its reference.
    """
    monotone = feature_spec(name).monotone
    if reference_kind(name) == "share":
        return value > 0 if monotone >= 0 else value <= 0
    if reference is None or pd.isna(reference) or monotone == 0:
        return True
    return value > reference if monotone > 0 else value < reference


def _reason(name: str, value: float | None, contribution: float, family: str,
            references: dict[str, float], grade: int | None, family_contribution: float) -> Reason:
    value = None if value is None or pd.isna(value) else float(value)
    reference = references.get(name)
    reference = None if reference is None or pd.isna(reference) else float(reference)
    text_da, text_en = reason_text(name, value, reference, grade)
    return Reason(
        feature=name, family=str(family), value=value, reference=reference,
        reference_kind=reference_kind(name), contribution=round(float(contribution), 6),
        family_contribution=round(float(family_contribution), 6), text_da=text_da, text_en=text_en,
    )


def reasons_to_json(reasons: list[Reason]) -> str:
    """Serialise reasons for the ``reasons_da`` / ``context_da`` columns (UTF-8 JSON)."""
    return json.dumps([asdict(r) for r in reasons], ensure_ascii=False)


def reasons_from_json(text: str | None) -> list[Reason]:
    """Read reasons back from a ``reasons_da`` / ``context_da`` column."""
    if not text:
        return []
    return [Reason(**item) for item in json.loads(text)]


def family_label(family: str, lang: str = "da") -> str:
    """The Danish (or English) name of a feature family."""
    da, en = FAMILIES[family]
    return da if lang == "da" else en


def reasons_for_pupils(
    explanations: pd.DataFrame,
    pupils: pd.DataFrame,
    references: pd.DataFrame,
    max_reasons: int = MAX_REASONS,
    min_contribution: float = MIN_CONTRIBUTION,
) -> pd.DataFrame:
    """Reasons, context and disciplines for many pupils.

    Args:
        explanations: Rows of ``explanations_pupil_term`` for (at least) these pupils.
        pupils: ``pupil_id`` and ``grade`` of the pupils to explain.
        references: ``grade``, ``feature``, ``reference`` (from :func:`reference_values`).
        max_reasons: Reasons at most per pupil.
        min_contribution: Smallest contribution named (log-odds).

    Returns:
        One row per pupil: ``pupil_id``, ``reasons_da`` (JSON), ``context_da`` (JSON),
        ``reason_families`` (JSON list), ``disciplines`` (JSON list of codes),
        ``risk_families`` (count of families that raise the risk by at least
        ``min_contribution``).
    """
    refs: dict[int, dict[str, float]] = {}
    for grade, group in references.groupby("grade"):
        refs[int(grade)] = dict(zip(group["feature"], group["reference"], strict=True))
    grades = dict(zip(pupils["pupil_id"], pupils["grade"], strict=True))
    wanted = explanations[explanations["pupil_id"].isin(grades)]
    by_pupil: dict[str, list[tuple[str, float, float, str, bool]]] = {}
    columns = ["pupil_id", "feature", "feature_value", "contribution", "family", "actionable"]
    for pupil_id, *row in wanted[columns].itertuples(index=False, name=None):
        by_pupil.setdefault(pupil_id, []).append(tuple(row))
    out = []
    for pupil_id in sorted(by_pupil):
        rows = by_pupil[pupil_id]
        grade = None if pd.isna(grades[pupil_id]) else int(grades[pupil_id])
        reasons, context = select_reasons(rows, refs.get(grade, {}) if grade is not None else {},
                                          grade, max_reasons, min_contribution)
        families = list(dict.fromkeys(r.family for r in reasons))
        totals: dict[str, float] = {}
        for _, value, contribution, family, actionable in rows:
            if family in REASON_FAMILIES and actionable and not pd.isna(value):
                totals[family] = totals.get(family, 0.0) + contribution
        out.append({
            "pupil_id": pupil_id,
            "reasons_da": reasons_to_json(reasons),
            "context_da": reasons_to_json(context),
            "reason_families": json.dumps(families),
            "disciplines": json.dumps(disciplines_for(families)),
            "risk_families": sum(total >= min_contribution for total in totals.values()),
        })
    columns = ["pupil_id", "reasons_da", "context_da", "reason_families", "disciplines", "risk_families"]
    return pd.DataFrame(out, columns=columns)


def reference_values(explanations: pd.DataFrame, pupils: pd.DataFrame) -> pd.DataFrame:
    """Reference values per grade and feature from a run's explanations (pandas version).

    The flow uses the SQL version (``flags/reference_values.sql``) over the warehouse; this one
    serves tests and ``ews explain``.

    Args:
        explanations: Rows of ``explanations_pupil_term`` of one run (every scored pupil).
        pupils: ``pupil_id`` and ``grade`` of every scored pupil.

    Returns:
        ``grade``, ``feature``, ``reference`` (median of the grade; share with the feature for
        yes/no features and support levels), ``pupils`` (with a value).
    """
    frame = explanations[["pupil_id", "feature", "feature_value"]].merge(
        pupils[["pupil_id", "grade"]], on="pupil_id", how="inner")
    frame = frame[frame["feature_value"].notna()]
    grouped = frame.groupby(["grade", "feature"])["feature_value"]
    result = pd.DataFrame({
        "median": grouped.median(),
        "share": grouped.apply(lambda s: float((s > 0).mean())),
        "pupils": grouped.size(),
    }).reset_index()
    kinds = result["feature"].map(reference_kind)
    result["reference"] = result["median"].where(kinds == "median", result["share"])
    return result[["grade", "feature", "reference", "pupils"]]
