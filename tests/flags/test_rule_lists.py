"""Rule lists: chosen by the rule's score with the fixed tie-break, reasons naming the rule's criteria."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from flags.labels import DISCLAIMER_DA, list_basis_da
from flags.rule_lists import rule_basis, rule_reasons, select_network_by_rule
from models.baselines import AbcRule, AbsenceRule
from models.metrics import tie_break_key


def _features() -> pd.DataFrame:
    return pd.DataFrame({
        "pupil_id": ["a", "b", "c", "d"],
        "as_of_date": [date(2025, 11, 15)] * 4,
        "absence_total_pct_12m": [14.0, 3.0, 12.5, np.nan],
        "notifications_12m": [1.0, 0.0, 0.0, 2.0],
        "test_reading_latest_z": [-1.4, 0.2, np.nan, -0.5],
        "test_math_latest_z": [0.1, -0.3, -0.2, -1.1],
    })


def test_abc_reasons_name_each_criterion_met_with_value_and_limit():
    row = _features().iloc[0].to_dict()
    texts = [r.text_da for r in rule_reasons("abc_regel", row, 3.0)]
    assert len(texts) == 3
    assert texts[0].startswith("Samlet fravær seneste år: 14 %") and "over 10 %" in texts[0]
    assert "reglens grænse: mindst 1" in texts[1]
    assert "-1,4" in texts[2] and "-1,0 eller lavere" in texts[2]
    assert all(r.contribution == 0.0 for r in rule_reasons("abc_regel", row, 3.0))  # no SHAP
    assert rule_reasons("abc_regel", _features().iloc[1].to_dict(), 0.0) == []


def test_missing_absence_is_not_a_reason():
    row = _features().iloc[3].to_dict()
    assert [r.feature for r in rule_reasons("abc_regel", row, 2.0)] == ["notifications_12m", "test_math_latest_z"]


def test_the_rule_list_takes_flagged_pupils_by_score_then_the_fixed_tie_break():
    features = _features()
    basis = rule_basis(AbsenceRule(), features)
    assert basis.list_basis == "regel:fravaer_over_10pct"
    scores = basis.scores.assign(network_id="N1")
    chosen = select_network_by_rule(scores, capacity=5)
    assert set(chosen["pupil_id"]) == {"a", "c"}  # only pupils the rule flags
    tie = dict(zip(features["pupil_id"], tie_break_key(features), strict=True))
    assert list(chosen["pupil_id"]) == sorted(["a", "c"], key=tie.get)
    assert list(chosen["list_rank"]) == [1, 2]
    assert len(select_network_by_rule(scores, capacity=1)) == 1
    reasons = json.loads(basis.scores.set_index("pupil_id").loc["a", "reasons_da"])
    assert reasons and "fravær" in reasons[0]["text_da"].lower()


def test_abc_ranks_by_the_number_of_criteria():
    basis = rule_basis(AbcRule(), _features())
    chosen = select_network_by_rule(basis.scores, capacity=4)
    assert chosen.iloc[0]["pupil_id"] == "a" and chosen.iloc[0]["rule_score"] == 3.0
    families = json.loads(basis.scores.set_index("pupil_id").loc["a", "reason_families"])
    assert families == ["fravaer", "laering", "trivsel_stoette"]


def test_a_rule_list_is_named_and_a_model_list_is_not():
    text = list_basis_da("regel:abc_regel")
    assert text.startswith("REGELLISTE") and "ABC-reglen" in text and DISCLAIMER_DA not in text
    assert list_basis_da("model") is None and list_basis_da(None) is None
