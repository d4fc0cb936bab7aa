"""The rule list: what a network gets when the model did not pass the publication gate.

When ``models.gate`` stops the model and the config says ``publication.on_gate_failure:
rule_list``, each network's list is chosen by the best rule baseline on the held-out cohorts
(``models.baselines``) instead of the model's risk: the pupils the rule flags (score above
zero), highest score first, ties broken in the fixed pseudo-random order of
``models.metrics.tie_break_key`` (the order the gate measured the rule in), at most the
network's capacity. Each pupil's reasons are the rule's own criteria that the pupil meets, with
the pupil's value and the rule's limit, never SHAP contributions of the model that stepped
aside. Rows carry ``list_basis = 'regel:<rule>'`` so every file and page can say what the
list is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flags.reasons import Reason, disciplines_for, feature_label, format_value, reasons_to_json
from models.baselines import ABSENCE_LIMIT_PCT, LOW_TEST_Z
from models.metrics import tie_break_key

#: The criteria of each rule: (feature, family, test on the value, the limit in Danish / English).
_ABSENCE = ("absence_total_pct_12m", "fravaer", lambda v: v > ABSENCE_LIMIT_PCT,
            f"reglens grænse: over {ABSENCE_LIMIT_PCT:g} %", f"the rule's limit: above {ABSENCE_LIMIT_PCT:g} %")
_NOTIFICATIONS = ("notifications_12m", "trivsel_stoette", lambda v: v >= 1,
                  "reglens grænse: mindst 1", "the rule's limit: at least 1")
_LOW_TEST = ("reglens grænse: {z} eller lavere".format(z=f"{LOW_TEST_Z:+.1f}".replace(".", ",")),
             f"the rule's limit: {LOW_TEST_Z:+.1f} or lower")
RULE_CRITERIA: dict[str, tuple[tuple[Any, ...], ...]] = {
    "fravaer_over_10pct": (_ABSENCE,),
    "abc_regel": (
        _ABSENCE,
        _NOTIFICATIONS,
        ("test_reading_latest_z", "laering", lambda v: v <= LOW_TEST_Z, *_LOW_TEST),
        ("test_math_latest_z", "laering", lambda v: v <= LOW_TEST_Z, *_LOW_TEST),
    ),
}
SCHOOL_RULE = "kun_skole"


@dataclass(frozen=True)
class RuleBasis:
    """The scores and reasons of the rule that stands in for the model.

    Attributes:
        rule: The rule's name (``models.baselines.RULE_BASELINES``).
        scores: One row per scored pupil: ``pupil_id``, ``rule_score``, ``tie`` (the fixed
            tie-break key), ``reasons_da`` (JSON), ``reason_families`` (JSON), ``disciplines``
            (JSON).
    """

    rule: str
    scores: pd.DataFrame

    @property
    def list_basis(self) -> str:
        """The value of ``flags_pupil_term.list_basis`` for this rule's lists."""
        return f"regel:{self.rule}"


def _value(row: dict[str, Any], feature: str) -> float | None:
    value = row.get(feature)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value)


def rule_reasons(rule: str, row: dict[str, Any], score: float) -> list[Reason]:
    """The rule's criteria a pupil meets, as reasons (Danish text with value and limit).

    Args:
        rule: The rule's name.
        row: The pupil's features (``features_pupil_term``).
        score: The pupil's rule score (for the school rule: the school's rate).

    Returns:
        One reason per criterion met (none when the rule does not flag the pupil).
    """
    if rule == SCHOOL_RULE:
        share = f"{round(score * 100)} %"
        return [Reason(
            feature="school_code", family="kontekst", value=round(float(score), 6), reference=None,
            reference_kind="rule", contribution=0.0, family_contribution=0.0,
            text_da=f"Skolens andel med udfaldet i tidligere årgange: {share} (reglen rangerer efter skole)",
            text_en=f"The school's share with the outcome in earlier cohorts: {share} (the rule ranks by school)")]
    reasons = []
    for feature, family, meets, limit_da, limit_en in RULE_CRITERIA.get(rule, ()):
        value = _value(row, feature)
        if value is None or not meets(value):
            continue
        label_da, label_en = feature_label(feature)
        reasons.append(Reason(
            feature=feature, family=family, value=round(value, 6), reference=None, reference_kind="rule",
            contribution=0.0, family_contribution=0.0,
            text_da=f"{label_da}: {format_value(feature, value)} ({limit_da})",
            text_en=f"{label_en}: {format_value(feature, value, 'en')} ({limit_en})"))
    return reasons


def rule_basis(rule: Any, features: pd.DataFrame) -> RuleBasis:
    """Score the term's pupils with a rule baseline and give each its reasons.

    Args:
        rule: A fitted rule baseline (``models.baselines``; ``name`` and ``score``).
        features: The term's features (``pupil_id``, ``as_of_date`` and the rule's columns),
            one row per pupil.

    Returns:
        The rule's scores and reasons per pupil.
    """
    frame = features.drop_duplicates("pupil_id").reset_index(drop=True)
    score = np.asarray(rule.score(frame), dtype=float)
    reasons = [rule_reasons(rule.name, row, s) for row, s in zip(frame.to_dict("records"), score, strict=True)]
    families = [sorted({r.family for r in items}) for items in reasons]
    scores = pd.DataFrame({
        "pupil_id": frame["pupil_id"].astype(str).to_numpy(),
        "rule_score": score,
        "tie": tie_break_key(frame),
        "reasons_da": [reasons_to_json(items) for items in reasons],
        "reason_families": [json.dumps(f, ensure_ascii=False) for f in families],
        "disciplines": [json.dumps(disciplines_for(f), ensure_ascii=False) for f in families],
    })
    return RuleBasis(rule=rule.name, scores=scores)


def select_network_by_rule(scores: pd.DataFrame, capacity: int) -> pd.DataFrame:
    """One network's rule list: flagged pupils, highest rule score first, at most ``capacity``.

    Args:
        scores: The network's eligible pupils with ``rule_score`` and ``tie``.
        capacity: Pupils the network can take up this term.

    Returns:
        The chosen rows with ``list_rank`` from 1.
    """
    pool = scores[scores["rule_score"] > 0].sort_values(
        ["rule_score", "tie"], ascending=[False, True], kind="stable").head(capacity)
    return pool.assign(list_rank=range(1, len(pool) + 1))


def rule_selection_code(rule: str, capacity: int) -> str:
    """The selection rule stored with each row of a rule list, e.g. ``regel:abc_regel:capacity:25``."""
    return f"regel:{rule}:capacity:{capacity}"
