"""END-TO-END (slow): ``ews demo`` on a small synthetic municipality, then the flag-list files.

The demo run is the session's shared finished run (``finished_run`` in ``tests/conftest.py``:
3 schools, 60 pupils a grade, from 2016/17; it used to be a 6-school, 120-pupil demo of its own).

Opens every network's Excel, PDF and CSV written by the demo run and checks the Danish headers,
the counts against the run manifest, that no pupil of another network appears, that every
pupil of the run is explained with contributions that add up, and the agreement of the reasons
with the generator's known causes.
"""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from ews.warehouse import open_readonly
from flags.excel import HEADER_ROW
from flags.export import LIST_HEADERS, WORKLIST_SUFFIX
from flags.labels import DISCLAIMER_DA, LIST_AUDIENCE_NOTE_DA, LIST_TITLE_DA
from models.explain import check_stored_additivity
from tests.conftest import TEST_KEY
from tests.flags.flag_fixtures import pdf_text

#: Row 1 of the UU working list (Excel) and line 1 of its CSV: the sentence and who it is for.
WORKLIST_FIRST_LINE = f"{DISCLAIMER_DA} {LIST_AUDIENCE_NOTE_DA['uu']}."
pytestmark = pytest.mark.slow


@pytest.fixture
def demo(finished_run):
    """The state folder and the current term's manifest of ``ews demo`` (shared, read-only)."""
    return finished_run.state_dir, finished_run.manifest


def _path(manifest: dict, text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else Path(manifest["outputs"]["manifest"]).parent / path


def _scores(state: Path, run_id: str) -> dict[str, str]:
    with open_readonly(state) as con:
        rows = con.execute("SELECT pupil_id, network_id FROM scores_pupil_term WHERE run_id = $r",
                           {"r": run_id}).fetchall()
    return dict(rows)


def test_every_network_gets_an_excel_and_a_pdf_with_the_counts_of_the_manifest(demo):
    state, manifest = demo
    assert manifest["status"] == "succeeded"
    entries = manifest["outputs"]["uu_worklists"]
    network_of = _scores(state, manifest["run_id"])
    assert set(network_of.values()) <= {e["network"] for e in entries}
    for entry in entries:
        assert set(entry) >= {"network", "flagged", "xlsx", "pdf", "csv"}
        workbook = openpyxl.load_workbook(_path(manifest, entry["xlsx"]))
        sheet = workbook["Flagliste"]
        heading = sheet.cell(row=1, column=1).value
        if manifest["gate"]["passed"]:
            assert heading == WORKLIST_FIRST_LINE
        else:  # the model did not pass the publication gate: the best rule's list, labelled
            assert heading.startswith(WORKLIST_FIRST_LINE) and "REGELLISTE" in heading
        assert [c.value for c in sheet[HEADER_ROW]] == list(LIST_HEADERS)
        rows = list(sheet.iter_rows(min_row=HEADER_ROW + 1, values_only=True))
        assert len(rows) == entry["flagged"]
        pupils = {r[-1] for r in rows}
        assert {network_of[p] for p in pupils} <= {entry["network"]}  # no other network's pupil
        text = pdf_text(_path(manifest, entry["pdf"]))
        assert f"Elever på listen {entry['flagged']}" in text and DISCLAIMER_DA in text
        other = {p for p, n in network_of.items() if n != entry["network"]}
        assert not any(p in text for p in other)
        csv_text = _path(manifest, entry["csv"]).read_text(encoding="utf-8-sig")
        assert not any(p in csv_text for p in other)


def test_every_pupil_of_the_run_is_explained_and_adds_up(demo):
    state, manifest = demo
    if not manifest["gate"]["passed"]:
        # a model that did not pass the publication gate is not explained on the lists
        assert manifest["explanations"] == {"skipped": "the model did not pass the publication gate"}
        return
    with open_readonly(state) as con:
        report = check_stored_additivity(con, manifest["run_id"])
    assert report.ok, report
    assert report.pupils == len(_scores(state, manifest["run_id"]))


def test_the_reasons_agree_with_the_known_causes_for_a_clear_majority(demo):
    from flags.agreement import read_ground_truth, reason_agreement
    from flags.selection import read_flag_lists

    state, manifest = demo
    with open_readonly(state) as con:
        flags = read_flag_lists(con, manifest["run_id"])
    truth = read_ground_truth(state / "synthetic" / "ground_truth" / "pupils.csv", TEST_KEY.encode())
    agreement = reason_agreement(flags, truth)
    if not manifest["gate"]["passed"]:  # a rule list: the reasons are the rule's criteria
        assert set(flags["list_basis"]) == {manifest["gate"]["list_basis"]}
        assert 0 <= agreement["share"] <= 1
        return
    assert agreement["pupils"] >= 0.9 * agreement["flagged"]
    assert agreement["share"] > 0.6 and agreement["top1_share"] > 0.5


def test_the_manifest_reports_the_agreement(demo):
    _, manifest = demo
    agreement = manifest["outputs"].get("reason_agreement")
    assert agreement is not None, "ews demo should put outputs.reason_agreement in the manifest"
    assert 0 <= agreement["share"] <= 1
    json.dumps(agreement)  # plain JSON in the manifest


def _any_file_text(path: Path) -> str:
    if path.suffix == ".pdf":
        return pdf_text(path)
    if path.suffix == ".xlsx":
        workbook = openpyxl.load_workbook(path)
        return " ".join(str(v) for ws in workbook for row in ws.iter_rows(values_only=True) for v in row if v)
    return path.read_bytes().decode("utf-8", errors="ignore")


def test_no_file_a_run_writes_names_an_unreviewed_child_except_the_uu_working_lists(demo):
    """Every file in every run folder: names of flagged (so far unreviewed) pupils only in UU lists."""
    state, manifest = demo
    runs = sorted(p for p in (state / "runs").iterdir() if (p / "manifest.json").is_file())
    assert manifest["run_id"] in {p.name for p in runs}
    with open_readonly(state) as con:
        flagged = [r[0] for r in con.execute(
            "SELECT DISTINCT pupil_id FROM flags_pupil_term WHERE status <> 'ikke_laengere'").fetchall()]
    with open_readonly(state, identity=True) as identity:
        names = [r[0] for r in identity.execute(
            "SELECT first_name || ' ' || last_name FROM identity_pupils WHERE list_contains($p, pupil_id)",
            {"p": flagged}).fetchall()]
    assert len(names) == len(flagged) > 0  # no review in the demo: every one of them is unreviewed
    named_in = 0
    for run in runs:
        run_manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        worklists = {(run / entry[fmt]).resolve() if not Path(entry[fmt]).is_absolute() else Path(entry[fmt])
                     for entry in run_manifest["outputs"].get("uu_worklists", []) for fmt in ("xlsx", "pdf", "csv")}
        for path in sorted(p for p in run.rglob("*") if p.is_file()):
            text = _any_file_text(path)
            assert LIST_TITLE_DA["netvaerk"] not in text, path  # no network-facing list at all
            if any(name in text for name in names):
                named_in += 1
                assert path.resolve() in worklists, f"{path} names an unreviewed pupil"
                assert path.stem.endswith(WORKLIST_SUFFIX) and LIST_AUDIENCE_NOTE_DA["uu"] in text, path
    assert named_in >= 3  # the grep finds the names where they are (the UU lists)


def test_after_one_review_through_the_app_the_networks_files_name_that_pupil_alone(run_copy, tmp_path):
    """The demo's state, served by the app: nobody named before a review, then the reviewed pupil alone.

    The app writes its store into the state folder: a private copy of the shared run's.
    """
    import httpx

    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from dashboards.store import AppStore
    from ews.settings import Settings
    from tests.dashboards.dashboard_helpers import FAST_HASHER, LiveServer, csrf_of, login

    state, manifest = run_copy.state_dir, run_copy.manifest
    with open_readonly(state) as con:
        flagged = con.execute(
            "SELECT pupil_id, network_id, school_code, term FROM flags_pupil_term WHERE run_id = $r "
            "AND status <> 'ikke_laengere' ORDER BY network_id, list_rank", {"r": manifest["run_id"]}).df()
    pupil, network, school, term = flagged.iloc[0][["pupil_id", "network_id", "school_code", "term"]]
    own = flagged.loc[flagged["network_id"] == network, "pupil_id"].tolist()
    with open_readonly(state, identity=True) as identity:
        names = dict(identity.execute(
            "SELECT pupil_id, first_name || ' ' || last_name FROM identity_pupils WHERE list_contains($p, pupil_id)",
            {"p": own}).fetchall())
    others = {n for p, n in names.items() if p != pupil and n != names[pupil]}
    assert len(own) > 1 and others
    store = AppStore(state / "app.sqlite", hasher=FAST_HASHER)
    store.add_user("uu", "UU Vejleder", "consultant", "korrekt-hest-batteri-42")
    store.assign("uu", "school", school)
    store.add_user("net", "Netværk Medlem", "network_member", "korrekt-hest-batteri-42")
    store.assign("net", "network", network)
    app = create_app(Settings(state_dir=state), DashboardSettings(), store)

    def download(client: httpx.Client) -> dict[str, str]:
        texts = {}
        for fmt in ("pdf", "xlsx", "csv"):
            response = client.get(f"/netvaerk/{network}/eksport.{fmt}")
            assert response.status_code == 200, fmt
            path = tmp_path / f"list.{fmt}"
            path.write_bytes(response.content)
            texts[fmt] = _any_file_text(path)
        return texts

    with LiveServer(app) as live, httpx.Client(base_url=live.url) as net, httpx.Client(base_url=live.url) as uu:
        assert login(net, "net", "korrekt-hest-batteri-42").status_code == 303
        for fmt, text in download(net).items():
            assert DISCLAIMER_DA in text and not any(name in text for name in names.values()), fmt
        assert login(uu, "uu", "korrekt-hest-batteri-42").status_code == 303
        page = uu.get(f"/elev/{pupil}")
        assert page.status_code == 200
        saved = uu.post(f"/elev/{pupil}/vurdering",
                        data={"csrf_token": csrf_of(page.text), "term": term, "decision": "bekraeftet"})
        assert saved.status_code == 303
        for fmt, text in download(net).items():
            assert DISCLAIMER_DA in text and names[pupil] in text, fmt
            assert not any(name in text for name in others), fmt
            assert "Bekræftet: drøftes i netværket" in text, fmt
    exports = [e for e in store.read_audit(limit=100, username="net") if e["action"] == "export"]
    assert len(exports) == 6 and {e["object_id"] for e in exports} == {network}
