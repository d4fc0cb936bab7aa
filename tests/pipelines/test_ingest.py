"""The ingest is incremental by content: unchanged files are not read again, a changed file
replaces exactly its rows, a removed file's rows go, and the result is the same as loading
the same exports into an empty warehouse."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ews.config import MunicipalityConfig
from ews.warehouse import (
    DiskFullError,
    IngestStore,
    RowsWriter,
    WarehousePaths,
    content_digest,
    open_readonly,
    staged_write,
)
from pipelines import ingest as ingest_module
from pipelines.ingest import IngestResult, discover_sources, ingest_sources
from tests.validation.validation_corpus import KEY, TERM, TODAY, build_inbox, make_config
from validation.errors import FileLevelError

ABSENCE_HEADER = ("CPR;Skolekode;Periode fra;Periode til;Skoledage;Sygdom;Lovligt fravær;"
                  "Ulovligt fravær;For sent\n")
#: A second absence file (school year 2024/25) of pupils in the baseline register.
LAST_YEAR = [
    "150314-4001;101;05-08-2024;09-08-2024;5;0;0;0;0",
    "150314-4001;101;12-08-2024;16-08-2024;5;1;0;0;0",
    "020214-4002;101;05-08-2024;09-08-2024;5;0;1;0;2",
    "020214-4002;101;12-08-2024;16-08-2024;5;0;0;0,5;0",
]

#: The files of the pupils and absence sources (the sources these tests configure).
LOADED = ["elever_2023-24.csv", "elever_2025-26.csv", "fravaer_2024-25.csv", "fravaer_2025-26.csv"]


def write_last_year(inbox: Path, lines: list[str]) -> Path:
    path = inbox / "fravaer_2024-25.csv"
    path.write_text(ABSENCE_HEADER + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def run(inbox: Path, state: Path, config: MunicipalityConfig | None = None,
        key: bytes = KEY, today: date = TODAY) -> tuple[IngestResult, list[str]]:
    """Ingest the inbox into the state folder; returns the result and the files opened."""
    config = config or make_config(kinds=set())  # pupils and absence: enough, and quick
    opened: list[str] = []
    original = ingest_module.ExportStream

    class RecordingStream(original):  # type: ignore[misc, valid-type]
        def __init__(self, path: Path, source: object) -> None:
            opened.append(path.name)
            super().__init__(path, source)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_module, "ExportStream", RecordingStream)
        with staged_write(state) as session:
            result = ingest_sources(session, config, discover_sources(config, inbox), key=key,
                                    term=TERM, today=today, run_id="run", previous_rows={})
    assert sorted(opened) == sorted(result.files_read)
    return result, opened


def digests(state: Path) -> tuple[dict, dict]:
    paths = WarehousePaths(state)
    return content_digest(paths.warehouse), content_digest(paths.identity)


def clean_absence(state: Path) -> list[tuple]:
    with open_readonly(state) as con:
        return con.execute("SELECT * EXCLUDE (pupil_id) FROM clean_absence "
                           "ORDER BY source_file, source_line").fetchall()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = build_inbox(None, tmp_path / "inbox")
    write_last_year(folder, LAST_YEAR)
    return folder


def test_the_first_run_reads_every_file_and_the_same_files_again_none(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, opened = run(inbox, state)
    assert sorted(opened) == LOADED
    before = digests(state)
    second, opened = run(inbox, state)
    assert opened == [] and second.files_read == []
    assert digests(state) == before
    # the report of the second run still covers every file, with the same counts
    assert first.files.to_dict("records") == second.files.to_dict("records")
    assert first.validation.to_dict("records") == second.validation.to_dict("records")


def _change_a_row_and_drop_one(inbox: Path) -> None:
    write_last_year(inbox, [LAST_YEAR[0], LAST_YEAR[1].replace(";1;0;0;0", ";2;0;0;0"), LAST_YEAR[3]])


def _add_a_duplicate_of_another_file(inbox: Path) -> None:
    # same pupil, school and period as line 2 of fravaer_2024-25.csv: the later file's row is
    # the duplicate
    lines = (inbox / "fravaer_2025-26.csv").read_text(encoding="utf-8").splitlines()
    lines.append("150314-4001;101;05-08-2024;09-08-2024;5;0;0;0;0")
    (inbox / "fravaer_2025-26.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _add_a_bad_row(inbox: Path) -> None:
    write_last_year(inbox, [*LAST_YEAR, "020214-4002;101;19-08-2024;23-08-2024;5;-1;0;0;0"])


def _remove_the_file(inbox: Path) -> None:
    (inbox / "fravaer_2024-25.csv").unlink()


def _take_a_pupil_out_of_the_register(inbox: Path) -> None:
    # Bo (020214-4002) leaves the current register: his absence rows in the unchanged absence
    # files now refer to an unknown pupil
    for name in ("elever_2025-26.csv",):
        path = inbox / name
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        path.write_text("\ufeff" + "\n".join(ln for ln in lines if not ln.startswith("020214-4002"))
                        + "\n", encoding="utf-8")


CHANGES = {
    "a row changed and one dropped": (_change_a_row_and_drop_one, ["fravaer_2024-25.csv"]),
    "a duplicate of another file's row": (_add_a_duplicate_of_another_file, ["fravaer_2025-26.csv"]),
    "a bad row added": (_add_a_bad_row, ["fravaer_2024-25.csv"]),
    "a file removed": (_remove_the_file, []),
    "a pupil out of the register": (_take_a_pupil_out_of_the_register, ["elever_2025-26.csv"]),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_change_reads_only_its_file_and_gives_what_an_empty_warehouse_would(
        name: str, inbox: Path, tmp_path: Path) -> None:
    change, expected_reads = CHANGES[name]
    state = tmp_path / "state"
    run(inbox, state)
    others_before = [r for r in clean_absence(state) if r[-2] not in expected_reads
                     and r[-2] != "fravaer_2024-25.csv"]
    change(inbox)
    result, opened = run(inbox, state)
    assert sorted(opened) == sorted(expected_reads)
    fresh = tmp_path / "fresh"
    expected, _ = run(inbox, fresh)
    assert digests(state) == digests(fresh)
    assert sorted(result.quarantine.astype(str).values.tolist()) == sorted(
        expected.quarantine.astype(str).values.tolist())
    assert result.files.to_dict("records") == expected.files.to_dict("records")
    for row in result.files.to_dict("records"):
        assert row["rows_read"] == row["rows_loaded"] + row["rows_quarantined"], row
    if name != "a pupil out of the register":
        # the rows of the files that did not change are still there, exactly
        assert [r for r in clean_absence(state) if r[-2] not in expected_reads
                and r[-2] != "fravaer_2024-25.csv"] == others_before


def test_a_changed_file_replaces_exactly_its_rows(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run(inbox, state)
    before = clean_absence(state)
    _change_a_row_and_drop_one(inbox)
    run(inbox, state)
    after = clean_absence(state)
    assert [r for r in after if r[-2] != "fravaer_2024-25.csv"] == [
        r for r in before if r[-2] != "fravaer_2024-25.csv"]
    changed = [r for r in after if r[-2] == "fravaer_2024-25.csv"]
    # three rows now, the second with two days of illness, on the lines of the new file
    assert [(r[-1], r[4]) for r in changed] == [(2, 0.0), (3, 2.0), (4, 0.0)]


@pytest.mark.parametrize("lost", [False, True])
def test_only_the_clean_rows_of_changed_files_are_rebuilt(inbox: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, lost: bool) -> None:
    state = tmp_path / "state"
    run(inbox, state)
    if lost:  # clean rows lost outside the ingest (a repair, a schema change) come back
        with staged_write(state) as session:
            session.con.execute("DELETE FROM clean_absence WHERE source_file = 'fravaer_2025-26.csv'")
    rebuilt: dict[str, object] = {}
    original = IngestStore.rebuild_clean

    def recording(self, table, select, sources, where, files=None):  # noqa: ANN001, ANN202
        rebuilt[table] = None if files is None else sorted(files)
        return original(self, table, select, sources, where, files)

    monkeypatch.setattr(IngestStore, "rebuild_clean", recording)
    _change_a_row_and_drop_one(inbox)
    run(inbox, state)
    # the other absence file keeps its clean rows unless they were lost; pupils are untouched
    assert rebuilt == {"clean_absence": None if lost else ["fravaer_2024-25.csv"]}
    monkeypatch.setattr(IngestStore, "rebuild_clean", original)
    fresh = tmp_path / "fresh"
    run(inbox, fresh)
    assert digests(state) == digests(fresh)


def _broken_write(_writer: RowsWriter, _frame: object) -> None:
    raise OSError("No space left on device")


def test_a_failed_write_of_raw_rows_stops_the_run_and_leaves_the_warehouse(
        inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are written on a thread of their own: its error still reaches the run."""
    state = tmp_path / "state"
    run(inbox, state)
    before = digests(state)
    _change_a_row_and_drop_one(inbox)
    monkeypatch.setattr(RowsWriter, "_write", _broken_write)
    with pytest.raises(DiskFullError, match="the disk filled up.*No space left on device"):
        run(inbox, state)
    assert digests(state) == before


def test_an_error_of_the_ingest_is_reported_over_a_failed_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file's own error (line and column) is what the steward needs, not the write that failed
    beside it while the staged copy was being discarded."""
    monkeypatch.setattr(RowsWriter, "_write", _broken_write)
    with staged_write(tmp_path / "state") as session:
        store = IngestStore(session)
        with pytest.raises(FileLevelError, match="line 3"):
            with store.rows_writer() as writer:
                writer.add(pd.DataFrame({"source": ["absence"]}))
                raise FileLevelError("fravaer_2025-26.csv, line 3: an unclosed quote", file="fravaer_2025-26.csv",
                                     line=3, check="quote")
        store.close()


def test_a_removed_file_takes_its_rows_with_it(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run(inbox, state)
    assert any(r[-2] == "fravaer_2024-25.csv" for r in clean_absence(state))
    _remove_the_file(inbox)
    result, opened = run(inbox, state)
    assert opened == []
    assert not any(r[-2] == "fravaer_2024-25.csv" for r in clean_absence(state))
    assert "fravaer_2024-25.csv" not in set(result.files["file"])
    with open_readonly(state) as con:
        left = con.execute("SELECT count(*) FROM raw_rows WHERE source_file = 'fravaer_2024-25.csv'"
                           ).fetchone()[0]
    assert left == 0


def test_a_pupil_leaving_the_register_is_unknown_in_files_not_read_again(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run(inbox, state)
    _take_a_pupil_out_of_the_register(inbox)
    result, opened = run(inbox, state)
    assert opened == ["elever_2025-26.csv"]
    unknown = result.quarantine[result.quarantine["reason"].str.startswith("unknown_pupil")]
    assert set(unknown["source_file"]) >= {"fravaer_2024-25.csv", "fravaer_2025-26.csv"}


def test_a_new_config_or_key_reads_the_files_again(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run(inbox, state)
    stricter = make_config({"absence": {"negative_value": "file"}}, kinds=set())
    _, opened = run(inbox, state, stricter)
    assert sorted(opened) == ["fravaer_2024-25.csv", "fravaer_2025-26.csv"]
    _, opened = run(inbox, state, stricter, key=b"another-key")
    assert sorted(opened) == LOADED


def test_a_failed_run_keeps_the_memory_of_the_last_good_one(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run(inbox, state)
    before = digests(state)
    write_last_year(inbox, [*LAST_YEAR, "020214-4002;101;19-08-2024;23-08-2024;5;-1;0;0;0"])
    with pytest.raises(Exception, match="negative_value"):
        run(inbox, state, make_config({"absence": {"negative_value": "file"}}, kinds=set()))
    assert digests(state) == before
    # the next run reads the changed file again (its earlier attempt was never committed)
    _, opened = run(inbox, state)
    assert opened == ["fravaer_2024-25.csv"]


def test_check_counts_follow_the_files_kept_and_read(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run(inbox, state)
    _add_a_bad_row(inbox)
    result, opened = run(inbox, state)
    assert opened == ["fravaer_2024-25.csv"]
    counts = result.validation.set_index(["source", "expectation"])
    negative = counts.loc[("absence", "illness_days_not_negative")]
    # the bad row of the file read now; every row of both absence files looked at
    assert (bool(negative["success"]), int(negative["unexpected_count"])) == (False, 1)
    assert int(negative["element_count"]) == 10 + len(LAST_YEAR) + 1
    assert int(counts.loc[("absence", "key_unique"), "element_count"]) == 10 + len(LAST_YEAR) + 1


def test_a_file_with_a_date_after_the_day_is_checked_again_on_a_later_day(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    # a week of absence that starts after the day of the first run (20-11-2025)
    lines = (inbox / "fravaer_2025-26.csv").read_text(encoding="utf-8").splitlines()
    lines.append("150314-4001;101;24-11-2025;28-11-2025;5;0;0;0;0")
    (inbox / "fravaer_2025-26.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    first, _ = run(inbox, state)
    assert list(first.quarantine["reason"].str.split(":").str[0]) == ["date_in_future"]
    _, opened = run(inbox, state)
    assert opened == []  # the same day: the same verdict
    later, opened = run(inbox, state, today=date(2025, 12, 1))
    assert opened == ["fravaer_2025-26.csv"]  # only the file with the date after the first day
    assert later.quarantine.empty


def test_a_source_year_missing_in_the_window_stops_the_run_unless_optional(tmp_path: Path) -> None:
    """Issue 12, defect 9: last year's absence file is there, this year's is not."""
    from pipelines.ingest import SourceFiles, check_school_years
    from validation.errors import FileLevelError

    config = make_config()
    by_name = {s.name: s for s in config.sources}
    files = {"absence": ["fravaer_2023-24.csv", "fravaer_2025-26.csv"],
             "upv": ["upv_2022-23.xlsx", "upv_2023-24.xlsx"],  # abolished: no later file expected
             "contacts": ["kontakter.csv"]}  # no school year in the name: not checked
    sources = [SourceFiles(by_name[name], [tmp_path / f for f in names]) for name, names in files.items()]
    with pytest.raises(FileLevelError) as caught:
        check_school_years(config, sources, TERM)
    assert caught.value.check == "source_year_missing" and caught.value.file == "fravaer_2024-25.csv"
    assert "2024/25" in str(caught.value) and "optional_school_years" in str(caught.value)
    optional = make_config(overrides={"absence": {"optional_school_years": ["2024/25"]}})
    sources = [SourceFiles(s, entry.files) for s, entry in zip(
        [{x.name: x for x in optional.sources}[e.source.name] for e in sources], sources, strict=True)]
    warnings = check_school_years(optional, sources, TERM)
    assert warnings == ["source 'absence': no file for school year 2024/25 (optional in the config): "
                        "its features are empty for that year"]
    # the run's own school year is expected too, and so is none after it
    sources = [SourceFiles(by_name["absence"], [tmp_path / "fravaer_2024-25.csv"])]
    with pytest.raises(FileLevelError, match="2025/26"):
        check_school_years(config, sources, TERM)
    from ews.terms import Term

    assert check_school_years(config, sources, Term.parse("2024/25-H2")) == []
    # a config written before last_school_year existed: the UPV still ends with 2023/24
    document = config.model_dump(mode="json")
    for source in document["sources"]:
        source.pop("last_school_year", None)
    older = MunicipalityConfig.model_validate(document)
    upv = next(s for s in older.sources if s.kind == "upv")
    assert upv.last_school_year is None
    assert check_school_years(older, [SourceFiles(upv, [tmp_path / "upv_2023-24.xlsx"])], TERM) == []
    # the national tests are held in the spring: their file of the school year comes in H2
    tests = [SourceFiles(by_name["tests"], [tmp_path / "nationale_test_2024-25.csv"])]
    assert check_school_years(config, tests, TERM) == []
    with pytest.raises(FileLevelError, match="nationale_test_2025-26.csv"):
        check_school_years(config, tests, Term.parse("2025/26-H2"))


def test_the_quarantine_share_defaults_to_5_percent_and_a_source_may_set_its_own() -> None:
    from ews.config import build_config_document

    document = build_config_document(
        "K", ["A"], [{"id": "n", "name": "N", "area": "A", "capacity_per_term": 1}],
        [{"code": "1", "name": "S", "area": "A", "network": "n"}])
    config = MunicipalityConfig.model_validate(document)
    assert config.quarantine_share_max == 0.05
    assert {config.quarantine_share_of(s) for s in config.sources} == {0.05}
    document["sources"][1]["quarantine_share_max"] = 0.2
    config = MunicipalityConfig.model_validate(document)
    assert config.quarantine_share_of(config.sources[1]) == 0.2
    assert config.quarantine_share_of(config.sources[0]) == 0.05


def test_an_accepted_file_is_accepted_for_its_content_only(tmp_path: Path) -> None:
    """A steward's acceptance names the file and its content mark: a re-export with other
    content (another term, the same name) stops the run again."""
    from pipelines.ingest import content_mark
    from pipelines.readers import file_sha256
    from validation.errors import FileLevelError

    inbox = build_inbox(None, tmp_path / "inbox")
    path = write_last_year(inbox, [line.replace("05-08-2024", "05-08-2023") for line in LAST_YEAR])
    strict = make_config(kinds=set(), overrides={"*": {"quarantine_share_max": 0.05}})
    with pytest.raises(FileLevelError) as caught:
        run(inbox, tmp_path / "s1", strict)
    mark = content_mark(file_sha256(path))
    assert caught.value.check == "quarantine_share" and f"fravaer_2024-25.csv@{mark}" in str(caught.value)
    assert "2 of 4 rows (50%)" in str(caught.value)
    accept = {"accept_quarantine": [f"fravaer_2024-25.csv@{mark}"]}
    accepted = make_config(kinds=set(), overrides={"*": {"quarantine_share_max": 0.05}, "absence": accept})
    result, _read = run(inbox, tmp_path / "s2", accepted)
    assert result.files.set_index("file").loc["fravaer_2024-25.csv", "rows_quarantined"] == 2
    write_last_year(inbox, [line.replace("05-08-2024", "05-08-2023") for line in LAST_YEAR[:3]])
    with pytest.raises(FileLevelError, match="quarantine_share_max"):
        run(inbox, tmp_path / "s3", accepted)


def _duplicates_in(result: IngestResult) -> list[tuple[str, int]]:
    rows = result.quarantine[result.quarantine["reason"].str.contains("fravaer_2024-25.csv", regex=False)]
    return sorted(zip(rows["source_file"], rows["source_line"].astype(int), strict=True))


def test_a_repeated_row_in_an_unchanged_file_follows_the_file_that_holds_its_first(
        inbox: Path, tmp_path: Path) -> None:
    """The duplicate-key verdicts are kept between runs and compared again only for the keys of
    the files read (``raw_duplicates``): when the earlier file drops the first row, the later
    file's copy, not read again, is no longer a duplicate; when it comes back, it is again."""
    _add_a_duplicate_of_another_file(inbox)
    state = tmp_path / "state"
    first, _ = run(inbox, state)
    repeated = _duplicates_in(first)
    assert [name for name, _line in repeated] == ["fravaer_2025-26.csv"]
    for lines, expected_duplicates in ((LAST_YEAR[1:], []), (LAST_YEAR, repeated)):
        write_last_year(inbox, lines)
        result, opened = run(inbox, state)
        assert opened == ["fravaer_2024-25.csv"]
        assert _duplicates_in(result) == expected_duplicates
        fresh = tmp_path / f"fresh{len(lines)}"
        run(inbox, fresh)
        assert digests(state) == digests(fresh)
