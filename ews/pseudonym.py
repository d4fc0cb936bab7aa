"""Pseudonymisation at the door: CPR numbers become keyed hashes before anything is stored."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date

import numpy as np
import pandas as pd

CPR_PATTERN = re.compile(r"^(\d{2})(\d{2})(\d{2})-?(\d{4})$")
#: The pattern a test greps for anywhere in the warehouse, manifests, logs and outputs. A CPR
#: number is a token of its own (``ddmmyy-xxxx`` or ten digits); ten digits inside a
#: longer run of letters and digits (a SHA-256 in hex) are not one.
CPR_LIKE = re.compile(r"(?<![0-9A-Za-z])(\d{6}-\d{4}|\d{10})(?![0-9A-Za-z])")
#: What the door looks for in every column but the CPR column: six digits and four digits,
#: joined by nothing, a hyphen, a space or a slash, with no digit on either side. Wider than
#: :data:`CPR_LIKE` on purpose (a CPR number glued to a name, ``Anna0102031234``, or typed with
#: a space), so that a CPR number typed into the wrong column is caught whatever its dress.
CPR_IN_TEXT = re.compile(r"(?<!\d)\d{6}[-\s/]?\d{4}(?!\d)")
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def hex_as_letters(text: str) -> str:
    """Hex digits written as the letters a-p (0 -> a, ..., f -> p).

    Pseudonyms, content marks and run ids are written so: a string of hex digits can be all
    decimal digits, and ten of them read as a CPR number, which every check for CPR numbers
    then masks or flags.
    """
    return text.translate(_HEX_TO_LETTERS)


def mask_cpr(text: str) -> str:
    """Replace every CPR-shaped part of a text with ``<cpr>``.

    Args:
        text: Any text bound for a table, log, page or file (a message, a raw value).

    Returns:
        The text without anything :data:`CPR_IN_TEXT` or :data:`CPR_LIKE` would match.
    """
    return CPR_LIKE.sub("<cpr>", CPR_IN_TEXT.sub("<cpr>", text))


def normalise_cpr(value: str) -> str | None:
    """Return the CPR number as ten digits, or None when it is not a CPR number.

    A CPR number is ``ddmmyy-xxxx`` (or ten digits) whose first six digits are a real day of
    the real calendar in the century the seventh digit gives (:func:`birth_year_from_cpr`):
    ``310220-4xxx`` (31 February) and ``290221-4xxx`` (29 February 2021) are not.

    Args:
        value: A CPR number as exported (``ddmmyy-xxxx`` or ten digits).

    Returns:
        The ten digits, or None.
    """
    match = CPR_PATTERN.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    digits = "".join(match.groups())
    if birth_date_from_cpr(digits) is None:
        return None
    return digits


def birth_date_from_cpr(digits: str) -> date | None:
    """The date of birth of ten CPR digits, or None when it is not a day of the calendar.

    Args:
        digits: Ten digits (``ddmmyyxxxx``).

    Returns:
        The date of birth (century from the seventh digit), or None for an impossible day
        such as 31 February or 29 February of a year that is not a leap year.
    """
    day, month = int(digits[0:2]), int(digits[2:4])
    try:
        return date(birth_year_from_cpr(digits), month, day)
    except ValueError:
        return None


def birth_year_from_cpr(digits: str) -> int:
    """The birth year coded in a CPR number (century from the 7th digit).

    The rules of the CPR office: 7th digit 0-3: 1900-1999; 4 or 9: 2000-2036 for years
    00-36, else 1937-1999; 5-8: 2000-2057 for years 00-57, else 1858-1899. Every digit gives a
    century, so the digit itself never makes a number invalid; the date it gives may.

    Args:
        digits: Ten digits (``ddmmyyxxxx``).

    Returns:
        The four-digit birth year.
    """
    yy, seventh = int(digits[4:6]), int(digits[6])
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if yy <= 36 else 1900
    else:  # 5-8
        century = 2000 if yy <= 57 else 1800
    return century + yy


def pseudonymise(digits: str, key: bytes) -> str:
    """Keyed hash of a normalised CPR number: the pupil's pseudonym.

    Args:
        digits: Ten digits from :func:`normalise_cpr`.
        key: The secret pseudonymisation key.

    Returns:
        Sixteen letters (60 bits of the hash written with the letters a-p): no digits, so a
        pseudonym can never look like a CPR number.
    """
    digest = hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()
    return "p" + hex_as_letters(digest[:15])


def pseudonymise_series(values: pd.Series, key: bytes,
                        known: dict[str, tuple[str | None, float]] | None = None) -> pd.DataFrame:
    """Pseudonymise a column of CPR numbers.

    Args:
        values: Raw CPR values as read from a file.
        key: The secret pseudonymisation key.
        known: Results for raw values seen before under the same key (a run's chunks of one
            source share most of their pupils); new results are added to it. It lives in
            memory only, for one ingest, like the rows it was built from.

    Returns:
        A frame aligned with ``values`` with ``pupil_id`` (None where the value is not a
        CPR number) and ``birth_year``.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    unique_ids = np.empty(len(uniques) + 1, dtype=object)
    unique_years = np.full(len(uniques) + 1, np.nan)
    memo = known if known is not None and len(known) < KNOWN_PSEUDONYMS_MAX else None
    for i, raw in enumerate(uniques):
        found = known.get(raw) if known is not None else None
        if found is None:
            digits = normalise_cpr(raw)
            found = (None, np.nan) if digits is None else (
                pseudonymise(digits, key), float(birth_year_from_cpr(digits)))
            if memo is not None:
                memo[raw] = found
        unique_ids[i], unique_years[i] = found
    # code -1 (missing) picks the last slot, which stays None / NaN
    return pd.DataFrame(
        {"pupil_id": unique_ids[codes], "birth_year": unique_years[codes]}, index=values.index
    )


#: Raw values :func:`pseudonymise_series` remembers at most (about 150 MB).
KNOWN_PSEUDONYMS_MAX = 2_000_000
