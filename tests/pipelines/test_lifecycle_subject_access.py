"""Subject access (issue 15, part 3): everything about one flagged pupil and nothing about another."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ews.warehouse import open_readonly
from tests.conftest import TERM, FinishedRun
from tests.flags.flag_fixtures import pdf_text
from tests.pipelines.test_lifecycle_exclusion import cpr_of

runner = CliRunner()


def test_a_subject_access_export_holds_every_source_scores_reasons_reviews_and_views_and_no_other_pupil(
        run_copy: FinishedRun, tmp_path: Path) -> None:
    from dashboards.store import AppStore, app_db_path
    from ews.settings import get_settings
    from pipelines.cli import app

    state = run_copy.state_dir
    with open_readonly(state) as con:
        pupil_id, network_id, school_code, run_id = con.execute(
            "SELECT pupil_id, network_id, school_code, run_id FROM flags_pupil_term "
            "WHERE term = $t AND status IN ('ny', 'fortsat') ORDER BY pupil_id LIMIT 1", {"t": TERM}).fetchone()
        sources = {r[0] for r in con.execute("SELECT DISTINCT source FROM raw_rows WHERE pupil_id = $p",
                                             {"p": pupil_id}).fetchall()}
        others = {r[0] for r in con.execute("SELECT DISTINCT pupil_id FROM raw_rows WHERE pupil_id <> $p "
                                            "AND pupil_id IS NOT NULL", {"p": pupil_id}).fetchall()}
        other = sorted(others)[0]
    with open_readonly(state, identity=True) as identity:
        own_name = identity.execute("SELECT first_name, last_name FROM identity_pupils WHERE pupil_id = $p",
                                    {"p": pupil_id}).fetchone()
        other_names = {(first, last) for first, last in identity.execute(
            "SELECT first_name, last_name FROM identity_pupils WHERE pupil_id <> $p", {"p": pupil_id}).fetchall()
            if first not in own_name and last not in own_name}
    store = AppStore(app_db_path(state), audit_key=get_settings().audit_key_bytes())
    store.record_audit(action="view_pupil", outcome="allowed", username="vera", role="consultant",
                       object_type="pupil", object_id=pupil_id, run_id=run_id, purpose="UU-vejleder, skole")
    store.record_audit(action="view_pupil", outcome="allowed", username="vera", role="consultant",
                       object_type="pupil", object_id=other, run_id=run_id, purpose="UU-vejleder, skole")
    store.record_audit(action="view_list", outcome="allowed", username="nina", role="network_member",
                       object_type="network", object_id=network_id, run_id=run_id, purpose="netværk")
    store.add_review(pupil_id=pupil_id, term=TERM, run_id=run_id, network_id=network_id, school_code=school_code,
                     decision="bekraeftet", reviewer="vera", reviewer_role="consultant")
    store.add_review(pupil_id=other, term=TERM, run_id=run_id, network_id=network_id, school_code=school_code,
                     decision="bekraeftet", reviewer="vera", reviewer_role="consultant")

    result = runner.invoke(app, ["subject-access", "--out", str(tmp_path)],
                           input=cpr_of(run_copy.synthetic_dir, pupil_id) + "\n")
    assert result.exit_code == 0, result.output
    [json_path] = tmp_path.glob("*.json")
    [pdf_path] = tmp_path.glob("*.pdf")
    report = json.loads(json_path.read_text(encoding="utf-8"))

    assert report["pupil_id"] == pupil_id
    assert set(report["sources"]) == sources and {"pupils", "absence"} <= sources
    assert all(row["pupil_id"] == pupil_id for rows in report["sources"].values() for row in rows)
    assert report["scores"] and {s["term"] for s in report["scores"]} >= {TERM}
    assert all(s["tier"] and s["model_id"] for s in report["scores"])
    flag = next(f for f in report["flags"] if f["term"] == TERM)
    assert flag["reasons_da"] and all(r["text_da"] for r in flag["reasons_da"])
    assert [r["decision"] for r in report["reviews"]] == ["bekraeftet"]
    seen = {(v["username"], v["what"]) for v in report["views"]}
    assert {("vera", "elevside"), ("nina", "netværksliste")} <= seen
    assert any(v["what"] == "indsigt" for v in report["views"])  # the request itself is on record
    named = [(r["first_name"], r["last_name"]) for r in report["person"] + report["names_per_source_row"]]
    assert named and set(named) == {own_name}

    pdf = pdf_text(pdf_path)
    assert "Indsigt efter databeskyttelsesforordningens artikel 15" in pdf and pupil_id in pdf
    for text in (json_path.read_text(encoding="utf-8"), pdf):
        assert not [p for p in others if p in text], "another pupil's id is in the export"
        assert not [n for n in other_names if n[0] in text and n[1] in text], "another pupil's name is in it"
    assert (json_path.stat().st_mode & 0o077) == 0
