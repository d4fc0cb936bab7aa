"""Helpers of the validation tests: the bad-file corpus, a small municipality config, typed frames."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ews.config import MunicipalityConfig, build_config_document
from ews.terms import Term

CORPUS = Path(__file__).parent / "corpus"
TODAY = date(2025, 11, 20)
TERM = Term.parse("2025/26-H1")
KEY = b"corpus-test-key"


def corpus_cases() -> list[dict[str, Any]]:
    """The cases of ``corpus/cases.yaml``."""
    return yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))


#: The baseline inbox has no pupils register for 2024/25 and national tests of 2020/21 and
#: 2025/26 only: the corpus municipality says so, as a municipality would.
OPTIONAL_SCHOOL_YEARS = {"pupils": ["2024/25"], "tests": ["2021/22", "2022/23", "2023/24", "2024/25"]}
#: The corpus's files have 2-10 rows, where one bad row is 10-50 % of its file: the corpus
#: allows any share, except in the cases about the share itself (their ``config``).
CORPUS_QUARANTINE_SHARE_MAX = 1.0


def make_config(severity: dict[str, dict[str, str]] | None = None,
                kinds: set[str] | None = None,
                overrides: dict[str, dict[str, Any]] | None = None) -> MunicipalityConfig:
    """The corpus municipality: two schools (101, 102), the default export mappings.

    Args:
        severity: Source name -> check -> severity overrides.
        kinds: Keep only the sources of these kinds (pupils and absence are always kept: the
            config needs them); None keeps all.
        overrides: A case's ``config``: source name -> settings of that source, and ``"*"`` ->
            settings of the whole config (e.g. ``quarantine_share_max``).
    """
    document = build_config_document(
        "Testkommune", ["Nord"],
        [{"id": "n1", "name": "Netværk Nord", "area": "Nord", "capacity_per_term": 5}],
        [{"code": "101", "name": "Nordskolen", "area": "Nord", "network": "n1"},
         {"code": "102", "name": "Åskolen", "area": "Nord", "network": "n1"}],
    )
    if kinds is not None:
        document["sources"] = [s for s in document["sources"]
                               if s["kind"] in kinds | {"pupils", "absence"}]
    document["quarantine_share_max"] = CORPUS_QUARANTINE_SHARE_MAX
    for source in document["sources"]:
        source["severity"] = dict((severity or {}).get(source["name"], {}))
        source["optional_school_years"] = list(OPTIONAL_SCHOOL_YEARS.get(source["name"], []))
        source.update((overrides or {}).get(source["name"], {}))
    document.update((overrides or {}).get("*", {}))
    return MunicipalityConfig.model_validate(document)


def write_workbook(spec_path: Path, target: Path) -> None:
    """Write the workbook an ``*.xlsx.yaml`` spec describes (sheet name -> rows)."""
    from openpyxl import Workbook

    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in spec["sheets"].items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(target)


def build_inbox(case: dict[str, Any] | None, target: Path) -> Path:
    """The baseline exports with a case's files laid over them."""
    target.mkdir(parents=True, exist_ok=True)
    layers = [CORPUS / "baseline"]
    if case is not None:
        layers.append(CORPUS / case["case"])
    for layer in layers:
        if not layer.is_dir():
            continue
        for path in sorted(layer.iterdir()):
            if path.name.endswith(".xlsx.yaml"):
                write_workbook(path, target / path.name.removesuffix(".yaml"))
            else:
                shutil.copyfile(path, target / path.name)
    for name in (case or {}).get("remove", []):
        (target / name).unlink()
    return target


def typed_frame(rows: list[dict[str, Any]], file: str) -> pd.DataFrame:
    """Typed rows as the parsing step returns them (lineage added, pandas 3 dtypes)."""
    frame = pd.DataFrame(rows)
    frame["source_file"] = file
    frame["source_line"] = pd.Series(range(2, len(frame) + 2), dtype="int64")
    return frame
