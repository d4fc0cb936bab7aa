"""One school year of exports: the active cohorts turned into rows of every source.

Everything observed is a noisy function of the latent components of the term it falls in
(see ``docs/synthetic-municipality.md``): daily absence states, national tests, marks,
service contacts, support spells and the grade-8 outcomes. The year is processed in chunks
of pupils so that memory does not grow with the municipality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import gammaincinv, ndtr, ndtri

from pipelines.synth import model, names
from pipelines.synth.calendar import SchoolYear, file_year_label, school_year_label
from pipelines.synth.population import (
    ABSENCE_DAILY,
    ABSENCE_WEEKLY,
    NO_DAY,
    Cohort,
    SchoolTable,
    day_number,
    to_datetime64,
)
from pipelines.synth.writers import CsvFile, dates_dmy, halves, integers
from pipelines.synth.xlsx import write_xlsx

CHUNK_PUPILS = 8000
LAST_UPV_YEAR = 2023  # UPV abolished from 2024/25 (L 71, 2023-24)
FIRST_DESIGNATION_YEAR = 2024

# --- absence: start hazard per school day, continuation probability, loadings ------------
# kind: (start, continue, on A, on W, shape of the idiosyncratic gamma multiplier (mean 1),
#        propensity column)
ABSENCE_KINDS = {
    "illness": (0.0121, 0.55, 1.2, 0.8, 1.0, 0),
    "authorised": (0.0048, 0.60, 0.3, 0.0, 1.2, 1),
    "unauthorised": (0.0015, 0.35, 2.0, 1.0, 3.0, 2),
    "long_illness": (0.0005, 0.90, 1.2, 1.2, 3.0, 0),  # reported as illness
}
REPORTED_KIND = np.array([0, 1, 2, 3, 1], dtype=np.int8)  # state -> 1 illness, 2, 3
LATE = (0.035, 2.0, 0.6, 0.25, 3)  # per present day: rate, on A, on W, sd, column
HALF_DAY_SHARE = 0.12
#: Extra log-rate per unit of sen-starter drift, and from the term the drift starts (on top
#: of the drift's share in A and W): the onset shows at once in unauthorised absence, late
#: arrivals and social-worker contacts.
DRIFT_VISIBILITY = {"unauthorised": 0.8, "late": 0.5, "social": 1.5, "notification": 1.5}
ONSET_VISIBILITY = {"unauthorised": 1.0, "late": 0.5, "social": 1.2, "notification": 1.2}
ILLNESS_AFTER_COVID = (1.0, 0.0055)  # 2022/23: multiplier, flat extra start hazard

# --- national tests -----------------------------------------------------------------------
TEST_GRADES = {"Dansk/læsning": (2, 4, 6, 8), "Matematik": (3, 6, 8)}
TEST_NOISE_SD = 0.22
SUBJECT_TILT_SD = 0.15
TEST_EXEMPT = 0.01
TEST_EXEMPT_SPECIAL = 0.20
RETAKE_SHARE = 0.6

# --- marks --------------------------------------------------------------------------------
MARK_SUBJECTS = ("Dansk", "Matematik", "Engelsk")
MARK_VALUES = np.array(["-3", "00", "02", "4", "7", "10", "12"], dtype=object)
STANDPUNKT_SHARES = np.array([0.01, 0.03, 0.08, 0.18, 0.30, 0.27, 0.13])
STANDPUNKT_CUTS = ndtri(np.cumsum(STANDPUNKT_SHARES)[:-1])
EXAM_CUTS = np.array([-0.9, 0.0, 0.5, 1.1, 1.9, 2.6])  # exam_z < 0 <=> below 02
MARK_NOISE_SD = 0.5
FIRST_MARK_GRADE = 8  # standing marks are given from grade 8 (folkeskoleloven)

# --- contacts -----------------------------------------------------------------------------
DISCIPLINES = ("PPR", "Socialrådgiver", "Sundhedsplejerske", "Talehørelærer", "Ergoterapeut",
               "UU-vejleder")
REMARK_BLANK_SHARE = 0.15


@dataclass
class YearResult:
    """What one school year wrote.

    Attributes:
        files: Source -> file written (sources with no rows have no file).
        rows: Source -> rows written.
        asof: Ground-truth as-of rows (cpr, term, as_of_date, grade, p_upv).
        grade59_by_school: Pupils in grades 5-9 per school at the year's last as-of date.
    """

    files: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    asof: dict[str, np.ndarray] = field(default_factory=dict)
    grade59_by_school: np.ndarray | None = None


@dataclass
class Roster:
    """Pupils enrolled at some time in one school year (up to the cut-off day).

    Segment ``j`` (0-2) of a row runs from ``bounds[:, j]`` to ``bounds[:, j + 1] - 1`` at
    school ``school[:, j]``; a mid-term move starts a new segment.
    """

    cohort: np.ndarray
    pupil: np.ndarray
    grade: np.ndarray
    start: np.ndarray
    end: np.ndarray
    bounds: np.ndarray
    school: np.ndarray
    klass: np.ndarray
    departs: np.ndarray
    cpr: np.ndarray
    comps: np.ndarray  # (m, 3 families, 2 terms), centred on the national means
    drift: np.ndarray  # (m, 2) cumulative sen-starter drift
    onset: np.ndarray  # (m, 2) 1.0 from the term the drift starts
    raw_comps: np.ndarray  # (m, 3, 2), not centred
    propensity: np.ndarray
    support: np.ndarray  # (m, 2)

    @property
    def size(self) -> int:
        """Rows."""
        return len(self.pupil)

    def school_on(self, day: np.ndarray) -> np.ndarray:
        """School of each row on a day per row (-1 when not enrolled that day)."""
        seg = (day >= self.bounds[:, 1]).astype(int) + (day >= self.bounds[:, 2])
        school = self.school[np.arange(self.size), seg]
        return np.where((day >= self.start) & (day <= self.end), school, -1)

    def take(self, rows: np.ndarray) -> Roster:
        """A sub-roster."""
        return Roster(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def build_roster(cohorts: list[Cohort], year: SchoolYear, cut: int, ref: model.Reference,
                 schools: SchoolTable) -> Roster:
    """Collect the pupils enrolled in a school year, ordered by school, grade, class, CPR.

    Args:
        cohorts: Active cohorts.
        year: The school year's calendar.
        cut: Last day of data.
        ref: National reference statistics.
        schools: The schools.

    Returns:
        The roster.
    """
    y = year.start_year
    year_start = day_number(y, 8, 1)
    year_end = min(day_number(y + 1, 7, 31), cut)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in Roster.__dataclass_fields__}
    for ci, cohort in enumerate(cohorts):
        grade = y - cohort.start_year
        if not 0 <= grade <= 10:
            continue
        k1, k2 = 2 * grade, 2 * grade + 1
        idx = np.flatnonzero((cohort.entry_day <= year_end) & (cohort.exit_day >= year_start))
        if idx.size == 0:
            continue
        start = np.maximum(cohort.entry_day[idx], year_start)
        end = np.minimum(cohort.exit_day[idx], year_end)
        b1 = cohort.move_day[idx, k1]
        b2 = cohort.move_day[idx, k2]
        b2 = np.where(b2 > end, NO_DAY, b2)
        b1 = np.minimum(np.where(b1 > end, NO_DAY, b1), b2)  # keep bounds non-decreasing
        parts["cohort"].append(np.full(idx.size, ci))
        parts["pupil"].append(idx)
        parts["grade"].append(np.full(idx.size, grade))
        parts["start"].append(start)
        parts["end"].append(end)
        parts["bounds"].append(np.stack([start, b1, b2, np.full(idx.size, NO_DAY)], axis=1))
        parts["school"].append(np.stack([cohort.school_start[idx, k1], cohort.school_end[idx, k1],
                                         cohort.school_end[idx, k2]], axis=1))
        parts["klass"].append(np.stack([cohort.class_start[idx, k1], cohort.class_end[idx, k1],
                                        cohort.class_end[idx, k2]], axis=1))
        departs = (cohort.left[idx] & (cohort.exit_day[idx] < day_number(y + 1, 7, 31))
                   & (cohort.exit_day[idx] <= cut))
        parts["departs"].append(departs)
        parts["cpr"].append(cohort.cpr[idx])
        lat = cohort.latent
        raw = np.stack([np.stack([c[idx, k1], c[idx, k2]], axis=1)
                        for c in (lat.E, lat.A, lat.W)], axis=1).astype(np.float64)
        centre = ref.mean[:, [k1, k2]][None, :, :]
        parts["raw_comps"].append(raw)
        parts["comps"].append(raw - centre)
        parts["drift"].append(np.stack([lat.drift[idx, k1], lat.drift[idx, k2]], axis=1)
                              .astype(np.float64))
        switch = lat.switch_term[idx].astype(np.int64)
        parts["onset"].append(np.stack([(switch >= 0) & (switch <= k1),
                                        (switch >= 0) & (switch <= k2)], axis=1).astype(np.float64))
        parts["propensity"].append(cohort.propensity[idx])
        parts["support"].append(cohort.support_level[idx][:, [k1, k2]])
        cohort.appeared[idx] = True
    if not parts["pupil"]:
        empty = {name: np.zeros(0) for name in Roster.__dataclass_fields__}
        return Roster(**empty)
    merged = {name: np.concatenate(values) for name, values in parts.items()}
    order = np.lexsort((merged["cpr"].astype(str), merged["klass"][:, 0], merged["grade"],
                        merged["school"][:, 0]))
    return Roster(**{name: value[order] for name, value in merged.items()})


def _covid_multipliers(year: SchoolYear) -> dict[str, np.ndarray]:
    """Per school day multipliers of each absence kind, for the COVID years and after.

    ``illness_flat`` is an extra illness start hazard shared by every pupil (an even rise,
    not one that follows each pupil's propensity).
    """
    y = year.start_year
    months = year.month_of_day.astype(int)
    ones = np.ones(len(months))
    out = {"illness": ones, "authorised": ones, "unauthorised": ones,
           "illness_flat": np.zeros(len(months))}
    winter = np.isin(months, (12, 1, 2))
    if y == 2020:  # stay home with symptoms; lockdown and remote teaching in the winter
        out["illness"] = np.where(winter, 1.05, 1.35)
        out["authorised"] = ones * 0.7
    elif y == 2021:  # omicron winter
        out["illness"] = np.where(winter, 2.6, 1.5)
        out["authorised"] = ones * 0.85
        out["unauthorised"] = ones * 1.1
    elif y == 2022:
        out["illness"] = ones * ILLNESS_AFTER_COVID[0]
        out["illness_flat"] = ones * ILLNESS_AFTER_COVID[1]
        out["authorised"] = ones * 1.3
        out["unauthorised"] = ones * 1.2
    elif y >= 2023:
        out["illness"] = ones * (1.1 if y == 2023 else 1.05)
        out["illness_flat"] = ones * (0.0025 if y == 2023 else 0.002)
        out["authorised"] = ones * 1.15
        out["unauthorised"] = ones * 1.25
    return out


def _grade_multiplier(kind: str, grade: np.ndarray) -> np.ndarray:
    """Absence rises in the upper grades (unauthorised most); the youngest are ill more."""
    upper = np.maximum(grade - 5, 0)
    if kind in ("illness", "long_illness"):
        return np.where(grade <= 1, 1.15, 1.0) * (1.0 + 0.08 * upper)
    if kind == "unauthorised":
        return 1.0 + 0.40 * upper
    if kind == "authorised":
        return 1.0 + 0.05 * upper
    if kind == "late":
        return 1.0 + 0.15 * upper
    return np.ones(len(grade))


def _pupil_rates(roster: Roster) -> dict[str, np.ndarray]:
    """Start hazards (per kind) and late rates per row and term, shape (m, 2)."""
    a = roster.comps[:, 1, :]
    w = roster.comps[:, 2, :]
    drift = roster.drift
    rates = {}
    for kind, (start, _cont, on_a, on_w, shape, col) in ABSENCE_KINDS.items():
        idio = gammaincinv(shape, ndtr(roster.propensity[:, col])) / shape
        rates[kind] = (start * _grade_multiplier(kind, roster.grade)[:, None]
                       * np.exp(on_a * a + on_w * w + DRIFT_VISIBILITY.get(kind, 0.0) * drift
                                + ONSET_VISIBILITY.get(kind, 0.0) * roster.onset)
                       * idio[:, None])
    rate, on_a, on_w, sd, col = LATE
    idio = sd * roster.propensity[:, col] - 0.5 * sd**2
    rates["late"] = np.minimum(
        rate * _grade_multiplier("late", roster.grade)[:, None]
        * np.exp(on_a * a + on_w * w + DRIFT_VISIBILITY["late"] * drift
                 + ONSET_VISIBILITY["late"] * roster.onset + idio[:, None]), 0.8)
    return rates


def simulate_days(roster: Roster, year: SchoolYear, n_days: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily absence states of a chunk of pupils.

    Args:
        roster: The pupils (a chunk of the year's roster).
        year: The school year's calendar.
        n_days: School days up to the cut-off day.
        rng: Random generator of the chunk.

    Returns:
        ``(state, half, late)`` each shape (m, n_days): state 0 present, 1 illness,
        2 authorised, 3 unauthorised; ``half`` marks half-day absences; ``late`` late
        arrivals on days present.
    """
    m = roster.size
    rates = _pupil_rates(roster)
    mult = _covid_multipliers(year)
    mult["long_illness"] = mult["illness"]
    flat = mult["illness_flat"]
    term = year.term_of_day[:n_days].astype(int) - 1
    keys = list(ABSENCE_KINDS)
    cont = np.array([0.0] + [ABSENCE_KINDS[k][1] for k in keys])
    state = np.zeros((m, n_days), dtype=np.int8)
    current = np.zeros(m, dtype=np.int8)
    uniform = rng.random((m, n_days), dtype=np.float32)
    cache: dict[tuple, np.ndarray] = {}  # days with the same term and multipliers share bounds
    for d in range(n_days):
        t = term[d]
        key = (t, flat[d], *(mult[k][d] for k in keys))
        bounds = cache.get(key)
        if bounds is None:
            h = [np.minimum(rates[k][:, t] * mult[k][d] + (flat[d] if k == "illness" else 0.0),
                            0.5) for k in keys]
            bounds = cache[key] = np.cumsum(np.stack(h), axis=0)
        u = uniform[:, d].astype(np.float64)
        c = cont[current]
        stay = (u < c) & (current > 0)
        u2 = np.where(current > 0, (u - c) / (1.0 - c), u)
        new = (len(keys) - (u2[None, :] < bounds).sum(axis=0) + 1) % (len(keys) + 1)
        current = np.where(stay, current, new).astype(np.int8)
        state[:, d] = current
    state = REPORTED_KIND[state]
    half = (state > 0) & (rng.random((m, n_days), dtype=np.float32) < HALF_DAY_SHARE)
    late_rate = rates["late"][:, term]
    late = (state == 0) & (rng.random((m, n_days), dtype=np.float32) < late_rate)
    return state, half, late


def _absence_rows(roster: Roster, year: SchoolYear, n_days: int, state: np.ndarray,
                  half: np.ndarray, late: np.ndarray, schools: SchoolTable
                  ) -> dict[str, np.ndarray] | None:
    """Weekly (or daily) absence rows of a chunk, for schools that report absence."""
    m = roster.size
    days = year.days[:n_days].astype("int64")
    seg = ((days[None, :] >= roster.bounds[:, 1:2]).astype(np.int8)
           + (days[None, :] >= roster.bounds[:, 2:3]))
    enrolled = (days[None, :] >= roster.start[:, None]) & (days[None, :] <= roster.end[:, None])
    school = np.take_along_axis(roster.school, seg.astype(np.int64), axis=1)
    mode = schools.absence_mode[school]
    units = np.where(state > 0, np.where(half, 1, 2), 0)  # half-days
    out: dict[str, list[np.ndarray]] = {k: [] for k in
                                        ("row", "school", "first", "last", "n", "ill", "auth",
                                         "un", "late")}
    weekly = enrolled & (mode == ABSENCE_WEEKLY)
    if weekly.any():
        n_weeks = int(year.week[:n_days].max()) + 1
        key = ((np.arange(m)[:, None] * n_weeks + year.week[None, :n_days]) * 3 + seg)
        key = key[weekly]
        size = m * n_weeks * 3
        count = np.bincount(key, minlength=size)
        present = np.flatnonzero(count)
        sums = {name: np.bincount(key, weights=values[weekly], minlength=size)[present]
                for name, values in (("ill", units * (state == 1)), ("auth", units * (state == 2)),
                                     ("un", units * (state == 3)), ("late", late))}
        row = present // (n_weeks * 3)
        week = (present // 3) % n_weeks
        sg = present % 3
        monday = year.week_monday[week].astype("int64")
        seg_start = roster.bounds[row, sg]
        seg_end = roster.bounds[row, sg + 1] - 1
        seg_end = np.minimum(seg_end, roster.end[row])
        out["row"].append(row)
        out["school"].append(roster.school[row, sg])
        out["first"].append(np.maximum(monday, seg_start))
        out["last"].append(np.minimum(monday + 4, seg_end))
        out["n"].append(count[present])
        for name in ("ill", "auth", "un", "late"):
            out[name].append(np.rint(sums[name]).astype(np.int64))
    daily = enrolled & (mode == ABSENCE_DAILY)
    if daily.any():
        row, d = np.nonzero(daily)
        out["row"].append(row)
        out["school"].append(school[row, d])
        out["first"].append(days[d])
        out["last"].append(days[d])
        out["n"].append(np.ones(len(row), dtype=np.int64))
        st = state[row, d]
        un = units[row, d]
        out["ill"].append(np.where(st == 1, un, 0))
        out["auth"].append(np.where(st == 2, un, 0))
        out["un"].append(np.where(st == 3, un, 0))
        out["late"].append(late[row, d].astype(np.int64))
    if not out["row"]:
        return None
    merged = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((merged["first"], merged["row"]))
    merged = {k: v[order] for k, v in merged.items()}
    return {
        "CPR": roster.cpr[merged["row"]],
        "Skolekode": schools.codes[merged["school"]],
        "Periode fra": dates_dmy(merged["first"]),
        "Periode til": dates_dmy(merged["last"]),
        "Skoledage": integers(merged["n"]),
        "Sygdom": halves(merged["ill"]),
        "Lovligt fravær": halves(merged["auth"]),
        "Ulovligt fravær": halves(merged["un"]),
        "For sent": integers(merged["late"]),
    }


def _school_days_in(year: SchoolYear, n_days: int, first: int, last: int) -> np.ndarray:
    days = year.days[:n_days].astype("int64")
    return np.flatnonzero((days >= first) & (days <= last))


def _per_school_day(rng: np.random.Generator, candidates: np.ndarray, n_schools: int
                    ) -> np.ndarray:
    """A random day index from ``candidates`` for every school (-1 if none)."""
    if candidates.size == 0:
        return np.full(n_schools, -1)
    return candidates[rng.integers(0, candidates.size, size=n_schools)]


def _test_scale(y: int) -> str:
    if y <= 2021:
        return "NT"
    if y <= 2025:
        return "OVERGANG"
    return "FAERDIGHED"


def _format_scores(t: np.ndarray, scale: str) -> np.ndarray:
    if scale == "NT":
        return integers(np.clip(np.rint(100 * ndtr(t)), 1, 100))
    if scale == "OVERGANG":
        values = np.clip(np.round(500 + 100 * t, 1), 100, 900)
    else:
        values = np.clip(np.round(30 + 10 * t, 1), 0, 60)
    return np.array([f"{v:.1f}" for v in values], dtype=object)


def _test_rows(roster: Roster, year: SchoolYear, n_days: int, state: np.ndarray,
               half: np.ndarray, test_days: dict[tuple[str, int], np.ndarray],
               schools: SchoolTable, ref: model.Reference, rng: np.random.Generator
               ) -> dict[str, np.ndarray] | None:
    days = year.days[:n_days].astype("int64")
    scale = _test_scale(year.start_year)
    out: dict[str, list[np.ndarray]] = {"row": [], "day": [], "subject": [], "score": []}
    m = roster.size
    for (subject, grade), school_day in test_days.items():
        rows = np.flatnonzero(roster.grade == grade)
        if rows.size == 0:
            continue
        taken_day = _sitting_days(roster, rows, school_day, days)
        has = taken_day >= 0
        rows, taken_day = rows[has], taken_day[has]
        if rows.size == 0:
            continue
        support = roster.support[rows, 1]
        exempt = rng.random(rows.size) < np.where(support >= 2, TEST_EXEMPT_SPECIAL, TEST_EXEMPT)
        absent = (state[rows, taken_day] > 0) & ~half[rows, taken_day]
        retake_day = np.minimum(taken_day + rng.integers(5, 11, size=rows.size), n_days - 1)
        retake_ok = ((rng.random(rows.size) < RETAKE_SHARE) & (retake_day > taken_day)
                     & (state[rows, retake_day] == 0)
                     & (roster.school_on(_expand(days[retake_day], rows, m))[rows]
                        == roster.school_on(_expand(days[taken_day], rows, m))[rows]))
        final_day = np.where(absent, np.where(retake_ok, retake_day, -1), taken_day)
        keep = ~exempt & (final_day >= 0)
        rows, final_day = rows[keep], final_day[keep]
        raw = roster.raw_comps[rows, :, 1]
        k2 = 2 * grade + 1
        composite = raw @ np.array(model.TEST_WEIGHTS)
        ability = -(composite - ref.test_mean[k2]) / ref.test_sd[k2]
        tilt = roster.propensity[rows, 4] * SUBJECT_TILT_SD * (1 if subject == "Matematik" else -1)
        noise_sd = TEST_NOISE_SD * ref.gen.observation_noise
        noise = noise_sd * rng.standard_normal(rows.size)
        t = (ability + tilt + noise) / np.sqrt(1 + noise_sd**2 + SUBJECT_TILT_SD**2)
        out["row"].append(rows)
        out["day"].append(days[final_day])
        out["subject"].append(np.full(rows.size, subject, dtype=object))
        out["score"].append(_format_scores(t, scale))
    if not out["row"]:
        return None
    merged = {k: np.concatenate(v) for k, v in out.items()}
    rows = merged["row"]
    school = roster.school_on(_expand(merged["day"], rows, m))[rows]
    return {
        "cpr": roster.cpr[rows],
        "skolekode": schools.codes[school],
        "klassetrin": integers(roster.grade[rows]),
        "fag": merged["subject"],
        "testdato": dates_dmy(merged["day"], "."),
        "resultat": merged["score"],
        "skala": np.full(rows.size, scale, dtype=object),
    }


def _sitting_days(roster: Roster, rows: np.ndarray, school_day: np.ndarray,
                  days: np.ndarray) -> np.ndarray:
    """Per row, the index of its school's sitting day if the pupil is at that school then.

    Args:
        roster: The roster.
        rows: Rows to look at.
        school_day: Per school, the day index of the sitting (-1: none).
        days: School days (day numbers).

    Returns:
        Day index per row, -1 where the pupil does not sit (not enrolled at that school then).
    """
    m = roster.size
    found = np.full(rows.size, -1)
    for j in range(3):
        school = roster.school[rows, j]
        d = school_day[school]
        ok = d >= 0
        at = roster.school_on(_expand(days[np.where(ok, d, 0)], rows, m))[rows]
        found = np.where((found < 0) & ok & (at == school), d, found)
    return found


def _expand(values: np.ndarray, rows: np.ndarray, m: int) -> np.ndarray:
    """Scatter per-selected-row values into a full-length array (others: ``NO_DAY``)."""
    full = np.full(m, NO_DAY, dtype=np.int64)
    full[rows] = values
    return full


def _mark_rows(roster: Roster, cohorts: list[Cohort], year: SchoolYear, n_days: int,
               schools: SchoolTable, ref: model.Reference, rng: np.random.Generator,
               marks_from_grade: int = FIRST_MARK_GRADE) -> dict[str, np.ndarray]:
    """Standing marks (grades 8-9, January and June/May) and leaving-exam marks (grade 9).

    With ``marks_from_grade`` below 8, standing marks are also given in January and June of
    the grades from that one to 7 (as some municipalities' systems export them).
    """
    days = year.days[:n_days].astype("int64")
    y = year.start_year
    m = roster.size
    sittings = [  # (grade, kind, first day, last day, term)
        (8, "Standpunkt", day_number(y + 1, 1, 10), day_number(y + 1, 1, 25), 0),
        (9, "Standpunkt", day_number(y + 1, 1, 10), day_number(y + 1, 1, 25), 0),
        (8, "Standpunkt", day_number(y + 1, 6, 10), day_number(y + 1, 6, 20), 1),
        (9, "Standpunkt", day_number(y + 1, 5, 1), day_number(y + 1, 5, 10), 1),
        (9, "Afgangsprøve", day_number(y + 1, 6, 16), day_number(y + 1, 6, 26), 1),
    ]
    for early in range(marks_from_grade, FIRST_MARK_GRADE):  # after the default sittings, so
        sittings += [                                       # the default draws do not move
            (early, "Standpunkt", day_number(y + 1, 1, 10), day_number(y + 1, 1, 25), 0),
            (early, "Standpunkt", day_number(y + 1, 6, 10), day_number(y + 1, 6, 20), 1),
        ]
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("row", "school", "subject", "kind",
                                                         "day", "mark")}
    for grade, kind, first, last, term in sittings:
        school_day = _per_school_day(rng, _school_days_in(year, n_days, first, last),
                                     schools.count)
        rows = np.flatnonzero(roster.grade == grade)
        if rows.size == 0 or (school_day < 0).all():
            continue
        day_of_row = _sitting_days(roster, rows, school_day, days)
        has = day_of_row >= 0
        rows, day_of_row = rows[has], day_of_row[has]
        if rows.size == 0:
            continue
        school = roster.school_on(_expand(days[day_of_row], rows, m))[rows]
        if kind == "Standpunkt":
            k = 2 * grade + term
            composite = roster.raw_comps[rows, :, term] @ np.array(model.MARK_WEIGHTS)
            ability = -(composite - ref.mark_mean[k]) / ref.mark_sd[k]
            marks = []
            noise_sd = MARK_NOISE_SD * ref.gen.observation_noise
            for sign in (-1, 1, 0):  # Danish leans to reading, maths to maths, English neither
                tilt = sign * SUBJECT_TILT_SD * roster.propensity[rows, 4]
                z = (ability + tilt + noise_sd * rng.standard_normal(rows.size)) / np.sqrt(
                    1 + noise_sd**2 + SUBJECT_TILT_SD**2 * abs(sign))
                marks.append(MARK_VALUES[np.searchsorted(STANDPUNKT_CUTS, z)])
        else:
            z_weak = np.empty(rows.size)
            gap = np.empty(rows.size)
            weak = np.empty(rows.size, dtype=np.int8)
            for ci in np.unique(roster.cohort[rows]):
                sel = roster.cohort[rows] == ci
                pupils = roster.pupil[rows[sel]]
                z_weak[sel] = cohorts[ci].exam_z[pupils]
                gap[sel] = cohorts[ci].exam_gap[pupils]
                weak[sel] = cohorts[ci].exam_weak_subject[pupils]
            strong = z_weak + gap
            english = z_weak + rng.normal(0.3, 0.8, size=rows.size)
            dansk = np.where(weak == 0, z_weak, strong)
            matematik = np.where(weak == 1, z_weak, strong)
            marks = [MARK_VALUES[np.searchsorted(EXAM_CUTS, z, side="right")]
                     for z in (dansk, matematik, english)]
        for subject, mark in zip(MARK_SUBJECTS, marks, strict=True):
            out["row"].append(rows)
            out["school"].append(school)
            out["subject"].append(np.full(rows.size, subject, dtype=object))
            out["kind"].append(np.full(rows.size, kind, dtype=object))
            out["day"].append(days[day_of_row])
            out["mark"].append(mark)
    if not out["row"]:
        return {}
    merged = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((merged["subject"].astype(str), merged["day"], merged["row"]))
    merged = {k: v[order] for k, v in merged.items()}
    return {
        "CPR": roster.cpr[merged["row"]],
        "Skolekode": schools.codes[merged["school"]],
        "Klassetrin": roster.grade[merged["row"]],
        "Fag": merged["subject"],
        "Karaktertype": merged["kind"],
        "Dato": to_datetime64(merged["day"]),
        "Karakter": merged["mark"],
    }


def _contact_rates(grade: np.ndarray, e: np.ndarray, a: np.ndarray, w: np.ndarray, half: int,
                   drift: np.ndarray, onset: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """Expected contacts per term by discipline and type."""
    g = grade.astype(np.float64)
    ppr = np.select([g <= 3, g <= 6], [0.08, 0.06], 0.05) * np.exp(1.2 * e + 1.5 * w)
    speech = np.select([g == 0, g == 1, g == 2, g == 3, g == 4], [0.10, 0.08, 0.05, 0.03, 0.02],
                       0.005) * np.exp(1.4 * e + 0.3 * w)
    ergo = np.where(g <= 3, 0.04, 0.01) * np.exp(1.2 * e + 0.6 * w)
    nurse = 0.25 * np.exp(0.6 * a + 1.8 * w)
    nurse = nurse + np.where((g == 0) & (half == 1), 1.0, 0.0) + np.where(
        (g == 8) & (half == 2), 0.8, 0.0)
    social = 0.02 * (1 + 0.15 * g) * np.exp(1.2 * a + 2.5 * w
                                            + DRIFT_VISIBILITY["social"] * drift
                                            + ONSET_VISIBILITY["social"] * onset)
    uu = np.where(g >= 7, 0.3 * np.exp(0.6 * (e + a + w)), 0.0) + np.where(g == 9, 0.5, 0.0)
    notification = 0.01 * (1 + 0.1 * g) * np.exp(1.0 * a + 2.8 * w
                                                  + DRIFT_VISIBILITY["notification"] * drift
                                                  + ONSET_VISIBILITY["notification"] * onset)
    return {
        ("PPR", "Kontakt"): ppr,
        ("Socialrådgiver", "Kontakt"): social,
        ("Sundhedsplejerske", "Kontakt"): nurse,
        ("Talehørelærer", "Kontakt"): speech,
        ("Ergoterapeut", "Kontakt"): ergo,
        ("UU-vejleder", "Kontakt"): np.where(g <= 10, uu, 0.0),
        ("Socialrådgiver", "Underretning"): notification,
    }


def _contact_rows(roster: Roster, year: SchoolYear, n_days: int, rng: np.random.Generator
                  ) -> dict[str, np.ndarray] | None:
    days = year.days[:n_days].astype("int64")
    out: dict[str, list[np.ndarray]] = {"row": [], "day": [], "discipline": [], "type": []}
    for half in (1, 2):
        lo_day, hi_day = (int(v.astype("int64")) for v in year.term_bounds(half))
        term_days = _school_days_in(year, n_days, lo_day, hi_day)
        if term_days.size == 0:
            continue
        full_term = _school_days_in(year, len(year.days), lo_day, hi_day).size
        first = np.searchsorted(days, np.maximum(roster.start, lo_day), side="left")
        last = np.searchsorted(days, np.minimum(roster.end, hi_day), side="right") - 1
        span = np.maximum(last - first + 1, 0)
        share = span / full_term
        c = roster.comps[:, :, half - 1]
        rates = _contact_rates(roster.grade, c[:, 0], c[:, 1], c[:, 2], half,
                               roster.drift[:, half - 1], roster.onset[:, half - 1])
        for (discipline, kind), rate in rates.items():
            counts = rng.poisson(rate * share)
            if not counts.any():
                continue
            rows = np.repeat(np.arange(roster.size), counts)
            offset = (rng.random(rows.size) * span[rows]).astype(np.int64)
            out["row"].append(rows)
            out["day"].append(days[first[rows] + offset])
            out["discipline"].append(np.full(rows.size, discipline, dtype=object))
            out["type"].append(np.full(rows.size, kind, dtype=object))
    if not out["row"]:
        return None
    merged = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((merged["discipline"].astype(str), merged["day"], merged["row"]))
    merged = {k: v[order] for k, v in merged.items()}
    n = len(merged["row"])
    contact_remarks = np.array(names.CONTACT_REMARKS, dtype=object)
    notice_remarks = np.array(names.NOTIFICATION_REMARKS, dtype=object)
    remark = np.where(merged["type"] == "Underretning",
                      notice_remarks[rng.integers(len(notice_remarks), size=n)],
                      contact_remarks[rng.integers(len(contact_remarks), size=n)])
    remark = np.where(rng.random(n) < REMARK_BLANK_SHARE, "", remark).astype(object)
    return {
        "CPR": roster.cpr[merged["row"]],
        "Dato": dates_dmy(merged["day"], "."),
        "Faggruppe": merged["discipline"],
        "Type": merged["type"],
        "Bemærkning": remark,
    }


def _support_rows(roster: Roster, cohorts: list[Cohort], year: SchoolYear, cut: int
                  ) -> dict[str, np.ndarray] | None:
    y = year.start_year
    year_start = day_number(y, 8, 1)
    year_end = min(day_number(y + 1, 7, 31), cut)
    labels = np.array(["", "Støttetimer", "Specialklasse", "Specialskole"], dtype=object)
    out: dict[str, list[np.ndarray]] = {"cpr": [], "level": [], "start": [], "end": []}
    for ci in np.unique(roster.cohort):
        cohort = cohorts[int(ci)]
        spells = cohort.spells
        if spells["pupil"].size == 0:
            continue
        active = (spells["start"] <= year_end) & (spells["end"] >= year_start)
        pupils = spells["pupil"][active]
        out["cpr"].append(cohort.cpr[pupils])
        out["level"].append(spells["level"][active])
        out["start"].append(spells["start"][active])
        end = spells["end"][active]
        out["end"].append(np.where(end <= year_end, end, NO_DAY))
    if not out["cpr"] or not sum(len(v) for v in out["cpr"]):
        return None
    merged = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((merged["start"], merged["cpr"].astype(str)))
    merged = {k: v[order] for k, v in merged.items()}
    return {
        "CPR": merged["cpr"],
        "Støtteform": labels[merged["level"]],
        "Fra": dates_dmy(merged["start"]),
        "Til": dates_dmy(merged["end"]),
    }


def _grade8_assessment(roster: Roster, cohorts: list[Cohort], year: SchoolYear, n_days: int,
                       schools: SchoolTable, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Rows, days, schools and (UPV, designation) outcomes of the grade-8 assessment."""
    days = year.days[:n_days].astype("int64")
    y = year.start_year
    window = _school_days_in(year, n_days, day_number(y, 11, 20), day_number(y, 12, 15))
    school_day = _per_school_day(rng, window, schools.count)
    rows = np.flatnonzero(roster.grade == 8)
    if rows.size == 0 or (school_day < 0).all():
        return None
    m = roster.size
    day_of_row = _sitting_days(roster, rows, school_day, days)
    has = day_of_row >= 0
    rows, day_of_row = rows[has], day_of_row[has]
    if rows.size == 0:
        return None
    school = roster.school_on(_expand(days[day_of_row], rows, m))[rows]
    upv = np.empty(rows.size, dtype=bool)
    designated = np.empty(rows.size, dtype=bool)
    for ci in np.unique(roster.cohort[rows]):
        sel = roster.cohort[rows] == ci
        pupils = roster.pupil[rows[sel]]
        upv[sel] = cohorts[ci].y_upv[pupils]
        designated[sel] = cohorts[ci].designated[pupils]
    return rows, days[day_of_row], school, np.stack([upv, designated], axis=1)


def _asof_rows(roster: Roster, cohorts: list[Cohort], year: SchoolYear, last_half: int
               ) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {"cpr": [], "term": [], "date": [], "grade": [], "p": []}
    for half in range(1, last_half + 1):
        as_of = int(year.as_of_date(half).astype("int64"))
        term = f"{school_year_label(year.start_year)}-H{half}"
        rows = np.flatnonzero((roster.grade >= model.FIRST_ASOF_GRADE) & (roster.grade <= 9)
                              & (roster.start <= as_of) & (roster.end >= as_of))
        for ci in np.unique(roster.cohort[rows]):
            sel = rows[roster.cohort[rows] == ci]
            cohort = cohorts[int(ci)]
            pupils = roster.pupil[sel]
            grade = int(roster.grade[sel][0])
            k = 2 * grade + half - 1
            p = model.upv_probability_asof(cohort.latent.subset(pupils), k,
                                           np.full(pupils.size, cohort.upv_threshold))
            out["cpr"].append(roster.cpr[sel])
            out["term"].append(np.full(sel.size, term, dtype=object))
            out["date"].append(np.full(sel.size, as_of))
            out["grade"].append(roster.grade[sel])
            out["p"].append(p)
    if not out["cpr"]:
        return {}
    merged = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((merged["cpr"].astype(str), merged["term"].astype(str)))
    return {k: v[order] for k, v in merged.items()}


def write_year(
    exports: Path,
    cohorts: list[Cohort],
    year: SchoolYear,
    cut: int,
    last_half: int,
    schools: SchoolTable,
    ref: model.Reference,
    seed: int,
    marks_from_grade: int = FIRST_MARK_GRADE,
) -> YearResult:
    """Write every export file of one school year.

    Args:
        exports: The exports folder.
        cohorts: The cohorts active this year.
        year: The school year's calendar.
        cut: Last day of data (end of the last term written).
        last_half: 2 if the whole year is written, 1 if it stops after H1.
        schools: The schools.
        ref: National reference statistics.
        seed: The municipality's seed.
        marks_from_grade: First grade with standing marks (8 unless a world says otherwise).

    Returns:
        Files, row counts and the ground-truth as-of rows.
    """
    y = year.start_year
    tag = file_year_label(y)
    result = YearResult()
    n_days = int(np.searchsorted(year.days, np.datetime64(int(cut), "D"), side="right"))
    roster = build_roster(cohorts, year, cut, ref, schools)
    if roster.size == 0:
        return result

    # pupils
    rng = np.random.default_rng([seed, 2, y])
    result.rows["pupils"] = _write_pupils(exports / f"elever_{tag}.csv", roster, cohorts,
                                          schools, rng)
    result.files["pupils"] = exports / f"elever_{tag}.csv"

    # absence and national tests, chunk by chunk
    test_rng = np.random.default_rng([seed, 3, y])
    test_window = _school_days_in(year, n_days, day_number(y + 1, 2, 1), day_number(y + 1, 4, 30))
    test_days = {(subject, grade): _per_school_day(test_rng, test_window, schools.count)
                 for subject, grades in TEST_GRADES.items() for grade in grades}
    absence = CsvFile(exports / f"fravaer_{tag}.csv",
                      ["CPR", "Skolekode", "Periode fra", "Periode til", "Skoledage", "Sygdom",
                       "Lovligt fravær", "Ulovligt fravær", "For sent"], ";", "utf-8")
    tests = CsvFile(exports / f"nationale_test_{tag}.csv",
                    ["cpr", "skolekode", "klassetrin", "fag", "testdato", "resultat", "skala"],
                    ",", "utf-8")
    for c, lo in enumerate(range(0, roster.size, CHUNK_PUPILS)):
        chunk = roster.take(np.arange(lo, min(lo + CHUNK_PUPILS, roster.size)))
        chunk_rng = np.random.default_rng([seed, 4, y, c])
        state, half, late = simulate_days(chunk, year, n_days, chunk_rng)
        rows = _absence_rows(chunk, year, n_days, state, half, late, schools)
        if rows is not None:
            absence.write(rows)
        if test_window.size:
            rows = _test_rows(chunk, year, n_days, state, half, test_days, schools, ref,
                              chunk_rng)
            if rows is not None:
                tests.write(rows)
    for name, csv_file in (("absence", absence), ("tests", tests)):
        if csv_file.rows:
            result.files[name] = csv_file.path
            result.rows[name] = csv_file.rows

    # marks
    marks = _mark_rows(roster, cohorts, year, n_days, schools, ref,
                       np.random.default_rng([seed, 5, y]), marks_from_grade)
    if marks and len(marks["CPR"]):
        path = exports / f"karakterer_{tag}.xlsx"
        result.rows["marks"] = write_xlsx(
            path, "Karakterer", marks,
            {"CPR": "text", "Skolekode": "text", "Klassetrin": "int", "Fag": "text",
             "Karaktertype": "text", "Dato": "date", "Karakter": "text"})
        result.files["marks"] = path

    # contacts
    contacts = _contact_rows(roster, year, n_days, np.random.default_rng([seed, 6, y]))
    if contacts is not None:
        out = CsvFile(exports / f"kontakter_{tag}.csv",
                      ["CPR", "Dato", "Faggruppe", "Type", "Bemærkning"], ";", "cp1252")
        out.write(contacts)
        result.files["contacts"], result.rows["contacts"] = out.path, out.rows

    # support
    support = _support_rows(roster, cohorts, year, cut)
    if support is not None:
        out = CsvFile(exports / f"specialstoette_{tag}.csv", ["CPR", "Støtteform", "Fra", "Til"],
                      ";", "utf-8")
        out.write(support)
        result.files["support"], result.rows["support"] = out.path, out.rows

    # grade-8 outcomes
    assessed = _grade8_assessment(roster, cohorts, year, n_days, schools,
                                  np.random.default_rng([seed, 7, y]))
    if assessed is not None:
        rows, day, school, outcome = assessed
        order = np.lexsort((roster.cpr[rows].astype(str), school))
        rows, day, school, outcome = rows[order], day[order], school[order], outcome[order]
        if y <= LAST_UPV_YEAR:
            path = exports / f"upv_{tag}.xlsx"
            result.rows["upv"] = write_xlsx(
                path, "UPV",
                {"CPR": roster.cpr[rows], "Skolekode": schools.codes[school],
                 "Vurderingsdato": to_datetime64(day),
                 "Vurdering": np.where(outcome[:, 0], "Ikke uddannelsesparat",
                                       "Uddannelsesparat").astype(object)},
                {"CPR": "text", "Skolekode": "text", "Vurderingsdato": "date",
                 "Vurdering": "text"})
            result.files["upv"] = path
        if y >= FIRST_DESIGNATION_YEAR:
            out = CsvFile(exports / f"maalrettet_indsats_{tag}.csv",
                          ["CPR", "Skoleår", "Udpeget dato", "Udpeget"], ";", "utf-8")
            out.write({"CPR": roster.cpr[rows],
                       "Skoleår": np.full(rows.size, school_year_label(y), dtype=object),
                       "Udpeget dato": dates_dmy(day),
                       "Udpeget": np.where(outcome[:, 1], "Ja", "Nej").astype(object)})
            result.files["designation"], result.rows["designation"] = out.path, out.rows

    result.asof = _asof_rows(roster, cohorts, year, last_half)
    as_of = int(year.as_of_date(last_half).astype("int64"))
    at = roster.school_on(np.full(roster.size, as_of, dtype=np.int64))
    in_59 = (roster.grade >= 5) & (roster.grade <= 9) & (at >= 0)
    result.grade59_by_school = np.bincount(at[in_59], minlength=schools.count)
    return result


def _write_pupils(path: Path, roster: Roster, cohorts: list[Cohort], schools: SchoolTable,
                  rng: np.random.Generator) -> int:
    origin_labels = np.array(["Dansk", "Indvandrer", "Efterkommer"], dtype=object)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), dtype=object)
    first = np.empty(roster.size, dtype=object)
    last = np.empty(roster.size, dtype=object)
    sex = np.empty(roster.size, dtype=object)
    origin = np.empty(roster.size, dtype=object)
    for ci in np.unique(roster.cohort):
        sel = roster.cohort == ci
        pupils = roster.pupil[sel]
        cohort = cohorts[int(ci)]
        first[sel] = cohort.first_name[pupils]
        last[sel] = cohort.last_name[pupils]
        sex[sel] = np.where(cohort.boy[pupils] == 1, "Dreng", "Pige")
        origin[sel] = origin_labels[cohort.origin[pupils]]
    origin = np.where(rng.random(roster.size) < 0.02, "", origin).astype(object)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("row", "seg", "from", "to")}
    for j in range(3):
        seg_start = roster.bounds[:, j]
        seg_end = np.minimum(roster.bounds[:, j + 1] - 1, roster.end)
        valid = (seg_start < NO_DAY) & (seg_start <= seg_end)
        ends_by_move = roster.bounds[:, j + 1] < NO_DAY
        shown = ends_by_move | roster.departs
        rows = np.flatnonzero(valid)
        out["row"].append(rows)
        out["seg"].append(np.full(rows.size, j))
        out["from"].append(seg_start[rows])
        out["to"].append(np.where(shown[rows], seg_end[rows], NO_DAY))
    merged = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((merged["seg"], merged["row"]))
    merged = {k: v[order] for k, v in merged.items()}
    rows, seg = merged["row"], merged["seg"]
    grade = roster.grade[rows]
    school = roster.school[rows, seg]
    klass = roster.klass[rows, seg]
    frame = {
        "CPR": roster.cpr[rows],
        "Fornavn": first[rows],
        "Efternavn": last[rows],
        "Skolekode": schools.codes[school],
        "Klassetrin": integers(grade),
        "Klasse": integers(grade).astype(object) + "." + letters[klass],
        "Køn": sex[rows],
        "Oprindelse": origin[rows],
        "Indskrevet fra": dates_dmy(merged["from"]),
        "Indskrevet til": dates_dmy(merged["to"]),
    }
    out_file = CsvFile(path, list(frame), ";", "utf-8-sig")
    out_file.write(frame)
    return out_file.rows
