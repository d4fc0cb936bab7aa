"""Model selection on the municipality's own history: rolling-origin validation.

The model that fits Herning's 1,000 pupils a grade does not fit a municipality with 60, so the
model is chosen per training run, on the training cohorts only (the held-out evaluation
cohorts are never seen here):

* **Origins.** For each of the last ``model.selection_origins`` training cohorts ``v`` (at
  most :data:`ORIGINS` by default), every candidate is fitted on the training cohorts before
  ``v`` and validated on ``v``'s rows: the same (pupil, as-of date) rows, grades and list
  lengths as the held-out evaluation (``features.timechop``, ``models.metrics``).
* **Figures.** Per origin and as a mean over the origins: ROC AUC, average precision and
  precision at each network's capacity, for every learned candidate and every rule baseline.
  Candidates are validated on their raw output (log-odds): calibration is strictly increasing
  and changes none of these figures, so it is fitted once, for the winner only.
* **Criterion.** The candidate with the highest mean validation ROC AUC wins. AUC measures
  the whole ranking and is far less noisy than precision at a short list on a few hundred
  validation rows; it is also the figure the model is held to against the oracle. Candidates
  within :data:`TIE_TOLERANCE` of the best are tied, and the simplest of them (lowest
  ``complexity``: logistic before boosted, fewer leaves before more) wins.
* **Rules.** A rule's score has many ties, so rules are compared where they are used: at the
  networks' capacity. When the best rule's mean validation precision at capacity is above
  every learned candidate's, ``rule_beats_learned`` is set; the publication gate
  (``models.gate``) then publishes the rule's list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.build import design_matrix
from features.catalogue import FEATURE_NAMES
from models.baselines import fit_rules
from models.metrics import list_lengths, score_metrics
from models.risk_model import DEFAULT_CANDIDATES, Candidate, boosting_threads

#: Validation origins by default (the latest training cohorts, each validated once).
ORIGINS = 3
#: Mean validation AUCs closer than this to the best count as a tie (the simpler model wins).
TIE_TOLERANCE = 0.001
#: Figures kept per origin and averaged.
VALIDATION_METRICS = ("roc_auc", "average_precision", "precision_at_capacity")
CRITERION = (
    "Highest mean validation ROC AUC over the rolling origins; candidates within "
    f"{TIE_TOLERANCE} of the best are tied and the simplest of them wins; rules are compared "
    "on mean validation precision at capacity"
)
#: Fewest known values a feature needs among the rows a model is fitted on.
MIN_KNOWN_VALUES = 20
#: Above this many rows an origin's fit rows are a fixed sample of whole pupils: ranking
#: candidates needs far fewer rows than the final fit (national size has 400,000), and the
#: boosted leaf sizes are shares of the rows, so they scale with the sample.
SELECTION_MAX_ROWS = 150_000


def sample_pupils(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """All rows of a fixed pseudo-random share of pupils, when there are more than ``max_rows``.

    Args:
        frame: Rows with ``pupil_id``.
        max_rows: Most rows wanted (about).

    Returns:
        ``frame`` itself when small enough; else the rows of the pupils whose id hash falls in
        the share, so the same data give the same sample.
    """
    if len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    key = pd.util.hash_pandas_object(frame["pupil_id"].astype(str), index=False).to_numpy()
    keep = (key % 1_000_000) < int(share * 1_000_000)
    return frame[keep].reset_index(drop=True)


def usable_features(train: pd.DataFrame, folds: list[tuple[np.ndarray, np.ndarray]] | None = None) -> list[str]:
    """Catalogue features with enough known values in every set of rows a model is fitted on.

    A feature that is missing for (nearly) every fitted row carries nothing to learn from, e.g.
    standing marks, which start in grade 8 after the last training as-of date, or a test that a
    small municipality's older cohorts never sat.

    Args:
        train: The rows the model is fitted on.
        folds: Cross-validation folds over those rows (each fold's training part must qualify).

    Returns:
        Feature names, in catalogue order.
    """
    parts = [train] if folds is None else [train.iloc[fit] for fit, _ in folds]
    return [name for name in FEATURE_NAMES
            if all(int(part[name].notna().sum()) >= MIN_KNOWN_VALUES for part in parts)]


def validation_origins(cohorts: Sequence[str], origins: int = ORIGINS) -> list[tuple[tuple[str, ...], str]]:
    """The rolling origins over the training cohorts.

    Args:
        cohorts: Training cohorts (any order).
        origins: How many of the latest cohorts to validate on.

    Returns:
        ``(fit cohorts, validation cohort)`` pairs, oldest origin first; each fits on every
        cohort before its validation cohort. Empty with fewer than two cohorts.
    """
    ordered = sorted(set(cohorts))
    first = max(1, len(ordered) - origins)
    return [(tuple(ordered[:i]), ordered[i]) for i in range(first, len(ordered))]


def _mean(entries: list[dict[str, Any]]) -> dict[str, float | None]:
    result: dict[str, float | None] = {}
    for metric in VALIDATION_METRICS:
        values = [e[metric] for e in entries if e.get(metric) is not None]
        result[metric] = round(float(np.mean(values)), 6) if values else None
    return result


def _figures(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {m: metrics.get(m) for m in VALIDATION_METRICS}


def select_candidate(
    train: pd.DataFrame,
    population: pd.DataFrame,
    capacity: Mapping[str, int],
    seed: int,
    candidates: Sequence[Candidate] = DEFAULT_CANDIDATES,
    origins: int = ORIGINS,
    pinned: Candidate | None = None,
) -> dict[str, Any]:
    """Validate every candidate on rolling origins over the training cohorts and choose one.

    Args:
        train: The training rows (features, ``cohort``, ``outcome``, ``pupil_id``,
            ``as_of_date``, ``network_id``, ``school_code``); never the held-out cohorts.
        population: Pupils in grades 5-9 per as-of date and network (list lengths).
        capacity: Network id -> pupils a term.
        seed: Random seed.
        candidates: The candidates of automatic selection.
        origins: How many of the latest training cohorts to validate on.
        pinned: A candidate the config pins: it wins whatever the figures say, and only it and
            the rules are validated (its figures are still recorded).

    Returns:
        The selection record (JSON-ready): ``criterion``, ``origins`` (fit and validation
        cohorts and rows of each), ``candidates`` (name -> description, ``per_origin`` and
        ``mean`` figures), ``rules`` (the same for each rule), ``winner``, ``pinned``,
        ``reason``, ``best_rule`` and ``rule_beats_learned``.
    """
    pool = [pinned] if pinned is not None else list(candidates)
    plan = validation_origins(train["cohort"].unique().tolist(), origins)
    records: list[dict[str, Any]] = []
    per_candidate: dict[str, list[dict[str, Any]]] = {c.name: [] for c in pool}
    per_rule: dict[str, list[dict[str, Any]]] = {}
    for fit_cohorts, validation_cohort in plan:
        fit = sample_pupils(train[train["cohort"].isin(list(fit_cohorts))].reset_index(drop=True),
                            SELECTION_MAX_ROWS)
        valid = train[train["cohort"] == validation_cohort].reset_index(drop=True)
        y_fit = fit["outcome"].to_numpy(dtype=int)
        y_valid = valid["outcome"].to_numpy(dtype=int)
        record: dict[str, Any] = {
            "fit_cohorts": list(fit_cohorts), "validation_cohort": validation_cohort,
            "fit_rows": int(len(fit)), "validation_rows": int(len(valid)),
            "validation_positives": int(y_valid.sum()),
        }
        names = usable_features(fit)
        if len(set(y_fit)) < 2 or len(set(y_valid)) < 2 or not names:
            record["skipped"] = "only one outcome value (or no usable feature) in the fit or validation rows"
            records.append(record)
            continue
        records.append(record)
        lengths = list_lengths(valid, population, capacity)
        X_fit, X_valid = design_matrix(fit, names), design_matrix(valid, names)
        with boosting_threads():
            for candidate in pool:
                model = candidate.estimator(names, len(fit), seed).fit(X_fit, y_fit)
                score = np.asarray(model.decision_function(X_valid), dtype="float64")
                metrics = score_metrics(valid, y_valid, score, lengths, is_probability=False)
                per_candidate[candidate.name].append({"validation_cohort": validation_cohort, **_figures(metrics)})
        for rule in fit_rules(fit, y_fit):
            metrics = score_metrics(valid, y_valid, rule.score(valid), lengths, is_probability=False)
            per_rule.setdefault(rule.name, []).append({"validation_cohort": validation_cohort, **_figures(metrics)})
    table = {c.name: {**c.describe(), "per_origin": per_candidate[c.name], "mean": _mean(per_candidate[c.name])}
             for c in pool}
    rules = {name: {"per_origin": entries, "mean": _mean(entries)} for name, entries in per_rule.items()}
    winner, reason = _choose(pool, table, pinned is not None)
    best_rule, rule_beats = _rule_comparison(table, rules)
    return {
        "criterion": CRITERION,
        "tie_tolerance": TIE_TOLERANCE,
        "origins": records,
        "candidates": table,
        "rules": rules,
        "winner": winner.name,
        "winner_kind": winner.kind,
        "pinned": pinned is not None,
        "reason": reason,
        "best_rule": best_rule,
        "rule_beats_learned": rule_beats,
    }


def _choose(pool: Sequence[Candidate], table: Mapping[str, Any], pinned: bool) -> tuple[Candidate, str]:
    simplest = min(pool, key=lambda c: c.complexity)
    if pinned:
        return pool[0], "pinned by the config (model.candidate)"
    scored = [(c, table[c.name]["mean"]["roc_auc"]) for c in pool if table[c.name]["mean"]["roc_auc"] is not None]
    if not scored:
        return simplest, ("no rolling origin could be validated (fewer than two training cohorts, or a cohort "
                          "with only one outcome value): the simplest candidate is used")
    best = max(auc for _, auc in scored)
    tied = [c for c, auc in scored if auc >= best - TIE_TOLERANCE]
    winner = min(tied, key=lambda c: c.complexity)
    auc = table[winner.name]["mean"]["roc_auc"]
    if len(tied) == 1:
        return winner, f"highest mean validation ROC AUC ({auc:.3f})"
    others = ", ".join(c.name for c in tied if c is not winner)
    return winner, (f"mean validation ROC AUC {auc:.3f}, within {TIE_TOLERANCE} of the best ({best:.3f}); "
                    f"the simplest of the tied candidates (also {others})")


def _rule_comparison(table: Mapping[str, Any], rules: Mapping[str, Any]) -> tuple[str | None, bool]:
    rule_scores = {n: r["mean"]["precision_at_capacity"] for n, r in rules.items()
                   if r["mean"]["precision_at_capacity"] is not None}
    if not rule_scores:
        return None, False
    best_rule = max(rule_scores, key=lambda n: rule_scores[n])
    learned = [e["mean"]["precision_at_capacity"] for e in table.values()]
    beats = all(v is None or rule_scores[best_rule] > v for v in learned) and any(v is not None for v in learned)
    return best_rule, bool(beats)
