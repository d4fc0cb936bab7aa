"""Canonical columns per source kind: the contract between the exports and the warehouse.

The config maps each export's headers to these names; readers type the values by these
types; the ``clean_*`` tables have exactly these columns (plus ``source_file`` and
``source_line``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["cpr", "string", "int", "float", "date", "school_year"]


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
    """

    name: str
    type: ColumnType
    required: bool = True
    allowed: tuple[str | int, ...] | None = None
    identity: bool = False


MARKS_7_POINT = (-3, 0, 2, 4, 7, 10, 12)
DISCIPLINES = ("ppr", "socialraadgiver", "sundhedsplejerske", "talehoerelaerer", "ergoterapeut", "uu")

SOURCE_KINDS: dict[str, tuple[Column, ...]] = {
    "pupils": (
        Column("cpr", "cpr"),
        Column("first_name", "string", identity=True),
        Column("last_name", "string", identity=True),
        Column("school_code", "string"),
        Column("grade", "int"),
        Column("class_label", "string"),
        Column("sex", "string", allowed=("F", "M")),
        Column("origin", "string", required=False, allowed=("dansk", "indvandrer", "efterkommer")),
        Column("enrolled_from", "date"),
        Column("enrolled_to", "date", required=False),
    ),
    "absence": (
        Column("cpr", "cpr"),
        Column("school_code", "string"),
        Column("period_start", "date"),
        Column("period_end", "date"),
        Column("school_days", "float"),
        Column("illness_days", "float"),
        Column("authorised_days", "float"),
        Column("unauthorised_days", "float"),
        Column("late_arrivals", "int"),
    ),
    "tests": (
        Column("cpr", "cpr"),
        Column("school_code", "string"),
        Column("grade", "int"),
        Column("subject", "string", allowed=("dansk_laesning", "matematik")),
        Column("test_date", "date"),
        Column("score", "float"),
        Column("scale", "string", allowed=("NT", "OVERGANG", "FAERDIGHED")),
    ),
    "marks": (
        Column("cpr", "cpr"),
        Column("school_code", "string"),
        Column("grade", "int"),
        Column("subject", "string", allowed=("dansk", "matematik", "engelsk")),
        Column("mark_kind", "string", allowed=("standpunkt", "afgangsproeve")),
        Column("mark_date", "date"),
        Column("mark", "int", allowed=MARKS_7_POINT),
    ),
    "contacts": (
        Column("cpr", "cpr"),
        Column("contact_date", "date"),
        Column("discipline", "string", allowed=DISCIPLINES),
        Column("contact_type", "string", allowed=("kontakt", "underretning")),
    ),
    "support": (
        Column("cpr", "cpr"),
        Column("support_type", "string", allowed=("stoettetimer", "specialklasse", "specialskole")),
        Column("start_date", "date"),
        Column("end_date", "date", required=False),
    ),
    "upv": (
        Column("cpr", "cpr"),
        Column("school_code", "string"),
        Column("assessed_date", "date"),
        Column("outcome", "string", allowed=("ikke_parat", "parat")),
    ),
    "designation": (
        Column("cpr", "cpr"),
        Column("school_year", "school_year"),
        Column("assessed_date", "date"),
        Column("outcome", "string", allowed=("ja", "nej")),
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
