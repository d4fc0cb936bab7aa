"""Every corpus case gets its expected outcome through the ingest (read, type, validate, load)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from ews.config import MunicipalityConfig
from ews.pseudonym import CPR_IN_TEXT, CPR_LIKE, pseudonymise
from ews.warehouse import WarehousePaths, content_digest, staged_write
from pipelines.ingest import DEFAULT_CHUNK_ROWS, IngestResult, discover_sources, ingest_sources
from tests.validation.validation_corpus import KEY, TERM, TODAY, build_inbox, corpus_cases, make_config
from validation import gate
from validation.errors import FileLevelError
from validation.report import (
    artifact_markdown,
    manifest_section,
    reason_codes,
    render_report,
    summarise_quarantine,
)

CASES = corpus_cases()


@pytest.fixture(autouse=True, scope="module")
def reuse_identical_validations() -> Any:
    """Evaluate each distinct (suite, checks, rows) once in this module.

    Most sources of a case are the baseline's, row for row; Great Expectations spends about
    0.2 s a suite on bookkeeping whatever the size, so identical suites over identical prepared
    rows reuse the first evaluation. Changed rows (the case's own source) are always evaluated.
    """
    seen: dict[tuple, Any] = {}
    original = gate.run_checks

    def run_checks(frame, checks, suite_name, **options):  # noqa: ANN001, ANN003, ANN202 - as the original
        key = (suite_name, tuple(c.name for c in checks), tuple(frame.columns),
               int(pd.util.hash_pandas_object(frame.astype(str), index=True).sum()))
        if key not in seen:
            seen[key] = original(frame, checks, suite_name, **options)
        return seen[key]

    patcher = pytest.MonkeyPatch()
    patcher.setattr(gate, "run_checks", run_checks)
    yield
    patcher.undo()


def run_ingest(inbox: Path, state: Path, case: dict[str, Any] | None,
               chunk_rows: int = DEFAULT_CHUNK_ROWS) -> IngestResult:
    """The ingest over an inbox; a case's run reads only pupils, absence and the case's source."""
    config = make_config((case or {}).get("severity"), {case["kind"]} if case else None,
                         (case or {}).get("config"))
    sources = discover_sources(config, inbox)
    with staged_write(state) as session:
        return ingest_sources(session, config, sources, key=KEY, term=TERM, today=TODAY,
                              run_id="corpus-run", previous_rows=(case or {}).get("previous_rows", {}),
                              chunk_rows=chunk_rows)


@pytest.fixture(scope="module")
def baseline_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder holding the warehouse after a clean run of the baseline exports."""
    root = tmp_path_factory.mktemp("baseline")
    result = run_ingest(build_inbox(None, root / "inbox"), root / "state", None)
    assert result.quarantine.empty, result.quarantine.to_dict("records")
    return root / "state"


@pytest.fixture(scope="module")
def baseline_digest(baseline_state: Path) -> dict[str, tuple[int, str]]:
    """Row counts and content hashes of every table of the baseline warehouse."""
    return content_digest(WarehousePaths(baseline_state).warehouse)


def test_baseline_loads_every_row_of_every_source(baseline_state: Path) -> None:
    digest = content_digest(WarehousePaths(baseline_state).warehouse)
    assert digest["clean_pupils"][0] == 9
    assert digest["clean_absence"][0] == 10
    assert digest["clean_tests"][0] == 5
    assert digest["clean_marks"][0] == 4
    assert digest["clean_contacts"][0] == 5
    assert digest["clean_support"][0] == 3
    assert digest["clean_outcomes"][0] == 3
    assert digest["quarantine_rows"][0] == 0
    con = duckdb.connect(str(WarehousePaths(baseline_state).warehouse), read_only=True)
    try:
        results = con.execute("SELECT source, expectation, success FROM validation_results").df()
    finally:
        con.close()
    assert set(results["source"]) == {"pupils", "absence", "tests", "marks", "contacts", "support",
                                      "upv", "designation"}
    assert len(results) == digest["validation_results"][0] > 80
    assert results["success"].all(), results[~results["success"]]


def test_corpus_has_at_least_25_cases_over_every_source_kind() -> None:
    assert len(CASES) >= 25
    assert len({c["case"] for c in CASES}) == len(CASES)
    assert {c["kind"] for c in CASES} == {"pupils", "absence", "tests", "marks", "contacts",
                                          "support", "upv", "designation"}
    errors = [c for c in CASES if "error" in c["expect"]]
    assert len(errors) >= 10 and len(CASES) - len(errors) >= 15


#: Checks raised by a reader that meets a problem in a file's bytes: each names its line.
LINE_CHECKS = {"encoding", "delimiter", "header", "missing_column", "truncated"}


def test_every_reader_error_of_the_corpus_names_its_line() -> None:
    """Every file-level message about a file's bytes names the line where the reader gave up
    (the expected line is then checked by :func:`test_corpus_case`)."""
    errors = [c for c in CASES if c["expect"].get("error", {}).get("check") in LINE_CHECKS]
    assert len(errors) >= 10
    without = [c["case"] for c in errors if "line" not in c["expect"]["error"]]
    assert without == []


#: Reasons of row checks that read one row's own values (and its file's name and the config),
#: nothing of other rows, files or sources, the identity store or the reader's position.
ROW_LOCAL_REASONS = frozenset({
    "bad_decimal_mark", "mark_not_7_point", "score_out_of_scale", "scale_wrong_for_school_year",
    "absence_exceeds_school_days", "negative_value", "school_days_exceed_period", "end_before_start",
    "date_in_future", "date_outside_school_year", "grade_out_of_range", "age_implausible_for_grade",
    "unknown_school", "unknown_discipline", "value_not_allowed", "upv_after_abolition", "bad_school_year",
    "school_year_not_file_year", "bad_date", "missing_value", "not_a_number", "field_too_long",
})


def chunking_can_matter(case: dict[str, Any]) -> bool:
    """Whether reading a case's files two rows at a time could change its outcome.

    It cannot when the case quarantines exactly one row for reasons of :data:`ROW_LOCAL_REASONS`:
    the verdict is the same in any chunk, and what chunks change around it (the row's line, the
    counts, the results summed over chunks) is pinned table by table, quarantine and validation
    results included, by :func:`test_reading_in_chunks_gives_the_same_warehouse_and_identity_store`.
    Every other case can: file-level errors found while reading rows, duplicates across chunks,
    unknown pupils (another source), field counts (the reader), CPR numbers (the identity store is
    written chunk by chunk), shares and volumes summed over chunks, several bad rows, and clean
    cases about reading and typing; a new case is in the chunked pass unless it is row-local.
    """
    expect = case["expect"]
    if "error" in expect or len(expect.get("quarantine", [])) != 1:
        return True
    (row,) = expect["quarantine"]
    return not set(row["reasons"]) <= ROW_LOCAL_REASONS


#: Every case read whole; the cases where chunk boundaries can matter also two rows at a time.
CASE_PASSES = [pytest.param(case, DEFAULT_CHUNK_ROWS, id=f"{case['case']}-whole-files") for case in CASES] + [
    pytest.param(case, 2, id=f"{case['case']}-chunks-of-2") for case in CASES if chunking_can_matter(case)]


def test_the_chunked_pass_leaves_out_only_single_row_local_cases() -> None:
    left_out = [c for c in CASES if not chunking_can_matter(c)]
    assert 0 < len(left_out) < len(CASES) / 2
    for case in left_out:
        assert "error" not in case["expect"] and len(case["expect"]["quarantine"]) == 1
    kept = {c["case"] for c in CASES if chunking_can_matter(c)}
    assert {"pupils_duplicate", "marks_duplicate", "absence_unknown_pupil", "contacts_invalid_cpr",
            "absence_truncated", "absence_short_line", "marks_severity_file", "absence_volume_drop",
            "absence_all_rows_outside_school_year", "pupils_cpr_glued_to_name", "marks_excel_numbers"} <= kept


@pytest.mark.parametrize(("case", "chunk_rows"), CASE_PASSES)
def test_corpus_case(case: dict[str, Any], chunk_rows: int, tmp_path: Path, baseline_state: Path,
                     baseline_digest: dict[str, tuple[int, str]]) -> None:
    """Each case gets its outcome with files read whole and, where chunk boundaries can matter
    (:func:`chunking_can_matter`), two rows at a time (so that duplicates, lines and counts are
    right across chunks and files)."""
    inbox = build_inbox(case, tmp_path / "inbox")
    state = tmp_path / "state"
    shutil.copytree(baseline_state, state)
    expect = case["expect"]
    if "error" in expect:
        wanted = expect["error"]
        with pytest.raises(FileLevelError) as caught:
            run_ingest(inbox, state, case, chunk_rows)
        message = str(caught.value)
        for text in wanted["contains"]:
            assert text in message, message
        for text in wanted.get("absent", []):
            assert text not in message, message
        assert caught.value.check == wanted["check"], message
        if wanted.get("file"):
            assert message.startswith(wanted["file"]), message
            assert caught.value.file == wanted["file"]
        if "line" in wanted:
            assert f"line {wanted['line']}" in message, message
            assert caught.value.line == wanted["line"]
        if "column" in wanted:
            assert wanted["column"] in message and caught.value.column == wanted["column"], message
        assert "Traceback" not in message
        assert not CPR_LIKE.search(message) and not CPR_IN_TEXT.search(message), message
        # the state folder held a copy of the baseline warehouse: still equal, table by table
        assert content_digest(WarehousePaths(state).warehouse) == baseline_digest
        return
    result = run_ingest(inbox, state, case, chunk_rows)
    got = sorted(
        (row["source_file"], int(row["source_line"]), str(row["column_name"] or "").split(",")[0],
         reason_codes(row["reason"]))
        for row in result.quarantine.to_dict("records"))
    wanted_rows = sorted((q["file"], q["line"], q["column"], q["reasons"]) for q in expect["quarantine"])
    assert got == wanted_rows
    for row in result.files.to_dict("records"):
        assert row["rows_read"] == row["rows_loaded"] + row["rows_quarantined"], row
    for file, count in expect.get("loaded", {}).items():
        assert result.files.set_index("file").loc[file, "rows_loaded"] == count
    for text in expect.get("warnings", []):
        assert any(text in warning for warning in result.warnings), result.warnings
    for text in [*result.quarantine["reason"], *result.quarantine["raw_values"], *result.warnings]:
        assert not CPR_LIKE.search(str(text)) and not CPR_IN_TEXT.search(str(text)), text
    assert len(result.quarantine) == len(expect["quarantine"])


def test_report_of_a_corpus_run_shows_its_quarantine_and_balanced_files(
        tmp_path: Path, baseline_state: Path) -> None:
    case = next(c for c in CASES if c["case"] == "tests_score_out_of_scale")
    state = tmp_path / "state"
    shutil.copytree(baseline_state, state)
    result = run_ingest(build_inbox(case, tmp_path / "inbox"), state, case)
    run_info = {"run_id": "corpus-run", "term": str(TERM), "status": "succeeded",
                "files": result.files, "warnings": result.warnings}
    summary = summarise_quarantine(result.quarantine)
    html = render_report(result.validation, summary, run_info, tmp_path / "report.html").read_text(
        encoding="utf-8")
    assert "nationale_test_2025-26.csv:3" in html and "score_out_of_scale" in html
    assert "scale_wrong_for_school_year" in html and "✗" in html
    assert not CPR_LIKE.search(html)
    section = manifest_section(result.validation, result.quarantine)
    assert section["quarantine_by_reason"] == {"tests": {"score_out_of_scale": 1,
                                                         "scale_wrong_for_school_year": 1}}
    assert "| tests | score_out_of_scale | score | 1 |" in artifact_markdown(
        result.validation, summary, run_info)


@pytest.mark.parametrize("name", [None, "pupils_duplicate", "marks_duplicate", "absence_unknown_pupil",
                                  "contacts_invalid_cpr"])
def test_reading_in_chunks_gives_the_same_warehouse_and_identity_store(name: str | None,
                                                                        tmp_path: Path) -> None:
    case = next(c for c in CASES if c["case"] == name) if name else None
    inbox = build_inbox(case, tmp_path / "inbox")
    digests = {}
    for chunk_rows in (DEFAULT_CHUNK_ROWS, 1, 3):
        state = tmp_path / f"state-{chunk_rows}"
        run_ingest(inbox, state, case, chunk_rows)
        paths = WarehousePaths(state)
        digests[chunk_rows] = (content_digest(paths.warehouse), content_digest(paths.identity))
    assert digests[1] == digests[DEFAULT_CHUNK_ROWS]
    assert digests[3] == digests[DEFAULT_CHUNK_ROWS]
    assert digests[1][1]["identity_pupils"][0] > 0


@pytest.mark.parametrize(("chunk_rows", "rows_follow"), [(DEFAULT_CHUNK_ROWS, False), (2, True)])
def test_a_stop_says_checked_so_far_only_when_rows_of_the_source_followed(
        chunk_rows: int, rows_follow: bool, tmp_path: Path, baseline_state: Path) -> None:
    """The checks of one file run as the chunks are typed, before it is known what follows; the
    held stop's message still says whether typed rows of the source were left unchecked."""
    case = next(c for c in CASES if c["case"] == "marks_severity_file")  # a bad mark on line 3 of 5
    state = tmp_path / "state"
    shutil.copytree(baseline_state, state)
    with pytest.raises(FileLevelError) as caught:
        run_ingest(build_inbox(case, tmp_path / "inbox"), state, case, chunk_rows)
    message = str(caught.value)
    assert caught.value.line == 3 and "mark_not_7_point" in message
    assert ("checked so far" in message) is rows_follow, message
    assert ("the rest of the source was not checked" in message) is rows_follow, message


@pytest.mark.parametrize("chunk_rows", [DEFAULT_CHUNK_ROWS, 1])
def test_two_pupils_sources_keep_each_pupils_own_name(chunk_rows: int, tmp_path: Path) -> None:
    inbox = build_inbox(None, tmp_path / "inbox")
    (inbox / "elevB_2025-26.csv").write_text(
        "CPR;Fornavn;Efternavn;Skolekode;Klassetrin;Klasse;Køn;Oprindelse;Indskrevet fra;Indskrevet til\n"
        "010115-4011;Xenia;Xylo;102;5;5.B;Pige;Dansk;01-08-2020;\n"
        "020215-4012;Yrsa;Yde;102;5;5.B;Pige;Dansk;01-08-2020;\n", encoding="utf-8")
    document = make_config(kinds=set()).model_dump()
    second = {**document["sources"][0], "name": "pupils_b", "pattern": "elevB_*.csv"}
    document["sources"].insert(1, second)
    config = MunicipalityConfig.model_validate(document)
    state = tmp_path / "state"
    with staged_write(state) as session:
        result = ingest_sources(session, config, discover_sources(config, inbox), key=KEY, term=TERM,
                                today=TODAY, run_id="two", previous_rows={}, chunk_rows=chunk_rows)
    assert result.quarantine.empty, result.quarantine.to_dict("records")
    con = duckdb.connect(str(WarehousePaths(state).identity), read_only=True)
    try:
        names = dict(con.execute("SELECT pupil_id, first_name FROM identity_pupils").fetchall())
    finally:
        con.close()
    assert names[pseudonymise("0101154011", KEY)] == "Xenia"
    assert names[pseudonymise("0202154012", KEY)] == "Yrsa"
    assert names[pseudonymise("1503144001", KEY)] == "Anna"
    # both sources' pupils are known to the other sources, and both are loaded
    assert result.files.set_index("file").loc["elevB_2025-26.csv", "rows_loaded"] == 2


HEX = re.compile(r"[0-9a-f]{16,}")


def _cpr_shaped_values(database: Path) -> list[tuple[str, str, str]]:
    """Every text value of every table of a DuckDB file that holds something CPR-shaped."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        found = []
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'").fetchall()
        for table, column in columns:
            values = con.execute(f'SELECT DISTINCT "{column}" FROM "{table}"').fetchall()
            # hashes in hex (file SHA-256, fingerprints) are not values of a file's rows
            found += [(table, column, value) for (value,) in values
                      if value is not None and not HEX.fullmatch(value)
                      and (CPR_LIKE.search(value) or CPR_IN_TEXT.search(value))]
        return found
    finally:
        con.close()


@pytest.mark.parametrize("name", ["pupils_cpr_in_name", "pupils_cpr_glued_to_name",
                                  "absence_cpr_in_school_code"])
def test_a_cpr_number_in_any_column_reaches_no_table_of_either_store(
        name: str, tmp_path: Path, baseline_state: Path) -> None:
    """Issue 12, defect 6: a CPR-shaped value in a name or other text column is kept out of the
    identity store (the names of the lists) and of every warehouse table, quarantine included."""
    case = next(c for c in CASES if c["case"] == name)
    state = tmp_path / "state"
    shutil.copytree(baseline_state, state)
    result = run_ingest(build_inbox(case, tmp_path / "inbox"), state, case)
    assert set(reason_codes(" | ".join(result.quarantine["reason"]))) == {"cpr_in_field"}
    paths = WarehousePaths(state)
    assert _cpr_shaped_values(paths.identity) == []
    assert _cpr_shaped_values(paths.warehouse) == []
