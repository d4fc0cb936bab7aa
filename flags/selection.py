"""The termly flag list per school network: who, why, and what changed since last term.

Each network's list is chosen from the run's scores (``scores_pupil_term``) of pupils in the
grades of ``config.flagging.grades``, by ``config.flagging.mode``:

* ``capacity``: the network's ``capacity_per_term`` pupils with the highest risk;
* ``threshold``: every pupil with risk at or above ``config.flagging.threshold``;
* ``capacity_and_threshold``: the highest-risk pupils at or above the threshold, at most the
  network's capacity.

When the model did not pass the publication gate (``models.gate``) and the config publishes
the rule list, the lists are the best rule's instead (``flags.rule_lists``: by the rule's
score at each network's capacity, whatever ``flagging.mode`` says; ``list_basis`` names the
rule).

Ties are broken by pseudonym, so the same scores always give the same list. Each pupil on the
list is marked against the network's own list of last term: ``ny`` (not on it) or ``fortsat``
(on it); pupils on last term's list who are not on this one are ``ikke_laengere``. Those still
scored in the network are shown with their current risk; those who left the network, the
grades or the municipality stay in the table with ``in_network = false`` and are only counted
in the exports, never named (their data now belongs to another network, or to no one).

Rows carry the reasons (``flags.reasons``), the trajectory (``flags.trajectory``), the tier and
its step on the ladder, the disciplines the reasons point to, and the run and model they come
from (``run_id``, ``model_id``); the run links to its config hash and data snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection

import duckdb
import pandas as pd

from ews.config import MunicipalityConfig
from ews.exclusions import excluded_pupils
from ews.sql import load_sql
from ews.tables import create_tables
from ews.terms import Term
from ews.warehouse import delete_rows, replace_rows, table_exists
from flags.reasons import MAX_REASONS, MIN_CONTRIBUTION, reasons_for_pupils, reference_kind
from flags.rule_lists import RuleBasis, rule_selection_code, select_network_by_rule
from flags.trajectory import TREND_STEP, drift_signals, trajectories

#: Columns of ``flags_pupil_term`` in order (see ``ews/tables_warehouse.sql``).
FLAG_COLUMNS = (
    "run_id", "term", "as_of_date", "model_id", "pupil_id", "network_id", "school_code", "grade",
    "status", "list_rank", "risk", "tier", "tier_step", "previous_risk", "risk_change",
    "trajectory", "path_pattern", "reasons_da", "context_da", "reason_families", "disciplines",
    "review_required", "in_network", "selection", "list_basis",
)
#: ``list_basis`` of lists chosen by the model's risk (rule lists: ``regel:<rule>``).
MODEL_BASIS = "model"
STATUSES = ("ny", "fortsat", "ikke_laengere")


class FlagListError(ValueError):
    """The flag lists cannot be built from what is in the warehouse; the message says why."""


def _sql(name: str) -> str:
    return load_sql("flags", name)


def select_network(
    scores: pd.DataFrame, mode: str, capacity: int, threshold: float
) -> pd.DataFrame:
    """Choose one network's list from its scored pupils.

    Args:
        scores: The network's eligible scored pupils (``pupil_id``, ``risk``, ...).
        mode: ``capacity``, ``threshold`` or ``capacity_and_threshold``.
        capacity: Pupils the network can take up this term.
        threshold: Smallest risk for the threshold modes.

    Returns:
        The chosen rows, highest risk first, with ``list_rank`` from 1.

    Raises:
        ValueError: For an unknown mode.
    """
    if mode not in ("capacity", "threshold", "capacity_and_threshold"):
        raise ValueError(f"flagging.mode '{mode}' is not capacity, threshold or capacity_and_threshold")
    pool = scores.sort_values(["risk", "pupil_id"], ascending=[False, True])
    if mode in ("threshold", "capacity_and_threshold"):
        pool = pool[pool["risk"] >= threshold]
    if mode in ("capacity", "capacity_and_threshold"):
        pool = pool.head(capacity)
    return pool.assign(list_rank=range(1, len(pool) + 1))


def selection_code(mode: str, capacity: int, threshold: float) -> str:
    """The selection rule as stored with each row, e.g. ``capacity:25``."""
    if mode == "capacity":
        return f"capacity:{capacity}"
    if mode == "threshold":
        return f"threshold:{threshold:g}"
    return f"capacity_and_threshold:{capacity}:{threshold:g}"


def resolve_run_for_term(con: duckdb.DuckDBPyConnection, term: str) -> str | None:
    """The run whose scores (and list) stand for a term, if any.

    Args:
        con: A warehouse connection.
        term: The term.

    Returns:
        The run id, or None when the term was never scored.

    Raises:
        FlagListError: When several runs scored the term and no single list was issued.
    """
    if not table_exists(con, "scores_pupil_term"):
        return None
    runs = [r[0] for r in con.execute(_sql("score_runs_for_term.sql"), {"term": term}).fetchall()]
    if len(runs) <= 1:
        return runs[0] if runs else None
    if table_exists(con, "flags_pupil_term"):
        flagged = [r[0] for r in con.execute(_sql("flag_runs_for_term.sql"), {"term": term}).fetchall()]
        if len(flagged) == 1:
            return flagged[0]
    raise FlagListError(
        f"term {term}: scores of {len(runs)} runs ({runs}) are in the warehouse; pass the run "
        "whose list was issued as previous_run_id"
    )


def _by_network(frame: pd.DataFrame) -> Callable[[str], pd.DataFrame]:
    """A network's rows of a frame (``network_id``), the frame grouped once."""
    groups = frame.groupby("network_id", sort=False).indices if len(frame) else {}
    empty = frame.iloc[0:0]

    def rows(network_id: str) -> pd.DataFrame:
        positions = groups.get(network_id)
        return empty if positions is None else frame.iloc[positions]

    return rows


def build_flag_lists(
    con: duckdb.DuckDBPyConnection,
    config: MunicipalityConfig,
    term: str,
    run_id: str,
    previous_term: str | None = None,
    previous_run_id: str | None = None,
    max_reasons: int = MAX_REASONS,
    min_contribution: float = MIN_CONTRIBUTION,
    rule: RuleBasis | None = None,
) -> pd.DataFrame:
    """Build every network's flag list for a run.

    Reads ``scores_pupil_term`` and ``explanations_pupil_term`` of the run and, for the
    comparison with last term, ``flags_pupil_term`` and ``scores_pupil_term`` of earlier runs.

    Args:
        con: A warehouse connection (the run's staged connection in the flow).
        config: The municipality config (networks, capacities, ``flagging``, tiers).
        term: The run's term, e.g. ``2025/26-H1``.
        run_id: The run whose scores and explanations are used.
        previous_term: Last term; defaults to the term before ``term``.
        previous_run_id: The run whose list stood last term; found from the warehouse when
            None (see :func:`resolve_run_for_term`).
        max_reasons: Reasons at most per pupil.
        min_contribution: Smallest contribution (log-odds) named as a reason.
        rule: When given, the lists are this rule's (``flags.rule_lists``: the model did not
            pass the publication gate): chosen by the rule's score at each network's capacity,
            with the rule's criteria as reasons, and no risk, tier or trajectory of the model.

    Returns:
        Rows of ``flags_pupil_term`` (:data:`FLAG_COLUMNS`), networks in config order, each
        list by rank, then the pupils no longer flagged.

    Raises:
        FlagListError: When the run has no scores, scores name a network the config lacks,
            or flagged pupils have no explanation.
    """
    scores = con.execute(_sql("scores_run.sql"), {"run_id": run_id}).df()
    if scores.empty:
        raise FlagListError(f"run {run_id}: no rows in scores_pupil_term; score the term first")
    unknown = sorted(set(scores["network_id"].dropna()) - {n.id for n in config.networks})
    if unknown or scores["network_id"].isna().any():
        raise FlagListError(
            f"run {run_id}: scores name networks {unknown or ['(empty)']} that the config does "
            "not list; check schools[].network in the municipality config"
        )
    if "tier_step" not in scores or scores["tier_step"].isna().all():
        scores["tier_step"] = [config.tier_for(r).step for r in scores["risk"]]
    previous_term = previous_term or str(Term.parse(term).previous())
    if previous_run_id is None:
        previous_run_id = resolve_run_for_term(con, previous_term)
    previous = _previous_flags(con, previous_run_id)
    excluded = excluded_pupils(con)
    if excluded:  # withdrawn (ews.exclusions.withdraw_open_flags), not listed as "no longer flagged"
        previous = previous[~previous["pupil_id"].isin(excluded)]

    flagging = config.flagging
    eligible = scores[scores["grade"].isin(flagging.grades)]
    if rule is not None:
        eligible = eligible.merge(rule.scores[["pupil_id", "rule_score", "tie"]], on="pupil_id", how="left")
        eligible = eligible.assign(rule_score=eligible["rule_score"].fillna(0.0))
    parts = []
    # one pass over the rows per table, not one per network (a national config has ~1,100)
    eligible_of, scores_of, previous_of = (_by_network(frame) for frame in (eligible, scores, previous))
    for network in config.networks:
        own = eligible_of(network.id)
        if rule is None:
            code = selection_code(flagging.mode, network.capacity_per_term, flagging.threshold)
            chosen = select_network(own, flagging.mode, network.capacity_per_term, flagging.threshold)
        else:
            code = rule_selection_code(rule.rule, network.capacity_per_term)
            chosen = select_network_by_rule(own, network.capacity_per_term).drop(columns=["rule_score", "tie"])
        before = previous_of(network.id)
        was_flagged = set(before["pupil_id"])
        chosen = chosen.assign(
            status=["fortsat" if p in was_flagged else "ny" for p in chosen["pupil_id"]],
            in_network=True, selection=code,
        )
        dropped = before[~before["pupil_id"].isin(chosen["pupil_id"])]
        current = scores_of(network.id).set_index("pupil_id")
        stayed = dropped[dropped["pupil_id"].isin(current.index)]
        left = dropped[~dropped["pupil_id"].isin(current.index)]
        stayed_rows = current.loc[stayed["pupil_id"]].reset_index().assign(
            status="ikke_laengere", in_network=True, selection=code, list_rank=pd.NA)
        left_rows = left.assign(
            run_id=run_id, term=term, status="ikke_laengere", in_network=False, selection=code,
            list_rank=pd.NA, network_id=network.id)
        parts += [chosen, stayed_rows, left_rows]
    flags = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else pd.DataFrame(columns=list(FLAG_COLUMNS))
    if flags.empty:
        return flags
    flags["run_id"], flags["term"] = run_id, term
    run_meta = scores.iloc[0]
    flags["as_of_date"], flags["model_id"] = run_meta["as_of_date"], run_meta["model_id"]

    if rule is None:
        flags = _add_reasons(con, flags, run_id, max_reasons, min_contribution)
        flags = _add_trajectories(con, config, flags, term, previous_term)
        flags["list_basis"] = MODEL_BASIS
        not_scored = ~flags["in_network"].astype(bool)
    else:
        flags = _add_rule_reasons(flags, rule)
        flags["list_basis"] = rule.list_basis
        # the model stepped aside: none of its figures (risk, tier, trajectory) is shown
        not_scored = pd.Series(True, index=flags.index)
    flags["review_required"] = flagging.require_review
    for column in ("risk", "tier", "tier_step", "previous_risk", "risk_change", "trajectory",
                   "path_pattern"):
        flags[column] = flags[column].astype(object).where(~not_scored & flags[column].notna(), None)
    return _ordered(flags, config)


def _add_rule_reasons(flags: pd.DataFrame, rule: RuleBasis) -> pd.DataFrame:
    """The rule's criteria as reasons for the pupils on a rule list (none for those leaving it)."""
    columns = ["pupil_id", "reasons_da", "reason_families", "disciplines"]
    on_list = flags["status"] != "ikke_laengere"
    merged = flags.drop(columns=[c for c in columns[1:] if c in flags.columns]).merge(
        rule.scores[columns], on="pupil_id", how="left")
    empty = json.dumps([])
    for column in columns[1:]:
        merged[column] = merged[column].where(on_list.to_numpy() & merged[column].notna(), empty)
    merged["context_da"] = empty
    for column in ("previous_risk", "risk_change", "trajectory", "path_pattern"):
        merged[column] = None
    return merged


def _previous_flags(con: duckdb.DuckDBPyConnection, previous_run_id: str | None) -> pd.DataFrame:
    columns = ["pupil_id", "network_id", "school_code", "grade"]
    if previous_run_id is None or not table_exists(con, "flags_pupil_term"):
        return pd.DataFrame(columns=columns)
    return con.execute(_sql("previous_flags.sql"), {"run_id": previous_run_id}).df()[columns]


def _add_reasons(con: duckdb.DuckDBPyConnection, flags: pd.DataFrame, run_id: str,
                 max_reasons: int, min_contribution: float) -> pd.DataFrame:
    on_list = flags[flags["status"] != "ikke_laengere"]
    pupils = on_list["pupil_id"].tolist()
    explanations = con.execute(_sql("explanations_pupils.sql"),
                               {"run_id": run_id, "pupils": pupils}).df() if pupils else None
    if pupils and (explanations is None or set(pupils) - set(explanations["pupil_id"])):
        missing = sorted(set(pupils) - set([] if explanations is None else explanations["pupil_id"]))
        raise FlagListError(
            f"run {run_id}: {len(missing)} flagged pupils have no rows in explanations_pupil_term "
            f"(e.g. {missing[:3]}); explain the run before building the lists"
        )
    references = reference_values_sql(con, run_id)
    empty = json.dumps([])
    if pupils:
        reasons = reasons_for_pupils(explanations, on_list[["pupil_id", "grade"]], references,
                                     max_reasons, min_contribution)
    else:
        reasons = pd.DataFrame(columns=["pupil_id", "reasons_da", "context_da", "reason_families",
                                        "disciplines", "risk_families"])
    merged = flags.merge(reasons, on="pupil_id", how="left")
    for column in ("reasons_da", "context_da", "reason_families", "disciplines"):
        merged[column] = merged[column].fillna(empty)
    merged["risk_families"] = merged["risk_families"].fillna(0).astype(int)
    signals = drift_signals(explanations) if pupils else pd.DataFrame(
        columns=["pupil_id", "early_support", "drift"])
    return merged.merge(signals, on="pupil_id", how="left")


def reference_values_sql(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Reference values per grade and feature of a run, from the warehouse.

    Args:
        con: A warehouse connection.
        run_id: The run.

    Returns:
        ``grade``, ``feature``, ``reference``, ``pupils`` (as ``flags.reasons.reference_values``).
    """
    frame = con.execute(_sql("reference_values.sql"), {"run_id": run_id}).df()
    kinds = frame["feature"].map(reference_kind)
    frame["reference"] = frame["median"].where(kinds == "median", frame["share"])
    return frame[["grade", "feature", "reference", "pupils"]]


def _add_trajectories(con: duckdb.DuckDBPyConnection, config: MunicipalityConfig, flags: pd.DataFrame,
                      term: str, previous_term: str) -> pd.DataFrame:
    scored = flags[flags["in_network"].astype(bool)]
    pupils = scored["pupil_id"].tolist()
    history = con.execute(_sql("score_history.sql"), {"term": term, "pupils": pupils}).df() \
        if pupils else pd.DataFrame(columns=["pupil_id", "term", "grade", "risk"])
    elevated = config.tiers[1].min_risk if len(config.tiers) > 1 else config.flagging.threshold
    moves = trajectories(scored[["pupil_id", "risk", "grade", "risk_families", "early_support", "drift"]],
                         history, elevated, previous_term, TREND_STEP)
    # path patterns describe why a pupil is on the list; pupils leaving it get none
    leaving = set(scored.loc[scored["status"] == "ikke_laengere", "pupil_id"])
    moves.loc[moves["pupil_id"].isin(leaving), "path_pattern"] = None
    return flags.merge(moves, on="pupil_id", how="left")


def _ordered(flags: pd.DataFrame, config: MunicipalityConfig) -> pd.DataFrame:
    order = {n.id: i for i, n in enumerate(config.networks)}
    flags = flags.assign(
        _network=flags["network_id"].map(order),
        _leaving=flags["status"] == "ikke_laengere",
        _rank=pd.to_numeric(flags["list_rank"], errors="coerce"),
        _risk=pd.to_numeric(flags["risk"], errors="coerce"),
    ).sort_values(["_network", "_leaving", "_rank", "_risk", "pupil_id"],
                  ascending=[True, True, True, False, True], na_position="last")
    flags["list_rank"] = flags["_rank"].astype("Int64")
    for column in ("risk", "previous_risk", "risk_change"):
        flags[column] = pd.to_numeric(flags[column], errors="coerce")
    flags["grade"] = pd.to_numeric(flags["grade"], errors="coerce").astype("Int64")
    flags["review_required"] = flags["review_required"].astype(bool)
    flags["in_network"] = flags["in_network"].astype(bool)
    return flags[list(FLAG_COLUMNS)].reset_index(drop=True)


def store_flag_lists(con: duckdb.DuckDBPyConnection, flags: pd.DataFrame, term: str) -> int:
    """Write a term's flag lists, replacing any earlier lists of the same term.

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        flags: Rows from :func:`build_flag_lists`.
        term: The term; its earlier rows (of any run) are replaced, so one list stands per term.

    Returns:
        Rows written.
    """
    create_tables(con, "warehouse", ["flags_pupil_term"])
    return replace_rows(con, "flags_pupil_term", flags[list(FLAG_COLUMNS)], where={"term": term})


def withdraw_flag_lists(con: duckdb.DuckDBPyConnection, term: str) -> None:
    """Remove a term's flag lists: the run publishes no list (``publication.on_gate_failure: no_list``).

    Args:
        con: A connection from ``ews.warehouse.staged_write``.
        term: The term.
    """
    create_tables(con, "warehouse", ["flags_pupil_term"])
    delete_rows(con, "flags_pupil_term", {"term": term})


def read_flag_lists(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """A run's stored flag lists in list order.

    Args:
        con: A warehouse connection.
        run_id: The run.

    Returns:
        Rows of ``flags_pupil_term``.
    """
    return con.execute(_sql("flags_run.sql"), {"run_id": run_id}).df()


def summarise_lists(flags: pd.DataFrame, config: MunicipalityConfig,
                    networks: Collection[str] | None = None) -> pd.DataFrame:
    """Counts per network: flagged, new, still flagged, no longer flagged (named / not named).

    One pass over the flags (a group-by), so a list per network stays linear in the networks:
    a national-sized config has about 1,100 of them.

    Args:
        flags: Rows of ``flags_pupil_term`` of one run.
        config: The municipality config (every network gets a row, even with an empty list).
        networks: Only these networks' rows (in the config's order); None: every network.

    Returns:
        ``network_id``, ``network_name``, ``capacity``, ``flagged``, ``ny``, ``fortsat``,
        ``ikke_laengere``, ``ikke_laengere_i_netvaerket``, ``ikke_laengere_udenfor``.
    """
    chosen = [n for n in config.networks if networks is None or n.id in networks]
    status = flags["status"]
    leaving = status == "ikke_laengere"
    in_network = flags["in_network"].where(leaving, False).astype(bool)  # read only where leaving, as counted
    counts = pd.DataFrame({
        "network_id": flags["network_id"],
        "flagged": ~leaving,
        "ny": status == "ny",
        "fortsat": status == "fortsat",
        "ikke_laengere": leaving,
        "ikke_laengere_i_netvaerket": leaving & in_network,
        "ikke_laengere_udenfor": leaving & ~in_network,
    }).groupby("network_id").sum()
    summary = pd.DataFrame({
        "network_id": [n.id for n in chosen],
        "network_name": [n.name for n in chosen],
        "capacity": [n.capacity_per_term for n in chosen],
    })
    counted = counts.reindex(summary["network_id"]).fillna(0).astype(int).reset_index(drop=True)
    return pd.concat([summary, counted], axis=1)
