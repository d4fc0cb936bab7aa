"""Readers cope with real exports; typing quarantines what cannot be typed, never echoing a CPR."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ews.config import SourceConfig, default_sources
from ews.pseudonym import CPR_LIKE
from pipelines.readers import ExportStream, read_export
from tests.validation.validation_corpus import write_workbook
from validation.errors import FileLevelError
from validation.parsing import parse_source_frame

SOURCES = {s["name"]: s for s in default_sources()}
KEY = b"test-key"
ABSENCE_HEADER = "CPR;Skolekode;Periode fra;Periode til;Skoledage;Sygdom;Lovligt fravær;Ulovligt fravær;For sent"


def source(name: str, **changes: object) -> SourceConfig:
    return SourceConfig.model_validate({**SOURCES[name], **changes})


def write(path: Path, text: str, encoding: str = "utf-8", bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


@pytest.mark.parametrize("bom", [False, True])
def test_utf8_with_or_without_bom_gives_the_same_rows(tmp_path: Path, bom: bool) -> None:
    path = write(tmp_path / "fravaer_2025-26.csv",
                 ABSENCE_HEADER + "\n150314-4001;101;04-08-2025;08-08-2025;5;0,5;0;0;1\n", bom=bom)
    export = read_export(path, source("absence"))
    assert export.frame["cpr"].tolist() == ["150314-4001"]
    assert export.frame["illness_days"].tolist() == ["0,5"]
    assert export.frame["source_line"].tolist() == [2]


def test_windows_1252_is_read_when_configured(tmp_path: Path) -> None:
    text = "CPR;Dato;Faggruppe;Type;Bemærkning\n300912-4004;02.09.2025;Socialrådgiver;Kontakt;Årlig\n"
    export = read_export(write(tmp_path / "kontakter_2025-26.csv", text, "cp1252"), source("contacts"))
    assert export.frame["discipline"].tolist() == ["Socialrådgiver"]
    assert "Bemærkning" not in export.frame.columns and export.extra_columns == []


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    text = (ABSENCE_HEADER + "\n\n150314-4001;101;04-08-2025;08-08-2025;5;0;0;0;0\n"
            '"150314-4001";101;11-08-2025;15-08-2025;5;"0,5";0;0;0\n')
    export = read_export(write(tmp_path / "fravaer_2025-26.csv", text), source("absence"))
    assert export.frame["source_line"].tolist() == [3, 4]
    assert export.frame["illness_days"].tolist() == ["0", "0,5"]


def test_extra_columns_are_reported_not_fatal(tmp_path: Path) -> None:
    text = ABSENCE_HEADER + ";Lærer\n150314-4001;101;04-08-2025;08-08-2025;5;0;0;0;0;XX\n"
    export = read_export(write(tmp_path / "fravaer_2025-26.csv", text), source("absence"))
    assert export.extra_columns == ["Lærer"] and len(export.frame) == 1
    assert "Lærer" not in export.frame.columns


def test_excel_sheet_with_dates_numbers_and_text_marks(tmp_path: Path) -> None:
    spec = tmp_path / "karakterer_2025-26.xlsx.yaml"
    spec.write_text(
        "sheets:\n  Karakterer:\n"
        "  - [CPR, Skolekode, Klassetrin, Fag, Karaktertype, Dato, Karakter]\n"
        "  - ['050511-4005', '101', 8, Dansk, Standpunkt, 2025-11-01, '02']\n"
        "  - ['050511-4005', 101, 8, Matematik, Standpunkt, '03.11.2025', 4]\n", encoding="utf-8")
    write_workbook(spec, tmp_path / "karakterer_2025-26.xlsx")
    export = read_export(tmp_path / "karakterer_2025-26.xlsx", source("marks"))
    assert export.frame[["school_code", "mark_date", "mark"]].values.tolist() == [
        ["101", "01-11-2025", "02"], ["101", "03.11.2025", "4"]]
    parsed = parse_source_frame(export.frame, source("marks"), KEY)
    assert parsed.quarantine.empty
    assert parsed.typed["mark"].tolist() == [2, 4]
    assert parsed.typed["mark_date"].tolist() == [date(2025, 11, 1), date(2025, 11, 3)]


@pytest.mark.parametrize(("content", "check", "text"), [
    (b"", "empty_file", "empty (0 bytes)"),
    (b"\xff\xfeC\x00P\x00R\x00", "encoding", "UTF-16"),
    (ABSENCE_HEADER.encode("cp1252") + b"\n", "encoding", "not valid utf-8"),
    (ABSENCE_HEADER.replace(";", ",").encode() + b"\n1,2\n", "delimiter", "perhaps ','"),
    (ABSENCE_HEADER.encode() + b"\n", "empty_file", "header but no rows"),
    (ABSENCE_HEADER.encode() + b"\n150314-4001;101;04-08-2025;08-0", "truncated", "looks truncated"),
])
def test_whole_file_problems_raise_one_clear_error(tmp_path: Path, content: bytes, check: str,
                                                   text: str) -> None:
    path = tmp_path / "fravaer_2025-26.csv"
    path.write_bytes(content)
    with pytest.raises(FileLevelError) as caught:
        read_export(path, source("absence"))
    assert caught.value.check == check and text in str(caught.value)
    assert str(caught.value).startswith("fravaer_2025-26.csv")


def test_header_only_file_may_be_accepted_by_config(tmp_path: Path) -> None:
    path = write(tmp_path / "fravaer_2025-26.csv", ABSENCE_HEADER + "\n")
    export = read_export(path, source("absence", severity={"empty_file": "row"}))
    assert export.rows_read == 0
    parsed = parse_source_frame(export.frame, source("absence"), KEY)
    assert parsed.typed.empty and parsed.quarantine.empty


def test_not_a_workbook_is_a_file_level_error(tmp_path: Path) -> None:
    path = write(tmp_path / "upv_2023-24.xlsx", "CPR;Skolekode\n")
    with pytest.raises(FileLevelError, match="not a readable Excel workbook"):
        read_export(path, source("upv"))


def absence_lines(count: int) -> list[str]:
    return [f"150314-4001;101;{(i % 28) + 1:02d}-08-2025;{(i % 28) + 1:02d}-08-2025;1;0,5;0;0;{i % 3}"
            for i in range(count)]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_chunks_of_a_csv_file_add_up_to_the_whole_file(tmp_path: Path, chunk: int) -> None:
    lines = absence_lines(10)
    lines.insert(4, "")  # a blank line: skipped, line numbers stay physical
    path = write(tmp_path / "fravaer_2025-26.csv", "\n".join([ABSENCE_HEADER, *lines]) + "\n", bom=True)
    whole = read_export(path, source("absence")).frame
    stream = ExportStream(path, source("absence"))
    parts = list(stream.chunks(chunk))
    assert [len(p) for p in parts[:-1]] == [chunk] * (len(parts) - 1) and len(parts[-1]) <= chunk
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    assert stream.rows_read == len(whole) == 10
    assert whole["source_line"].tolist() == [2, 3, 4, 5, *range(7, 13)]


def test_chunks_of_an_excel_sheet_add_up_to_the_whole_sheet(tmp_path: Path) -> None:
    spec = tmp_path / "karakterer_2025-26.xlsx.yaml"
    rows = "".join(f"  - ['050511-4005', '101', 8, Dansk, Standpunkt, 2025-11-{d:02d}, '02']\n"
                   for d in range(1, 8))
    spec.write_text("sheets:\n  Karakterer:\n  - [CPR, Skolekode, Klassetrin, Fag, Karaktertype, Dato, "
                    "Karakter]\n" + rows, encoding="utf-8")
    write_workbook(spec, tmp_path / "karakterer_2025-26.xlsx")
    path = tmp_path / "karakterer_2025-26.xlsx"
    parts = list(ExportStream(path, source("marks")).chunks(3))
    assert [len(p) for p in parts] == [3, 3, 1]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), read_export(path, source("marks")).frame)


def test_bad_bytes_far_into_a_file_are_found_on_their_line(tmp_path: Path) -> None:
    # beyond the reader's first blocks: the line is counted from the start of the file
    lines = absence_lines(40_000)
    lines[30_000] = lines[30_000].replace("1;0,5", "1;0,5<bad>")
    path = tmp_path / "fravaer_2025-26.csv"
    path.write_bytes(("\n".join([ABSENCE_HEADER, *lines]) + "\n").encode("utf-8").replace(
        b"<bad>", b"\xe6"))
    stream = ExportStream(path, source("absence"))
    with pytest.raises(FileLevelError) as caught:
        for _ in stream.chunks(5000):
            pass
    assert caught.value.check == "encoding" and caught.value.line == 30_002
    assert str(caught.value).startswith("fravaer_2025-26.csv, line 30002:")


@pytest.mark.parametrize("column", ["mapped", "not mapped"])
def test_bad_bytes_are_found_in_every_column_whether_read_or_not(tmp_path: Path, column: str) -> None:
    # DuckDB's reader keeps only mapped columns, and decodes only the columns a scan uses: a
    # value of a column the config does not read (here an extra one) must be decoded too
    lines = [line + ";note" for line in absence_lines(40_000)]
    was, now = (";0,5;", ";0,5<bad>;") if column == "mapped" else (";note", ";note<bad>")
    lines[30_000] = lines[30_000].replace(was, now)
    path = tmp_path / "fravaer_2025-26.csv"
    path.write_bytes(("\n".join([ABSENCE_HEADER + ";Note", *lines]) + "\n").encode("utf-8").replace(
        b"<bad>", b"\xe6"))
    assert b"\xe6" in path.read_bytes()
    with pytest.raises(FileLevelError) as caught:
        for _ in ExportStream(path, source("absence")).chunks(5000):
            pass
    assert caught.value.check == "encoding" and caught.value.line == 30_002


def test_a_truncated_last_line_is_caught_when_reading_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "fravaer_2025-26.csv"
    path.write_bytes(("\n".join([ABSENCE_HEADER, *absence_lines(5)]) + "\n150314-4001;101;04-08").encode())
    stream = ExportStream(path, source("absence"))
    with pytest.raises(FileLevelError, match="line 7: the last line has 3 of 9 fields"):
        list(stream.chunks(2))


def test_a_short_last_row_of_a_complete_utf16_file_is_not_called_truncated(tmp_path: Path) -> None:
    path = tmp_path / "fravaer_2025-26.csv"
    text = ABSENCE_HEADER + "\r\n" + absence_lines(2)[0] + "\r\n150314-4001;101\r\n"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    export = read_export(path, source("absence", encoding="utf-16"))
    assert export.frame["_field_count_ok"].tolist() == [True, False]


def test_a_file_replaced_between_its_header_check_and_its_reading_stops_the_run(tmp_path: Path) -> None:
    path = write(tmp_path / "fravaer_2025-26.csv", "\n".join([ABSENCE_HEADER, *absence_lines(2)]) + "\n")
    stream = ExportStream(path, source("absence"))
    reordered = ABSENCE_HEADER.split(";")
    reordered[1], reordered[2] = reordered[2], reordered[1]
    write(path, "\n".join([";".join(reordered), *absence_lines(2)]) + "\n")
    with pytest.raises(FileLevelError, match="header changed while the run was reading"):
        list(stream.chunks(10))


def test_a_date_in_an_implausible_year_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    frame = raw([{"cpr": "150314-4001", "school_code": "101", "period_start": "02.09.3025",
                  "period_end": "05-09-2025", "school_days": "4", "illness_days": "0",
                  "authorised_days": "0", "unauthorised_days": "0", "late_arrivals": "0"}])
    parsed = parse_source_frame(frame, source("absence", date_formats=["%d-%m-%Y", "%d.%m.%Y"]), KEY)
    assert parsed.typed.empty
    assert parsed.quarantine["reason"].tolist() == [
        "bad_date: '02.09.3025' lies outside the years 1900-2199: a typing error?"]


def test_the_head_of_a_file_is_checked_before_any_row_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "fravaer_2025-26.csv", ABSENCE_HEADER.replace("Sygdom", "Syg") + "\n1;2\n")
    with pytest.raises(FileLevelError) as caught:
        ExportStream(path, source("absence"))
    assert caught.value.check == "missing_column" and "'Sygdom' (found 'Syg': renamed?)" in str(caught.value)


def raw(rows: list[dict[str, str]], file: str = "fravaer_2025-26.csv") -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype="object")
    frame["source_file"] = file
    frame["source_line"] = pd.Series(range(2, len(rows) + 2), dtype="int64")
    frame["_field_count_ok"] = True
    return frame


ABSENCE_ROW = {"cpr": "150314-4001", "school_code": "101", "period_start": "04-08-2025",
               "period_end": "08.08.2025", "school_days": "5", "illness_days": "0,5",
               "authorised_days": "0", "unauthorised_days": "0", "late_arrivals": "1"}


def test_typing_reads_decimal_commas_and_both_danish_date_forms() -> None:
    parsed = parse_source_frame(raw([ABSENCE_ROW]), source("absence"), KEY)
    row = parsed.typed.iloc[0]
    assert row["illness_days"] == 0.5 and row["late_arrivals"] == 1
    assert (row["period_start"], row["period_end"]) == (date(2025, 8, 4), date(2025, 8, 8))
    assert row["birth_year"] == 2014 and row["pupil_id"].startswith("p")
    assert "cpr" not in parsed.typed.columns


def test_typing_quarantines_what_cannot_be_typed_without_echoing_the_cpr() -> None:
    rows = [
        {**ABSENCE_ROW, "cpr": "311399-4004"},          # 2: month 13
        {**ABSENCE_ROW, "illness_days": "0.5"},         # 3: decimal point in a comma file
        {**ABSENCE_ROW, "late_arrivals": "1,5"},        # 4: not whole
        {**ABSENCE_ROW, "period_start": "31-02-2025"},  # 5: no such day
        {**ABSENCE_ROW, "school_days": ""},             # 6: empty
        {**ABSENCE_ROW, "authorised_days": "to"},       # 7: not a number
        ABSENCE_ROW,                                    # 8: fine
    ]
    parsed = parse_source_frame(raw(rows), source("absence"), KEY)
    reasons = dict(zip(parsed.quarantine["source_line"],
                       parsed.quarantine["reason"].str.split(":").str[0], strict=True))
    assert reasons == {2: "invalid_cpr", 3: "bad_decimal_mark", 4: "not_a_whole_number",
                       5: "bad_date", 6: "missing_value", 7: "not_a_number"}
    assert parsed.typed["source_line"].tolist() == [8]
    for text in [*parsed.quarantine["reason"], *parsed.quarantine["raw_values"]]:
        assert not CPR_LIKE.search(text), text
    assert parsed.quarantine.set_index("source_line").loc[2, "column_name"] == "cpr"


def test_names_go_to_identity_only_and_unmapped_values_pass_to_the_gate() -> None:
    row = {"cpr": "150314-4001", "first_name": "Anna", "last_name": "Andersen",
           "school_code": "101", "grade": "5", "class_label": "5.A", "sex": "Ukendt",
           "origin": "", "enrolled_from": "01-08-2020", "enrolled_to": ""}
    parsed = parse_source_frame(raw([row], "elever_2025-26.csv"), source("pupils"), KEY)
    assert "first_name" not in parsed.typed.columns
    assert parsed.identity[["first_name", "last_name"]].values.tolist() == [["Anna", "Andersen"]]
    assert parsed.typed["sex"].tolist() == ["Ukendt"]  # not mapped: the contract reports it
    assert parsed.quarantine.empty


def test_a_cpr_number_in_a_value_column_is_masked_in_quarantine() -> None:
    parsed = parse_source_frame(raw([{**ABSENCE_ROW, "period_start": "1503144001"}]), source("absence"), KEY)
    row = parsed.quarantine.iloc[0]
    # the door names the column and quarantines the row as a CPR in the wrong place (it used to
    # reach the date typing and be reported as a bad date)
    assert row["reason"].startswith("cpr_in_field: period_start")
    assert row["column_name"] == "period_start"
    assert not CPR_LIKE.search(row["reason"] + row["raw_values"])


def test_pupil_ids_include_pupils_whose_row_was_quarantined() -> None:
    rows = [ABSENCE_ROW, {**ABSENCE_ROW, "cpr": "020214-4002", "school_days": "x"},
            {**ABSENCE_ROW, "cpr": "nonsense"}]
    parsed = parse_source_frame(raw(rows), source("absence"), KEY)
    assert len(parsed.typed) == 1 and len(parsed.quarantine) == 2
    assert len(parsed.pupil_ids) == 2 and set(parsed.typed["pupil_id"]) < set(parsed.pupil_ids)


def test_excel_rows_keep_their_sheet_row_and_text_marks_like_00(tmp_path: Path) -> None:
    spec = tmp_path / "karakterer_2025-26.xlsx.yaml"
    spec.write_text(
        "sheets:\n  Karakterer:\n"
        "  - [CPR, Skolekode, Klassetrin, Fag, Karaktertype, Dato, Karakter]\n"
        "  - ['050511-4005', '101', 9, Dansk, Afgangsprøve, 2025-06-10, '00']\n"
        "  - [null, null, null, null, null, null, null]\n"
        "  - ['050511-4005', '101', 9, Engelsk, Afgangsprøve, 2025-06-12, '-3']\n", encoding="utf-8")
    write_workbook(spec, tmp_path / "karakterer_2025-26.xlsx")
    frame = read_export(tmp_path / "karakterer_2025-26.xlsx", source("marks")).frame
    assert frame[["source_line", "grade", "mark_date", "mark"]].values.tolist() == [
        [2, "9", "10-06-2025", "00"], [4, "9", "12-06-2025", "-3"]]


@pytest.mark.parametrize("text", [
    "plain", "with a blank line", "with quotes", "with CRLF", "without a final line end"])
def test_duckdbs_reader_and_the_csv_module_give_the_same_rows(tmp_path: Path, text: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import readers

    lines = ["CPR;Skolekode;Periode fra;Periode til;Skoledage;Sygdom;Lovligt fravær;Ulovligt fravær;"
             "For sent", *absence_lines(50)]
    if text == "with a blank line":
        lines.insert(20, "")
    if text == "with quotes":
        lines[5] = lines[5].replace(";101;", ';"101";')
    newline = "\r\n" if text == "with CRLF" else "\n"
    content = newline.join(lines) + ("" if text == "without a final line end" else newline)
    path = write(tmp_path / "fravaer_2025-26.csv", content)
    plan = readers._duckdb_plan(path, "utf-8")
    # DuckDB reads the file only when it reads it exactly as the csv module does
    assert (plan is not None) == (text not in ("with quotes",))
    fast = pd.concat(list(ExportStream(path, source("absence")).chunks(7)), ignore_index=True)
    monkeypatch.setattr(readers, "_duckdb_plan", lambda *_args: None)
    slow = pd.concat(list(ExportStream(path, source("absence")).chunks(7)), ignore_index=True)
    # the same values (DuckDB's text stays Arrow-backed, the csv module's is object)
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    assert fast["source_line"].iloc[-1] == len(lines)
    pd.testing.assert_frame_equal(parse_source_frame(fast, source("absence"), KEY).typed,
                                  parse_source_frame(slow, source("absence"), KEY).typed)
