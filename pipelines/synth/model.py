"""The generating model of the synthetic municipality: latent liabilities and true risks.

Every pupil carries a latent liability per term, the sum of four family components (see
``docs/synthetic-municipality.md``):

- ``laering`` (E): learning difficulty; drives national tests, marks, PPR, speech and
  occupational-therapy contacts and special-needs support;
- ``fravaer`` (A): absence propensity; drives unauthorised and illness absence and late
  arrivals;
- ``trivsel_stoette`` (W): wellbeing and support need; drives social-worker and health-nurse
  contacts, notifications of concern and support;
- ``mobilitet`` (M): school changes so far (entering the municipality counts as one).

Terms are indexed by ``k = 2 * grade + half - 1`` (grade 0 H1 is 0, grade 8 H1 is 16).
``L_k = E_k + A_k + W_k + MOVE_EFFECT * min(moves_k, MOVE_CAP)``. Each of E, A and W is a
persistent level set at school start (school, sex and origin shift its mean; *tidlig
startere* get a boost in every family) plus a Gaussian random walk over terms; *sen
startere* get a drift that starts in grade 6 or 7 and adds to A, W and E for four terms.

The grade-8 UPV outcome is ``Y = 1{L_16 + eps > thr(year)}`` with ``eps ~ N(0, UPV_NOISE_SD)``,
so the true probability is ``Phi((L_16 - thr) / UPV_NOISE_SD)``, and as of an earlier term it
is a closed-form mixture over the possible futures (:func:`upv_probability_asof`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from ews.terms import parse_school_year

# --- time ---------------------------------------------------------------------------------
N_TERMS = 22  # grades 0-10, two terms each
K_UPV = 16  # grade 8, H1: the UPV is made in November-December
K_EXAM = 19  # grade 9, H2: the leaving exam in May-June
FIRST_ASOF_GRADE = 5

# --- families -----------------------------------------------------------------------------
FAMILIES = ("laering", "fravaer", "trivsel_stoette", "mobilitet")


@dataclass(frozen=True)
class FamilyParams:
    """Parameters of one latent family component (liability units).

    Attributes:
        base_sd: Spread of the persistent level across pupils.
        rw_sd: Standard deviation of the random-walk step per term.
        early_boost: Mean shift for *tidlig startere*.
        drift_share: Share of the *sen starter* drift that goes to this family.
        school_sd: Spread of school means (centred within the municipality).
        boy: Shift for boys.
        indvandrer: Shift for immigrants.
        efterkommer: Shift for descendants of immigrants.
    """

    base_sd: float
    rw_sd: float
    early_boost: float
    drift_share: float
    school_sd: float
    boy: float
    indvandrer: float
    efterkommer: float


LEARNING = FamilyParams(0.70, 0.02, 0.90, 0.15, 0.15, 0.12, 0.35, 0.20)
ABSENCE = FamilyParams(0.22, 0.02, 0.65, 0.55, 0.08, 0.00, 0.05, 0.05)
WELLBEING = FamilyParams(0.08, 0.015, 0.50, 0.30, 0.04, 0.05, 0.00, 0.05)
FAMILY_PARAMS = (LEARNING, ABSENCE, WELLBEING)  # order: E, A, W

P_EARLY_GIRL = 0.08
P_EARLY_BOY = 0.12
EARLY_BOOST_SHAPE = 12.0  # per-family boost multiplier ~ Gamma(12, 1/12): mean 1, sd 0.29

SWITCH_TERMS = (12, 13, 14, 15)  # drift onset: grade 6 H1 to grade 7 H2
P_SWITCH_PER_TERM = 0.025  # 10 % of pupils become sen startere
DRIFT_STEPS = 4
DRIFT_MEAN = 0.45
DRIFT_SD = 0.15

MOVE_EFFECT = 0.20
MOVE_CAP = 3
MOVE_HAZARD = 0.012  # school changes per term, before the risk factor
MOVE_RISK_SLOPE = 1.0  # on the persistent A + W level
LEAVE_HAZARD = 0.006  # leaving the municipality, per term
LEAVE_RISK_SLOPE = 0.5

UPV_NOISE_SD = 1.25
EXAM_WEIGHTS = (1.30, 0.30, 0.20)  # on E, A, W at grade 9 H2
EXAM_NOISE_SD = 0.70
DESIGNATION_NOISE_SD = 1.25

TEST_WEIGHTS = (1.0, 0.05, 0.05)
MARK_WEIGHTS = (1.0, 0.25, 0.15)
SUPPORT_WEIGHTS = (1.0, 0.0, 0.6)

ORIGIN_DANSK, ORIGIN_INDVANDRER, ORIGIN_EFTERKOMMER = 0, 1, 2

#: Published shares (grade-8 school year start -> share assessed not education-ready); the
#: ministry's "2015" is the school year 2014/15 (see docs/synthetic-municipality.md).
UPV_TARGETS = {2014: 0.26, 2015: 0.27, 2016: 0.28, 2017: 0.285, 2018: 0.29, 2019: 0.295,
               2020: 0.30}
EXAM_FAIL_TARGET = 0.125
DESIGNATION_TARGET = 0.20

REFERENCE_SIZE = 100_000
REFERENCE_SEED = 20_160_101


@dataclass(frozen=True)
class GeneratingModel:
    """The parameters of the generating model that a test world may change.

    The defaults are the constants above and give the default world byte for byte. Every
    field is recorded with the ground truth (``ground_truth/generator.yaml``).

    Attributes:
        effect_laering: Weight of the learning component E in the UPV liability.
        effect_fravaer: Weight of the absence component A in the UPV liability.
        effect_trivsel: Weight of the wellbeing component W in the UPV liability.
        effect_mobilitet: Liability per school change (at most ``MOVE_CAP`` changes count).
        upv_share: Share assessed not education-ready in every year; None: the published
            shares by year (``UPV_TARGETS``).
        late_starter_share: Share of pupils whose *sen starter* drift begins in grades 6-7.
        late_drift_mean: Mean liability added by each of the drift's four terms.
        early_starter_scale: Multiplies the shares of *tidlig startere* (8 % of girls, 12 %
            of boys by default).
        upv_noise_sd: The assessor's noise: how far the outcome is from the pupil's state.
        observation_noise: Multiplies the noise of national tests and standing marks.
        concept_drift_from: A school year (``2022/23``) from which the outcomes no longer follow
            the pupils' state as before (concept drift): for a share ``concept_drift_share`` of
            each cohort assessed then or later (UPV and designation in grade 8, the leaving exam
            in grade 9) the outcome is drawn from the liability of another pupil of the cohort,
            so the exports look the same and the base rates hold, but the data say less about
            the outcome. None (default): no drift.
        concept_drift_share: The share of a drifted cohort whose outcome no longer follows
            their own state.
    """

    effect_laering: float = 1.0
    effect_fravaer: float = 1.0
    effect_trivsel: float = 1.0
    effect_mobilitet: float = MOVE_EFFECT
    upv_share: float | None = None
    late_starter_share: float = P_SWITCH_PER_TERM * len(SWITCH_TERMS)
    late_drift_mean: float = DRIFT_MEAN
    early_starter_scale: float = 1.0
    upv_noise_sd: float = UPV_NOISE_SD
    observation_noise: float = 1.0
    concept_drift_from: str | None = None
    concept_drift_share: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.concept_drift_from is not None:
            try:
                parse_school_year(str(self.concept_drift_from))
            except ValueError:
                problems.append("concept_drift_from must be a school year such as 2022/23 (or empty)")
        if not 0.0 <= self.concept_drift_share <= 1.0:
            problems.append("concept_drift_share must be within 0-1")
        for name in ("effect_laering", "effect_fravaer", "effect_trivsel", "effect_mobilitet",
                     "late_drift_mean"):
            if not 0.0 <= getattr(self, name) <= 5.0:
                problems.append(f"{name} must be within 0-5")
        if self.upv_share is not None and not 0.01 <= self.upv_share <= 0.9:
            problems.append("upv_share must be within 0.01-0.9 (or empty for the published shares)")
        if not 0.0 <= self.late_starter_share <= 0.9:
            problems.append("late_starter_share must be within 0-0.9")
        if not 0.0 <= self.early_starter_scale * P_EARLY_BOY <= 0.9:
            problems.append("early_starter_scale must be within 0-7.5")
        if not 0.05 <= self.upv_noise_sd <= 10.0:
            problems.append("upv_noise_sd must be within 0.05-10")
        if not 0.0 <= self.observation_noise <= 10.0:
            problems.append("observation_noise must be within 0-10")
        if problems:
            raise ValueError("generating model: " + "; ".join(problems))

    def drifted(self, school_year_start: int) -> bool:
        """Whether outcomes assessed in the school year starting in this year have drifted."""
        if self.concept_drift_from is None:
            return False
        return school_year_start >= parse_school_year(str(self.concept_drift_from))

    @property
    def family_effects(self) -> tuple[float, float, float]:
        """Weights of E, A and W in the liability."""
        return (self.effect_laering, self.effect_fravaer, self.effect_trivsel)

    @property
    def switch_per_term(self) -> float:
        """Probability that the drift begins in each onset term."""
        return self.late_starter_share / len(SWITCH_TERMS)

    @property
    def drift_effect(self) -> float:
        """Liability per unit of drift: the family weights averaged over the drift's shares."""
        shares = [p.drift_share for p in FAMILY_PARAMS]
        return sum(w * s for w, s in zip(self.family_effects, shares, strict=True)) / sum(shares)

    def upv_targets(self) -> dict[int, float]:
        """Grade-8 start year -> the share the thresholds are solved for."""
        if self.upv_share is None:
            return dict(UPV_TARGETS)
        return {year: self.upv_share for year in UPV_TARGETS}


DEFAULT_MODEL = GeneratingModel()


def upv_target(grade8_start_year: int) -> float:
    """Share assessed not education-ready for the cohort whose grade 8 starts in this year."""
    if grade8_start_year <= min(UPV_TARGETS):
        return UPV_TARGETS[min(UPV_TARGETS)]
    if grade8_start_year >= max(UPV_TARGETS):
        return UPV_TARGETS[max(UPV_TARGETS)]
    return UPV_TARGETS[grade8_start_year]


@dataclass
class Latent:
    """Latent trajectories of a group of pupils.

    Attributes:
        E: Learning component, shape (n, N_TERMS).
        A: Absence component.
        W: Wellbeing/support component.
        moves: School changes counted up to and including each term (entering the
            municipality after school start counts as one).
        move_event: Whether a school change happens in the term (internal move or entry).
        move_hazard: Probability of an internal school change in the term.
        drift: Cumulative sen-starter drift per term (liability units, part of E + A + W).
        switch_term: Term at which the sen-starter drift starts (-1: never).
        early: Whether the pupil is a tidlig starter.
        static_risk: Persistent A + W level (drives moves and leaving).
        gen: The generating model the trajectories were drawn from (its effects make ``L``).
    """

    E: np.ndarray
    A: np.ndarray
    W: np.ndarray
    moves: np.ndarray
    move_event: np.ndarray
    move_hazard: np.ndarray
    drift: np.ndarray
    switch_term: np.ndarray
    early: np.ndarray
    static_risk: np.ndarray
    gen: GeneratingModel = DEFAULT_MODEL

    def subset(self, rows: np.ndarray) -> Latent:
        """The trajectories of some pupils only."""
        return Latent(
            E=self.E[rows], A=self.A[rows], W=self.W[rows], moves=self.moves[rows],
            move_event=self.move_event[rows], move_hazard=self.move_hazard[rows],
            drift=self.drift[rows], switch_term=self.switch_term[rows], early=self.early[rows],
            static_risk=self.static_risk[rows], gen=self.gen,
        )

    def liability(self, k: int | slice = slice(None)) -> np.ndarray:
        """``L_k`` (all terms by default)."""
        capped = np.minimum(self.moves[:, k], MOVE_CAP).astype(np.float64)
        w_e, w_a, w_w = self.gen.family_effects
        return (w_e * self.E[:, k].astype(np.float64) + w_a * self.A[:, k] + w_w * self.W[:, k]
                + self.gen.effect_mobilitet * capped)

    def composite(self, weights: tuple[float, float, float], k: int | slice) -> np.ndarray:
        """Weighted sum of E, A and W."""
        return (weights[0] * self.E[:, k].astype(np.float64) + weights[1] * self.A[:, k]
                + weights[2] * self.W[:, k])


def simulate_latent(
    rng: np.random.Generator,
    sex_boy: np.ndarray,
    origin: np.ndarray,
    school_shift: np.ndarray,
    entry_term: np.ndarray,
    moves_possible: bool = True,
    gen: GeneratingModel = DEFAULT_MODEL,
) -> Latent:
    """Draw latent trajectories for pupils of one cohort.

    Args:
        rng: Random generator.
        sex_boy: 1 for boys, 0 for girls.
        origin: ``ORIGIN_*`` codes.
        school_shift: Shape (n, 3): the first school's shift of E, A and W.
        entry_term: Term the pupil enters the municipality (0: at school start).
        moves_possible: False when the municipality has one school (no internal moves).
        gen: The generating model's parameters.

    Returns:
        The trajectories.
    """
    n = sex_boy.shape[0]
    boy = sex_boy.astype(bool)
    early = rng.random(n) < gen.early_starter_scale * np.where(boy, P_EARLY_BOY, P_EARLY_GIRL)
    boost_mult = rng.gamma(EARLY_BOOST_SHAPE, 1.0 / EARLY_BOOST_SHAPE, size=(n, 3))
    levels = rng.standard_normal((n, 3))
    steps = rng.standard_normal((n, N_TERMS, 3))
    u_switch = rng.random(n)
    drift_steps = rng.normal(gen.late_drift_mean, DRIFT_SD, size=(n, DRIFT_STEPS))
    u_move = rng.random((n, N_TERMS))

    switch_term = np.full(n, -1, dtype=np.int8)
    p_switch = gen.switch_per_term
    for j, term in enumerate(SWITCH_TERMS):
        hit = (u_switch >= j * p_switch) & (u_switch < (j + 1) * p_switch)
        switch_term[hit] = term
    k_index = np.arange(N_TERMS)
    drift = np.zeros((n, N_TERMS))
    switched = switch_term >= 0
    if switched.any():
        done = np.clip(k_index[None, :] - switch_term[switched, None] + 1, 0, DRIFT_STEPS)
        cum = np.concatenate([np.zeros((switched.sum(), 1)), np.cumsum(drift_steps[switched], 1)], 1)
        drift[switched] = np.take_along_axis(cum, done, axis=1)

    comps = []
    for f, params in enumerate(FAMILY_PARAMS):
        level = (params.base_sd * levels[:, f] + school_shift[:, f] + params.boy * boy
                 + params.indvandrer * (origin == ORIGIN_INDVANDRER)
                 + params.efterkommer * (origin == ORIGIN_EFTERKOMMER)
                 + params.early_boost * early * boost_mult[:, f])
        walk = params.rw_sd * steps[:, :, f]
        walk[:, 0] = 0.0
        comps.append(level[:, None] + np.cumsum(walk, axis=1) + params.drift_share * drift)
    E, A, W = comps

    static = (comps[1][:, 0] + comps[2][:, 0]).astype(np.float64)
    hazard = np.zeros((n, N_TERMS))
    if moves_possible:
        active = (k_index[None, :] > entry_term[:, None]) & (k_index[None, :] >= 1) & (
            k_index[None, :] < 20)
        hazard = np.where(active, MOVE_HAZARD * np.exp(MOVE_RISK_SLOPE * static)[:, None], 0.0)
    move_event = u_move < hazard
    move_event[np.arange(n), entry_term] |= entry_term > 0
    moves = np.cumsum(move_event, axis=1).astype(np.int8)
    return Latent(
        E=E.astype(np.float32), A=A.astype(np.float32), W=W.astype(np.float32),
        moves=moves, move_event=move_event, move_hazard=hazard.astype(np.float32),
        drift=drift.astype(np.float32), switch_term=switch_term, early=early, static_risk=static,
        gen=gen,
    )


def upv_probability_asof(latent: Latent, k: int, threshold: np.ndarray) -> np.ndarray:
    """True probability of the grade-8 UPV outcome given the latent state up to term ``k``.

    Known at term ``k``: ``L_k``, whether and when the drift started, the school changes so
    far and the (static) hazards. Unknown: future random-walk steps (Gaussian), future drift
    steps (Gaussian given the onset), a future onset (discrete), future school changes
    (Poisson-binomial). The probability is the exact mixture of Gaussian tail probabilities.
    From ``K_UPV`` on it is ``Phi((L_16 - thr) / UPV_NOISE_SD)``; the assessor's noise is not
    part of the pupil's state.

    Args:
        latent: Trajectories (rows are pupils).
        k: Term index of the as-of date.
        threshold: Per-pupil threshold of the pupil's grade-8 year.

    Returns:
        Probabilities in (0, 1).
    """
    gen = latent.gen
    if k >= K_UPV:
        return ndtr((latent.liability(K_UPV) - threshold) / gen.upv_noise_sd)
    n = latent.E.shape[0]
    level = latent.liability(k)
    future = K_UPV - k
    rw_var = future * sum((w * p.rw_sd)**2
                          for w, p in zip(gen.family_effects, FAMILY_PARAMS, strict=True))
    p_switch = gen.switch_per_term
    drift_mean = gen.late_drift_mean * gen.drift_effect
    drift_var = (DRIFT_SD * gen.drift_effect)**2

    # drift scenarios: (weight, mean, variance) per pupil
    scenarios: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    sw = latent.switch_term.astype(np.int64)
    known = (sw >= 0) & (sw <= k)
    done = np.clip(k - sw + 1, 0, DRIFT_STEPS)
    remaining = np.where(known, np.minimum(DRIFT_STEPS - done, future), 0)
    past_window = sum(1 for t in SWITCH_TERMS if t <= k)
    stay = 1.0 - p_switch * past_window
    future_terms = [t for t in SWITCH_TERMS if k < t <= K_UPV]
    p_none = 1.0 - p_switch * len(future_terms) / stay
    weight_known = np.where(known, 1.0, p_none)
    scenarios.append((weight_known, remaining * drift_mean, remaining * drift_var))
    for t in future_terms:
        steps = min(DRIFT_STEPS, K_UPV - t + 1)
        w = np.where(known, 0.0, p_switch / stay)
        scenarios.append((w, np.full(n, steps * drift_mean), np.full(n, steps * drift_var)))

    # future school changes: Poisson-binomial over terms k+1..K_UPV
    q = latent.move_hazard[:, k + 1:K_UPV + 1].astype(np.float64)
    dist = np.zeros((n, future + 1))
    dist[:, 0] = 1.0
    for j in range(future):
        shifted = np.zeros_like(dist)
        shifted[:, 1:] = dist[:, :-1]
        dist = dist * (1.0 - q[:, j:j + 1]) + shifted * q[:, j:j + 1]
    now = np.minimum(latent.moves[:, k], MOVE_CAP).astype(np.float64)

    prob = np.zeros(n)
    for weight, mean, var in scenarios:
        scale = np.sqrt(gen.upv_noise_sd**2 + rw_var + var)
        for extra in range(future + 1):
            mass = dist[:, extra]
            if not mass.any():
                continue
            bump = gen.effect_mobilitet * (np.minimum(latent.moves[:, k] + extra, MOVE_CAP) - now)
            prob += weight * mass * ndtr((level + mean + bump - threshold) / scale)
    return np.clip(prob, 1e-9, 1 - 1e-9)


def exam_liability(latent: Latent) -> np.ndarray:
    """Latent of the leaving-exam requirement at grade 9 H2."""
    return latent.composite(EXAM_WEIGHTS, K_EXAM)


@dataclass(frozen=True)
class Reference:
    """National reference statistics of the model (no municipality in particular).

    Attributes:
        mean: Per family (E, A, W) and term, the national mean, shape (3, N_TERMS).
        sd: Per family and term, the national standard deviation.
        test_mean: Mean of the test composite per term; ``test_sd`` its spread.
        mark_mean: Mean of the mark composite per term; ``mark_sd`` its spread.
        support_mean: Mean of the support score per term; ``support_sd`` its spread.
        liability_mean: Mean of L per term.
        upv_thresholds: Grade-8 start year -> threshold.
        exam_threshold: Threshold of the exam latent.
        exam_sd: Spread of the exam latent plus its noise.
        designation_threshold: Threshold of the designation (same latent as the UPV).
        gen: The generating model the statistics were computed for.
    """

    mean: np.ndarray
    sd: np.ndarray
    test_mean: np.ndarray
    test_sd: np.ndarray
    mark_mean: np.ndarray
    mark_sd: np.ndarray
    support_mean: np.ndarray
    support_sd: np.ndarray
    liability_mean: np.ndarray
    upv_thresholds: dict[int, float]
    exam_threshold: float
    exam_sd: float
    designation_threshold: float
    gen: GeneratingModel = DEFAULT_MODEL

    def upv_threshold(self, grade8_start_year: int) -> float:
        """Threshold for a cohort by the start year of its grade 8."""
        year = min(max(grade8_start_year, min(self.upv_thresholds)), max(self.upv_thresholds))
        return self.upv_thresholds[year]


SUPPORT_NOISE_SD = 0.30


def _solve_threshold(values: np.ndarray, noise_sd: float, target: float) -> float:
    """Threshold t with mean(Phi((values - t) / noise_sd)) == target."""
    lo, hi = float(values.min()) - 5 * noise_sd, float(values.max()) + 5 * noise_sd
    return float(brentq(lambda t: ndtr((values - t) / noise_sd).mean() - target, lo, hi,
                        xtol=1e-7))


@lru_cache(maxsize=4)
def reference(gen: GeneratingModel = DEFAULT_MODEL) -> Reference:
    """The national reference population (computed once per process and model, fixed seed).

    Args:
        gen: The generating model's parameters (the thresholds are solved for its base rate).

    Returns:
        Means, spreads and thresholds used to centre observations and to hit the published
        base rates.
    """
    rng = np.random.default_rng(REFERENCE_SEED)
    n = REFERENCE_SIZE
    boy = (rng.random(n) < 0.51).astype(np.int8)
    origin = rng.choice(3, size=n, p=[0.90, 0.04, 0.06]).astype(np.int8)
    shift = rng.standard_normal((n, 3)) * np.array([p.school_sd for p in FAMILY_PARAMS])
    latent = simulate_latent(rng, boy, origin, shift, np.zeros(n, dtype=np.int64), gen=gen)
    comps = np.stack([latent.E, latent.A, latent.W]).astype(np.float64)
    test = latent.composite(TEST_WEIGHTS, slice(None))
    mark = latent.composite(MARK_WEIGHTS, slice(None))
    support = latent.composite(SUPPORT_WEIGHTS, slice(None))
    support = support + SUPPORT_NOISE_SD * rng.standard_normal((n, 1))
    l16 = latent.liability(K_UPV)
    thresholds = {year: _solve_threshold(l16, gen.upv_noise_sd, target)
                  for year, target in gen.upv_targets().items()}
    exam_latent = exam_liability(latent)
    exam = _solve_threshold(exam_latent, EXAM_NOISE_SD, EXAM_FAIL_TARGET)
    designation = _solve_threshold(l16, DESIGNATION_NOISE_SD, DESIGNATION_TARGET)
    return Reference(
        mean=comps.mean(axis=1), sd=comps.std(axis=1),
        test_mean=test.mean(0), test_sd=test.std(0),
        mark_mean=mark.mean(0), mark_sd=mark.std(0),
        support_mean=support.mean(0), support_sd=support.std(0),
        liability_mean=latent.liability().mean(0),
        upv_thresholds=thresholds, exam_threshold=exam,
        exam_sd=float(np.sqrt(exam_latent.var() + EXAM_NOISE_SD**2)),
        designation_threshold=designation, gen=gen,
    )


def probit(p: float) -> float:
    """Inverse standard normal CDF."""
    return float(ndtri(p))


#: A family is named as a cause when the pupil's component at grade 8 H1 is this far above
#: the national mean (liability units); mobility when the pupil has changed school twice.
CAUSE_THRESHOLDS = {"laering": 0.60, "fravaer": 0.45, "trivsel_stoette": 0.40}
CAUSE_MOVES = 2


def pupil_paths(latent: Latent) -> np.ndarray:
    """``'tidlig_starter'``, ``'sen_starter'`` (drift began by grade 8) or ``'ingen'``."""
    late = (latent.switch_term >= 0) & (latent.switch_term <= K_UPV)
    return np.where(latent.early, "tidlig_starter",
                    np.where(late, "sen_starter", "ingen")).astype(object)


def pupil_causes(latent: Latent, ref: Reference) -> np.ndarray:
    """The families that drive each pupil's risk at grade 8 H1, ``'|'``-joined."""
    flags = [
        ("laering", latent.E[:, K_UPV] - ref.mean[0, K_UPV] > CAUSE_THRESHOLDS["laering"]),
        ("fravaer", latent.A[:, K_UPV] - ref.mean[1, K_UPV] > CAUSE_THRESHOLDS["fravaer"]),
        ("trivsel_stoette",
         latent.W[:, K_UPV] - ref.mean[2, K_UPV] > CAUSE_THRESHOLDS["trivsel_stoette"]),
        ("mobilitet", latent.moves[:, K_UPV] >= CAUSE_MOVES),
    ]
    out = np.full(latent.E.shape[0], "", dtype=object)
    for name, flag in flags:
        out = np.where(flag, np.where(out == "", name, out + "|" + name), out)
    return out.astype(object)
