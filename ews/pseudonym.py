"""Pseudonymisation at the door: CPR numbers become keyed hashes before anything is stored."""

from __future__ import annotations

import hashlib
import hmac
import re

import numpy as np
import pandas as pd

CPR_PATTERN = re.compile(r"^(\d{2})(\d{2})(\d{2})-?(\d{4})$")
#: Pattern a test greps for anywhere in the warehouse, manifests, logs and outputs.
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
#: A CPR number is a token of its own (``ddmmyy-xxxx`` or ten digits); ten digits inside a
#: longer run of letters and digits (a SHA-256 in hex) are not one.
CPR_LIKE = re.compile(r"(?<![0-9A-Za-z])(\d{6}-\d{4}|\d{10})(?![0-9A-Za-z])")


def normalise_cpr(value: str) -> str | None:
    """Return the CPR number as ten digits, or None when it is not CPR-shaped.

    Args:
        value: A CPR number as exported (``ddmmyy-xxxx`` or ten digits).

    Returns:
        The ten digits, or None.
    """
    match = CPR_PATTERN.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    day, month = int(match.group(1)), int(match.group(2))
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return None
    return "".join(match.groups())


def birth_year_from_cpr(digits: str) -> int:
    """The birth year coded in a normalised CPR number (century from the 7th digit).

    Args:
        digits: Ten digits from :func:`normalise_cpr`.

    Returns:
        The four-digit birth year.
    """
    yy, seventh = int(digits[4:6]), int(digits[6])
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if yy <= 36 else 1900
    elif seventh <= 8:
        century = 2000 if yy <= 57 else 1800
    else:  # pragma: no cover - all digits handled above
        century = 1900
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
    return "p" + digest[:15].translate(_HEX_TO_LETTERS)


def pseudonymise_series(values: pd.Series, key: bytes) -> pd.DataFrame:
    """Pseudonymise a column of CPR numbers.

    Args:
        values: Raw CPR values as read from a file.
        key: The secret pseudonymisation key.

    Returns:
        A frame aligned with ``values`` with ``pupil_id`` (None where the value is not a
        CPR number) and ``birth_year``.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    unique_ids = np.empty(len(uniques) + 1, dtype=object)
    unique_years = np.full(len(uniques) + 1, np.nan)
    for i, raw in enumerate(uniques):
        digits = normalise_cpr(raw)
        if digits is not None:
            unique_ids[i] = pseudonymise(digits, key)
            unique_years[i] = birth_year_from_cpr(digits)
    # code -1 (missing) picks the last slot, which stays None / NaN
    return pd.DataFrame(
        {"pupil_id": unique_ids[codes], "birth_year": unique_years[codes]}, index=values.index
    )
