"""The network's list served by the app: PDF, Excel and CSV of the confirmed flags only, audited."""

from __future__ import annotations

import csv
import io

import httpx
import openpyxl
import pytest

from ews.warehouse import open_readonly, staged_write
from flags.excel import HEADER_ROW, print_scale
from flags.export import NETWORK_LIST_HEADERS
from flags.labels import DISCLAIMER_DA, LIST_TITLE_DA
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, csrf_of, login, pupil_links
from tests.flags.flag_fixtures import pdf_text

FORMATS = ("pdf", "xlsx", "csv")


def _text(fmt: str, content: bytes, tmp_path) -> str:
    path = tmp_path / f"list.{fmt}"
    path.write_bytes(content)
    if fmt == "pdf":
        return pdf_text(path)
    if fmt == "xlsx":
        workbook = openpyxl.load_workbook(path)
        return " ".join(str(v) for ws in workbook for row in ws.iter_rows(values_only=True) for v in row if v)
    return content.decode("utf-8-sig")


def _network_names(env: AppEnv, network: str) -> dict[str, str]:
    """Pupil id -> name (identity store) of every pupil on the network's latest list."""
    run_id = env.sample.run_ids[env.sample.terms[-1]]
    with open_readonly(env.state_dir) as con:
        pupils = [r[0] for r in con.execute(
            "SELECT pupil_id FROM flags_pupil_term WHERE run_id = $r AND network_id = $n",
            {"r": run_id, "n": network}).fetchall()]
    with open_readonly(env.state_dir, identity=True) as con:
        rows = con.execute("SELECT pupil_id, first_name || ' ' || last_name FROM identity_pupils "
                           "WHERE list_contains($p, pupil_id)", {"p": pupils}).fetchall()
    return dict(rows)


def _review_one(env: AppEnv, live: LiveServer, decision: dict[str, str]) -> str:
    """The consultant records one decision on a flag at a school of N001; returns the pupil."""
    schools = [s for s, n in env.sample.school_network.items() if n == "N001"]
    with httpx.Client(base_url=live.url) as vera:
        assert login(vera, "vera").status_code == 303
        for pupil in sorted(set(pupil_links(vera.get("/vejleder?vis=afventer").text))):
            html = vera.get(f"/elev/{pupil}").text
            if any(f"skole {s}" in html for s in schools):
                response = vera.post(f"/elev/{pupil}/vurdering", data={
                    "csrf_token": csrf_of(html), "term": env.sample.terms[-1], **decision})
                assert response.status_code == 303
                return pupil
    raise AssertionError("no flag awaiting review at N001's schools")


def _download(live: LiveServer, user: str) -> dict[str, httpx.Response]:
    with httpx.Client(base_url=live.url) as client:
        assert login(client, user).status_code == 303
        return {fmt: client.get(f"/netvaerk/N001/eksport.{fmt}") for fmt in FORMATS}


def test_before_any_review_the_networks_files_name_nobody(env: AppEnv, live: LiveServer, tmp_path) -> None:
    names = _network_names(env, "N001")
    assert names
    for fmt, response in _download(live, "nina").items():
        assert response.status_code == 200, fmt
        text = _text(fmt, response.content, tmp_path)
        assert DISCLAIMER_DA in text, fmt
        assert not any(name in text for name in names.values()), fmt
        assert not any(pupil in text for pupil in names), fmt


def test_after_one_review_the_networks_files_name_that_pupil_alone_with_the_decision(
        env: AppEnv, live: LiveServer, tmp_path) -> None:
    step = "Forebyggende indsats med kontaktperson"
    pupil = _review_one(env, live, {"decision": "indsatstrappe", "step": step})
    names = _network_names(env, "N001")
    others = {n for p, n in names.items() if p != pupil and n != names[pupil]}
    responses = _download(live, "nina")
    for fmt, response in responses.items():
        assert response.status_code == 200, fmt
        assert response.headers["content-disposition"].startswith('attachment; filename="flagliste_N001_')
        text = _text(fmt, response.content, tmp_path)
        assert DISCLAIMER_DA in text, fmt
        # Named by name, class and school; no pseudonym in a network's file (issue 13, part 2).
        assert names[pupil] in text and pupil not in text, fmt
        assert not any(name in text for name in others), fmt
        assert "Trin på indsatstrappen" in text and step in text, fmt
        assert LIST_TITLE_DA["uu"] not in text
    sheet = openpyxl.load_workbook(io.BytesIO(responses["xlsx"].content))["Flagliste"]
    # Printed: A4 landscape, one page wide, at no less than 70 % (it was about 40 %).
    assert sheet.page_setup.orientation == "landscape" and int(sheet.page_setup.paperSize) == 9  # A4
    assert sheet.sheet_properties.pageSetUpPr.fitToPage and sheet.page_setup.fitToWidth == 1
    assert print_scale(sheet) >= 70
    rows = list(sheet.iter_rows(min_row=HEADER_ROW, values_only=True))
    assert list(rows[0]) == list(NETWORK_LIST_HEADERS) and len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Navn"] == names[pupil] and row["UU-vurdering"] == "Trin på indsatstrappen"
    assert row["Trin på indsatstrappen"] == step and len(row["Vurderet"]) == 10  # dd-mm-åååå
    lines = list(csv.reader(io.StringIO(responses["csv"].content.decode("utf-8-sig")), delimiter=";"))
    assert lines[0] == [DISCLAIMER_DA] and lines[1] == list(NETWORK_LIST_HEADERS) and len(lines) == 3
    log = [e for e in env.store.read_audit(limit=100, username="nina") if e["action"] == "export"]
    assert {e["outcome"] for e in log} == {"allowed"}
    assert {e["object_id"] for e in log} == {"N001"} and len(log) == 3
    assert {e["purpose"].rsplit("(", 1)[-1].rstrip(")") for e in log} == set(FORMATS)


def test_another_networks_member_is_refused_every_format_and_it_is_audited(env: AppEnv, live: LiveServer) -> None:
    _review_one(env, live, {"decision": "bekraeftet"})
    for fmt, response in _download(live, "otto").items():
        assert response.status_code == 403, fmt
        assert DISCLAIMER_DA not in response.text
    denied = [e for e in env.store.read_audit(limit=100, username="otto") if e["action"] == "export"]
    assert len(denied) == 3 and {e["outcome"] for e in denied} == {"denied"}
    assert {e["object_id"] for e in denied} == {"N001"} and {e["http_status"] for e in denied} == {403}
    with httpx.Client(base_url=live.url) as vera:  # a consultant is no network member either
        login(vera, "vera")
        assert vera.get("/netvaerk/N001/eksport.pdf").status_code == 403
        assert vera.get("/netvaerk/N001/eksport.exe").status_code in (403, 404)


def test_a_formula_in_a_name_is_escaped_in_the_networks_csv_and_excel(env: AppEnv, live: LiveServer) -> None:
    pupil = _review_one(env, live, {"decision": "bekraeftet"})
    # Through a new published version, as a run writes: the live app may still hold a snapshot
    # of the current one open (a plain connect to that file would race it).
    with staged_write(env.state_dir) as session:
        session.identity.execute("UPDATE identity_pupils SET first_name = '=HYPERLINK(\"http://x\",\"klik\")', "
                                 "last_name = 'X', class_label = '+7A' WHERE pupil_id = $p", {"p": pupil})
    responses = _download(live, "nina")
    lines = list(csv.reader(io.StringIO(responses["csv"].content.decode("utf-8-sig")), delimiter=";"))
    assert lines[2][2] == "'=HYPERLINK(\"http://x\",\"klik\") X" and lines[2][3] == "'+7A"
    sheet = openpyxl.load_workbook(io.BytesIO(responses["xlsx"].content))["Flagliste"]
    name = sheet.cell(row=HEADER_ROW + 1, column=3)
    assert name.value.startswith("'=HYPERLINK") and name.data_type == "s"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_rule_list_is_labelled_in_every_format(env: AppEnv, live: LiveServer, tmp_path, fmt: str) -> None:
    _review_one(env, live, {"decision": "bekraeftet"})
    with staged_write(env.state_dir) as session:
        session.con.execute("ALTER TABLE flags_pupil_term ADD COLUMN IF NOT EXISTS list_basis VARCHAR")
        session.con.execute("UPDATE flags_pupil_term SET list_basis = 'regel:abc_regel'")
    with httpx.Client(base_url=live.url) as nina:
        login(nina, "nina")
        response = nina.get(f"/netvaerk/N001/eksport.{fmt}")
    text = _text(fmt, response.content, tmp_path)
    assert "REGELLISTE" in text and "ABC-reglen" in text


def test_without_required_review_the_files_show_unreviewed_flags_marked_as_such(env: AppEnv, tmp_path) -> None:
    import yaml

    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings
    from flags.labels import LIST_PURPOSE_UNREVIEWED_DA, NOT_REVIEWED_DA

    document = yaml.safe_load(env.sample.config_path.read_text(encoding="utf-8"))
    document["flagging"]["require_review"] = False
    env.sample.config_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with staged_write(env.state_dir) as session:
        session.con.execute("UPDATE flags_pupil_term SET review_required = false")
    names = _network_names(env, "N001")
    with LiveServer(create_app(env.settings, DashboardSettings(), env.store)) as live:
        responses = _download(live, "nina")
    for fmt, response in responses.items():
        text = _text(fmt, response.content, tmp_path)
        assert DISCLAIMER_DA in text and NOT_REVIEWED_DA in text, fmt
        assert any(name in text for name in names.values()), fmt
        if fmt != "csv":
            assert LIST_PURPOSE_UNREVIEWED_DA in text, fmt
