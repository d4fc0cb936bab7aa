"""Schools and pupils of the synthetic municipality: identities, enrolment, latent state.

A *cohort* is the pupils whose grade 0 (børnehaveklasse) falls in one school year. A cohort
is drawn in full when it first enters the years being written (its latent trajectories,
moves, support spells and outcomes), and dropped when it has left school; the yearly writer
(:mod:`pipelines.synth.observations`) turns it into export rows.

Days are ``int64`` day numbers (days since 1970-01-01); ``NO_DAY`` means "never".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy.special import ndtr

from pipelines.synth import model, names

NO_DAY = 2**31 - 1  # fits int32 storage
AREAS = ("Nord", "Syd", "Øst", "Vest")
PUPILS_PER_CLASS = 22
ENTRY_RATE = 0.0065  # pupils entering the municipality per term, as a share of the cohort
SUMMER_SHARE = 0.4  # share of moves, entries and departures that happen over the summer
GRADE10_SHARE = 0.12
LATE_START_SHARE = 0.08
EARLY_START_SHARE = 0.01
ORIGIN_NATIVE = (0.91, 0.025, 0.065)  # Dansk, Indvandrer, Efterkommer
ORIGIN_ENTRANT = (0.70, 0.20, 0.10)
SUPPORT_ENTER = (1.35, 2.10, 2.55)  # standardised support score to enter each level
SUPPORT_EXIT = (1.00, 1.80, 2.25)  # ...and to leave it again
ABSENCE_WEEKLY, ABSENCE_DAILY, ABSENCE_NONE = 0, 1, 2


def day_number(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01."""
    return (date(year, month, day) - date(1970, 1, 1)).days


def to_datetime64(days: np.ndarray) -> np.ndarray:
    """Day numbers -> ``datetime64[D]`` (``NaT`` for ``NO_DAY``)."""
    days = np.asarray(days, dtype=np.int64)
    out = days.astype("datetime64[D]")
    out[days >= NO_DAY] = np.datetime64("NaT")
    return out


@dataclass(frozen=True)
class SchoolTable:
    """The municipality's schools (arrays indexed by school number).

    Attributes:
        codes: ``S01``-style codes.
        names: School names.
        areas: Area of each school.
        weights: Share of the municipality's pupils.
        streams: Classes per grade.
        absence_mode: ``ABSENCE_WEEKLY``, ``ABSENCE_DAILY`` or ``ABSENCE_NONE``.
        shift: Shape (schools, 3): the school's shift of E, A and W (weighted mean zero).
        network: Network id of each school.
    """

    codes: np.ndarray
    names: np.ndarray
    areas: np.ndarray
    weights: np.ndarray
    streams: np.ndarray
    absence_mode: np.ndarray
    shift: np.ndarray
    network: np.ndarray

    @property
    def count(self) -> int:
        """Number of schools."""
        return len(self.codes)


def build_schools(count: int, pupils_per_grade: int, rng: np.random.Generator) -> SchoolTable:
    """Draw the schools: sizes, areas, networks, absence reporting and school effects.

    With three or more schools, one school does not report absence and one reports per day;
    with two, one reports per day. With four or more, the two smallest schools of one area
    share a network.

    Args:
        count: Number of schools.
        pupils_per_grade: Municipality-wide pupils per grade.
        rng: Random generator.

    Returns:
        The schools.
    """
    weights = rng.lognormal(0.0, 0.45, size=count)
    if count >= 4:
        weights[-2:] = 0.3 * np.median(weights)
    weights = weights / weights.sum()
    order = rng.permutation(count)
    areas = np.empty(count, dtype=object)
    for rank, school in enumerate(order):
        areas[school] = AREAS[rank % len(AREAS)]
    if count >= 4:
        areas[-1] = areas[-2]
    streams = np.clip(np.round(weights * pupils_per_grade / PUPILS_PER_CLASS), 1, 26).astype(int)
    mode = np.full(count, ABSENCE_WEEKLY, dtype=np.int8)
    special = rng.permutation(count)
    if count >= 3:
        mode[special[0]] = ABSENCE_NONE
        mode[special[1]] = ABSENCE_DAILY
    elif count == 2:
        mode[special[0]] = ABSENCE_DAILY
    sd = np.array([p.school_sd for p in model.FAMILY_PARAMS])
    shift = rng.standard_normal((count, 3)) * sd
    shift -= (weights[:, None] * shift).sum(axis=0)
    width = max(2, len(str(count)))
    codes = np.array([f"S{i + 1:0{width}d}" for i in range(count)], dtype=object)
    school_names = np.array(names.school_names(count), dtype=object)[rng.permutation(count)]
    network = np.array([f"N{i + 1:0{width}d}" for i in range(count)], dtype=object)
    if count >= 4:
        network[-1] = network[-2]
    return SchoolTable(codes=codes, names=school_names, areas=areas, weights=weights,
                       streams=streams, absence_mode=mode, shift=shift, network=network)


@dataclass
class Cohort:
    """All pupils whose grade 0 is in school year ``start_year``.

    Attributes:
        start_year: Start year of the cohort's grade-0 school year.
        cpr: CPR-like ids ``ddmmyy-xxxx``.
        first_name: First names.
        last_name: Last names.
        boy: 1 for boys.
        origin: ``model.ORIGIN_*`` codes.
        latent: Latent trajectories.
        entry_term: Term the pupil enters the municipality's schools.
        entry_day: First day enrolled.
        exit_term: Last term enrolled (graduation or leaving).
        exit_day: Last day enrolled.
        left: Whether the pupil leaves the municipality (rather than finishing school).
        school_start: School at the start of each term, shape (n, N_TERMS).
        school_end: School at the end of each term (differs after a mid-term move).
        move_day: Day of a mid-term move (``NO_DAY`` if none).
        class_start: Class letter index at the start of each term.
        class_end: Class letter index at the end of each term.
        support_level: Support level per term (0 none, 1 støttetimer, 2 specialklasse,
            3 specialskole).
        spells: Support spells as arrays ``pupil``, ``level``, ``start``, ``end``.
        propensity: Idiosyncratic, risk-free propensities (illness, authorised,
            unauthorised, late arrivals, reading-versus-maths tilt), shape (n, 5).
        upv_threshold: Threshold of the cohort's grade-8 year.
        p_upv: True probability of "ikke uddannelsesparat".
        y_upv: The realised assessment (True: not education-ready).
        p_exam: True probability of missing the leaving-exam requirement.
        exam_z: Standardised exam performance of the weaker of Danish and maths
            (< 0 exactly when the requirement is missed).
        exam_gap: How much better the stronger subject is (>= 0).
        exam_weak_subject: 0 if Danish is the weaker, 1 if maths.
        designated: The realised designation for a targeted effort.
        appeared: Whether the pupil has appeared in a pupils file.
    """

    start_year: int
    cpr: np.ndarray
    first_name: np.ndarray
    last_name: np.ndarray
    boy: np.ndarray
    origin: np.ndarray
    latent: model.Latent
    entry_term: np.ndarray
    entry_day: np.ndarray
    exit_term: np.ndarray
    exit_day: np.ndarray
    left: np.ndarray
    school_start: np.ndarray
    school_end: np.ndarray
    move_day: np.ndarray
    class_start: np.ndarray
    class_end: np.ndarray
    support_level: np.ndarray
    spells: dict[str, np.ndarray]
    propensity: np.ndarray
    upv_threshold: float
    p_upv: np.ndarray
    y_upv: np.ndarray
    p_exam: np.ndarray
    exam_z: np.ndarray
    exam_gap: np.ndarray
    exam_weak_subject: np.ndarray
    designated: np.ndarray
    appeared: np.ndarray

    @property
    def size(self) -> int:
        """Number of pupils (including those never enrolled in the written years)."""
        return len(self.cpr)


def _term_year_half(start_year: int, k: int) -> tuple[int, int]:
    return start_year + k // 2, k % 2 + 1


def _event_days(rng: np.random.Generator, start_year: int, terms: np.ndarray,
                summer_allowed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Days of moves or entries in the given terms, all before the term's as-of date.

    Returns:
        ``(day, summer)``: the day, and whether it is 1 August (over the summer).
    """
    n = len(terms)
    year = start_year + terms // 2
    h1 = terms % 2 == 0
    u = rng.random(n)
    summer = h1 & (rng.random(n) < SUMMER_SHARE) if summer_allowed else np.zeros(n, bool)
    aug1 = np.array([day_number(y, 8, 1) for y in range(start_year, start_year + 12)])
    lo = np.where(h1, aug1[year - start_year] + 14, aug1[year - start_year] + 184)  # 15 Aug / 1 Feb
    width = np.where(h1, 92, 72)  # to 14 Nov / 13 Apr
    day = lo + (u * width).astype(np.int64)
    day = np.where(summer, aug1[year - start_year], day)
    return day, summer


def _leave_days(rng: np.random.Generator, start_year: int, terms: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Last enrolled day of pupils leaving the municipality in the given terms.

    Returns:
        ``(day, summer)``: summer departures leave on 31 July before the term.
    """
    n = len(terms)
    year = start_year + terms // 2
    h1 = terms % 2 == 0
    summer = h1 & (rng.random(n) < SUMMER_SHARE)
    aug1 = np.array([day_number(y, 8, 1) for y in range(start_year, start_year + 12)])
    base = aug1[year - start_year]
    lo = np.where(h1, base + 14, base + 184)
    width = np.where(h1, 170, 148)  # to 31 Jan / 28 Jun
    day = lo + (rng.random(n) * width).astype(np.int64)
    return np.where(summer, base - 1, day), summer


def _cpr_numbers(rng: np.random.Generator, birth: np.ndarray, start_offset: np.ndarray,
                 boy: np.ndarray) -> np.ndarray:
    """CPR-like ids, unique across cohorts.

    The seventh digit follows the CPR century rule (0-3 for 1900-1999; 4-9 for 2000-2036)
    and encodes how old the pupil was at school start, so two cohorts never share an id;
    the last digit is odd for boys and even for girls.
    """
    n = len(birth)
    dt = to_datetime64(birth)
    years = dt.astype("datetime64[Y]").astype(int) + 1970
    if years.min() < 1937 or years.max() > 2036:
        raise ValueError("birth years must be within 1937-2036 for CPR-like ids")
    months = dt.astype("datetime64[M]").astype(int) % 12 + 1
    days = (dt - dt.astype("datetime64[M]")).astype(int) + 1
    doy = (dt - dt.astype("datetime64[Y]")).astype(int)
    group = start_offset + 1  # 0 early start, 1 normal, 2 late start
    key = (doy * 3 + group) * 2 + boy
    order = np.lexsort((np.arange(n), key))
    sorted_key = key[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    counts = np.diff(np.r_[first, n])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(first, counts)
    if rank.max(initial=0) >= 1000:
        raise ValueError("too many pupils born on one day for CPR-like ids")
    offsets = rng.integers(0, 1000, size=366 * 3 * 2)
    serial = (offsets[key] + rank * 379) % 1000
    value = serial * 2 + boy
    digit7_20 = np.array([[4, 5], [6, 7], [8, 9]])
    digit7_19 = np.array([[0, 1], [2, 3], [4, 9]])
    table = np.where((years >= 2000)[:, None], digit7_20[group], digit7_19[group])
    d7 = table[np.arange(n), value // 1000]
    rest = value % 1000
    return np.array(
        [f"{d:02d}{m:02d}{y % 100:02d}-{a}{r:03d}"
         for d, m, y, a, r in zip(days, months, years, d7, rest, strict=True)],
        dtype=object,
    )


def _names(rng: np.random.Generator, boy: np.ndarray, origin: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    n = len(boy)
    other = (origin != model.ORIGIN_DANSK) & (rng.random(n) < 0.6)
    girls = np.array(names.GIRL_NAMES, dtype=object)
    boys = np.array(names.BOY_NAMES, dtype=object)
    girls_o = np.array(names.GIRL_NAMES_OTHER, dtype=object)
    boys_o = np.array(names.BOY_NAMES_OTHER, dtype=object)
    first = np.where(
        boy == 1,
        np.where(other, boys_o[rng.integers(len(boys_o), size=n)], boys[rng.integers(len(boys), size=n)]),
        np.where(other, girls_o[rng.integers(len(girls_o), size=n)],
                 girls[rng.integers(len(girls), size=n)]),
    )
    lasts = np.array(names.LAST_NAMES, dtype=object)
    lasts_o = np.array(names.LAST_NAMES_OTHER, dtype=object)
    other_last = (origin != model.ORIGIN_DANSK) & (rng.random(n) < 0.6)
    last = np.where(other_last, lasts_o[rng.integers(len(lasts_o), size=n)],
                    lasts[rng.integers(len(lasts), size=n)])
    return first, last


def build_cohort(start_year: int, pupils_per_grade: int, schools: SchoolTable, seed: int,
                 ref: model.Reference) -> Cohort:
    """Draw one cohort in full.

    Args:
        start_year: Start year of the cohort's grade-0 school year.
        pupils_per_grade: Pupils per grade in the municipality.
        schools: The schools.
        seed: The municipality's seed.
        ref: National reference statistics (and the generating model they belong to).

    Returns:
        The cohort.
    """
    rng = np.random.default_rng([seed, 1, start_year])
    n_native = pupils_per_grade
    entrants = rng.poisson(pupils_per_grade * ENTRY_RATE, size=model.K_EXAM)
    entry_term = np.concatenate(
        [np.zeros(n_native, dtype=np.int64)]
        + [np.full(c, k + 1, dtype=np.int64) for k, c in enumerate(entrants)])
    n = len(entry_term)
    native = entry_term == 0
    boy = (rng.random(n) < 0.51).astype(np.int8)
    origin = np.where(native, rng.choice(3, size=n, p=ORIGIN_NATIVE),
                      rng.choice(3, size=n, p=ORIGIN_ENTRANT)).astype(np.int8)
    first_school = rng.choice(schools.count, size=n, p=schools.weights)
    latent = model.simulate_latent(rng, boy, origin, schools.shift[first_school], entry_term,
                                   moves_possible=schools.count > 1, gen=ref.gen)
    n_terms = model.N_TERMS
    k_index = np.arange(n_terms)

    # entering the municipality
    entry_day = np.full(n, day_number(start_year, 8, 1), dtype=np.int64)
    late = ~native
    if late.any():
        entry_day[late], _ = _event_days(rng, start_year, entry_term[late], summer_allowed=True)

    # leaving: the municipality (hazard per term) or school (after grade 9, a few after 10)
    hazard = model.LEAVE_HAZARD * np.exp(model.LEAVE_RISK_SLOPE * latent.static_risk)
    can_leave = ((k_index[None, :] > entry_term[:, None]) & (k_index[None, :] <= model.K_EXAM)
                 & ~latent.move_event)
    leaves = (rng.random((n, n_terms)) < hazard[:, None]) & can_leave
    leave_term = np.where(leaves.any(axis=1), leaves.argmax(axis=1), -1)
    grade10 = rng.random(n) < GRADE10_SHARE
    final_term = np.where(grade10, 21, model.K_EXAM)
    exit_term = final_term.copy()
    exit_day = np.array([day_number(start_year + 10, 6, 30)] * n, dtype=np.int64)
    exit_day[grade10] = day_number(start_year + 11, 6, 30)
    leaving = leave_term >= 0
    if leaving.any():
        days, summer = _leave_days(rng, start_year, leave_term[leaving])
        exit_day[leaving] = days
        exit_term[leaving] = leave_term[leaving] - summer.astype(np.int64)

    # schools and classes per term
    school_start = np.zeros((n, n_terms), dtype=np.int16)
    school_end = np.zeros((n, n_terms), dtype=np.int16)
    class_start = np.zeros((n, n_terms), dtype=np.int8)
    class_end = np.zeros((n, n_terms), dtype=np.int8)
    move_day = np.full((n, n_terms), NO_DAY, dtype=np.int32)
    current = first_school.astype(np.int16)
    current_class = (rng.random(n) * schools.streams[current]).astype(np.int8)
    for k in range(n_terms):
        movers = np.flatnonzero(latent.move_event[:, k] & (k > entry_term) & (k <= exit_term))
        school_start[:, k] = current
        class_start[:, k] = current_class
        if movers.size:
            destination = rng.choice(schools.count, size=movers.size, p=schools.weights)
            same = destination == current[movers]
            while same.any():
                destination[same] = rng.choice(schools.count, size=same.sum(), p=schools.weights)
                same = destination == current[movers]
            days, summer = _event_days(rng, start_year, np.full(movers.size, k), True)
            new_class = (rng.random(movers.size) * schools.streams[destination]).astype(np.int8)
            current = current.copy()
            current_class = current_class.copy()
            current[movers] = destination
            current_class[movers] = new_class
            summer_movers = movers[summer]
            school_start[summer_movers, k] = destination[summer]
            class_start[summer_movers, k] = new_class[summer]
            move_day[movers[~summer], k] = days[~summer]
        school_end[:, k] = current
        class_end[:, k] = current_class

    # special-needs support: hysteresis on a standardised support score
    noise = model.SUPPORT_NOISE_SD * rng.standard_normal(n)
    score = latent.composite(model.SUPPORT_WEIGHTS, slice(None)) + noise[:, None]
    z = (score - ref.support_mean) / ref.support_sd
    level = np.zeros((n, n_terms), dtype=np.int8)
    current_level = np.zeros(n, dtype=np.int8)
    for k in range(n_terms):
        target = np.zeros(n, dtype=np.int8)
        for step, (enter, stay) in enumerate(zip(SUPPORT_ENTER, SUPPORT_EXIT, strict=True), 1):
            target = np.where((z[:, k] > enter) | ((current_level >= step) & (z[:, k] > stay)),
                              step, target).astype(np.int8)
        current_level = np.where(k >= 20, current_level, target).astype(np.int8)  # grade 10
        level[:, k] = current_level
    change_day = np.empty((n, n_terms), dtype=np.int64)
    for k in range(n_terms):
        year, half = _term_year_half(start_year, k)
        lo = day_number(year, 8, 15) if half == 1 else day_number(year + 1, 2, 1)
        change_day[:, k] = lo + (rng.random(n) * 55).astype(np.int64)
    spells = _support_spells(level, change_day, entry_term, entry_day, exit_term, exit_day)

    # identity
    offset = np.where(rng.random(n) < LATE_START_SHARE, 1,
                      np.where(rng.random(n) < EARLY_START_SHARE / (1 - LATE_START_SHARE), -1, 0))
    birth_year = start_year - 6 - offset
    jan1 = np.array([day_number(int(y), 1, 1) for y in range(birth_year.min(), birth_year.max() + 2)])
    lo = jan1[birth_year - birth_year.min()]
    hi = jan1[birth_year - birth_year.min() + 1]
    birth = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    cpr = _cpr_numbers(rng, birth, offset, boy)
    first_name, last_name = _names(rng, boy, origin)
    propensity = rng.standard_normal((n, 5))

    # outcomes
    threshold = ref.upv_threshold(start_year + 8)
    l16 = latent.liability(model.K_UPV)
    p_upv = ndtr((l16 - threshold) / ref.gen.upv_noise_sd)
    exam_latent = model.exam_liability(latent)
    p_exam = ndtr((exam_latent - ref.exam_threshold) / model.EXAM_NOISE_SD)
    # concept drift (GeneratingModel.concept_drift_from): the outcome follows another pupil's
    # liability; drawn from a generator of its own, so everything else stays as without drift
    outcome_l16 = _drifted(l16, ref.gen, start_year + 8, seed, start_year, 1)
    outcome_exam = _drifted(exam_latent, ref.gen, start_year + 9, seed, start_year, 2)
    y_upv = outcome_l16 + ref.gen.upv_noise_sd * rng.standard_normal(n) > threshold
    exam_total = outcome_exam + model.EXAM_NOISE_SD * rng.standard_normal(n)
    exam_z = (ref.exam_threshold - exam_total) / ref.exam_sd
    exam_gap = np.abs(rng.normal(0.0, 0.7, size=n))
    exam_weak = (rng.random(n) < 0.5).astype(np.int8)
    designated = (outcome_l16 + model.DESIGNATION_NOISE_SD * rng.standard_normal(n)
                  > ref.designation_threshold)
    return Cohort(
        start_year=start_year, cpr=cpr, first_name=first_name, last_name=last_name, boy=boy,
        origin=origin, latent=latent, entry_term=entry_term, entry_day=entry_day,
        exit_term=exit_term, exit_day=exit_day, left=leaving, school_start=school_start,
        school_end=school_end, move_day=move_day, class_start=class_start,
        class_end=class_end, support_level=level, spells=spells, propensity=propensity,
        upv_threshold=threshold, p_upv=p_upv, y_upv=y_upv, p_exam=p_exam, exam_z=exam_z,
        exam_gap=exam_gap, exam_weak_subject=exam_weak, designated=designated,
        appeared=np.zeros(n, dtype=bool),
    )


def _drifted(liability: np.ndarray, gen: model.GeneratingModel, assessed_year: int, seed: int, start_year: int,
             stream: int) -> np.ndarray:
    """The liability an outcome follows: the pupil's own, or after a concept drift another pupil's.

    Args:
        liability: Each pupil's liability.
        gen: The generating model (``concept_drift_from``, ``concept_drift_share``).
        assessed_year: Start year of the school year the outcome is assessed in.
        seed: The world's seed.
        start_year: The cohort's grade-0 year (with ``seed`` and ``stream``: its own random draws).
        stream: 1 for UPV and designation, 2 for the leaving exam.

    Returns:
        ``liability`` itself without drift; else a copy in which a share of pupils carry the
        liability of a randomly chosen other pupil (a permutation: the base rate holds).
    """
    if not gen.drifted(assessed_year) or liability.size == 0:
        return liability
    drift_rng = np.random.default_rng([seed, start_year, 1_400 + stream])
    chosen = drift_rng.random(liability.size) < gen.concept_drift_share
    result = liability.copy()
    result[chosen] = liability[drift_rng.permutation(np.flatnonzero(chosen))]
    return result


def _support_spells(level: np.ndarray, change_day: np.ndarray, entry_term: np.ndarray,
                    entry_day: np.ndarray, exit_term: np.ndarray, exit_day: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """Turn per-term support levels into dated spells within each pupil's enrolment."""
    n, n_terms = level.shape
    current = np.zeros(n, dtype=np.int8)
    start = np.zeros(n, dtype=np.int64)
    out: dict[str, list[np.ndarray]] = {"pupil": [], "level": [], "start": [], "end": []}

    def close(mask: np.ndarray, end: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            out["pupil"].append(idx)
            out["level"].append(current[idx].copy())
            out["start"].append(start[idx].copy())
            out["end"].append(end[idx])

    for k in range(n_terms + 1):
        active = (k >= entry_term) & (k <= exit_term) if k < n_terms else np.zeros(n, bool)
        new_level = np.where(active, level[:, min(k, n_terms - 1)], 0).astype(np.int8)
        begin = np.where(k == entry_term, entry_day, change_day[:, min(k, n_terms - 1)])
        too_late = active & (begin > exit_day)  # left before this term's change day
        new_level = np.where(too_late, current, new_level).astype(np.int8)
        changed = new_level != current
        end = np.where(active, begin - 1, exit_day)
        close(changed & (current > 0), end)
        opened = changed & (new_level > 0)
        start = np.where(opened, begin, start)
        current = new_level
    if not out["pupil"]:
        return {key: np.zeros(0, dtype=np.int64) for key in out}
    return {key: np.concatenate(value).astype(np.int64) for key, value in out.items()}
