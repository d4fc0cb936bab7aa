"""Agreement of named reasons with the synthetic generator's known causes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ews.pseudonym import pseudonymise
from flags.agreement import parse_causes, read_ground_truth, reason_agreement

KEY = b"test-key-not-secret"
CPRS = ["0101121234", "0202125678", "0303129012", "0404123456", "0505127890"]


def _truth_file(tmp_path):
    lines = ["cpr;grade8_school_year;path;causes;p_upv;p_exam"]
    causes = ["fravaer|laering", "trivsel_stoette", "", "mobilitet", "laering"]
    paths = ["tidlig_starter", "sen_starter", "ingen", "ingen", "tidlig_starter"]
    for cpr, cause, path in zip(CPRS, causes, paths, strict=True):
        lines.append(f"{cpr[:6]}-{cpr[6:]};2025/26;{path};{cause};0,4;0,1")
    target = tmp_path / "pupils.csv"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def test_causes_are_parsed_from_any_common_separator():
    assert parse_causes("fravaer|laering") == ("fravaer", "laering")
    assert parse_causes("fravaer, trivsel_stoette") == ("fravaer", "trivsel_stoette")
    assert parse_causes("") == () and parse_causes(None) == () and parse_causes("ingen") == ()


def test_ground_truth_is_pseudonymised_and_holds_no_cpr(tmp_path):
    truth = read_ground_truth(_truth_file(tmp_path), KEY)
    assert "cpr" not in truth.columns
    assert truth["pupil_id"].tolist() == [pseudonymise(c, KEY) for c in CPRS]
    assert truth["causes"].iloc[0] == ("fravaer", "laering")
    assert not truth.astype(str).apply(lambda col: col.str.contains(r"\d{6}-?\d{4}")).any().any()


def test_a_file_without_causes_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("cpr;path\n0101121234;x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="causes"):
        read_ground_truth(bad, KEY)


def test_share_counts_pupils_whose_reasons_name_a_true_cause(tmp_path):
    truth = read_ground_truth(_truth_file(tmp_path), KEY)
    ids = truth["pupil_id"].tolist()
    flags = pd.DataFrame({
        "pupil_id": ids + ["p-not-in-truth"],
        "status": ["ny", "fortsat", "ny", "ny", "ikke_laengere", "ny"],
        "reason_families": [json.dumps(f) for f in (
            ["laering", "fravaer"],  # agrees (second reason), top-1 agrees too
            ["fravaer", "trivsel_stoette"],  # agrees, but not the top reason
            ["fravaer"],  # no known cause: not in the denominator
            ["laering"],  # disagrees (truth: mobilitet)
            ["laering"],  # no longer flagged: ignored
            ["fravaer"],  # not in the truth: no known cause
        )],
        "path_pattern": ["tidlig_starter", "tidlig_starter", None, None, None, None],
    })
    result = reason_agreement(flags, truth)
    assert result["flagged"] == 5
    assert result["pupils"] == 3 and result["agreeing"] == 2
    assert result["share"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["top1_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["flagged_without_causes"] == 2
    assert result["family_precision"] == pytest.approx(3 / 5, abs=1e-4)  # 2 + 1 + 0 of 2 + 2 + 1 named
    assert result["path_pupils"] == 2 and result["path_share"] == 0.5
