"""The validation report: self-contained HTML, a markdown artifact, the manifest's part."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from validation.report import (
    artifact_markdown,
    manifest_section,
    reason_codes,
    render_report,
    summarise_quarantine,
)

RESULTS = pd.DataFrame([
    {"source": "absence", "expectation": "absence_within_school_days", "column_name": "school_days",
     "success": False, "unexpected_count": 2, "element_count": 1200, "severity": "row"},
    {"source": "absence", "expectation": "key_unique", "column_name": "pupil_id,period_start",
     "success": True, "unexpected_count": 0, "element_count": 1200, "severity": "row"},
    {"source": "marks", "expectation": "mark_on_7_point_scale", "column_name": "mark",
     "success": True, "unexpected_count": 0, "element_count": 40, "severity": "file"},
])
QUARANTINE = pd.DataFrame([
    {"source": "absence", "source_file": "fravaer_2025-26.csv", "source_line": 14,
     "column_name": "school_days", "reason": "absence_exceeds_school_days: 6 days in 5"},
    {"source": "absence", "source_file": "fravaer_2025-26.csv", "source_line": 9,
     "column_name": "school_days,cpr",
     "reason": "absence_exceeds_school_days: 7 days in 5 | unknown_pupil: not in elever"},
    {"source": "contacts", "source_file": "kontakter_2025-26.csv", "source_line": 3,
     "column_name": "cpr", "reason": "invalid_cpr: the value is not a CPR number (ddmmyy-xxxx)"},
])
FILES = pd.DataFrame([
    {"source": "absence", "file": "fravaer_2025-26.csv", "file_sha256": "x", "rows_read": 1202,
     "rows_loaded": 1200, "rows_quarantined": 2, "extra_columns": "Lærer"},
    {"source": "contacts", "file": "kontakter_2025-26.csv", "file_sha256": "y", "rows_read": 41,
     "rows_loaded": 40, "rows_quarantined": 1, "extra_columns": ""},
])
RUN = {"run_id": "2025-26-H1-abc", "term": "2025/26-H1", "as_of_date": "2025-11-15",
       "status": "succeeded", "files": FILES, "municipality": "Testkommune",
       "warnings": ["fravaer_2025-26.csv: unknown column(s) ['Lærer'] were not read"]}


def test_quarantine_summary_counts_rows_under_their_first_reason() -> None:
    summary = summarise_quarantine(QUARANTINE)
    assert summary.to_dict("records") == [
        {"source": "absence", "reason_code": "absence_exceeds_school_days", "column_name": "school_days",
         "rows": 2, "files": 1, "example_lines": "fravaer_2025-26.csv:9, fravaer_2025-26.csv:14"},
        {"source": "contacts", "reason_code": "invalid_cpr", "column_name": "cpr", "rows": 1,
         "files": 1, "example_lines": "kontakter_2025-26.csv:3"},
    ]
    assert summarise_quarantine(QUARANTINE.iloc[0:0]).empty
    assert reason_codes(QUARANTINE["reason"].iloc[1]) == ["absence_exceeds_school_days", "unknown_pupil"]


def test_report_is_one_self_contained_file(tmp_path: Path) -> None:
    path = render_report(RESULTS, summarise_quarantine(QUARANTINE), RUN, tmp_path / "run" / "report.html")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r"(src|href)\s*=|@import|url\(|<script|<link", html)
    assert "http://" not in html and "https://" not in html
    for text in ("Valideringsrapport", "Validation report", "Karantæne", "Forventninger",
                 "fravaer_2025-26.csv", "absence_within_school_days", "1.202", "Lærer",
                 "Illness + authorised + unauthorised absence is at most the school days",
                 "fravaer_2025-26.csv:9, fravaer_2025-26.csv:14", "Testkommune"):
        assert text in html, text
    assert html.count('class="fail"') == 1  # the one failed expectation; files balance


def test_report_flags_unbalanced_files_and_shows_a_stopped_run(tmp_path: Path) -> None:
    files = FILES.assign(rows_loaded=[1199, 40])
    run = {**RUN, "files": files, "status": "failed",
           "message": "kontakter_2025-26.csv: the file has a header but no rows. <Export it again>"}
    html = render_report(RESULTS.iloc[0:0], summarise_quarantine(QUARANTINE.iloc[0:0]), run,
                         tmp_path / "report.html").read_text(encoding="utf-8")
    assert "The run was stopped" in html and "&lt;Export it again&gt;" in html
    assert "<Export" not in html
    assert '<tr class="fail">' in html and "No rows quarantined" in html


def test_artifact_markdown_lists_files_failures_and_quarantine() -> None:
    text = artifact_markdown(RESULTS, summarise_quarantine(QUARANTINE), RUN)
    assert "| absence | fravaer_2025-26.csv | 1202 | 1200 | 2 | ✓ |" in text
    assert "| absence | absence_within_school_days | school_days | 2 | 1200 | row |" in text
    assert "| contacts | invalid_cpr | cpr | 1 | kontakter_2025-26.csv:3 |" in text
    assert "Expectations: 3, failed: 1" in text and "note: fravaer_2025-26.csv" in text


def test_manifest_section() -> None:
    section = manifest_section(RESULTS, QUARANTINE)
    assert section["expectations"] == 3 and section["failed"] == 1
    assert section["failed_expectations"] == [{"source": "absence", "expectation":
                                               "absence_within_school_days", "unexpected_count": 2,
                                               "severity": "row"}]
    assert section["quarantine_by_reason"] == {"absence": {"absence_exceeds_school_days": 2},
                                               "contacts": {"invalid_cpr": 1}}


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium")
def test_report_renders_styled_with_the_network_blocked(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    path = render_report(RESULTS, summarise_quarantine(QUARANTINE), RUN, tmp_path / "report.html")
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: (requests.append(route.request.url),
                                              route.continue_() if route.request.url.startswith("file:")
                                              else route.abort()))
            page.goto(path.as_uri())
            failed_cell = page.locator("tr.fail td").first
            background = failed_cell.evaluate("e => getComputedStyle(e).backgroundColor")
            header = page.locator("th").first.evaluate("e => getComputedStyle(e).backgroundColor")
            title = page.locator("h1").inner_text()
        finally:
            browser.close()
    assert requests == [path.as_uri()]  # nothing but the file itself
    assert background == "rgb(253, 240, 240)" and header == "rgb(243, 244, 246)"
    assert "Valideringsrapport" in title
