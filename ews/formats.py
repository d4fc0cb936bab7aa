"""The one Danish number and date format of every page and file (app, PDF, Excel, reports).

Numbers: a full stop between thousands and a decimal comma (``1.234,5``); dates ``dd-mm-åååå``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def number_da(value: float, decimals: int = 0, *, strip_zeros: bool = False) -> str:
    """A number the Danish way: ``1234.5`` -> ``'1.234,5'``.

    Args:
        value: The number.
        decimals: Decimals shown (at most, with ``strip_zeros``).
        strip_zeros: Drop trailing zeros of the decimals (``1.50`` -> ``'1,5'``, ``2.0`` -> ``'2'``).

    Returns:
        The text; ``-0`` is shown as ``0``.
    """
    text = f"{value:,.{decimals}f}"
    if strip_zeros and "." in text:
        text = text.rstrip("0").rstrip(".")
    if text.lstrip("-").strip("0,.") == "":
        text = text.lstrip("-")
    return text.replace(",", "\u0000").replace(".", ",").replace("\u0000", ".")


def date_da(value: Any) -> str:
    """A date (or an ISO text) as ``dd-mm-åååå``; ``–`` when missing, the text itself when not a date."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return str(value)
    return "–" if pd.isna(stamp) else stamp.strftime("%d-%m-%Y")
