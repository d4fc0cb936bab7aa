"""The stages that follow the ingest in a termly run, in data-flow order.

Each stage is a plain function ``(session, ctx) -> dict`` that reads and writes the staged
warehouse through ``session`` and returns what it adds to the manifest's ``outputs``; what it
adds to the manifest's top level goes into ``ctx.extra["manifest"]``. The flow calls them in
the order of :data:`STAGES`.
"""

from __future__ import annotations

from typing import Any

from ews.warehouse import WriteSession, read_frame


def model_stage(session: WriteSession, ctx: Any) -> dict[str, Any]:
    """Train (or reuse) the model for the term and score every pupil in grades 5-9."""
    from models.scoring import run_model_stage

    bundle, scores, entry = run_model_stage(
        session.con, ctx.config, str(ctx.term), ctx.as_of_date, ctx.run_id,
        ctx.settings.state_dir / "models", ctx.code_version,
    )
    ctx.extra["bundle"] = bundle
    ctx.extra["scores"] = scores
    ctx.extra.setdefault("manifest", {}).update(entry)
    return {"model_card": entry["model"]["card"]}


def explanation_stage(session: WriteSession, ctx: Any) -> dict[str, Any]:
    """SHAP explanations for every scored pupil, stored with the run and checked for additivity."""
    from models.explain import explain_run

    scores = ctx.extra["scores"]
    features = read_frame(
        session.con, "SELECT * FROM features_pupil_term WHERE as_of_date = $as_of", {"as_of": ctx.as_of_date}
    )
    features = features[features["pupil_id"].isin(scores["pupil_id"])].drop_duplicates("pupil_id")
    entry = explain_run(session.con, ctx.extra["bundle"], features, ctx.run_id, str(ctx.term))
    ctx.extra.setdefault("manifest", {})["explanations"] = entry
    return {}


def flag_stage(session: WriteSession, ctx: Any) -> dict[str, Any]:
    """Each network's flag list (new, still, no longer flagged) and the UU working lists.

    The files name every flagged pupil before review, so they are the UU consultants' working
    lists (``uu_worklists/``); the network's list is served by the review app after review.
    """
    from flags.export import publish_flag_lists

    lineage = {"run_id": ctx.run_id, "term": str(ctx.term), "as_of_date": str(ctx.as_of_date),
               "model_id": ctx.extra["bundle"].model_id, "config_hash": ctx.config_hash,
               "data_snapshot": ctx.data_snapshot, "code_version": ctx.code_version}
    entries = publish_flag_lists(session.con, session.identity, ctx.config, str(ctx.term), ctx.run_id,
                                 ctx.run_dir / "uu_worklists", lineage)
    return {"uu_worklists": entries}


STAGES: list[tuple[str, Any]] = [
    ("model: train or reuse, then score", model_stage),
    ("explanations", explanation_stage),
    ("flag lists", flag_stage),
]
