from pathlib import Path

from features.catalogue import (
    FAMILIES,
    FEATURE_NAMES,
    FEATURES,
    PROTECTED_ATTRIBUTES,
    feature_spec,
    monotone_constraints,
    render_markdown,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_feature_is_described_in_both_languages_with_a_known_family():
    assert len(set(FEATURE_NAMES)) == len(FEATURES)
    for spec in FEATURES:
        assert spec.family in FAMILIES
        assert spec.description_da.strip() and spec.description_en.strip()
        assert spec.monotone in (-1, 0, 1)
        if spec.family == "kontekst":
            assert not spec.actionable, f"{spec.name}: context features are never offered as reasons"


def test_sex_and_origin_are_never_features():
    lowered = " ".join(FEATURE_NAMES).lower()
    for attribute in (*PROTECTED_ATTRIBUTES, "gender", "koen", "oprindelse"):
        assert attribute not in FEATURE_NAMES
        assert attribute not in lowered


def test_known_directions_are_monotone():
    assert feature_spec("absence_unauthorised_pct_12m").monotone == 1
    assert feature_spec("test_reading_latest_z").monotone == -1
    assert monotone_constraints(["absence_total_pct_6m", "grade"]) == [1, 0]


def test_docs_feature_catalogue_is_generated_from_code():
    text = (ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    assert text == render_markdown(), "regenerate: python -m features.catalogue > docs/features.md"
    for name in FEATURE_NAMES:
        assert f"`{name}`" in text
