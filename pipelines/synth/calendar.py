"""The school calendar of the synthetic municipality: school days, holidays, terms.

Dates are handled as ``numpy.datetime64[D]`` day numbers so that whole school years can be
processed as arrays. The calendar is the same for every school of the municipality.

Term conventions follow ``ews.terms``: a school year ``2019/20`` starts 1 August 2019; its
autumn term H1 runs 1 August to 31 January, its spring term H2 1 February to 30 June. The
as-of dates are 15 November (H1) and 15 April (H2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

DAY = np.timedelta64(1, "D")


def easter_sunday(year: int) -> date:
    """Easter Sunday of a year (anonymous Gregorian algorithm).

    Args:
        year: Calendar year.

    Returns:
        The date of Easter Sunday.
    """
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


def _monday_of_iso_week(year: int, week: int) -> date:
    return date.fromisocalendar(year, week, 1)


def _holidays(start_year: int) -> set[date]:
    """Weekdays without school in school year ``start_year``/``start_year + 1``."""
    off: set[date] = set()
    autumn = _monday_of_iso_week(start_year, 42)
    off.update(autumn + timedelta(days=i) for i in range(5))
    christmas = date(start_year, 12, 21)
    while christmas <= date(start_year + 1, 1, 2):
        off.add(christmas)
        christmas += timedelta(days=1)
    spring = start_year + 1
    winter = _monday_of_iso_week(spring, 7)
    off.update(winter + timedelta(days=i) for i in range(5))
    easter = easter_sunday(spring)
    off.update(easter + timedelta(days=i) for i in range(-6, 2))  # holy week to Easter Monday
    if spring <= 2023:
        off.add(easter + timedelta(days=26))  # store bededag, abolished from 2024
    off.update({easter + timedelta(days=39), easter + timedelta(days=40)})  # Kristi himmelfart
    off.add(easter + timedelta(days=50))  # 2. pinsedag
    off.add(date(spring, 6, 5))  # grundlovsdag
    return off


@dataclass(frozen=True)
class SchoolYear:
    """One school year's calendar.

    Attributes:
        start_year: Calendar year the school year starts in (2019 for 2019/20).
        days: School days, ascending (``datetime64[D]``).
        week: Index of each school day's Monday-to-Friday week (0 = first week).
        week_monday: Monday of each week.
        term_of_day: 1 for days in H1 (to 31 January), 2 for H2.
        month_of_day: Calendar month of each school day (1-12).
    """

    start_year: int
    days: np.ndarray
    week: np.ndarray
    week_monday: np.ndarray
    term_of_day: np.ndarray
    month_of_day: np.ndarray

    @property
    def label(self) -> str:
        """``'2019/20'``."""
        return school_year_label(self.start_year)

    @property
    def year_start(self) -> np.datetime64:
        """1 August, the administrative start of the school year."""
        return np.datetime64(date(self.start_year, 8, 1), "D")

    @property
    def year_end(self) -> np.datetime64:
        """31 July, the administrative end of the school year."""
        return np.datetime64(date(self.start_year + 1, 7, 31), "D")

    def term_bounds(self, half: int) -> tuple[np.datetime64, np.datetime64]:
        """First and last calendar day of a term (H1: 1 Aug-31 Jan, H2: 1 Feb-30 Jun)."""
        if half == 1:
            return (np.datetime64(date(self.start_year, 8, 1), "D"),
                    np.datetime64(date(self.start_year + 1, 1, 31), "D"))
        return (np.datetime64(date(self.start_year + 1, 2, 1), "D"),
                np.datetime64(date(self.start_year + 1, 6, 30), "D"))

    def as_of_date(self, half: int) -> np.datetime64:
        """The term's as-of date: 15 November (H1) or 15 April (H2)."""
        if half == 1:
            return np.datetime64(date(self.start_year, 11, 15), "D")
        return np.datetime64(date(self.start_year + 1, 4, 15), "D")

    def days_between(self, first: np.datetime64, last: np.datetime64) -> np.ndarray:
        """Indices of the school days from ``first`` to ``last`` (both included)."""
        lo = np.searchsorted(self.days, first, side="left")
        hi = np.searchsorted(self.days, last, side="right")
        return np.arange(lo, hi)


def school_year_label(start_year: int) -> str:
    """``2019`` -> ``'2019/20'``."""
    return f"{start_year}/{(start_year + 1) % 100:02d}"


def file_year_label(start_year: int) -> str:
    """``2019`` -> ``'2019-20'`` (the form used in export file names)."""
    return f"{start_year}-{(start_year + 1) % 100:02d}"


def build_school_year(start_year: int) -> SchoolYear:
    """The school days of one school year.

    School starts on the Monday of ISO week 33 and ends on the Friday of ISO week 26 the next
    year; autumn (week 42), Christmas (21 Dec-2 Jan), winter (week 7) and Easter breaks and
    the Danish public holidays have no school.

    Args:
        start_year: Calendar year the school year starts in.

    Returns:
        The calendar.
    """
    first = _monday_of_iso_week(start_year, 33)
    last = _monday_of_iso_week(start_year + 1, 26) + timedelta(days=4)
    off = _holidays(start_year)
    days = []
    day = first
    while day <= last:
        if day.weekday() < 5 and day not in off:
            days.append(day)
        day += timedelta(days=1)
    days_arr = np.array(days, dtype="datetime64[D]")
    weekday = (days_arr.astype("int64") - 4) % 7  # 1970-01-01 was a Thursday (weekday 3)
    monday = days_arr - weekday.astype("timedelta64[D]")
    week_mondays, week = np.unique(monday, return_inverse=True)
    january_end = np.datetime64(date(start_year + 1, 1, 31), "D")
    term = np.where(days_arr <= january_end, 1, 2).astype(np.int8)
    months = np.array([d.month for d in days], dtype=np.int8)
    return SchoolYear(
        start_year=start_year,
        days=days_arr,
        week=week.astype(np.int32),
        week_monday=week_mondays,
        term_of_day=term,
        month_of_day=months,
    )


def format_dates(days: np.ndarray, style: str) -> np.ndarray:
    """Format ``datetime64[D]`` values as strings.

    Args:
        days: Dates.
        style: ``'dmy-'`` for ``dd-mm-yyyy``, ``'dmy.'`` for ``dd.mm.yyyy``, ``'iso'`` for
            ``yyyy-mm-dd``.

    Returns:
        An object array of strings (``''`` for ``NaT``).
    """
    days = np.asarray(days, dtype="datetime64[D]")
    if days.size == 0:
        return np.array([], dtype=object)
    lo = days[~np.isnat(days)].min() if (~np.isnat(days)).any() else np.datetime64("2000-01-01")
    hi = days[~np.isnat(days)].max() if (~np.isnat(days)).any() else lo
    table_days = np.arange(lo, hi + DAY, dtype="datetime64[D]")
    iso = np.datetime_as_string(table_days, unit="D")
    if style == "iso":
        table = iso.astype(object)
    else:
        sep = "-" if style == "dmy-" else "."
        table = np.array([f"{s[8:10]}{sep}{s[5:7]}{sep}{s[0:4]}" for s in iso], dtype=object)
    out = np.full(days.shape, "", dtype=object)
    ok = ~np.isnat(days)
    out[ok] = table[(days[ok] - lo).astype("int64")]
    return out
