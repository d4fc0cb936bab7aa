"""Danish reasons: wording, reference values, family-first choice, what is never a reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.catalogue import FEATURES
from flags.reasons import (
    Reason,
    disciplines_for,
    feature_label,
    format_reference,
    format_value,
    on_risky_side,
    reason_text,
    reasons_for_pupils,
    reasons_from_json,
    reasons_to_json,
    reference_values,
    select_reasons,
)


def _explanation(rows: list[tuple[str, float | None, float]]) -> pd.DataFrame:
    from features.catalogue import feature_spec

    return pd.DataFrame({
        "feature": [r[0] for r in rows],
        "feature_value": [np.nan if r[1] is None else r[1] for r in rows],
        "contribution": [r[2] for r in rows],
        "family": [feature_spec(r[0]).family for r in rows],
        "actionable": [feature_spec(r[0]).actionable for r in rows],
    })


def test_the_example_reason_reads_as_in_the_issue():
    da, en = reason_text("absence_unauthorised_pct_6m", 9.0, 1.0, 6)
    assert da == "Ulovligt fravær seneste halvår: 9 % (kommunens median for 6. klasse: 1 %)"
    assert en == "Unauthorised absence, last six months: 9 % (municipal median for grade 6: 1 %)"


@pytest.mark.parametrize(("name", "value", "da", "en"), [
    ("absence_total_pct_12m", 12.34, "12 %", "12 %"),
    ("absence_total_pct_12m", 4.25, "4,2 %", "4.2 %"),
    ("absence_trend_pp", 1.5, "+1,5 procentpoint", "+1.5 percentage points"),
    ("absence_longest_spell_days_12m", 7.0, "7 skoledage", "7 school days"),
    ("test_math_latest_z", -1.44, "-1,4", "-1.4"),
    ("test_math_latest_z", 0.3, "+0,3", "+0.3"),
    ("test_math_latest_z", 0.01, "0", "0"),
    ("test_math_latest_z", -0.01, "0", "0"),
    ("absence_concerning_12m", 1.0, "ja", "yes"),
    ("support_active_level", 2.0, "specialklasse", "special class"),
    ("grade", 6.0, "6. klasse", "grade 6"),
    ("contacts_ppr_12m", 3.0, "3", "3"),
    ("marks_mean_latest", 3.333, "3,3", "3.3"),
    ("test_reading_latest_z", None, "mangler", "missing"),
])
def test_values_are_shown_in_their_unit(name, value, da, en):
    assert format_value(name, value, "da") == da
    assert format_value(name, value, "en") == en


def test_yes_no_features_are_compared_with_a_share_not_a_median():
    assert format_reference("absence_concerning_12m", 0.14, 7) == "andel i kommunens 7. klasser: 14 %"
    assert format_reference("grade", 6.0, 6) == ""


def test_every_catalogue_feature_has_a_short_label_in_both_languages():
    for spec in FEATURES:
        da, en = feature_label(spec.name)
        assert da and en and da != en
        assert len(da) <= 60, spec.name  # short enough for a list cell


def test_risky_side_follows_the_catalogue_direction():
    assert on_risky_side("absence_total_pct_12m", 12.0, 6.0)
    assert not on_risky_side("absence_total_pct_12m", 5.0, 6.0)
    assert on_risky_side("test_reading_latest_z", -1.2, 0.1)
    assert not on_risky_side("test_reading_latest_z", 0.5, 0.1)
    assert on_risky_side("support_ever", 1.0, 0.2) and not on_risky_side("support_ever", 0.0, 0.2)
    assert on_risky_side("days_at_current_school", 3000.0, 100.0)  # direction unknown: passes


def test_reasons_are_chosen_family_first_and_never_from_context_or_missing_values():
    explanation = _explanation([
        ("absence_unauthorised_pct_6m", 9.0, 0.40),
        ("absence_total_pct_12m", 14.0, 0.35),
        ("absence_concerning_12m", 1.0, 0.30),
        ("test_reading_latest_z", -1.5, 0.25),
        ("contacts_socialraadgiver_12m", 2.0, 0.12),
        ("school_moves_ever", 0.0, -0.05),
        ("school_absence_pct_12m", 9.0, 0.90),  # kontekst: the biggest, but never a reason
        ("test_math_latest_z", None, 0.50),  # missing: never a reason
        ("grade", 5.0, 0.02),
    ])
    refs = {"absence_unauthorised_pct_6m": 1.0, "absence_total_pct_12m": 5.0, "absence_concerning_12m": 0.1,
            "test_reading_latest_z": 0.0, "contacts_socialraadgiver_12m": 0.0, "school_absence_pct_12m": 6.0}
    reasons, context = select_reasons(explanation, refs, grade=5)
    assert [r.feature for r in reasons] == [
        "absence_unauthorised_pct_6m", "test_reading_latest_z", "contacts_socialraadgiver_12m"]
    assert [r.family for r in reasons] == ["fravaer", "laering", "trivsel_stoette"]
    assert reasons[0].family_contribution == pytest.approx(1.05)
    assert reasons[0].text_da.startswith("Ulovligt fravær seneste halvår: 9 %")
    assert [c.feature for c in context] == ["school_absence_pct_12m", "test_math_latest_z"]
    assert context[1].text_da == "Seneste nationale test i matematik (standardiseret): mangler"


def test_free_places_go_to_a_second_feature_of_the_strongest_family():
    explanation = _explanation([
        ("absence_unauthorised_pct_6m", 9.0, 0.40),
        ("absence_total_pct_12m", 14.0, 0.35),
        ("absence_concerning_12m", 1.0, 0.30),
        ("test_reading_latest_z", -1.5, 0.10),
    ])
    reasons, _ = select_reasons(explanation, {"absence_total_pct_12m": 5.0, "absence_unauthorised_pct_6m": 1.0,
                                              "test_reading_latest_z": 0.0}, grade=6)
    assert [r.feature for r in reasons] == [
        "absence_unauthorised_pct_6m", "absence_total_pct_12m", "test_reading_latest_z"]


def test_a_value_not_worse_than_its_reference_is_not_named():
    explanation = _explanation([
        ("absence_total_pct_12m", 4.0, 0.30),  # below the grade's median: not a checkable reason
        ("contacts_ppr_12m", 2.0, 0.20),
    ])
    reasons, _ = select_reasons(explanation, {"absence_total_pct_12m": 6.0, "contacts_ppr_12m": 0.0}, grade=7)
    assert [r.feature for r in reasons] == ["contacts_ppr_12m"]


def test_small_contributions_give_no_reasons():
    explanation = _explanation([("absence_total_pct_12m", 14.0, 0.01), ("contacts_ppr_12m", 2.0, -0.3)])
    reasons, context = select_reasons(explanation, {"absence_total_pct_12m": 5.0}, grade=7)
    assert reasons == [] and context == []


@pytest.mark.parametrize(("families", "expected"), [
    (["fravaer"], ["skole", "sundhedsplejerske", "uu"]),
    (["laering"], ["laerere", "ppr", "uu"]),
    (["trivsel_stoette"], ["socialraadgiver", "uu"]),
    (["mobilitet"], ["skole", "uu"]),
    ([], ["uu"]),
    (["laering", "fravaer"], ["skole", "laerere", "sundhedsplejerske", "ppr", "uu"]),
])
def test_disciplines_follow_the_families_and_uu_is_always_there(families, expected):
    assert disciplines_for(families) == expected


def test_reasons_round_trip_through_json():
    reason = Reason("contacts_ppr_12m", "trivsel_stoette", 3.0, 0.0, "median", 0.2, 0.3, "æøå", "aoa")
    text = reasons_to_json([reason])
    assert "æøå" in text  # stored as UTF-8, readable in the warehouse
    assert reasons_from_json(text) == [reason]
    assert reasons_from_json("") == []


def test_reference_values_are_medians_and_shares_of_the_same_grade():
    explanations = pd.DataFrame({
        "pupil_id": ["a", "b", "c", "d", "a", "b", "c", "d"],
        "feature": ["absence_total_pct_12m"] * 4 + ["absence_concerning_12m"] * 4,
        "feature_value": [2.0, 4.0, 30.0, np.nan, 0.0, 0.0, 1.0, 1.0],
    })
    pupils = pd.DataFrame({"pupil_id": ["a", "b", "c", "d"], "grade": [5, 5, 5, 6]})
    refs = reference_values(explanations, pupils).set_index(["grade", "feature"])["reference"]
    assert refs[(5, "absence_total_pct_12m")] == 4.0  # missing values do not count as zero
    assert refs[(5, "absence_concerning_12m")] == pytest.approx(1 / 3)
    assert refs[(6, "absence_concerning_12m")] == 1.0


def test_reasons_for_many_pupils_use_each_pupils_grade(two_runs):
    cur = two_runs.explanations["run-cur"]
    scores = two_runs.scores["run-cur"]
    refs = reference_values(cur, scores[["pupil_id", "grade"]])
    top = scores.sort_values("risk", ascending=False).head(5)
    out = reasons_for_pupils(cur, top[["pupil_id", "grade"]], refs)
    assert sorted(out["pupil_id"]) == sorted(top["pupil_id"])
    for row in out.itertuples():
        grade = int(top.set_index("pupil_id").loc[row.pupil_id, "grade"])
        for reason in reasons_from_json(row.reasons_da):
            assert reason.family != "kontekst"
            assert f"for {grade}. klasse" in reason.text_da or f"{grade}. klasser" in reason.text_da
        assert "uu" in json.loads(row.disciplines)
