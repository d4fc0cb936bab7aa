"""Flag lists per network: selection rules, new / still / no longer flagged, lineage, storage."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from ews.warehouse import ensure_schema
from flags.reasons import reasons_from_json
from flags.selection import (
    FLAG_COLUMNS,
    FlagListError,
    build_flag_lists,
    read_flag_lists,
    resolve_run_for_term,
    select_network,
    store_flag_lists,
    summarise_lists,
)
from tests.flags.flag_fixtures import CUR_RUN, CUR_TERM, MODEL_ID, PREV_RUN, PREV_TERM, make_config


def _pool() -> pd.DataFrame:
    return pd.DataFrame({"pupil_id": ["a", "b", "c", "d", "e"], "risk": [0.9, 0.2, 0.6, 0.6, 0.4]})


def test_capacity_takes_the_highest_risks_and_breaks_ties_by_pseudonym():
    chosen = select_network(_pool(), "capacity", capacity=3, threshold=0.5)
    assert chosen["pupil_id"].tolist() == ["a", "c", "d"]
    assert chosen["list_rank"].tolist() == [1, 2, 3]


def test_threshold_takes_everyone_at_or_above_it():
    assert select_network(_pool(), "threshold", capacity=1, threshold=0.4)["pupil_id"].tolist() == \
        ["a", "c", "d", "e"]


def test_capacity_and_threshold_applies_both():
    assert select_network(_pool(), "capacity_and_threshold", capacity=3, threshold=0.65)["pupil_id"].tolist() == \
        ["a"]
    assert select_network(_pool(), "capacity_and_threshold", capacity=2, threshold=0.1)["pupil_id"].tolist() == \
        ["a", "c"]


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="flagging.mode"):
        select_network(_pool(), "lottery", 3, 0.5)


def test_each_network_gets_its_capacity_from_its_own_pupils(two_runs):
    flags = two_runs.flags[CUR_RUN]
    assert list(flags.columns) == list(FLAG_COLUMNS)
    on_list = flags[flags["status"] != "ikke_laengere"]
    assert on_list.groupby("network_id").size().to_dict() == {"N1": 6, "N2": 6, "N3": 6}
    scores = two_runs.scores[CUR_RUN].set_index("pupil_id")
    for network, group in on_list.groupby("network_id"):
        assert (scores.loc[group["pupil_id"], "network_id"] == network).all()
        eligible = scores[(scores["network_id"] == network) & scores["grade"].between(5, 9)]
        assert sorted(group["pupil_id"]) == sorted(eligible.nlargest(6, "risk").index)
        assert group["list_rank"].tolist() == list(range(1, 7))


def test_status_is_measured_against_the_networks_own_list_last_term(two_runs):
    prev = two_runs.flags[PREV_RUN]
    cur = two_runs.flags[CUR_RUN]
    assert set(prev["status"]) == {"ny"}  # nothing before the first term
    before = {(r.network_id, r.pupil_id) for r in prev.itertuples() if r.status != "ikke_laengere"}
    now = {(r.network_id, r.pupil_id) for r in cur.itertuples() if r.status != "ikke_laengere"}
    for row in cur.itertuples():
        key = (row.network_id, row.pupil_id)
        if row.status == "fortsat":
            assert key in before and key in now
        elif row.status == "ny":
            assert key not in before and key in now
        else:
            assert key in before and key not in now
    assert {k for k in before if k not in now} == {
        (r.network_id, r.pupil_id) for r in cur.itertuples() if r.status == "ikke_laengere"}
    assert (cur["status"] == "fortsat").any() and (cur["status"] == "ikke_laengere").any()


def test_pupils_who_left_the_network_are_kept_but_not_scored_here(two_runs):
    cur = two_runs.flags[CUR_RUN]
    scores = two_runs.scores[CUR_RUN].set_index("pupil_id")
    leaving = cur[cur["status"] == "ikke_laengere"]
    for row in leaving.itertuples():
        in_network = row.pupil_id in scores.index and scores.loc[row.pupil_id, "network_id"] == row.network_id
        assert row.in_network == in_network
        if in_network:
            assert row.risk == pytest.approx(scores.loc[row.pupil_id, "risk"])
        else:
            assert pd.isna(row.risk) and row.trajectory is None
    # grade-9 pupils of last term are no longer scored: those on a list are counted as having left
    assert (~leaving["in_network"]).any()


def test_flagged_rows_carry_reasons_trajectory_lineage_and_review(two_runs):
    cur = two_runs.flags[CUR_RUN]
    flagged = cur[cur["status"] != "ikke_laengere"]
    assert set(cur["run_id"]) == {CUR_RUN} and set(cur["model_id"]) == {MODEL_ID}
    assert set(cur["term"]) == {CUR_TERM}
    assert flagged["review_required"].all()
    assert set(flagged["selection"]) == {"capacity:6"}
    assert flagged["trajectory"].isin(["stigende", "faldende", "stabil", "ingen_tidligere"]).all()
    assert flagged["path_pattern"].dropna().isin(["tidlig_starter", "sen_starter"]).all()
    with_reasons = 0
    for row in flagged.itertuples():
        reasons = reasons_from_json(row.reasons_da)
        with_reasons += bool(reasons)
        families = json.loads(row.reason_families)
        assert families == list(dict.fromkeys(r.family for r in reasons))
        assert "uu" in json.loads(row.disciplines)
        if "fravaer" in families:
            assert {"skole", "sundhedsplejerske"} <= set(json.loads(row.disciplines))
        for reason in reasons:
            assert reason.family in {"fravaer", "laering", "trivsel_stoette", "mobilitet"}
            assert reason.value is not None
    assert with_reasons >= len(flagged) - 1
    # a pupil scored last term has a change; new grade-5 pupils have none
    scored_before = set(two_runs.scores[PREV_RUN]["pupil_id"])
    for row in flagged.itertuples():
        assert (row.trajectory == "ingen_tidligere") == (row.pupil_id not in scored_before)


def test_stored_lists_read_back_the_same_and_a_rerun_replaces_the_term(two_runs):
    stored = read_flag_lists(two_runs.con, CUR_RUN)
    built = two_runs.flags[CUR_RUN]
    assert len(stored) == len(built)
    assert sorted(stored["pupil_id"]) == sorted(built["pupil_id"])
    assert stored["path_pattern"].isna().sum() == built["path_pattern"].isna().sum()
    again = build_flag_lists(two_runs.con, two_runs.config, CUR_TERM, CUR_RUN)
    pd.testing.assert_frame_equal(again, built)
    store_flag_lists(two_runs.con, again, CUR_TERM)
    count = two_runs.con.execute("SELECT count(*) FROM flags_pupil_term WHERE term = $t", {"t": CUR_TERM}).fetchone()
    assert count[0] == len(built)


def test_summary_counts_match_the_rows(two_runs):
    summary = summarise_lists(two_runs.flags[CUR_RUN], two_runs.config).set_index("network_id")
    cur = two_runs.flags[CUR_RUN]
    for network in ("N1", "N2", "N3"):
        own = cur[cur["network_id"] == network]
        row = summary.loc[network]
        assert row["flagged"] == row["ny"] + row["fortsat"] == 6
        assert row["ikke_laengere"] == (own["status"] == "ikke_laengere").sum()
        assert row["ikke_laengere_i_netvaerket"] + row["ikke_laengere_udenfor"] == row["ikke_laengere"]


def test_threshold_mode_on_the_same_run(two_runs):
    config = make_config(mode="threshold", threshold=0.55)
    flags = build_flag_lists(two_runs.con, config, CUR_TERM, CUR_RUN)
    flagged = flags[flags["status"] != "ikke_laengere"]
    scores = two_runs.scores[CUR_RUN]
    assert (flagged["risk"] >= 0.55).all()
    assert len(flagged) == (scores["risk"] >= 0.55).sum()
    assert set(flagged["selection"]) == {"threshold:0.55"}


def test_without_scores_or_explanations_the_message_says_what_to_do(two_runs):
    con = duckdb.connect()
    ensure_schema(con)
    con.register("_s", two_runs.scores[CUR_RUN])
    con.execute("CREATE TABLE scores_pupil_term AS SELECT * FROM _s")
    with pytest.raises(FlagListError, match="no rows in scores_pupil_term"):
        build_flag_lists(con, two_runs.config, CUR_TERM, "unknown-run")
    from models.explain import store_explanations, summarise_families

    few = two_runs.explanations[CUR_RUN]
    few = few[few["pupil_id"].isin(two_runs.scores[CUR_RUN]["pupil_id"].head(3))]
    store_explanations(con, few, summarise_families(few), CUR_RUN)
    with pytest.raises(FlagListError, match="explain the run before building the lists"):
        build_flag_lists(con, two_runs.config, CUR_TERM, CUR_RUN)


def test_scores_in_a_network_the_config_lacks_are_refused(two_runs):
    con = duckdb.connect()
    con.register("_s", two_runs.scores[CUR_RUN].assign(network_id="N9"))
    con.execute("CREATE TABLE scores_pupil_term AS SELECT * FROM _s")
    with pytest.raises(FlagListError, match="N9"):
        build_flag_lists(con, two_runs.config, CUR_TERM, CUR_RUN)


def test_the_previous_run_is_found_or_an_ambiguity_named(two_runs):
    assert resolve_run_for_term(two_runs.con, PREV_TERM) == PREV_RUN
    assert resolve_run_for_term(two_runs.con, "2019/20-H1") is None
    con = duckdb.connect()
    both = pd.concat([two_runs.scores[PREV_RUN], two_runs.scores[PREV_RUN].assign(run_id="run-prev-2")])
    con.register("_s", both)
    con.execute("CREATE TABLE scores_pupil_term AS SELECT * FROM _s")
    with pytest.raises(FlagListError, match="previous_run_id"):
        resolve_run_for_term(con, PREV_TERM)


def test_the_summary_of_some_networks_is_their_rows_of_the_whole_summary(two_runs):
    flags = two_runs.flags[CUR_RUN]
    whole = summarise_lists(flags, two_runs.config)
    some = summarise_lists(flags, two_runs.config, networks=["N3", "N1"])
    assert list(some["network_id"]) == ["N1", "N3"]  # the config's order
    pd.testing.assert_frame_equal(some, whole[whole["network_id"].isin(["N1", "N3"])].reset_index(drop=True))
    empty = summarise_lists(flags.iloc[0:0], two_runs.config)
    assert (empty[["flagged", "ny", "fortsat", "ikke_laengere"]] == 0).all().all()
