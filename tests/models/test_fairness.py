import numpy as np
import pandas as pd
import pytest

from models.fairness import fairness_report


def _frame():
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({
        "pupil_id": [f"p{i % 300}" for i in range(n)],
        "sex": np.where(np.arange(n) % 300 < 150, "F", "M"),
        "area": np.where(np.arange(n) % 300 < 290, "Nord", "Syd"),  # Syd: 10 pupils
        "origin": None,
    })
    risk = rng.random(n)
    y = (rng.random(n) < risk).astype(int)
    flagged = risk > 0.8
    return frame, y, risk, flagged


def test_group_metrics_match_their_definitions():
    frame, y, risk, flagged = _frame()
    report = fairness_report(frame, y, risk, flagged, attributes=["sex"], n_boot=0)
    girls = (frame["sex"] == "F").to_numpy()
    entry = report["sex"]["groups"]["F"]
    assert entry["flag_rate"] == pytest.approx(flagged[girls].mean(), abs=1e-4)
    assert entry["precision"] == pytest.approx(y[girls & flagged].mean(), abs=1e-4)
    assert entry["recall"] == pytest.approx(flagged[girls & (y == 1)].mean(), abs=1e-4)
    assert entry["false_positive_rate"] == pytest.approx(flagged[girls & (y == 0)].mean(), abs=1e-4)
    assert entry["calibration_gap"] == pytest.approx(risk[girls].mean() - y[girls].mean(), abs=1e-4)
    assert entry["pupils"] == 150 and entry["rows"] == 300


def test_small_groups_are_suppressed_and_missing_attributes_reported():
    frame, y, risk, flagged = _frame()
    report = fairness_report(frame, y, risk, flagged, attributes=["area", "origin", "religion"], n_boot=10)
    syd = report["area"]["groups"]["Syd"]
    assert syd["suppressed"] and "flag_rate" not in syd
    nord = report["area"]["groups"]["Nord"]
    low, high = nord["flag_rate_ci"]
    assert low <= nord["flag_rate"] <= high
    assert report["origin"]["available"] is False and report["religion"]["available"] is False


def test_intervals_are_reproducible():
    frame, y, risk, flagged = _frame()
    first = fairness_report(frame, y, risk, flagged, attributes=["sex"], n_boot=10, seed=4)
    assert first == fairness_report(frame, y, risk, flagged, attributes=["sex"], n_boot=10, seed=4)


def test_the_bootstrap_gives_fairlearn_s_numbers_for_every_replicate_and_group():
    """The bootstrap's sums for all groups and replicates at once against fairlearn's MetricFrame
    over the same re-weighted cells (the way the intervals were computed before, one metric call
    a replicate and group): the same numbers, NaN exactly where fairlearn has no row."""
    from models.fairness import _METRICS, _bootstrap_metrics, _cells, _group_metrics

    rng = np.random.default_rng(7)
    n, pupils, n_groups = 900, 250, 9
    pupil_codes = rng.integers(0, pupils, n)
    group_codes = pupil_codes % n_groups  # a pupil stays in one group
    y = (rng.random(n) < 0.3).astype(np.int64)
    f = (rng.random(n) < 0.2).astype(np.int64)
    f[group_codes == 3] = 0  # a group nobody is flagged in: precision has no denominator
    y[group_codes == 5] = 1  # a group where everyone has the outcome: no false positive rate
    risk = rng.random(n)
    small = np.isin(pupil_codes, [8, 17])  # group 8 has two pupils: often not drawn at all
    keep = ~((group_codes == 8) & ~small)
    pupil_codes, group_codes, y, f, risk = (a[keep] for a in (pupil_codes, group_codes, y, f, risk))
    weights = [rng.multinomial(pupils, np.full(pupils, 1 / pupils)) for _ in range(40)]
    labels = np.array([f"g{i}" for i in range(n_groups)], dtype=object)

    ours = _bootstrap_metrics(group_codes, y, f, risk, pupil_codes, weights, n_groups)
    replicas = [_cells(group_codes, y, f, risk, w[pupil_codes].astype(float), n_groups) for w in weights]
    reference = _group_metrics(pd.concat(replicas, ignore_index=True), labels,
                               np.repeat(np.arange(len(replicas)), [len(r) for r in replicas]))
    compared = 0
    for replicate in range(len(weights)):
        for code, label in enumerate(labels):
            present = (replicate, label) in reference.index
            for metric in _METRICS:
                got = ours[metric][replicate, code]
                if not present:
                    assert np.isnan(got), (replicate, label, metric)
                    continue
                want = float(reference.loc[(replicate, label), metric])
                assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-12, abs=1e-12), \
                    (replicate, label, metric, got, want)
                compared += 1
    assert compared > len(weights) * (n_groups - 1) * len(_METRICS) * 0.9
    assert np.isnan(ours["precision"][:, 3]).all() and np.isnan(ours["false_positive_rate"][:, 5]).all()
    # the case of a group none of whose pupils was drawn happened, and is NaN on both sides
    assert np.isnan(ours["flag_rate"][:, 8]).any()
