"""Every stored table's DDL: one module owns the names, columns, types and keys of every table.

The DDL lives in one ``.sql`` file per store beside this module, one named block per table
(``-- name: <table>``, read by :func:`ews.sql.load_queries`):

| store | file | what |
|---|---|---|
| ``warehouse`` | ``tables_warehouse.sql`` | the analytic warehouse (pseudonyms only) |
| ``identity`` | ``tables_identity.sql`` | names and classes per pseudonym |
| ``runlog`` | ``tables_runlog.sql`` | the run log (``runs.duckdb``) |

Other modules name tables through here: they create a table with :func:`create_tables` (never
with DDL of their own), and :func:`ews.warehouse.append_rows` refuses a table that is not
declared (a copy of a schema elsewhere drifts, as ``dashboards/sample.sql`` once did). The one
table whose columns are not all here is ``features_pupil_term``: its key columns are, and one
``DOUBLE`` column per feature of the catalogue (``features/catalogue.py``, downstream of this
package) is passed in by the caller. The review app's own SQLite store (``app.sqlite``) is
another engine and keeps its DDL in ``dashboards/store.sql``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb

from ews.sql import load_queries

#: Store -> the ``.sql`` file of its tables.
STORE_FILES = {
    "warehouse": "tables_warehouse.sql",
    "identity": "tables_identity.sql",
    "runlog": "tables_runlog.sql",
}
#: The warehouse tables every run needs, created when a version is staged; later stages
#: create theirs when they first write them.
RUN_TABLES = (
    "quarantine_rows", "validation_results", "clean_pupils", "clean_absence", "clean_tests",
    "clean_marks", "clean_contacts", "clean_support", "clean_outcomes", "raw_files", "raw_rows",
    "raw_pupil_ids", "raw_quarantine", "raw_checks", "raw_duplicates", "raw_sources",
)
#: The table whose value columns are the feature catalogue's.
FEATURES_TABLE = "features_pupil_term"
_FEATURE_MARKER = "/* feature columns */"


class UndeclaredTableError(ValueError):
    """A table that no schema file of :data:`STORE_FILES` declares."""

    code = "undeclared_table"


def _blocks(store: str) -> dict[str, str]:
    if store not in STORE_FILES:
        raise ValueError(f"unknown store '{store}': one of {sorted(STORE_FILES)}")
    return {name: sql for name, sql in load_queries("ews", STORE_FILES[store]).items() if name != "_preamble"}


def tables(store: str) -> tuple[str, ...]:
    """The tables of a store, in the order of its schema file.

    Args:
        store: ``warehouse``, ``identity`` or ``runlog``.

    Returns:
        Table names.
    """
    return tuple(_blocks(store))


def store_of(table: str) -> str:
    """The store that declares a table.

    Raises:
        UndeclaredTableError: When no store declares it.
    """
    for store in STORE_FILES:
        if table in _blocks(store):
            return store
    raise UndeclaredTableError(
        f"table '{table}' is not declared in ews/tables_*.sql: declare it there before writing it")


def is_declared(table: str) -> bool:
    """Whether a store declares the table."""
    return any(table in _blocks(store) for store in STORE_FILES)


def table_ddl(table: str, feature_names: Sequence[str] = ()) -> str:
    """The DDL of one table (``CREATE TABLE IF NOT EXISTS`` and its upgrade ``ALTER``s).

    Args:
        table: A declared table.
        feature_names: For ``features_pupil_term`` only: the feature columns (``DOUBLE``), in
            order, without the key columns (``grade`` is one).

    Returns:
        SQL text (one or more statements).

    Raises:
        UndeclaredTableError: When no store declares the table.
        ValueError: For ``features_pupil_term`` without feature names, for feature names given
            for another table, or for a name that is not a plain identifier.
    """
    ddl = _blocks(store_of(table))[table]
    if _FEATURE_MARKER not in ddl:
        if feature_names:
            raise ValueError(f"'{table}' has no feature columns")
        return ddl
    if not feature_names:
        raise ValueError(f"'{table}' needs the feature catalogue's names (features.catalogue.FEATURE_NAMES)")
    for name in feature_names:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"feature '{name}' is not a plain identifier")
    return ddl.replace(_FEATURE_MARKER, ", " + ", ".join(f'"{name}" DOUBLE' for name in feature_names))


def create_tables(con: duckdb.DuckDBPyConnection, store: str, names: Iterable[str] | None = None,
                  feature_names: Sequence[str] = ()) -> None:
    """Create tables of a store that are missing (and upgrade older ones), from their DDL here.

    Args:
        con: A connection to the store (from ``ews.warehouse``).
        store: ``warehouse``, ``identity`` or ``runlog``.
        names: The tables to create (default: every table of the store except
            ``features_pupil_term``, which needs ``feature_names``).
        feature_names: The feature columns, when ``features_pupil_term`` is among ``names``.

    Raises:
        UndeclaredTableError: For a name the store does not declare.
    """
    declared = _blocks(store)
    wanted = [n for n in declared if n != FEATURES_TABLE] if names is None else list(names)
    for name in wanted:
        if name not in declared:
            raise UndeclaredTableError(f"table '{name}' is not declared in ews/{STORE_FILES[store]}")
        con.execute(table_ddl(name, feature_names if name == FEATURES_TABLE else ()))


def declared_columns(table: str, feature_names: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a declared table, in order, as DuckDB reads its DDL.

    Args:
        table: A declared table.
        feature_names: For ``features_pupil_term``: the feature columns.

    Returns:
        Column names and types.
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute(table_ddl(table, feature_names))
        return [(r[0], r[1]) for r in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $t "
            "ORDER BY ordinal_position", {"t": table}).fetchall()]
    finally:
        con.close()
