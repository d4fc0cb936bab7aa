"""Canonical columns per source kind: the contract between the exports and the warehouse.

The config maps each export's headers to these names; readers type the values by these
types; the ``clean_*`` tables have exactly these columns (plus ``source_file`` and
``source_line``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["cpr", "string", "int", "float", "date", "school_year"]
#: Legal category of a column (GDPR): ``ordinary`` (art. 6), ``art9`` (special categories:
#: health, ethnic origin), ``confidential`` (social matters, databeskyttelsesloven § 8, treated
#: like art. 9 here) and ``cpr`` (databeskyttelsesloven § 11: read only to be pseudonymised).
LegalCategory = Literal["ordinary", "art9", "confidential", "cpr"]


@dataclass(frozen=True)
class Column:
    """One canonical column.

    Attributes:
        name: Canonical name.
        type: How the raw text is typed.
        required: Whether an empty value sends the row to quarantine.
        allowed: Canonical values allowed (after the config's value mapping), if restricted.
        identity: Whether the column identifies a person (names): stored only in the
            identity store, never in the warehouse.
        category: Its legal category (:data:`LegalCategory`); the records of processing
            (``ews records``) and ``docs/data-contract.md`` are generated from or checked
            against it, and a test fails for a column without one.
        category_note: Why, when it is not ``ordinary`` (English, shown as it is by ``ews records``).
    """

    name: str
    type: ColumnType
    required: bool = True
    allowed: tuple[str | int, ...] | None = None
    identity: bool = False
    category: LegalCategory | None = None
    category_note: str = ""


MARKS_7_POINT = (-3, 0, 2, 4, 7, 10, 12)
DISCIPLINES = ("ppr", "socialraadgiver", "sundhedsplejerske", "talehoerelaerer", "ergoterapeut", "uu")

#: Why a column is not ordinary personal data (``Column.category_note``).
_ORIGIN = "ethnic origin; fairness audit only, never a model input"
_ILLNESS = "health (absence due to illness)"
_CONTACT_DATE = ("as the discipline: health (PPR, health nurse, speech teacher, occupational therapist) "
                 "or social matters (social worker)")
_DISCIPLINE = "health disciplines (art. 9) and social worker (confidential, § 8); UU is ordinary"
_NOTIFICATION = "a notification of concern (underretning) concerns social matters"
_SUPPORT = "special-needs support, treated as health-related"
_SUPPORT_DATES = "dates of special-needs support"

SOURCE_KINDS: dict[str, tuple[Column, ...]] = {
    "pupils": (
        Column("cpr", "cpr", category="cpr"),
        Column("first_name", "string", identity=True, category="ordinary"),
        Column("last_name", "string", identity=True, category="ordinary"),
        Column("school_code", "string", category="ordinary"),
        Column("grade", "int", category="ordinary"),
        Column("class_label", "string", category="ordinary"),
        Column("sex", "string", allowed=("F", "M"), category="ordinary"),
        Column("origin", "string", required=False, allowed=("dansk", "indvandrer", "efterkommer"),
               category="art9", category_note=_ORIGIN),
        Column("enrolled_from", "date", category="ordinary"),
        Column("enrolled_to", "date", required=False, category="ordinary"),
    ),
    "absence": (
        Column("cpr", "cpr", category="cpr"),
        Column("school_code", "string", category="ordinary"),
        Column("period_start", "date", category="ordinary"),
        Column("period_end", "date", category="ordinary"),
        Column("school_days", "float", category="ordinary"),
        Column("illness_days", "float", category="art9", category_note=_ILLNESS),
        Column("authorised_days", "float", category="ordinary"),
        Column("unauthorised_days", "float", category="ordinary"),
        Column("late_arrivals", "int", category="ordinary"),
    ),
    "tests": (
        Column("cpr", "cpr", category="cpr"),
        Column("school_code", "string", category="ordinary"),
        Column("grade", "int", category="ordinary"),
        Column("subject", "string", allowed=("dansk_laesning", "matematik"), category="ordinary"),
        Column("test_date", "date", category="ordinary"),
        Column("score", "float", category="ordinary"),
        Column("scale", "string", allowed=("NT", "OVERGANG", "FAERDIGHED"), category="ordinary"),
    ),
    "marks": (
        Column("cpr", "cpr", category="cpr"),
        Column("school_code", "string", category="ordinary"),
        Column("grade", "int", category="ordinary"),
        Column("subject", "string", allowed=("dansk", "matematik", "engelsk"), category="ordinary"),
        Column("mark_kind", "string", allowed=("standpunkt", "afgangsproeve"), category="ordinary"),
        Column("mark_date", "date", category="ordinary"),
        Column("mark", "int", allowed=MARKS_7_POINT, category="ordinary"),
    ),
    "contacts": (
        Column("cpr", "cpr", category="cpr"),
        Column("contact_date", "date", category="art9", category_note=_CONTACT_DATE),
        Column("discipline", "string", allowed=DISCIPLINES, category="art9", category_note=_DISCIPLINE),
        Column("contact_type", "string", allowed=("kontakt", "underretning"),
               category="confidential", category_note=_NOTIFICATION),
    ),
    "support": (
        Column("cpr", "cpr", category="cpr"),
        Column("support_type", "string", allowed=("stoettetimer", "specialklasse", "specialskole"),
               category="art9", category_note=_SUPPORT),
        Column("start_date", "date", category="art9", category_note=_SUPPORT_DATES),
        Column("end_date", "date", required=False, category="art9", category_note=_SUPPORT_DATES),
    ),
    "upv": (
        Column("cpr", "cpr", category="cpr"),
        Column("school_code", "string", category="ordinary"),
        Column("assessed_date", "date", category="ordinary"),
        Column("outcome", "string", allowed=("ikke_parat", "parat"), category="ordinary"),
    ),
    "designation": (
        Column("cpr", "cpr", category="cpr"),
        Column("school_year", "school_year", category="ordinary"),
        Column("assessed_date", "date", category="ordinary"),
        Column("outcome", "string", allowed=("ja", "nej"), category="ordinary"),
    ),
}

#: Which clean table each source kind loads into.
CLEAN_TABLE = {
    "pupils": "clean_pupils",
    "absence": "clean_absence",
    "tests": "clean_tests",
    "marks": "clean_marks",
    "contacts": "clean_contacts",
    "support": "clean_support",
    "upv": "clean_outcomes",
    "designation": "clean_outcomes",
}
