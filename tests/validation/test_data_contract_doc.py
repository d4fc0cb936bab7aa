"""docs/data-contract.md documents every check and reason code the code can produce."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from ews.schema import SOURCE_KINDS
from validation.contracts import READER_CHECKS, TABLE_CHECKS, row_checks

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
PATTERN_SUFFIXES = ("_not_before_school_year", "_not_after_school_year", "_not_in_future",
                    "_allowed", "_not_negative")


def documented(name: str) -> bool:
    if f"`{name}`" in DOC:
        return True
    return any(name.endswith(suffix) and re.search(rf"`<\w+>{suffix}`", DOC)
               and (f"`{name.removesuffix(suffix)}_…`" in DOC or suffix in ("_not_before_school_year",
                                                                             "_not_after_school_year"))
               for suffix in PATTERN_SUFFIXES)


def test_every_contract_check_and_reason_is_documented() -> None:
    for kind in SOURCE_KINDS:
        for check in row_checks(kind, date(2025, 11, 20), frozenset({"101"})):
            assert documented(check.name), check.name
            assert f"`{check.reason}`" in DOC, check.reason
    for name, (reason, _severity, _text) in TABLE_CHECKS.items():
        assert f"`{name}`" in DOC, name
        assert f"`{reason}`" in DOC, reason


def test_every_reader_check_and_typing_reason_is_documented() -> None:
    sources = [ROOT / "pipelines" / "readers.py", ROOT / "pipelines" / "ingest.py"]
    checks = set()
    for path in sources:
        checks |= set(re.findall(r'check="(\w+)"', path.read_text(encoding="utf-8")))
    assert {"encoding", "delimiter", "truncated", "empty_file", "missing_column", "sheet",
            "format", "source_missing"} <= checks
    for check in checks | set(READER_CHECKS):
        assert f"`{check}`" in DOC, check
    parsing = (ROOT / "validation" / "parsing.py").read_text(encoding="utf-8")
    reasons = set(re.findall(r'"(\w+): ', parsing)) | set(re.findall(r"'(\w+): ", parsing))
    assert {"missing_value", "invalid_cpr", "bad_date", "not_a_number"} <= reasons
    for reason in reasons:
        assert f"`{reason}`" in DOC, reason


def test_every_canonical_column_has_a_row_with_its_legal_category() -> None:
    for kind, columns in SOURCE_KINDS.items():
        section = DOC.split(f"### {kind} (", 1)[1].split("\n### ", 1)[0]
        for column in columns:
            if column.name == "cpr" and kind != "pupils":
                continue  # documented once, for every source
            assert re.search(rf"^\| {column.name}[ ,]", section, re.MULTILINE) or (
                f"{column.name}," in section or f", {column.name} |" in section), (kind, column.name)
        assert "| category |" in section
