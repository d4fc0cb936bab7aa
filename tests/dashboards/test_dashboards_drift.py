"""Drift compares like with like: a term with the model's training data of the same season."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd

from dashboards.reads import feature_drift
from dashboards.routes.steward import reference_dates, same_season

AUTUMN, SPRING = (11, 15), (4, 15)


def _features(seed: int) -> pd.DataFrame:
    """An unchanged population at five as-of dates: absence so far this school year is lower in
    November (three months in) than in April (eight months in), every year alike."""
    rng = np.random.default_rng(seed)
    frames = []
    for year, (month, day) in [(2023, AUTUMN), (2024, SPRING), (2024, AUTUMN), (2025, SPRING), (2025, AUTUMN)]:
        n = 3000
        months_in = 3 if month == 11 else 8
        frames.append(pd.DataFrame({
            "pupil_id": [f"p{year}{month}{i:05d}" for i in range(n)],
            "as_of_date": date(year, month, day),
            "absence_days_so_far": rng.gamma(2.0, 1.5 * months_in, n),
            "test_reading_latest_z": rng.normal(size=n),
            "contacts_ppr_12m": rng.poisson(0.4, n).astype(float),
            "support_active": (rng.random(n) < 0.1).astype(float),
        }))
    return pd.concat(frames, ignore_index=True)


def test_an_unchanged_population_raises_no_drift_alarm() -> None:
    con = duckdb.connect()
    frame = _features(7)
    con.register("frame", frame)
    con.execute("CREATE TABLE features_pupil_term AS SELECT * FROM frame")
    features = ["absence_days_so_far", "test_reading_latest_z", "contacts_ppr_12m", "support_active"]
    available = sorted(set(frame["as_of_date"]))
    current = date(2025, 11, 15)
    trained_on = reference_dates({"label_cutoff": date(2025, 4, 15)}, available)
    assert trained_on == available[:-1]

    reference = same_season(trained_on, current)
    assert reference == [date(2023, 11, 15), date(2024, 11, 15)]
    drift = feature_drift(con, reference, current, features)
    assert len(drift) == len(features)
    assert drift["psi"].max() < 0.1, drift  # every feature "stabil"

    # The mistake the page made before: November against every training date (April included)
    # reads the season as a marked shift of the absence feature.
    mixed = feature_drift(con, trained_on, current, features).set_index("feature")
    assert mixed.loc["absence_days_so_far", "psi"] > 0.25


def test_no_reference_of_the_same_season_gives_none() -> None:
    assert same_season([date(2025, 4, 15)], date(2025, 11, 15)) == []
    # A later date is never a reference, even of the same season.
    assert same_season([date(2024, 11, 15), date(2026, 11, 15)], date(2025, 11, 15)) == [date(2024, 11, 15)]


def test_the_model_card_is_found_whichever_way_the_registry_wrote_its_path(tmp_path, monkeypatch) -> None:
    from dashboards.routes.steward import _card_file, _split_card

    state = tmp_path / "data"
    card = state / "models" / "m1" / "card.md"
    card.parent.mkdir(parents=True)
    card.write_text("# Modelkort: m1\n\n## Sammenfatning (dansk)\n\nKort.\n\n## Metrics\n\n| a | b |\n|---|---|\n",
                    encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # Relative to the pipeline's working directory ("data/models/..."): joined to the state
    # folder it gave data/data/models/..., "Modelkortets fil findes ikke".
    for raw in ("data/models/m1/card.md", "models/m1/card.md", str(card)):
        assert _card_file(state, raw, "m1") == card.resolve(), raw
    assert _card_file(state, "/etc/passwd", "m1") is None  # never outside the state folder
    danish, rest = _split_card(card.read_text(encoding="utf-8"))
    assert "Sammenfatning" in danish and "Metrics" not in danish
    assert rest is not None and "<table>" in rest
