"""The feature catalogue: every model input, its family, unit and meaning in Danish and English.

This module is the single source of truth for which columns are features. The SQL in
``features/*.sql`` computes exactly these columns (a test checks both ways), the model
trains on them in this order, the explanations group them by family, and
``docs/features.md`` is generated from this list (:func:`render_markdown`).

Sex and origin are never features: they are used only to audit fairness.

Windows are counted back from the as-of date and use only data dated strictly before it:
``6m`` is the last 182 days ("seneste halve år", roughly the last term), ``12m`` the last
365 days ("seneste år"), ``all`` all history in the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Family = Literal["fravaer", "laering", "trivsel_stoette", "mobilitet", "kontekst"]
Unit = Literal["pct", "pp", "dage", "antal", "z", "karakter", "flag", "niveau"]

#: Family -> (Danish label, English label). ``kontekst`` features are never offered as reasons.
FAMILIES: dict[str, tuple[str, str]] = {
    "fravaer": ("Fravær", "Attendance"),
    "laering": ("Læring", "Learning"),
    "trivsel_stoette": ("Trivsel og støtte", "Wellbeing and support"),
    "mobilitet": ("Mobilitet", "Mobility"),
    "kontekst": ("Kontekst og datagrundlag", "Context and data availability"),
}

#: Source kinds (``ews.schema.SOURCE_KINDS``) that features are computed from.
FEATURE_SOURCE_KINDS = ("pupils", "absence", "tests", "marks", "contacts", "support")

#: Attributes that may only be used to audit fairness, never as model inputs.
PROTECTED_ATTRIBUTES = ("sex", "origin")

DISCIPLINE_LABELS: dict[str, tuple[str, str]] = {
    "ppr": ("PPR", "educational psychology (PPR)"),
    "socialraadgiver": ("socialrådgiver", "social worker"),
    "sundhedsplejerske": ("sundhedsplejerske", "health nurse"),
    "talehoerelaerer": ("talehørelærer", "speech and hearing teacher"),
    "ergoterapeut": ("ergoterapeut", "occupational therapist"),
    "uu": ("UU-vejleder", "UU youth guidance"),
}


@dataclass(frozen=True)
class FeatureSpec:
    """One model input.

    Attributes:
        name: Column name in ``features_pupil_term`` and in the design matrix.
        family: ``fravaer``, ``laering``, ``trivsel_stoette``, ``mobilitet`` or ``kontekst``
            (school-level or data-availability features, never offered as reasons).
        description_da: What the value is, in Danish, for networks and UU consultants.
        description_en: The same in English, for the docs.
        unit: ``pct`` (percent of school days, 0-100), ``pp`` (percentage points per term),
            ``dage`` (days), ``antal`` (count), ``z`` (standard deviations from the mean of the
            same test sitting), ``karakter`` (7-point scale), ``flag`` (0/1), ``niveau``
            (an ordered level).
        actionable: Whether a network can act on it (a reason worth naming); context and
            data-availability features are not.
        monotone: +1 when a higher value never lowers the risk, -1 when it never raises it,
            0 when the direction is not known in advance. Used as the gradient-boosted
            model's monotonic constraint.
        sources: The source kinds the value is computed from: without any of them the
            feature is missing (or constant) for every pupil. Set from the name by
            :data:`SOURCE_RULES`.
    """

    name: str
    family: Family
    description_da: str
    description_en: str
    unit: Unit
    actionable: bool
    monotone: Literal[-1, 0, 1]
    sources: tuple[str, ...] = ()


def _absence() -> list[FeatureSpec]:
    kinds = {
        "total": ("samlet fravær", "total absence", 1),
        "illness": ("sygefravær", "illness absence", 1),
        "authorised": ("lovligt fravær", "authorised absence", 0),
        "unauthorised": ("ulovligt fravær", "unauthorised absence", 1),
    }
    windows = {
        "6m": ("det seneste halve år", "over the last six months"),
        "12m": ("det seneste år", "over the last year"),
        "all": ("i hele skoleforløbet", "over all school years on record"),
    }
    specs = []
    for window, (window_da, window_en) in windows.items():
        for kind, (kind_da, kind_en, monotone) in kinds.items():
            specs.append(FeatureSpec(
                name=f"absence_{kind}_pct_{window}",
                family="fravaer",
                description_da=f"{kind_da.capitalize()} {window_da} i procent af skoledagene",
                description_en=f"{kind_en.capitalize()} {window_en}, percent of school days",
                unit="pct",
                actionable=True,
                monotone=monotone,  # type: ignore[arg-type]
            ))
    return specs


def _contacts() -> list[FeatureSpec]:
    specs = []
    for discipline, (label_da, label_en) in DISCIPLINE_LABELS.items():
        specs += [
            FeatureSpec(
                name=f"contacts_{discipline}_12m",
                family="trivsel_stoette",
                description_da=f"Kontakter med {label_da} det seneste år",
                description_en=f"Contacts with {label_en} over the last year",
                unit="antal",
                actionable=True,
                monotone=1,
            ),
            FeatureSpec(
                name=f"contacts_{discipline}_ever",
                family="trivsel_stoette",
                description_da=f"Kontakter med {label_da} i alt",
                description_en=f"Contacts with {label_en}, all years",
                unit="antal",
                actionable=True,
                monotone=1,
            ),
            FeatureSpec(
                name=f"contacts_{discipline}_per_year",
                family="trivsel_stoette",
                description_da=f"Kontakter med {label_da} pr. år i skoleforløbet",
                description_en=f"Contacts with {label_en} per year on record",
                unit="antal",
                actionable=True,
                monotone=1,
            ),
            FeatureSpec(
                name=f"contacts_{discipline}_days_since",
                family="trivsel_stoette",
                description_da=f"Dage siden seneste kontakt med {label_da} (tom: ingen kontakt)",
                description_en=f"Days since the last contact with {label_en} (empty: none)",
                unit="dage",
                actionable=True,
                monotone=0,
            ),
        ]
    return specs


FEATURES: tuple[FeatureSpec, ...] = (
    *_absence(),
    FeatureSpec(
        "absence_trend_pp", "fravaer",
        "Udvikling i samlet fravær over de seneste fire halvår (procentpoint pr. halvår)",
        "Trend of total absence over the last four terms (percentage points per term)",
        "pp", True, 1,
    ),
    FeatureSpec(
        "absence_longest_spell_days_12m", "fravaer",
        "Længste sammenhængende fraværsperiode det seneste år (skoledage)",
        "Longest continuous absence spell over the last year (school days)",
        "dage", True, 1,
    ),
    FeatureSpec(
        "absence_concerning_12m", "fravaer",
        "Bekymrende fravær: over 10 % af skoledagene det seneste år",
        "Concerning absence ('bekymrende fravær'): above 10 % of school days over the last year",
        "flag", True, 1,
    ),
    FeatureSpec(
        "absence_concerning_terms", "fravaer",
        "Antal halvår med bekymrende fravær (over 10 %)",
        "Number of terms with concerning absence (above 10 %)",
        "antal", True, 1,
    ),
    FeatureSpec(
        "late_arrivals_per_100_days_6m", "fravaer",
        "For sent fremmøde pr. 100 skoledage det seneste halve år",
        "Late arrivals per 100 school days over the last six months",
        "antal", True, 1,
    ),
    FeatureSpec(
        "late_arrivals_per_100_days_12m", "fravaer",
        "For sent fremmøde pr. 100 skoledage det seneste år",
        "Late arrivals per 100 school days over the last year",
        "antal", True, 1,
    ),
    FeatureSpec(
        "test_reading_latest_z", "laering",
        "Seneste nationale test i dansk/læsning (standardiseret mod samme testrunde)",
        "Latest national reading test (standardised against the same test sitting)",
        "z", True, -1,
    ),
    FeatureSpec(
        "test_reading_change_z", "laering",
        "Ændring fra forrige til seneste test i dansk/læsning",
        "Change from the previous to the latest reading test",
        "z", True, -1,
    ),
    FeatureSpec(
        "test_math_latest_z", "laering",
        "Seneste nationale test i matematik (standardiseret mod samme testrunde)",
        "Latest national mathematics test (standardised against the same test sitting)",
        "z", True, -1,
    ),
    FeatureSpec(
        "test_math_change_z", "laering",
        "Ændring fra forrige til seneste test i matematik",
        "Change from the previous to the latest mathematics test",
        "z", True, -1,
    ),
    FeatureSpec(
        "test_mean_z", "laering",
        "Gennemsnit af alle nationale test (dansk/læsning og matematik, standardiseret)",
        "Mean of all national tests on record (reading and mathematics, standardised)",
        "z", True, -1,
    ),
    FeatureSpec(
        "marks_mean_latest", "laering",
        "Gennemsnit af seneste standpunktskarakterer (dansk, matematik, engelsk)",
        "Mean of the latest standing marks (Danish, mathematics, English)",
        "karakter", True, -1,
    ),
    FeatureSpec(
        "marks_below_02_count", "laering",
        "Antal fag med seneste standpunktskarakter under 02",
        "Number of subjects whose latest standing mark is below 02",
        "antal", True, 1,
    ),
    FeatureSpec(
        "marks_mean_first", "laering",
        "Gennemsnit af første standpunktskarakterer",
        "Mean of each subject's first standing mark on record (Danish, mathematics, English)",
        "karakter", True, -1,
    ),
    FeatureSpec(
        "marks_change", "laering",
        "Ændring i standpunktskarakterer fra første til seneste",
        "Change from the first to the latest standing mark, averaged over the subjects with at"
        " least two marks (empty: no subject has two)",
        "karakter", True, -1,
    ),
    FeatureSpec(
        "marks_mean_12m", "laering",
        "Gennemsnit af standpunktskarakterer det seneste år",
        "Mean of all standing marks given over the last year (all subjects)",
        "karakter", True, -1,
    ),
    *_contacts(),
    FeatureSpec(
        "notifications_12m", "trivsel_stoette",
        "Underretninger det seneste år",
        "Notifications of concern (underretninger) over the last year",
        "antal", True, 1,
    ),
    FeatureSpec(
        "notifications_ever", "trivsel_stoette",
        "Underretninger i alt",
        "Notifications of concern, all years",
        "antal", True, 1,
    ),
    FeatureSpec(
        "notifications_per_year", "trivsel_stoette",
        "Underretninger pr. år i skoleforløbet",
        "Notifications of concern per year on record",
        "antal", True, 1,
    ),
    FeatureSpec(
        "support_active_level", "trivsel_stoette",
        "Aktuel specialpædagogisk støtte (0 ingen, 1 støttetimer, 2 specialklasse, 3 specialskole)",
        "Current special-needs support (0 none, 1 support hours, 2 special class, 3 special school)",
        "niveau", True, 1,
    ),
    FeatureSpec(
        "support_ever", "trivsel_stoette",
        "Har nogensinde haft specialpædagogisk støtte",
        "Has ever had special-needs support",
        "flag", True, 1,
    ),
    FeatureSpec(
        "support_max_level", "trivsel_stoette",
        "Højeste specialpædagogiske støtte hidtil (0 ingen, 1 støttetimer, 2 specialklasse, 3 specialskole)",
        "Highest special-needs support so far (0 none, 1 support hours, 2 special class, 3 special school)",
        "niveau", True, 1,
    ),
    FeatureSpec(
        "school_moves_ever", "mobilitet",
        "Antal skoleskift i alt",
        "Number of school moves, all years",
        "antal", True, 1,
    ),
    FeatureSpec(
        "school_moves_12m", "mobilitet",
        "Skoleskift det seneste år",
        "School moves over the last year",
        "antal", True, 1,
    ),
    FeatureSpec(
        "days_at_current_school", "mobilitet",
        "Dage på nuværende skole",
        "Days enrolled at the current school",
        "dage", True, 0,
    ),
    FeatureSpec(
        "arrived_from_outside", "mobilitet",
        "Kom til kommunens skoler efter skolestart",
        "Joined the municipality's schools after school start",
        "flag", True, 1,
    ),
    FeatureSpec(
        "grade", "kontekst",
        "Klassetrin på skæringsdatoen",
        "Grade on the as-of date",
        "niveau", False, 0,
    ),
    FeatureSpec(
        "years_on_record", "kontekst",
        "År med data om eleven (mindst et halvt)",
        "Years of records on the pupil (at least half a year)",
        "antal", False, 0,
    ),
    FeatureSpec(
        "school_absence_pct_12m", "kontekst",
        "Skolens gennemsnitlige fravær det seneste år (tom: skolen indberetter ikke fravær)",
        "The school's mean absence over the last year (empty: the school reports no absence)",
        "pct", False, 0,
    ),
    FeatureSpec(
        "absence_data_available", "kontekst",
        "Der findes fraværsdata det seneste år (0: mangler, ikke nul)",
        "Absence data exist for the last year (0: missing, not zero)",
        "flag", False, 0,
    ),
    FeatureSpec(
        "test_data_available", "kontekst",
        "Der findes mindst én national test",
        "At least one national test is on record",
        "flag", False, 0,
    ),
    FeatureSpec(
        "marks_data_available", "kontekst",
        "Der findes standpunktskarakterer",
        "Standing marks are on record",
        "flag", False, 0,
    ),
)

#: Name prefix (or exact name) -> the source kinds a feature is computed from. Features per
#: year on record also need the pupils source (the years on record).
SOURCE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("absence_", ("absence",)),
    ("late_arrivals_", ("absence",)),
    ("school_absence_", ("absence",)),
    ("test_", ("tests",)),
    ("marks_", ("marks",)),
    ("contacts_", ("contacts",)),
    ("notifications_", ("contacts",)),
    ("support_", ("support",)),
    ("school_moves_", ("pupils",)),
    ("days_at_current_school", ("pupils",)),
    ("arrived_from_outside", ("pupils",)),
    ("grade", ("pupils",)),
    ("years_on_record", ("pupils",)),
)


def _sources_of(name: str) -> tuple[str, ...]:
    for prefix, kinds in SOURCE_RULES:
        if name == prefix or (prefix.endswith("_") and name.startswith(prefix)):
            return (*kinds, "pupils") if name.endswith("_per_year") else kinds
    raise RuntimeError(f"features/catalogue.py: no source rule for feature '{name}'")


FEATURES = tuple(replace(spec, sources=_sources_of(spec.name)) for spec in FEATURES)
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
_BY_NAME: dict[str, FeatureSpec] = {spec.name: spec for spec in FEATURES}

if len(_BY_NAME) != len(FEATURES):  # pragma: no cover - guarded by a test as well
    raise RuntimeError("features/catalogue.py: duplicated feature names")
if set(FEATURE_NAMES) & set(PROTECTED_ATTRIBUTES):  # pragma: no cover
    raise RuntimeError("features/catalogue.py: a protected attribute is listed as a feature")


def feature_spec(name: str) -> FeatureSpec:
    """The catalogue entry of one feature.

    Args:
        name: Feature column name.

    Returns:
        Its spec.

    Raises:
        KeyError: When the name is not a feature, naming the name.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"'{name}' is not in the feature catalogue (features/catalogue.py)") from None


def features_by_source() -> dict[str, tuple[str, ...]]:
    """Source kind -> the features computed from it (in catalogue order).

    Returns:
        One entry per kind of :data:`FEATURE_SOURCE_KINDS`.
    """
    return {kind: tuple(s.name for s in FEATURES if kind in s.sources)
            for kind in FEATURE_SOURCE_KINDS}


def monotone_constraints(names: tuple[str, ...] | list[str] = FEATURE_NAMES) -> list[int]:
    """Monotonic constraints in the order of ``names`` (for ``monotonic_cst``)."""
    return [feature_spec(name).monotone for name in names]


def render_markdown() -> str:
    """The feature catalogue as Markdown (``docs/features.md`` is this text).

    Returns:
        A Markdown document with one table per family.
    """
    lines = [
        "# Feature catalogue",
        "",
        "Generated from `features/catalogue.py` by `python -m features.catalogue > docs/features.md`;"
        " do not edit by hand.",
        "",
        "Every feature is computed as of a date (the term's as-of date) in DuckDB SQL"
        " (`features/*.sql`) from the `clean_*` tables, using only data dated strictly"
        " before that date. Windows: `6m` = the last 182 days (about one term), `12m` = the"
        " last 365 days, `all` = every school year on record. An empty value means *missing*,"
        " never zero: a school that does not report absence has empty absence features and"
        " `absence_data_available = 0`.",
        "",
        "Sex and origin are never features; they are used only to audit fairness"
        " (`docs/model.md`).",
        "",
        "Monotone: `+1` a higher value never lowers the risk, `-1` never raises it, `0` no"
        " constraint. Actionable: a network can act on it, so it may be named as a reason;"
        " `kontekst` features never are. Sources: the source kinds (`docs/sources.md`) the"
        " value is computed from; a run names the features that a municipality's missing"
        " sources leave empty (the manifest's `source_coverage`).",
        "",
        "Standing marks are used from whatever grade the municipality exports them (by law"
        " from grade 8; some systems export earlier marks, declared with the marks source's"
        " `grades` in the config). The mark history: the first mark of each subject, the"
        " latest, the change between them and the mean over the last year.",
        "",
    ]
    for family, (label_da, label_en) in FAMILIES.items():
        specs = [s for s in FEATURES if s.family == family]
        lines += [
            f"## {label_en} (`{family}`, *{label_da}*)",
            "",
            "| feature | unit | monotone | actionable | sources | Danish | English |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in specs:
            sign = {1: "+1", -1: "-1", 0: "0"}[s.monotone]
            lines.append(
                f"| `{s.name}` | {s.unit} | {sign} | {'yes' if s.actionable else 'no'} | "
                f"{', '.join(s.sources)} | {s.description_da} | {s.description_en} |"
            )
        lines.append("")
    lines += [
        "## Glossary",
        "",
        "| Danish | English |",
        "|---|---|",
        "| fravær (sygdom, lovligt, ulovligt) | absence (illness, authorised, unauthorised) |",
        "| bekymrende fravær | concerning absence (above 10 % of school days) |",
        "| standpunktskarakter | standing mark (teacher's mark, from grade 8 by law) |",
        "| underretning | notification of concern to the municipality |",
        "| specialpædagogisk støtte | special-needs support |",
        "| skæringsdato | as-of date |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
