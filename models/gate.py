"""The publication gate: may the model's flag lists be published, or must it step aside?

A model earns its place only when, on the held-out cohorts it never saw,

1. it **beats the best rule baseline** (the rule of :data:`models.baselines.RULE_BASELINES`
   with the highest precision at capacity) in precision at each network's capacity, and the
   95 % bootstrap interval of the difference (model minus rule; pupils resampled, as in
   ``models.fairness``) lies above zero: the lower bound must be > 0. A model that is only
   *probably* better on a few hundred pupils does not replace the rule the network knows;
   the interval is two-sided 95 % (the quantiles ``models.fairness`` uses), so the claim "better
   than the rules" is made at the 2.5 % one-sided level;
2. it **meets the calibration limit** (``models.evaluation.MAX_CALIBRATION_ERROR``), because the
   lists and pages show its risk as a probability;
3. its risk is **not (nearly) constant across pupils**: when more than
   :data:`MAX_CONSTANT_RISK_SHARE` of the held-out rows fall within one window of
   :data:`CONSTANT_RISK_WIDTH` of risk, the list would be filled by the tie-break, and the model
   is reported as having learnt nothing.

In the bootstrap each list stays as chosen on all rows (a pupil's rows keep their place on or
off the list) and the pupils are drawn with replacement: the precision of a replicate is the
weighted share of listed rows with the outcome. That measures how much the comparison depends
on which pupils happened to be in the held-out cohorts, at the cost of one matrix product.

:func:`gate_evaluation` needs the rows (``models.evaluation.evaluate_model`` calls it and stores
the result as ``evaluation["gate"]``); :func:`gate_decision` is the pure decision on the
figures, and :func:`gate_warning` the sentence for the run manifest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from models.metrics import CALIBRATION_BINS, select_top_k

#: Bootstrap replicates of the precision difference (pupils resampled).
GATE_BOOTSTRAP = 200
#: The interval of the difference (two-sided 95 %); its lower bound must be above zero.
GATE_CI_QUANTILES = (0.025, 0.975)
#: Risk is "nearly constant" when more than this share of the rows lies in one window ...
MAX_CONSTANT_RISK_SHARE = 0.5
#: ... of this width (one percentage point of risk).
CONSTANT_RISK_WIDTH = 0.01
#: Replicates drawn at a time (bounds memory at national size).
_BOOT_CHUNK = 25

#: What a run publishes, by ``publication.on_gate_failure`` (and ``model`` when the gate passes).
PUBLISHED_MODEL = "model"
PUBLISHED_RULE_LIST = "rule_list"
PUBLISHED_NO_LIST = "no_list"

#: Danish names of the rules, for lists, pages and warnings.
RULE_NAMES_DA = {
    "fravaer_over_10pct": "fraværsreglen (fravær over 10 % seneste år)",
    "abc_regel": "ABC-reglen (fravær over 10 %, underretning seneste år, national test mindst "
                 "1 standardafvigelse under gennemsnittet)",
    "kun_skole": "skolereglen (skolens andel med udfaldet i tidligere årgange)",
}


def largest_share_within(risk: np.ndarray, width: float = CONSTANT_RISK_WIDTH) -> float:
    """The largest share of rows whose risk lies in one window ``[r, r + width]``.

    Args:
        risk: Risk per row.
        width: Width of the window.

    Returns:
        A share in [0, 1] (0 for no rows); 1 for a constant risk.
    """
    values = np.sort(np.asarray(risk, dtype=float))
    if len(values) == 0:
        return 0.0
    ends = np.searchsorted(values, values + width * (1 + 1e-9), side="right")
    return float(np.max(ends - np.arange(len(values))) / len(values))


def calibration_noise(risk: np.ndarray, pupil_ids: pd.Series, n_draws: int = GATE_BOOTSTRAP, seed: int = 0,
                      bins: int = CALIBRATION_BINS) -> float | None:
    """The calibration error a perfectly calibrated model would show on these rows (95th percentile).

    Outcomes are drawn from the risk itself (one uniform number per pupil, so a pupil's rows
    agree as real outcomes do) and the calibration error of ``models.metrics`` is measured
    against them. On a few hundred pupils this is not small: it tells a steward whether a
    calibration error just above the limit says more than the size of the held-out cohorts.

    Args:
        risk: Risk per row.
        pupil_ids: Pupil per row.
        n_draws: Simulated outcome sets.
        seed: Random seed.
        bins: Equal-count bins, as in ``models.metrics.calibration_error``.

    Returns:
        The 95th percentile of the simulated calibration errors (None without rows).
    """
    p = np.asarray(risk, dtype=float)
    if len(p) == 0 or n_draws <= 0:
        return None
    codes, index = pd.factorize(pupil_ids.astype(str), sort=True)
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, min(bins, len(p)))
    bin_of = np.empty(len(p), dtype=int)
    for number, part in enumerate(parts):
        bin_of[part] = number
    sizes = np.bincount(bin_of, minlength=len(parts)).astype(float)
    mean_risk = np.bincount(bin_of, weights=p, minlength=len(parts)) / sizes
    rng = np.random.default_rng(seed)
    errors = np.empty(n_draws)
    for draw in range(n_draws):
        outcome = (rng.random(len(index))[codes] < p).astype(float)
        observed = np.bincount(bin_of, weights=outcome, minlength=len(parts)) / sizes
        errors[draw] = float(np.sum(sizes * np.abs(mean_risk - observed)) / len(p))
    return float(np.quantile(errors, 0.95))


def _pupil_weights(n_pupils: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap multiplicities of pupils, ``_BOOT_CHUNK`` replicates at a time."""
    rng = np.random.default_rng(seed)
    left = n_boot
    while left > 0:
        size = min(_BOOT_CHUNK, left)
        yield rng.multinomial(n_pupils, np.full(n_pupils, 1 / n_pupils), size=size).astype(float)
        left -= size


def bootstrap_precision_differences(
    pupil_ids: pd.Series,
    y: np.ndarray,
    chosen: Mapping[str, np.ndarray],
    reference: str,
    n_boot: int = GATE_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Bootstrap draws of ``precision(reference) - precision(other)`` for every other list.

    Args:
        pupil_ids: Pupil per row (pupils are resampled, with all their rows).
        y: 0/1 outcome per row.
        chosen: List name -> boolean array: whether the row is on that list (at capacity).
        reference: The list whose precision the others are subtracted from (the model).
        n_boot: Replicates.
        seed: Random seed.

    Returns:
        Other list name -> array of ``n_boot`` differences (NaN where a replicate drew no
        listed row of either list).
    """
    codes, index = pd.factorize(pupil_ids.astype(str), sort=True)
    n_pupils = len(index)
    outcome = np.asarray(y, dtype=float)
    hits = {name: np.bincount(codes, weights=mask * outcome, minlength=n_pupils)
            for name, mask in chosen.items()}
    listed = {name: np.bincount(codes, weights=mask.astype(float), minlength=n_pupils)
              for name, mask in chosen.items()}
    draws: dict[str, list[np.ndarray]] = {name: [] for name in chosen if name != reference}
    if n_pupils == 0 or n_boot <= 0:
        return {name: np.array([]) for name in draws}
    with np.errstate(invalid="ignore", divide="ignore"):
        for weights in _pupil_weights(n_pupils, n_boot, seed):
            own = (weights @ hits[reference]) / (weights @ listed[reference])
            for name in draws:
                draws[name].append(own - (weights @ hits[name]) / (weights @ listed[name]))
    return {name: np.concatenate(parts) for name, parts in draws.items()}


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def gate_evaluation(
    rows: pd.DataFrame,
    y: np.ndarray,
    risk: np.ndarray,
    rule_scores: Mapping[str, np.ndarray],
    lengths: pd.DataFrame,
    overall: Mapping[str, Any],
    max_calibration_error: float,
    n_boot: int = GATE_BOOTSTRAP,
    seed: int = 0,
    learnt_checks: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The gate's figures on the held-out rows, and its decision.

    Args:
        rows: Held-out rows (``pupil_id``, ``as_of_date``, ``network_id``).
        y: Their 0/1 outcomes.
        risk: The model's calibrated risk per row.
        rule_scores: Rule baseline name -> score per row (higher = flagged first).
        lengths: List lengths (``models.metrics.list_lengths``) of these rows.
        overall: ``model`` and ``baselines`` metrics of these rows (from ``evaluate_model``).
        max_calibration_error: The calibration limit.
        n_boot: Bootstrap replicates.
        seed: Random seed.
        learnt_checks: The evaluation's checks of whether the model learnt anything
            (``risk_varies``, ``better_than_chance``: ``value``, ``limit``, ``passed``), so that the
            gate and the model card never disagree on it.

    Returns:
        See :func:`gate_decision`; ``figures`` holds ``precision_at_capacity`` (model, every
        rule, the best rule, each difference with its interval), ``calibration_error`` and
        ``constant_risk``.
    """
    chosen = {"model": select_top_k(rows, risk, lengths)}
    for name, score in rule_scores.items():
        chosen[name] = select_top_k(rows, score, lengths)
    draws = bootstrap_precision_differences(rows["pupil_id"], y, chosen, "model", n_boot, seed)
    model_precision = overall["model"].get("precision_at_capacity")
    rules: dict[str, Any] = {}
    for name in rule_scores:
        theirs = overall["baselines"].get(name, {}).get("precision_at_capacity")
        sample = draws[name][~np.isnan(draws[name])] if len(draws[name]) else draws[name]
        interval = ([_round(float(np.quantile(sample, q))) for q in GATE_CI_QUANTILES]
                    if len(sample) else [None, None])
        rules[name] = {
            "precision_at_capacity": theirs,
            "difference": _round(model_precision - theirs)
            if model_precision is not None and theirs is not None else None,
            "difference_ci": interval,
        }
    figures = {
        "precision_at_capacity": {
            "model": model_precision,
            "list_length": overall["model"].get("list_length"),
            "rules": rules,
            "bootstrap": int(n_boot),
            "ci_quantiles": list(GATE_CI_QUANTILES),
        },
        "calibration_error": {"value": overall["model"].get("calibration_error"),
                              "limit": max_calibration_error,
                              "noise_95": _round(calibration_noise(risk, rows["pupil_id"], n_boot, seed))},
        "constant_risk": {"largest_share": round(largest_share_within(risk), 6),
                          "window": CONSTANT_RISK_WIDTH, "limit": MAX_CONSTANT_RISK_SHARE,
                          "distinct_risks": int(len(np.unique(np.round(np.asarray(risk, float), 6))))},
        "rows": int(len(rows)),
        "pupils": int(rows["pupil_id"].nunique()),
    }
    if learnt_checks:
        figures["learnt"] = {name: dict(check) for name, check in learnt_checks.items()}
    return gate_decision(figures)


def best_rule(rules: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The rule with the highest precision at capacity (ties: the first in the given order)."""
    known = [(name, entry.get("precision_at_capacity")) for name, entry in rules.items()
             if entry.get("precision_at_capacity") is not None]
    if not known:
        return None
    top = max(value for _, value in known)
    return next(name for name, value in known if value == top)


#: Reasons for the evaluation's learnt-something checks (``models.evaluation.yardstick_checks``)
#: when they fail: (English, Danish), formatted with the check's ``value`` and ``limit``.
_LEARNT_REASONS = {
    "risk_varies": ("the model learnt nothing: its risk hardly varies (relative spread {value}, limit {limit})",
                    "modellen har ikke lært noget: risikoen varierer næsten ikke (relativ spredning {value}, "
                    "grænse {limit})"),
    "better_than_chance": ("the model learnt nothing: the lower bound of its held-out ROC AUC {value} is not "
                           "above 0.5 (chance)",
                           "modellen har ikke lært noget: den nedre grænse for dens ROC AUC {value} er ikke "
                           "over 0,5 (tilfældighed)"),
}


def gate_decision(figures: Mapping[str, Any]) -> dict[str, Any]:
    """Decide from the gate's figures (pure).

    Args:
        figures: ``precision_at_capacity`` (``model``, ``rules``: name -> ``precision_at_capacity``,
            ``difference``, ``difference_ci``), ``calibration_error`` (``value``, ``limit``) and
            ``constant_risk`` (``largest_share``, ``window``, ``limit``).

    Returns:
        ``passed``; ``learnt_nothing``; ``best_rule`` (the rule a failed model gives way to);
        ``checks`` (``beats_best_rule``, ``calibration``, ``varied_risk``, each true/false);
        ``reasons`` (English) and ``reasons_da`` (Danish): one sentence per failed check with
        its figures; ``figures`` as given.
    """
    precision = figures["precision_at_capacity"]
    rules = precision["rules"]
    rule = best_rule(rules)
    reasons: list[str] = []
    reasons_da: list[str] = []
    model_p = precision.get("model")
    if rule is None or model_p is None:
        beats = False
        reasons.append("no list rows to compare the model with the rules on the held-out cohorts")
        reasons_da.append("der er ingen listepladser at sammenligne modellen og reglerne på i de "
                          "tilbageholdte årgange")
    else:
        entry = rules[rule]
        low, high = entry["difference_ci"]
        beats = low is not None and low > 0
        if not beats:
            reasons.append(
                f"precision at capacity {model_p:.3f} against {entry['precision_at_capacity']:.3f} for the "
                f"best rule {rule}: difference {entry['difference']:+.3f}, 95 % interval "
                f"{_fmt(low)} to {_fmt(high)}, not above zero")
            reasons_da.append(
                f"præcision ved kapacitet {_da(model_p)} mod {_da(entry['precision_at_capacity'])} for den "
                f"bedste regel, {RULE_NAMES_DA.get(rule, rule)}: forskel {_da(entry['difference'], True)}, "
                f"95 %-interval {_da(low, True)} til {_da(high, True)}, ikke over nul")
    calibration = figures["calibration_error"]
    calibrated = calibration["value"] is not None and calibration["value"] <= calibration["limit"]
    if not calibrated:
        noise = calibration.get("noise_95")
        aside, aside_da = "", ""
        if noise is not None:
            aside = (f" (a perfectly calibrated model would show up to {noise:.3f} on held-out cohorts "
                     "this size)")
            aside_da = f" (en fuldt kalibreret model ville vise op til {_da(noise)} på så få elever)"
        reasons.append(f"calibration error {_fmt(calibration['value'], False)} above the limit "
                       f"{calibration['limit']}{aside}")
        reasons_da.append(f"kalibreringsfejl {_da(calibration['value'])} over grænsen "
                          f"{_da(calibration['limit'])}{aside_da}")
    constant = figures["constant_risk"]
    varied = constant["largest_share"] <= constant["limit"]
    if not varied:
        reasons.append(
            f"the model learnt nothing: {constant['largest_share']:.0%} of the held-out rows have the same "
            f"risk (within {constant['window']:.0%})")
        reasons_da.append(
            f"modellen har ikke lært noget: {round(constant['largest_share'] * 100)} % af de tilbageholdte "
            f"rækker har samme risiko (inden for {round(constant['window'] * 100)} procentpoint)")
    for name, check in (figures.get("learnt") or {}).items():
        if check.get("passed") or name not in _LEARNT_REASONS:
            continue
        varied = False
        english, danish = _LEARNT_REASONS[name]
        reasons.append(english.format(value=_fmt(check.get("value"), False), limit=check.get("limit")))
        reasons_da.append(danish.format(value=_da(check.get("value")), limit=_da(check.get("limit"))))
    return {
        "passed": bool(beats and calibrated and varied),
        "learnt_nothing": not varied,
        "best_rule": rule,
        "checks": {"beats_best_rule": bool(beats), "calibration": bool(calibrated), "varied_risk": bool(varied)},
        "reasons": reasons,
        "reasons_da": reasons_da,
        "figures": dict(figures),
    }


def published(gate: Mapping[str, Any], on_gate_failure: str) -> dict[str, Any]:
    """What a run publishes under this gate result and the config's choice.

    Args:
        gate: From :func:`gate_decision`.
        on_gate_failure: ``rule_list`` or ``no_list`` (``publication.on_gate_failure``).

    Returns:
        ``published`` (``model``, ``rule_list`` or ``no_list``) and ``list_basis`` (the value
        of the flag rows' ``list_basis`` column: ``model``, ``regel:<rule>``, or None when no
        list is written).
    """
    if gate.get("passed"):
        return {"published": PUBLISHED_MODEL, "list_basis": "model"}
    if on_gate_failure == PUBLISHED_RULE_LIST and gate.get("best_rule"):
        return {"published": PUBLISHED_RULE_LIST, "list_basis": f"regel:{gate['best_rule']}"}
    return {"published": PUBLISHED_NO_LIST, "list_basis": None}


def gate_warning(gate: Mapping[str, Any]) -> str | None:
    """The run manifest's warning for a model that did not pass (None when it passed).

    Args:
        gate: A gate result with ``published`` (see :func:`published`).

    Returns:
        One English sentence with the figures and what was published instead.
    """
    if gate.get("passed"):
        return None
    instead = {PUBLISHED_RULE_LIST: f"the flag lists are the rule list of {gate.get('best_rule')}",
               PUBLISHED_NO_LIST: "no flag list was written"}.get(gate.get("published"), "")
    return ("publication gate: the model did not pass (" + "; ".join(gate.get("reasons", []))
            + f"); {instead}")


def _fmt(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _da(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "ukendt"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    return text.replace(".", ",")
