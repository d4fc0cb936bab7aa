"""Outcome definitions: named, versioned, and never mixed across the 2024/25 break.

UPV (the grade-8 education-readiness assessment) was abolished from school year 2024/25
(bill L 71, 2023-24). A model is trained on exactly one definition, named in the config
(``outcome:``); its labels come only from that definition and only from the school years in
which the definition exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from ews.sql import load_sql
from ews.terms import parse_school_year


class OutcomeError(Exception):
    """Labels cannot be produced for a definition, or would mix definitions."""


@dataclass(frozen=True)
class OutcomeDefinition:
    """A named, versioned outcome.

    Attributes:
        name: The name used in the config and in ``clean_outcomes.outcome_definition``.
        version: Bumped whenever what counts as the adverse outcome changes.
        description_da: The adverse outcome, in Danish.
        description_en: The same in English.
        source: Where the labels come from.
        first_school_year: First school year in which the definition exists (None: any).
        last_school_year: Last school year in which it exists (None: still in force).
    """

    name: str
    version: int
    description_da: str
    description_en: str
    source: str
    first_school_year: str | None
    last_school_year: str | None

    @property
    def versioned_name(self) -> str:
        """``name@vN``, as stored with every model."""
        return f"{self.name}@v{self.version}"

    def covers(self, school_year: str) -> bool:
        """Whether the definition exists in a school year."""
        year = parse_school_year(school_year)
        if self.first_school_year and year < parse_school_year(self.first_school_year):
            return False
        return not (self.last_school_year and year > parse_school_year(self.last_school_year))


OUTCOMES: dict[str, OutcomeDefinition] = {
    "upv_ikke_uddannelsesparat": OutcomeDefinition(
        name="upv_ikke_uddannelsesparat",
        version=1,
        description_da="Vurderet ikke-uddannelsesparat ved uddannelsesparathedsvurderingen i 8. klasse",
        description_en="Assessed not education-ready (ikke-uddannelsesparat) at the grade-8 UPV",
        source="clean_outcomes (UPV export)",
        first_school_year=None,
        last_school_year="2023/24",
    ),
    "afgangsproeve_krav_ikke_opfyldt": OutcomeDefinition(
        name="afgangsproeve_krav_ikke_opfyldt",
        version=1,
        description_da="Opfylder ikke karakterkravet: under 02 i dansk eller matematik ved afgangsprøven",
        description_en="Misses the grade requirement: below 02 in Danish or mathematics at the leaving exam",
        source="clean_marks (mark_kind = 'afgangsproeve')",
        first_school_year=None,
        last_school_year=None,
    ),
    "maalrettet_indsats": OutcomeDefinition(
        name="maalrettet_indsats",
        version=1,
        description_da="Udpeget af kommunen til en særlig målrettet skole- og vejledningsindsats",
        description_en="Designated by the municipality for a targeted school and guidance effort",
        source="clean_outcomes (designation export)",
        first_school_year="2024/25",
        last_school_year=None,
    ),
}


def outcome_definition(name: str) -> OutcomeDefinition:
    """The definition with this name.

    Raises:
        OutcomeError: When the name is unknown, listing the known ones.
    """
    try:
        return OUTCOMES[name]
    except KeyError:
        raise OutcomeError(f"outcome '{name}' is not defined; known: {sorted(OUTCOMES)}") from None


def _sql(name: str) -> str:
    return load_sql("models", name)


def load_labels(con: duckdb.DuckDBPyConnection, definition: str) -> pd.DataFrame:
    """One label per pupil for one outcome definition.

    Args:
        con: A connection with ``clean_outcomes`` and ``clean_marks``.
        definition: The outcome definition's name.

    Returns:
        ``pupil_id``, ``cohort`` (school year of the assessment), ``assessed_date`` (date),
        ``outcome`` (bool, True = adverse) and ``outcome_definition``; a pupil assessed more
        than once keeps the first assessment. Only school years the definition covers.

    Raises:
        OutcomeError: When the definition is unknown.
    """
    spec = outcome_definition(definition)
    if spec.name == "afgangsproeve_krav_ikke_opfyldt":
        frame = con.execute(_sql("labels_exam.sql")).df()
    else:
        frame = con.execute(_sql("labels_source.sql"), {"definition": spec.name}).df()
    frame["assessed_date"] = pd.to_datetime(frame["assessed_date"]).dt.date
    frame["outcome"] = frame["outcome"].astype(bool)
    covered = frame["cohort"].map(spec.covers).astype(bool)
    frame = frame[covered].assign(outcome_definition=spec.name)
    check_single_definition(frame, spec.name)
    return frame.sort_values(["cohort", "pupil_id"]).reset_index(drop=True)


def check_single_definition(labels: pd.DataFrame, definition: str) -> None:
    """Refuse labels that mix definitions or fall outside the definition's school years.

    Args:
        labels: Labels with ``outcome_definition`` and ``cohort``.
        definition: The one definition a model is trained on.

    Raises:
        OutcomeError: Naming the other definitions or the school years outside the range.
    """
    spec = outcome_definition(definition)
    others = sorted(set(labels["outcome_definition"]) - {definition})
    if others:
        raise OutcomeError(
            f"labels mix outcome definitions: {definition} with {others}; a model is trained "
            "on exactly one definition (config 'outcome')"
        )
    outside = sorted({c for c in labels["cohort"] if not spec.covers(c)})
    if outside:
        raise OutcomeError(
            f"labels for {definition} from school years {outside}, outside its range "
            f"{spec.first_school_year or '...'} - {spec.last_school_year or '...'}"
        )
