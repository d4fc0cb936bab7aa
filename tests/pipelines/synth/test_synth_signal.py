"""A quick model on the exports comes close to the oracle (slow: run on demand).

Run with ``EWS_SYNTH_SIGNAL=1 pytest tests/pipelines/synth/test_synth_signal.py``; it writes
a Herning-size municipality and fits a few gradient-boosted models (several minutes).
"""

from __future__ import annotations

import os

import pytest

from pipelines.synth import SynthParams, generate_municipality
from tests.pipelines.synth.synth_signal import load_exports, signal_check

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("EWS_SYNTH_SIGNAL") != "1",
                       reason="several minutes; set EWS_SYNTH_SIGNAL=1 to run"),
]


@pytest.mark.parametrize("grade, half", [(7, 1), (8, 1)])
def test_quick_model_is_close_to_the_oracle(tmp_path_factory, grade, half):
    out = tmp_path_factory.getbasetemp() / "synth_signal_herning"
    if not (out / "municipality.yaml").exists():
        generate_municipality(out, SynthParams(seed=7))
    result = signal_check(out, grade, half, frames=load_exports(out))
    assert result["auc_oracle"] - result["auc_model"] <= 0.025, result
    assert result["ece_model"] <= 0.03, result
