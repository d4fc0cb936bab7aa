"""The stages that follow the ingest in a termly run, in data-flow order.

Each stage is a plain function ``(session, ctx) -> dict`` that reads and writes the staged
warehouse through ``session`` and returns what it adds to the manifest's ``outputs``; what it
adds to the manifest's top level goes into ``ctx.extra["manifest"]``. The flow calls them in
the order of :data:`STAGES`.
"""

from __future__ import annotations

from typing import Any

from ews.warehouse import WriteSession, read_frame


def exclusion_stage(session: WriteSession, ctx: Any) -> dict[str, Any]:
    """Pupils excluded from screening (``ews.exclusions``): left out from here on, open flags withdrawn.

    Copies the exclusions in effect today into ``clean_exclusions`` (every later stage leaves
    those pupils out) and records each open flag of theirs in ``flags_withdrawn`` for the UU
    consultant. The manifest gets counts only.
    """
    from ews.exclusions import withdraw_open_flags, write_exclusions
    from ews.terms import Term

    active = ctx.extra.get("exclusions")
    if active is None:
        from ews.exclusions import ExclusionStore

        active = ExclusionStore(ctx.settings.state_dir).active(ctx.settings.today_date())
    excluded = write_exclusions(session.con, active)
    previous_term = str(Term.parse(str(ctx.term)).previous())
    withdrawn = withdraw_open_flags(session.con, active, ctx.run_id, str(ctx.term), previous_term)
    ctx.extra.setdefault("manifest", {})["exclusions"] = {"pupils_excluded": excluded, "flags_withdrawn": withdrawn}
    return {}


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
    gate_stage(session, ctx)
    return {"model_card": entry["model"]["card"]}


def gate_stage(session: WriteSession, ctx: Any) -> None:
    """The publication gate (``models.gate``): may the model's lists be published?

    Puts the gate (``passed``, ``figures``, ``reasons``, ``published``, ``list_basis``) into
    ``ctx.extra["gate"]`` and the manifest's ``gate``; when the model did not pass, a warning
    with the figures goes into the manifest's ``warnings``.
    """
    from models.gate import gate_warning, published

    bundle = ctx.extra["bundle"]
    gate = (bundle.metrics or {}).get("gate")
    if gate is None:  # a model registered before the gate existed: measure it now
        from models.evaluation import evaluate_model

        gate = evaluate_model(session.con, ctx.config, bundle, n_boot=0)["gate"]
    gate = {**gate, **published(gate, ctx.config.publication.on_gate_failure)}
    ctx.extra["gate"] = gate
    ctx.extra.setdefault("manifest", {})["gate"] = {
        key: gate[key] for key in ("passed", "published", "list_basis", "best_rule", "learnt_nothing",
                                   "checks", "reasons", "reasons_da", "figures")}
    warning = gate_warning(gate)
    if warning:
        ctx.extra.setdefault("warnings", []).append(warning)


def explanation_stage(session: WriteSession, ctx: Any) -> dict[str, Any]:
    """SHAP explanations for every scored pupil, stored with the run and checked for additivity.

    Skipped when the model did not pass the publication gate: its explanations are not
    published (a rule list gives the rule's criteria as reasons).
    """
    from models.explain import explain_run

    if not ctx.extra["gate"]["passed"]:
        ctx.extra.setdefault("manifest", {})["explanations"] = {
            "skipped": "the model did not pass the publication gate"}
        return {}
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

    What is published follows the gate (``ctx.extra["gate"]``): the model's lists; the best
    rule's lists (``flags.rule_lists``); or, with ``publication.on_gate_failure: no_list``, no
    list at all (the term's earlier lists are removed, no file is written).
    """
    from flags.export import publish_flag_lists
    from flags.selection import withdraw_flag_lists
    from models.gate import PUBLISHED_NO_LIST, PUBLISHED_RULE_LIST

    gate = ctx.extra["gate"]
    if gate["published"] == PUBLISHED_NO_LIST:
        withdraw_flag_lists(session.con, str(ctx.term))
        return {"uu_worklists": []}
    rule = None
    if gate["published"] == PUBLISHED_RULE_LIST:
        from flags.rule_lists import rule_basis

        baseline = next(b for b in ctx.extra["bundle"].baselines if b.name == gate["best_rule"])
        features = read_frame(session.con, "SELECT * FROM features_pupil_term WHERE as_of_date = $as_of",
                              {"as_of": ctx.as_of_date})
        features = features[features["pupil_id"].isin(ctx.extra["scores"]["pupil_id"])]
        rule = rule_basis(baseline, features)
    lineage = {"run_id": ctx.run_id, "term": str(ctx.term), "as_of_date": str(ctx.as_of_date),
               "model_id": ctx.extra["bundle"].model_id, "config_hash": ctx.config_hash,
               "data_snapshot": ctx.data_snapshot, "code_version": ctx.code_version}
    entries = publish_flag_lists(session.con, session.identity, ctx.config, str(ctx.term), ctx.run_id,
                                 ctx.run_dir / "uu_worklists", lineage, rule=rule)
    return {"uu_worklists": entries}


def review_copy_stage(session: WriteSession, ctx: Any) -> dict[str, Any]:
    """Copy the review app's reviews into ``reviews_decisions`` (issue 14).

    ``app.sqlite`` is opened read-only, so the copy never blocks the app; only pseudonyms,
    codes, roles and dates are copied. The manifest's ``reviews`` says how many.
    """
    from dashboards.store import read_reviews
    from flags.followup import copy_reviews

    entry = copy_reviews(session.con, read_reviews(ctx.settings.state_dir))
    ctx.extra["reviews_copied"] = entry
    ctx.extra.setdefault("manifest", {})["reviews"] = entry
    return {}


def outcome_stage(session: WriteSession, ctx: Any) -> dict[str, Any]:
    """Earlier models and flags against the outcomes that have arrived (issue 14).

    Writes ``scores_outcome_evaluation`` (``models.prospective``) and ``flags_outcomes``
    (``flags.outcomes``, descriptive) for the term, puts a summary into the manifest's
    ``outcomes``, a warning per model whose figures dropped beyond the bootstrap interval into
    its ``warnings``, and the model-card section into ``model_card_outcomes.md`` of the run.
    """
    from flags.outcomes import DESCRIPTIVE_NOTE_DA, flag_outcomes, store_flag_outcomes
    from models.card import write_outcome_section
    from models.prospective import (
        arrived_outcomes,
        drop_warnings,
        evaluate_earlier_models,
        manifest_outcomes,
        store_prospective,
    )

    capacity = {n.id: n.capacity_per_term for n in ctx.config.networks}
    term = str(ctx.term)
    evaluation = evaluate_earlier_models(session.con, capacity, term, ctx.as_of_date, ctx.run_id,
                                         seed=ctx.config.model.seed)
    store_prospective(session.con, term, evaluation)
    descriptive = flag_outcomes(session.con, arrived_outcomes(session.con, ctx.as_of_date), term, ctx.run_id)
    store_flag_outcomes(session.con, term, descriptive)
    ctx.extra.setdefault("manifest", {})["outcomes"] = manifest_outcomes(evaluation)
    ctx.extra.setdefault("warnings", []).extend(drop_warnings(evaluation))
    if evaluation.empty:
        return {}
    path = write_outcome_section(evaluation, descriptive, ctx.run_dir / "model_card_outcomes.md",
                                 note=DESCRIPTIVE_NOTE_DA)
    return {"model_card_outcomes": str(path.resolve())}


STAGES: list[tuple[str, Any]] = [
    ("exclusions from screening", exclusion_stage),
    ("model: train or reuse, then score", model_stage),
    ("explanations", explanation_stage),
    ("flag lists", flag_stage),
    ("reviews: copy from the review app", review_copy_stage),
    ("outcomes: earlier models and flags against arrived outcomes", outcome_stage),
]
