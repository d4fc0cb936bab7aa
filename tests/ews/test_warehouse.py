import pandas as pd
import pytest

from ews.warehouse import (
    IngestStore,
    WarehouseBusyError,
    WarehousePaths,
    content_digest,
    fetch_one,
    open_readonly,
    replace_rows,
    staged_write,
)

#: A small declared table (ews/tables_warehouse.sql) standing in for a stage's table: the
#: warehouse writes only declared tables. Its two text columns hold a key and a value.
TABLE = "raw_sources"
VALUE_OF_A = "SELECT known_fingerprint::DOUBLE FROM raw_sources WHERE source = 'A'"


def _rows(keys: list[str], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"source": keys, "known_fingerprint": [str(v) for v in values]})


def _seed(state_dir):
    with staged_write(state_dir) as session:
        replace_rows(session.con, TABLE, _rows(["A", "B"], [0.1, 0.2]))


def test_a_successful_block_is_swapped_in(state_dir):
    _seed(state_dir)
    with open_readonly(state_dir) as con:
        assert con.execute("SELECT count(*) FROM raw_sources").fetchone()[0] == 2


def test_a_failing_block_leaves_the_live_file_untouched(state_dir):
    _seed(state_dir)
    path = WarehousePaths(state_dir).warehouse
    before_bytes = path.read_bytes()
    before = content_digest(path)
    with pytest.raises(RuntimeError, match="boom"), staged_write(state_dir) as session:
        replace_rows(session.con, TABLE, _rows(["A"], [0.9]), {"source": "A"})
        raise RuntimeError("boom")
    assert content_digest(path) == before
    assert path.read_bytes() == before_bytes
    assert WarehousePaths(state_dir).warehouse == path  # still the published version
    assert [v.name for v in WarehousePaths(state_dir).versions.iterdir()] == [path.parent.name]


def test_readers_are_not_locked_out_while_a_run_writes(state_dir):
    _seed(state_dir)
    with staged_write(state_dir) as session:
        replace_rows(session.con, TABLE, _rows(["A"], [0.5]), {"source": "A"})
        with open_readonly(state_dir) as con:  # the live file, still the old content
            assert con.execute(VALUE_OF_A).fetchone()[0] == 0.1
    with open_readonly(state_dir) as con:
        assert con.execute(VALUE_OF_A).fetchone()[0] == 0.5


def test_a_second_writer_is_refused(state_dir):
    with staged_write(state_dir), pytest.raises(WarehouseBusyError), staged_write(state_dir):
        pass


def test_replace_rows_replaces_only_its_slice(state_dir):
    _seed(state_dir)
    with staged_write(state_dir) as session:
        replace_rows(session.con, TABLE, _rows(["B"], [0.7]), {"source": "B"})
        rows = session.con.execute(
            "SELECT source, known_fingerprint::DOUBLE FROM raw_sources ORDER BY source").fetchall()
    assert rows == [("A", 0.1), ("B", 0.7)]


def test_table_names_must_say_their_stage(state_dir):
    with staged_write(state_dir) as session, pytest.raises(ValueError, match="stage"):
        replace_rows(session.con, "pupils", pd.DataFrame({"a": [1]}))


def test_the_writing_connection_is_capped_and_spills_inside_its_version(state_dir):
    def cap(session) -> str:
        return session.con.execute(
            "SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchone()[0]

    with staged_write(state_dir, "300MiB") as session:
        assert cap(session) in ("300.0 MiB", "314.5 MB")
        spill = session.con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        assert ".partial" in spill  # spilled pages go with the unpublished version
    with staged_write(state_dir) as session:
        # the default leaves room under a 16 GB budget: at most 8 GiB
        value, unit = cap(session).split()
        assert float(value) * {"MiB": 2**20, "GiB": 2**30, "MB": 1e6, "GB": 1e9}[unit] <= 8 * 2**30


def test_a_memory_limit_setting_must_name_its_unit(monkeypatch):
    from pydantic import ValidationError

    from ews.settings import Settings

    monkeypatch.setenv("EWS_WAREHOUSE_MEMORY_LIMIT", "6GB")
    assert Settings().warehouse_memory_limit == "6GB"
    monkeypatch.setenv("EWS_WAREHOUSE_MEMORY_LIMIT", "6")
    with pytest.raises(ValidationError):
        Settings()


def test_a_row_read_with_fetch_one_leaves_the_connection_free(state_dir):
    # DuckDB 2: after fetchone() of a query with a row, the connection's next register() fails
    # ("unfinished result"); fetch_one reads the result to its end
    _seed(state_dir)
    with staged_write(state_dir) as session:
        con = session.con
        con.execute("SELECT source FROM raw_sources").fetchone()
        with pytest.raises(Exception, match="unfinished result"):
            con.register("_frame", pd.DataFrame({"a": [1]}))
        con.execute("SELECT 1").fetchall()
        assert fetch_one(con, "SELECT source FROM raw_sources ORDER BY source") == ("A",)
        assert fetch_one(con, "SELECT source FROM raw_sources WHERE source = $s", {"s": "C"}) is None
        con.register("_frame", pd.DataFrame({"a": [1]}))
        con.unregister("_frame")
        # where the ingest reads one value and then appends a frame on the same connection
        store = IngestStore(session)
        assert store.known_fingerprint("A") == "0.1"
        store.add_pupil_ids(pd.DataFrame({"source": ["pupils"], "source_file": ["elever.csv"], "pupil_id": ["p"]}))
        store.close()


def _keyed_rows(rng, source: str, name: str, lines: int, keys: int) -> pd.DataFrame:
    """Rows of one file with keys drawn from a small pool, so that keys repeat within and across files."""
    drawn = rng.integers(0, keys, size=lines)
    return pd.DataFrame({"source": source, "source_file": name, "source_line": range(2, lines + 2),
                         "_key_a": (drawn * 7 + 1).astype("uint64"), "_key_b": (drawn * 13 + 5).astype("uint64")})


def test_duplicate_verdicts_compared_again_only_for_changed_files_equal_a_full_comparison(state_dir):
    """``IngestStore.duplicate_rows`` with ``changed`` against every key compared (issue 11).

    Forty rounds of random changes to a source of five files whose keys repeat within and across
    files: a file rewritten, removed, added (also under a name that sorts first, so that it holds
    the first row of keys other files repeat), or gone without the ingest (retention deletes
    its rows and its verdicts, ``ews/retention.py``). After each round the verdicts kept and
    compared again only for the changed files are those of a comparison of every key.
    """
    import numpy as np

    rng = np.random.default_rng(7)
    source = "fravaer"
    with staged_write(state_dir) as session:
        store, con = IngestStore(session), session.con

        def write(name: str, lines: int) -> None:
            rows = _keyed_rows(rng, source, name, lines, keys=60)
            con.register("_new_rows", rows)
            con.execute("INSERT INTO raw_rows BY NAME SELECT * FROM _new_rows")
            con.unregister("_new_rows")
            con.execute("INSERT INTO raw_files VALUES ($s, $f, 'x', 'y', DATE '2026-01-01', NULL, $n, $n, '')",
                        {"s": source, "f": name, "n": lines})

        def forget(name: str) -> None:
            store.forget_files(source, [name])

        files = [f"f{i}.csv" for i in range(5)]
        for name in files:
            write(name, 40)
        # a second source with the same keys: verdicts never cross sources
        con.execute("INSERT INTO raw_rows BY NAME SELECT 'elever' AS source, * EXCLUDE (source) FROM raw_rows")
        store.duplicate_rows("elever")
        store.duplicate_rows(source)
        for _round in range(40):
            action = rng.choice(["rewrite", "remove", "add", "add_first", "expire"])
            changed: list[str] = []
            if action in ("rewrite", "remove", "expire") and len(files) > 1:
                name = str(rng.choice(files))
                if action == "expire":
                    # retention: the rows, the file and the verdicts of the file go without the ingest
                    for table in ("raw_rows", "raw_files", "raw_duplicates"):
                        con.execute(f"DELETE FROM {table} WHERE source = $s AND source_file = $f",
                                    {"s": source, "f": name})
                    files.remove(name)
                else:
                    forget(name)
                    changed.append(name)
                    if action == "rewrite":
                        write(name, int(rng.integers(0, 50)))
                    else:
                        files.remove(name)
            else:
                name = f"{'a' if action == 'add_first' else 'g'}{_round}.csv"
                write(name, int(rng.integers(1, 50)))
                files.append(name)
                changed.append(name)
            kept = store.duplicate_rows(source, changed)
            full = store.duplicate_rows(source)
            assert kept.to_dict("records") == full.to_dict("records"), (action, name)
            assert len(full) > 0
        assert len(store.duplicate_rows("elever")) > 0
        store.close()
