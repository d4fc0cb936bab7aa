"""Per-network exports: Danish headers, counts, names only from the identity store, no other network."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from ews.cells import spreadsheet_cell
from flags.excel import HEADER_ROW
from flags.export import (
    LIST_HEADERS,
    NETWORK_LIST_HEADERS,
    UNKNOWN_NAME,
    WORKLIST_SUFFIX,
    ReviewShown,
    build_network_list,
    csv_bytes,
    export_flag_lists,
    read_identities,
    safe_file_stem,
    write_files,
)
from flags.labels import (
    DISCLAIMER_DA,
    LIST_AUDIENCE_NOTE_DA,
    LIST_BEFORE_CONTACT_DA,
    LIST_PURPOSE_DA,
    LIST_PURPOSE_UNREVIEWED_DA,
    LIST_TITLE_DA,
    NOT_REVIEWED_DA,
    list_basis_da,
)
from flags.selection import build_flag_lists, read_flag_lists, store_flag_lists
from tests.flags.flag_fixtures import CUR_RUN, CUR_TERM, clone_warehouse, pdf_text

#: Row 1 of the UU working list (Excel) and line 1 of its CSV: the sentence and who it is for.
WORKLIST_FIRST_LINE = f"{DISCLAIMER_DA} {LIST_AUDIENCE_NOTE_DA['uu']}."
NAME = re.compile(r"Fornavn(\d+) Testesen")
LINEAGE = {"model_id": "model-test-1", "config_hash": "cfg123", "data_snapshot": "snap456",
           "code_version": "0.1.0+abc", "as_of_date": "2025-11-15"}


@pytest.fixture(scope="module")
def exported(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / CUR_RUN / "lister"
    entries = export_flag_lists(two_runs.con, two_runs.identity, two_runs.config, CUR_TERM, CUR_RUN, out,
                                LINEAGE, relative_to=out.parent)
    return out, entries


def _network_of(two_runs) -> dict[str, str]:
    return dict(zip(two_runs.scores[CUR_RUN]["pupil_id"], two_runs.scores[CUR_RUN]["network_id"], strict=True))


def _expected(two_runs, network: str) -> tuple[set[str], set[str]]:
    """(flagged pupils, pupils no longer flagged but still in the network) of a network."""
    flags = two_runs.flags[CUR_RUN]
    own = flags[flags["network_id"] == network]
    flagged = set(own.loc[own["status"] != "ikke_laengere", "pupil_id"])
    staying = set(own.loc[(own["status"] == "ikke_laengere") & own["in_network"], "pupil_id"])
    return flagged, staying


def _names_of(pupils: set[str]) -> set[str]:
    return {f"Fornavn{int(p[1:])} Testesen" for p in pupils}


def test_one_entry_per_network_with_files_and_counts(exported, two_runs):
    out, entries = exported
    assert [e["network"] for e in entries] == ["N1", "N2", "N3"]
    for entry in entries:
        flagged, _ = _expected(two_runs, entry["network"])
        assert entry["flagged"] == len(flagged) == 6
        for ext in ("xlsx", "pdf", "csv"):
            assert entry[ext] == f"lister/{entry['network']}_uu-arbejdsliste.{ext}"
            assert (out.parent / entry[ext]).stat().st_size > 0
        assert entry["audience"] == "uu"


def test_workbook_has_danish_headers_and_only_its_own_pupils(exported, two_runs):
    out, entries = exported
    network_of = _network_of(two_runs)
    for entry in entries:
        workbook = openpyxl.load_workbook(out.parent / entry["xlsx"])
        assert workbook.sheetnames == ["Resumé", "Flagliste", "Ikke længere", "Sporbarhed"]
        sheet = workbook["Flagliste"]
        assert sheet.cell(row=1, column=1).value == WORKLIST_FIRST_LINE
        headers = [c.value for c in sheet[HEADER_ROW]]
        assert headers == list(LIST_HEADERS)
        frame = pd.DataFrame(list(sheet.iter_rows(min_row=HEADER_ROW + 1, values_only=True)), columns=headers)
        flagged, staying = _expected(two_runs, entry["network"])
        assert len(frame) == entry["flagged"]
        assert set(frame["Elev-id (pseudonym)"]) == flagged
        assert {network_of[p] for p in frame["Elev-id (pseudonym)"]} == {entry["network"]}
        assert set(frame["Navn"]) == _names_of(flagged)
        assert frame["Nr."].tolist() == list(range(1, len(frame) + 1))
        assert set(frame["Status"]) <= {"Ny", "Fortsat"}
        assert (frame["Faglig vurdering påkrævet"] == "Ja").all()
        assert frame["Fagligheder"].str.contains("UU-vejleder").all()
        assert frame["Årsager"].str.contains("kommunens").sum() >= len(frame) - 1
        leaving = workbook["Ikke længere"]
        ids = [r[-1] for r in leaving.iter_rows(min_row=HEADER_ROW + 1, values_only=True)]
        assert set(ids) == staying
        summary = {r[0]: r[1] for r in workbook["Resumé"].iter_rows(values_only=True) if r[0]}
        assert summary["Elever på listen"] == entry["flagged"]
        assert summary["Nye på listen"] + summary["Fortsat på listen"] == entry["flagged"]
        assert DISCLAIMER_DA in summary
        lineage = {r[0]: r[1] for r in workbook["Sporbarhed"].iter_rows(values_only=True) if r[0]}
        assert lineage["Kørsel (run id)"] == CUR_RUN
        assert lineage["Konfiguration (hash)"] == "cfg123"
        assert lineage["Datagrundlag (snapshot)"] == "snap456"
        assert lineage["Model"] == "model-test-1"
        all_text = " ".join(str(v) for ws in workbook for row in ws.iter_rows(values_only=True) for v in row if v)
        assert set(NAME.findall(all_text)) == {p[1:].lstrip("0") or "0" for p in flagged | staying}


def test_csv_is_for_danish_excel_and_has_the_same_pupils(exported, two_runs):
    out, entries = exported
    for entry in entries:
        raw = (out.parent / entry["csv"]).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
        lines = raw.decode("utf-8-sig").splitlines()
        assert lines[0] == WORKLIST_FIRST_LINE
        assert lines[1].split(";") == list(LIST_HEADERS)
        rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:])), delimiter=";"))
        flagged, staying = _expected(two_runs, entry["network"])
        assert {r["Elev-id (pseudonym)"] for r in rows} == flagged | staying
        assert sum(r["Status"] != "Ikke længere" for r in rows) == entry["flagged"]
        assert all("\n" not in r["Årsager"] for r in rows)


def test_pdf_has_the_summary_first_the_disclaimer_and_only_its_own_pupils(exported, two_runs):
    out, entries = exported
    network_names = {"N1": "Netværk Nord", "N2": "Netværk Syd", "N3": "Netværk Øst"}
    for entry in entries:
        text = pdf_text(out.parent / entry["pdf"])
        summary_page = text.split(" side 2 ")[0]
        for phrase in ("Arbejdsliste til UU-vejlederen", network_names[entry["network"]], CUR_TERM,
                       f"Elever på listen {entry['flagged']}", "Nye på listen", "Fortsat på listen",
                       "Ikke længere på listen", "Netværkets kapacitet pr. termin 6", DISCLAIMER_DA,
                       CUR_RUN, "cfg123", "snap456"):
            assert phrase in summary_page, phrase
        for header in ("Nr.", "Elev", "Status", "Risiko", "Årsager (elevens værdi og reference)", "Fagligheder"):
            assert header in text
        flagged, staying = _expected(two_runs, entry["network"])
        assert set(NAME.findall(text)) == {p[1:].lstrip("0") or "0" for p in flagged | staying}
        assert text.count(DISCLAIMER_DA) >= 2


def test_pupils_who_left_the_network_are_counted_not_named(exported, two_runs):
    out, entries = exported
    flags = two_runs.flags[CUR_RUN]
    gone = flags[(flags["status"] == "ikke_laengere") & ~flags["in_network"]]
    assert len(gone) > 0
    everything = " ".join(
        (out.parent / e["csv"]).read_text(encoding="utf-8-sig") + pdf_text(out.parent / e["pdf"]) for e in entries)
    for pupil in gone["pupil_id"]:
        assert pupil not in everything
        assert f"Fornavn{int(pupil[1:])} Testesen" not in everything
    first = gone.iloc[0]
    entry = next(e for e in entries if e["network"] == first["network_id"])
    assert "ikke længere i netværket" in pdf_text(out.parent / entry["pdf"])


def test_the_warehouse_never_holds_names(two_runs, exported):
    tables = [r[0] for r in two_runs.con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()]
    assert {"flags_pupil_term", "explanations_pupil_term", "scores_pupil_term"} <= set(tables)
    for table in tables:
        frame = two_runs.con.execute(f'SELECT * FROM "{table}"').df()
        text = frame.astype(str).to_string()
        assert "Fornavn" not in text and "Testesen" not in text, table


def test_a_pupil_missing_from_the_identity_store_is_marked_not_guessed(two_runs, tmp_path):
    identity = clone_warehouse(two_runs.identity)
    flags = two_runs.flags[CUR_RUN]
    victim = flags.loc[(flags["network_id"] == "N2") & (flags["status"] != "ikke_laengere"), "pupil_id"].iloc[0]
    identity.execute("DELETE FROM identity_pupils WHERE pupil_id = $p", {"p": victim})
    entries = export_flag_lists(two_runs.con, identity, two_runs.config, CUR_TERM, CUR_RUN, tmp_path, LINEAGE)
    workbook = openpyxl.load_workbook(next(e["xlsx"] for e in entries if e["network"] == "N2"))
    rows = {r[-1]: r[2] for r in workbook["Flagliste"].iter_rows(min_row=HEADER_ROW + 1, values_only=True)}
    assert rows[victim] == UNKNOWN_NAME
    assert sum(name == UNKNOWN_NAME for name in rows.values()) == 1


def test_a_network_without_pupils_still_gets_its_files(two_runs, tmp_path):
    document = two_runs.config.model_dump(mode="json")
    document["networks"].append({"id": "N4 Vest/Ø", "name": "Netværk Vest", "area": "Nord", "capacity_per_term": 5})
    config = type(two_runs.config).model_validate(document)
    con = clone_warehouse(two_runs.con)
    store_flag_lists(con, build_flag_lists(con, config, CUR_TERM, CUR_RUN), CUR_TERM)
    entries = export_flag_lists(con, two_runs.identity, config, CUR_TERM, CUR_RUN, tmp_path, LINEAGE)
    empty = entries[-1]
    assert empty["network"] == "N4 Vest/Ø" and empty["flagged"] == 0
    assert empty["pdf"].endswith(f"{safe_file_stem('N4 Vest/Ø')}_uu-arbejdsliste.pdf")
    assert "/" not in safe_file_stem("N4 Vest/Ø")
    assert "Ingen elever på listen denne termin" in pdf_text(empty["pdf"])
    workbook = openpyxl.load_workbook(empty["xlsx"])
    assert workbook["Flagliste"].max_row == HEADER_ROW


def test_publish_builds_stores_and_exports_in_one_call(two_runs, tmp_path):
    from flags.export import publish_flag_lists

    con = clone_warehouse(two_runs.con)
    con.execute("DELETE FROM flags_pupil_term WHERE term = $t", {"t": CUR_TERM})
    entries = publish_flag_lists(con, two_runs.identity, two_runs.config, CUR_TERM, CUR_RUN, tmp_path / "lister",
                                 LINEAGE, relative_to=tmp_path)
    assert [(e["network"], e["flagged"], e["pdf"]) for e in entries] == [
        ("N1", 6, "lister/N1_uu-arbejdsliste.pdf"), ("N2", 6, "lister/N2_uu-arbejdsliste.pdf"),
        ("N3", 6, "lister/N3_uu-arbejdsliste.pdf")]
    stored = con.execute("SELECT count(*) FROM flags_pupil_term WHERE run_id = $r", {"r": CUR_RUN}).fetchone()[0]
    assert stored == len(two_runs.flags[CUR_RUN])


def _file_text(path) -> str:
    path = Path(path)
    if path.suffix == ".pdf":
        return pdf_text(path)
    if path.suffix == ".xlsx":
        workbook = openpyxl.load_workbook(path)
        return " ".join(str(v) for ws in workbook for row in ws.iter_rows(values_only=True) for v in row if v)
    return path.read_text(encoding="utf-8-sig")


def test_the_run_writes_only_uu_working_lists_framed_as_review_before_contact(exported, two_runs):
    out, entries = exported
    flags = two_runs.flags[CUR_RUN]
    flagged_names = _names_of(set(flags.loc[flags["status"] != "ikke_laengere", "pupil_id"]))
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(written) == 3 * len(entries)
    for path in written:
        text = _file_text(path)
        assert path.stem.endswith(WORKLIST_SUFFIX), path
        assert LIST_TITLE_DA["netvaerk"] not in text  # nothing framed for the network
        assert "vurderes fagligt af netværket, før der tages kontakt" not in text
        assert LIST_AUDIENCE_NOTE_DA["uu"] in text, path
        if path.suffix != ".csv":
            assert LIST_TITLE_DA["uu"] in text and LIST_PURPOSE_DA["uu"] in text, path
            assert LIST_BEFORE_CONTACT_DA["uu"] in text, path
        # the working lists are where the unreviewed names are (control for the grep above)
        assert any(name in text for name in flagged_names), path


def _network_list(two_runs, network: str, reviewed: dict[str, ReviewShown], awaiting: int,
                  require_review: bool = True, identity=None):
    flags = two_runs.flags[CUR_RUN]
    shown = flags[flags["pupil_id"].isin(reviewed)]
    identities = read_identities(identity or two_runs.identity, sorted(reviewed))
    return build_network_list(shown, identities, two_runs.config, network, CUR_TERM, LINEAGE,
                              audience="netvaerk", reviews=reviewed, awaiting=awaiting,
                              require_review=require_review)


def _flagged_of(two_runs, network: str) -> list[str]:
    flags = two_runs.flags[CUR_RUN]
    own = flags[(flags["network_id"] == network) & (flags["status"] != "ikke_laengere")]
    return own["pupil_id"].tolist()


def test_the_networks_list_names_only_the_reviewed_pupils_with_the_decision_in_every_format(two_runs, tmp_path):
    pupils = _flagged_of(two_runs, "N2")
    confirmed, stepped = pupils[0], pupils[1]
    reviewed = {confirmed: ReviewShown("Bekræftet: drøftes i netværket", "01-12-2025"),
                stepped: ReviewShown("Trin på indsatstrappen", "02-12-2025", step="Trin 2: netværksmøde",
                                     carried_from="2025/26-H0")}
    network_list = _network_list(two_runs, "N2", reviewed, awaiting=len(pupils) - 2)
    paths = {fmt: tmp_path / f"N2.{fmt}" for fmt in ("xlsx", "pdf", "csv")}
    write_files(network_list, dict(paths))
    texts = {fmt: _file_text(p) for fmt, p in paths.items()}
    names = _names_of(set(pupils))
    for fmt, text in texts.items():
        assert DISCLAIMER_DA in text, fmt
        assert {n for n in names if n in text} == _names_of({confirmed, stepped}), fmt
        assert "Bekræftet: drøftes i netværket" in text and "Trin 2: netværksmøde" in text, fmt
        assert LIST_TITLE_DA["uu"] not in text, fmt
    assert "Afventer UU-vurdering (ikke navngivet) 4" in texts["pdf"]
    sheet = openpyxl.load_workbook(paths["xlsx"])["Flagliste"]
    assert sheet.cell(row=1, column=1).value == DISCLAIMER_DA
    frame = pd.DataFrame(list(sheet.iter_rows(min_row=HEADER_ROW + 1, values_only=True)),
                         columns=[c.value for c in sheet[HEADER_ROW]])
    assert list(frame.columns) == list(NETWORK_LIST_HEADERS)
    # No pseudonym in the network's files (issue 13, part 2): the rows are found by name.
    assert not any(p in text for p in pupils for text in texts.values())
    frame = frame.assign(pupil=frame["Navn"].map({next(iter(_names_of({p}))): p for p in (confirmed, stepped)}))
    by_pupil = frame.set_index("pupil")
    assert by_pupil.loc[confirmed, "UU-vurdering"] == "Bekræftet: drøftes i netværket"
    assert by_pupil.loc[confirmed, "Vurderet"] == "01-12-2025"
    assert by_pupil.loc[confirmed, "Trin på indsatstrappen"].endswith("(forslag ud fra risikoniveau)")
    assert by_pupil.loc[stepped, "UU-vurdering"] == "Trin på indsatstrappen (overført fra 2025/26-H0)"
    assert by_pupil.loc[stepped, "Trin på indsatstrappen"] == "Trin 2: netværksmøde"
    rows = list(csv.reader(io.StringIO(texts["csv"]), delimiter=";"))
    assert rows[0] == [DISCLAIMER_DA] and rows[1] == list(NETWORK_LIST_HEADERS) and len(rows) == 4


def test_a_list_shown_before_review_says_so_and_marks_the_unreviewed(two_runs, tmp_path):
    pupils = _flagged_of(two_runs, "N1")
    flags = two_runs.flags[CUR_RUN]
    network_list = build_network_list(
        flags[flags["pupil_id"].isin(pupils)], read_identities(two_runs.identity, pupils), two_runs.config, "N1",
        CUR_TERM, LINEAGE, audience="netvaerk", reviews={}, require_review=False)
    assert network_list.purpose_da == LIST_PURPOSE_UNREVIEWED_DA
    assert {row["UU-vurdering"] for row in network_list.rows} == {NOT_REVIEWED_DA}


def test_spreadsheet_cells_never_start_a_formula():
    for text in ("=1+1", "+45 12 34 56 78", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert spreadsheet_cell(text) == "'" + text
    assert spreadsheet_cell("Anna") == "Anna" and spreadsheet_cell(-3) == -3 and spreadsheet_cell(None) is None


def test_formulas_in_names_are_escaped_in_csv_and_excel(two_runs, tmp_path):
    identity = clone_warehouse(two_runs.identity)
    victim = _flagged_of(two_runs, "N3")[0]
    identity.execute("UPDATE identity_pupils SET first_name = '=HYPERLINK(\"http://x\",\"klik\")', "
                     "last_name = 'X', class_label = '@7A' WHERE pupil_id = $p", {"p": victim})
    entries = export_flag_lists(two_runs.con, identity, two_runs.config, CUR_TERM, CUR_RUN, tmp_path, LINEAGE)
    entry = next(e for e in entries if e["network"] == "N3")
    rows = list(csv.reader(io.StringIO(Path(entry["csv"]).read_text(encoding="utf-8-sig")), delimiter=";"))
    row = next(r for r in rows[2:] if r[-1] == victim)
    assert row[2] == "'=HYPERLINK(\"http://x\",\"klik\") X" and row[3] == "'@7A"
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)
    sheet = openpyxl.load_workbook(entry["xlsx"])["Flagliste"]
    cell = next(r[2] for r in sheet.iter_rows(min_row=HEADER_ROW + 1) if r[-1].value == victim)
    assert cell.value.startswith("'=") and cell.data_type == "s"
    network_list = _network_list(two_runs, "N3", {victim: ReviewShown("Afvist? nej: =1+1", "01-12-2025")}, 0,
                                 identity=identity)
    network_csv = csv_bytes(network_list).decode("utf-8-sig")
    assert "'=HYPERLINK" in network_csv and "'@7A" in network_csv


def test_a_rule_list_says_so_in_every_format(two_runs, tmp_path):
    con = clone_warehouse(two_runs.con)
    con.execute("ALTER TABLE flags_pupil_term ADD COLUMN IF NOT EXISTS list_basis VARCHAR")
    con.execute("UPDATE flags_pupil_term SET list_basis = 'regel:fravaer_over_10pct'")
    line = list_basis_da("regel:fravaer_over_10pct")
    assert line.startswith("REGELLISTE") and "fraværsreglen" in line and list_basis_da("model") is None
    entries = export_flag_lists(con, two_runs.identity, two_runs.config, CUR_TERM, CUR_RUN, tmp_path, LINEAGE)
    for entry in entries:
        for fmt in ("xlsx", "pdf", "csv"):
            text = _file_text(entry[fmt])
            assert "REGELLISTE" in text and "fraværsreglen" in text, (entry["network"], fmt)
    assert Path(entries[0]["csv"]).read_text(encoding="utf-8-sig").splitlines()[0].endswith(line)
    flags = read_flag_lists(con, CUR_RUN)
    pupils = _flagged_of(two_runs, "N1")[:1]
    network_list = build_network_list(flags[flags["pupil_id"].isin(pupils)],
                                      read_identities(two_runs.identity, pupils), two_runs.config, "N1", CUR_TERM,
                                      LINEAGE, audience="netvaerk",
                                      reviews={pupils[0]: ReviewShown("Bekræftet: drøftes i netværket", "")})
    assert network_list.basis_da == line
    assert csv_bytes(network_list).decode("utf-8-sig").splitlines()[0] == f"{DISCLAIMER_DA} {line}"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_networks_written_in_chunks_give_the_same_lists(exported, two_runs, tmp_path, monkeypatch, workers):
    """A national config's networks are written a chunk at a time, by a pool of processes
    (``EWS_COMPUTE_WORKERS``): the same entries, in the config's order, and the same files."""
    import flags.export as export_module

    monkeypatch.setattr(export_module, "NETWORKS_PER_CHUNK", 1)
    monkeypatch.setenv("EWS_COMPUTE_WORKERS", workers)
    out, entries = exported
    chunked_out = tmp_path / CUR_RUN / "lister"
    chunked = export_flag_lists(two_runs.con, two_runs.identity, two_runs.config, CUR_TERM, CUR_RUN, chunked_out,
                                LINEAGE, relative_to=chunked_out.parent)
    assert chunked == entries
    for entry in entries:
        assert (chunked_out.parent / entry["csv"]).read_bytes() == (out.parent / entry["csv"]).read_bytes()
        assert pdf_text(chunked_out.parent / entry["pdf"]) == pdf_text(out.parent / entry["pdf"])


def test_two_networks_that_would_share_a_file_name_are_refused_before_any_file(two_runs, tmp_path):
    """The config refuses them when it is read, before any run step (``MunicipalityConfig``)."""
    from ews.config import MunicipalityConfig

    document = two_runs.config.model_dump()
    first, second = document["networks"][:2]
    clash, twin = {**first, "id": "N1 Vest", "name": "Vest"}, {**second, "id": "N1/Vest", "name": "Vest 2"}
    with pytest.raises(ValueError, match="'N1 Vest' and 'N1/Vest' would share the file name N1_Vest"):
        config = MunicipalityConfig.model_validate({**document, "networks": [*document["networks"], clash, twin]})
        export_flag_lists(two_runs.con, two_runs.identity, config, CUR_TERM, CUR_RUN, tmp_path / "w", LINEAGE)
    assert not (tmp_path / "w").exists()


def test_a_long_pdf_list_measured_once_is_the_same_pdf_to_the_byte(exported, two_runs, monkeypatch):
    """The PDF's tables get their row heights measured once (``flags.pdf._row_heights``).

    A list over several landscape pages is written with and without the measured heights:
    reportlab would measure every row on each page it splits the table over, so a wrong height
    (a missing padding, a cell list not summed) moves a row or a page break and changes bytes.
    """
    import dataclasses

    import flags.pdf as pdf

    one = build_network_list(two_runs.flags[CUR_RUN].query("network_id == 'N1'"),
                             read_identities(two_runs.identity, sorted(_flagged_of(two_runs, "N1"))),
                             two_runs.config, "N1", CUR_TERM, LINEAGE)
    long = dataclasses.replace(one, rows=one.rows * 12, leaving=one.leaving * 6)

    def written() -> bytes:
        out = io.BytesIO()
        pdf.write_pdf(long, out)
        return out.getvalue()

    measured = written()
    monkeypatch.setattr(pdf, "_row_heights", lambda data, widths, style: None)  # reportlab measures
    assert written() == measured
    assert len(re.findall(rb"/Type /Page\b(?!s)", measured)) >= 4  # the summary and three pages of list or more


def test_a_pdf_whose_cells_break_their_lines_once_a_width_is_the_same_pdf_to_the_byte(exported, two_runs,
                                                                                       monkeypatch):
    """Cells keep their line breaks for a width they were wrapped to (``flags.pdf._Text``).

    A long list over several pages (tables split, paragraphs split at page ends) is written with
    the kept breaks and with reportlab breaking the lines at every wrap: the same bytes, with
    fewer line breakings.
    """
    import dataclasses

    from reportlab.platypus import Paragraph

    import flags.pdf as pdf

    one = build_network_list(two_runs.flags[CUR_RUN].query("network_id == 'N1'"),
                             read_identities(two_runs.identity, sorted(_flagged_of(two_runs, "N1"))),
                             two_runs.config, "N1", CUR_TERM, LINEAGE)
    long = dataclasses.replace(one, rows=one.rows * 12, leaving=one.leaving * 6)
    breaks = []
    real = Paragraph.breakLines

    def counted(self, widths):
        breaks.append(1)
        return real(self, widths)

    monkeypatch.setattr(Paragraph, "breakLines", counted)

    def written() -> tuple[bytes, int]:
        breaks.clear()
        out = io.BytesIO()
        pdf.write_pdf(long, out)
        return out.getvalue(), len(breaks)

    kept, kept_breaks = written()
    monkeypatch.setattr(pdf._Text, "wrap", Paragraph.wrap)  # reportlab breaks the lines at every wrap
    every, every_breaks = written()
    assert kept == every
    assert kept_breaks < 0.7 * every_breaks


def test_a_cell_breaks_its_lines_again_after_a_split_dropped_them_or_a_new_width():
    """``flags.pdf._Text`` keeps one width's breaks; split() (a page end) and a new width break again."""
    from flags.pdf import _CELL, _Text

    cell = _Text("fravær over ti procent i de seneste seks måneder " * 20, _CELL)
    wide = cell.wrap(300, 10_000)
    assert cell.wrap(300, 10) == wide  # the height available does not change the breaks
    del cell.blPara  # what Paragraph.split does when nothing fits
    assert cell.wrap(300, 10_000) == wide and "blPara" in cell.__dict__
    narrow = cell.wrap(100, 10_000)
    assert narrow[1] > wide[1]
    for _ in range(2):  # below reportlab's smallest width: "does not fit", each time
        assert cell.wrap(0, 10_000) == (0, 0x7FFFFFFF)
    assert cell.wrap(100, 10_000) == narrow
