"""The term calendar: school years, terms (H1 autumn, H2 spring) and their as-of dates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

TERM_PATTERN = re.compile(r"^(\d{4})/(\d{2})-(H1|H2)$")
SCHOOL_YEAR_PATTERN = re.compile(r"^(\d{4})/(\d{2})$")


@dataclass(frozen=True, order=True)
class Term:
    """One term of a school year, e.g. ``2025/26-H1`` (August to January).

    Attributes:
        start_year: Calendar year in which the school year starts (2025 for 2025/26).
        half: 1 for the autumn term (H1), 2 for the spring term (H2).
    """

    start_year: int
    half: int

    @classmethod
    def parse(cls, text: str) -> Term:
        """Parse ``YYYY/YY-H1`` or ``YYYY/YY-H2``.

        Args:
            text: The term as written on the command line or in the config.

        Returns:
            The term.

        Raises:
            ValueError: When the text is not a term, with the expected form.
        """
        match = TERM_PATTERN.match(text.strip())
        if match is None or (int(match.group(1)) + 1) % 100 != int(match.group(2)):
            raise ValueError(
                f"'{text}' is not a term: expected a school year and half, e.g. 2025/26-H1"
            )
        return cls(int(match.group(1)), 1 if match.group(3) == "H1" else 2)

    @property
    def school_year(self) -> str:
        """The school year, e.g. ``2025/26``."""
        return school_year_label(self.start_year)

    def __str__(self) -> str:
        return f"{self.school_year}-H{self.half}"

    @property
    def name_da(self) -> str:
        """The term as Danish users name it: ``2025/26-H1`` -> ``efterår 2025``, H2 -> ``forår 2026``."""
        return f"efterår {self.start_year}" if self.half == 1 else f"forår {self.start_year + 1}"

    def previous(self) -> Term:
        """The term before this one."""
        return Term(self.start_year, 1) if self.half == 2 else Term(self.start_year - 1, 2)

    def next(self) -> Term:
        """The term after this one."""
        return Term(self.start_year, 2) if self.half == 1 else Term(self.start_year + 1, 1)


def term_name_da(text: object) -> str:
    """A term code as Danish users name it (``2025/26-H1`` -> ``efterår 2025``).

    Args:
        text: A term code; anything else (None, an unknown form) is shown as it is.

    Returns:
        The Danish name, or the text unchanged when it is not a term.
    """
    if text is None:
        return "–"
    try:
        return Term.parse(str(text)).name_da
    except ValueError:
        return str(text)


def school_year_label(start_year: int) -> str:
    """``2025`` -> ``'2025/26'``."""
    return f"{start_year}/{(start_year + 1) % 100:02d}"


def parse_school_year(text: str) -> int:
    """``'2025/26'`` -> ``2025``.

    Raises:
        ValueError: When the text is not a school year.
    """
    match = SCHOOL_YEAR_PATTERN.match(text.strip())
    if match is None or (int(match.group(1)) + 1) % 100 != int(match.group(2)):
        raise ValueError(f"'{text}' is not a school year: expected e.g. 2025/26")
    return int(match.group(1))


def school_year_of(day: date, first_month: int = 8) -> int:
    """Start year of the school year a date falls in (school years start 1 August)."""
    return day.year if day.month >= first_month else day.year - 1


def month_day(text: str, year: int) -> date:
    """``'11-15'`` in a given year -> ``date(year, 11, 15)``."""
    month, day = (int(part) for part in text.split("-"))
    return date(year, month, day)


def terms_between(first: Term, last: Term) -> list[Term]:
    """All terms from ``first`` to ``last``, both included."""
    terms, term = [], first
    while term <= last:
        terms.append(term)
        term = term.next()
    return terms
