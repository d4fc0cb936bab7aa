"""Does Great Expectations' SQL path over DuckDB return results? Re-check when versions move.

Needs duckdb-engine, which the project does not depend on; install it apart, e.g.

    python3 -m uv pip install --target /tmp/gxsql --no-deps duckdb-engine==0.17.0
    PYTHONPATH=/tmp/gxsql .venv/bin/python bench/gx_sql_path.py

With great-expectations 1.24.1, duckdb 2.0.0 and duckdb-engine 0.17.0 (2026-12-02) it printed
``success False unexpected_count None element_count None`` and a ``MetricResolutionError``
(``list index out of range``: no rows came back for the bundled metrics), for a table where
100 of 100,000 rows fail. So the ingest keeps Great Expectations' pandas path.
"""

from __future__ import annotations

import os
import tempfile

import duckdb
import great_expectations as gx
import great_expectations.expectations as gxe


def main() -> None:
    """Validate one expectation over a DuckDB table through the SQL path and print the result."""
    path = os.path.join(tempfile.mkdtemp(), "check.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE raw_rows AS SELECT i AS source_line, CASE WHEN i % 1000 = 0 THEN -1.0 "
                "ELSE 1.0 END AS illness_days FROM range(100000) t(i)")
    con.close()
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_sql("warehouse", connection_string=f"duckdb:///{path}")
    batch = source.add_table_asset("rows", table_name="raw_rows").add_batch_definition_whole_table(
        "all").get_batch()
    result = batch.validate(gxe.ExpectColumnValuesToBeBetween(column="illness_days", min_value=0),
                            result_format={"result_format": "COMPLETE"})
    errors = [v.get("exception_message") for v in (result.exception_info or {}).values()
              if isinstance(v, dict)]
    print("success", result.success, "unexpected_count", result.result.get("unexpected_count"),
          "element_count", result.result.get("element_count"), "errors", errors[:1])


if __name__ == "__main__":
    main()
