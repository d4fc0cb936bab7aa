"""Rectification (issue 15, part 5): a corrected export replaces its rows and the pupil's history shows it."""

from __future__ import annotations

from ews.pseudonym import normalise_cpr, pseudonymise
from ews.warehouse import open_readonly
from pipelines.corrections import corrections_of
from tests.conftest import TERM, TEST_KEY, FinishedRun


def test_a_corrected_export_replaces_the_row_rescores_and_is_recorded_for_that_pupil_only(
        run_copy: FinishedRun) -> None:
    from pipelines.flows import run_term

    path = run_copy.synthetic_dir / "exports" / "fravaer_2025-26.csv"
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    lines = text.split("\n")
    index, fields = next((i, line.split(";")) for i, line in enumerate(lines[1:], start=1)
                         if line.count(";") == 8 and line.split(";")[5] == "0" and line.split(";")[4] == "5")
    fields[5] = "2"  # the school corrects two days of illness in one week
    lines[index] = ";".join(fields)
    path.write_bytes(("\ufeff" if raw.startswith(b"\xef\xbb\xbf") else "").encode() + "\n".join(lines).encode())
    pupil_id = pseudonymise(normalise_cpr(fields[0]), TEST_KEY.encode())

    manifest = run_term(TERM)
    assert manifest["corrections"] == {"files": 1, "pupils": 1}
    assert manifest["files_read"] and all("fravaer_2025-26" in f for f in manifest["files_read"])
    [entry] = corrections_of(run_copy.state_dir, pupil_id)
    assert (entry["run_id"], entry["source_file"], entry["rows_replaced"]) == (
        manifest["run_id"], "fravaer_2025-26.csv", 1)
    with open_readonly(run_copy.state_dir) as con:
        illness = con.execute("SELECT illness_days FROM clean_absence WHERE pupil_id = $p AND source_file = $f "
                              "AND source_line = $l", {"p": pupil_id, "f": path.name, "l": index + 1}).fetchone()
        rescored = con.execute("SELECT count(*) FROM scores_pupil_term WHERE run_id = $r",
                               {"r": manifest["run_id"]}).fetchone()[0]
    assert illness == (2.0,) and rescored > 0
