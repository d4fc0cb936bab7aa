"""One module owns every table's DDL (``ews/tables.py``); one loader serves every ``.sql`` file.

What the code writes must be declared there: the stores of the session's finished run hold only
declared tables with exactly their declared columns and types, the app's sample state is built
from the same DDL, ``append_rows`` refuses an undeclared table, and no module other than
``ews/tables.py`` creates a stored table or writes one it does not declare.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ews import tables
from ews.sql import load_queries, load_sql
from ews.warehouse import WarehousePaths, append_rows, open_file_readonly, open_readonly
from features.catalogue import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ews", "pipelines", "validation", "features", "models", "flags", "dashboards")
FEATURE_COLUMNS = [name for name in FEATURE_NAMES if name != "grade"]

#: Tables created outside ``ews/tables_*.sql`` on purpose, with the reason.
#: (None now: the leakage check's cut at an as-of date is views, features/leakage_cut.sql.)
NOT_STORED: set[tuple[str, str]] = set()
#: The review app's SQLite store (another engine, another file): its DDL stays with the app.
APP_STORE = {"dashboards/store.sql", "dashboards/store.py",
             # the exclusion register: a SQLite store of its own beside app.sqlite (ews.exclusions)
             "ews/exclusions.py"}

CREATE = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(TEMP\s+|TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)",
                    re.IGNORECASE)
WRITE = re.compile(r"(?:INSERT\s+(?:OR\s+REPLACE\s+)?INTO|DELETE\s+FROM|UPDATE)\s+\"?(\w+)\"?\s")
WRITE_CALL = re.compile(r"(?:replace_rows|append_rows|delete_rows)\(\s*[\w.]+\s*,\s*\"(\w+)\"")


def _columns(con: duckdb.DuckDBPyConnection, catalog: str = "snapshot") -> dict[str, list[tuple[str, str]]]:
    rows = con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                       "WHERE table_catalog = $c ORDER BY table_name, ordinal_position", {"c": catalog}).fetchall()
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        found.setdefault(table, []).append((column, data_type))
    return found


def _assert_declared(found: dict[str, list[tuple[str, str]]], store: str) -> None:
    assert set(found) <= set(tables.tables(store)), set(found) - set(tables.tables(store))
    for table, columns in found.items():
        feature_names = FEATURE_COLUMNS if table == tables.FEATURES_TABLE else ()
        assert columns == tables.declared_columns(table, feature_names), table


def test_every_table_of_a_finished_run_is_declared_with_its_columns(finished_run):
    with open_readonly(finished_run.state_dir) as con:
        warehouse = _columns(con)
    with open_readonly(finished_run.state_dir, identity=True) as con:
        identity = _columns(con)
    with open_file_readonly(WarehousePaths(finished_run.state_dir).runlog) as con:
        runlog = _columns(con)
    # the run wrote the tables of every stage it ran, so this is not vacuous (this world's model
    # does not pass the gate, so it has no explanations: tests/conftest.py)
    assert {"clean_absence", "raw_rows", "features_pupil_term", "scores_pupil_term", "flags_pupil_term",
            "models"} <= set(warehouse)
    assert set(identity) == {"identity_pupils", "identity_rows"}
    assert set(runlog) == {"runs", "run_sources", "corrections", "retention_log"}
    _assert_declared(warehouse, "warehouse")
    _assert_declared(identity, "identity")
    _assert_declared(runlog, "runlog")


def test_the_app_sample_is_built_from_the_same_ddl(tmp_path):
    from dashboards.sample import SAMPLE_TABLES, write_sample_state

    write_sample_state(tmp_path / "state", schools=2, pupils_per_school=10)
    with open_readonly(tmp_path / "state") as con:
        found = _columns(con)
        basis = {r[0] for r in con.execute("SELECT DISTINCT list_basis FROM flags_pupil_term").fetchall()}
    assert set(SAMPLE_TABLES) | {tables.FEATURES_TABLE} <= set(found)
    _assert_declared(found, "warehouse")
    assert basis == {"model"}


def test_a_table_without_ddl_is_refused_and_a_declared_one_is_created_typed():
    con = duckdb.connect()
    try:
        with pytest.raises(tables.UndeclaredTableError, match="not declared"):
            append_rows(con, "scores_made_up", pd.DataFrame({"run_id": ["r"]}))
        frame = pd.DataFrame({"run_id": ["r"], "term": ["2025/26-H1"], "source": ["absence"],
                              "source_file": ["f.csv"], "source_line": pd.array([3], dtype="int8"),
                              "reason": ["x"]})
        append_rows(con, "quarantine_rows", frame)
        assert _columns(con, "memory")["quarantine_rows"] == tables.declared_columns("quarantine_rows")
        with pytest.raises(duckdb.ConstraintException):  # NOT NULL from the DDL, not the frame's guess
            append_rows(con, "quarantine_rows", frame.assign(reason=[None]))
    finally:
        con.close()


def test_the_features_table_needs_the_catalogues_columns():
    with pytest.raises(ValueError, match="feature"):
        tables.table_ddl(tables.FEATURES_TABLE)
    with pytest.raises(ValueError, match="plain identifier"):
        tables.table_ddl(tables.FEATURES_TABLE, ["ok", "x; DROP TABLE models"])
    names = [c for c, _ in tables.declared_columns(tables.FEATURES_TABLE, FEATURE_COLUMNS)]
    assert names[:6] == ["pupil_id", "as_of_date", "term", "grade", "school_code", "network_id"]
    assert names[6:] == FEATURE_COLUMNS


def _sources() -> list[tuple[str, str]]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
                files.append((path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")))
    return files


def test_no_module_but_the_tables_module_creates_a_stored_table():
    created_elsewhere = []
    for name, text in _sources():
        if re.fullmatch(r"ews/tables(_\w+\.sql|\.py)", name) or name in APP_STORE:
            continue
        for temporary, table in CREATE.findall(text):
            if not temporary and (name, table) not in NOT_STORED:
                created_elsewhere.append((name, table))
    assert created_elsewhere == []


def test_every_table_the_code_writes_is_declared():
    undeclared = []
    seen = set()
    # temporary tables live as long as their connection and are never stored
    temporary = {table for _, text in _sources() for is_temp, table in CREATE.findall(text) if is_temp}
    for name, text in _sources():
        if name in APP_STORE:
            continue
        for table in WRITE.findall(text) + WRITE_CALL.findall(text):
            seen.add(table)
            if not (tables.is_declared(table) or table in temporary or (name, table) in NOT_STORED):
                undeclared.append((name, table))
    assert undeclared == []
    assert {"identity_rows", "raw_sources", "runs", "run_sources", "flags_pupil_term", "quarantine_rows"} <= seen


def test_one_loader_reads_every_sql_file():
    """No module reads a ``.sql`` file but through ``ews.sql``; named blocks parse alike."""
    readers = {name for name, text in _sources() if name != "ews/sql.py" and "resources.files(" in text}
    # the readers of other resources (the default source mappings, the card's and the report's
    # templates) read no SQL
    assert readers <= {"ews/config.py", "models/card.py", "validation/report.py"}, readers
    assert not [name for name, text in _sources() if name in readers and '.sql"' in text]
    assert load_sql("ews", "tables_runlog.sql").count("CREATE TABLE") == len(tables.tables("runlog")) >= 2
    queries = load_queries("ews", "tables_identity.sql")
    queries["identity_pupils"] = "changed"  # a copy: the next caller gets the file's text
    assert "CREATE TABLE" in load_queries("ews", "tables_identity.sql")["identity_pupils"]
    with pytest.raises(ValueError, match="not a .sql file"):
        load_sql("ews", "default_sources.yaml")
