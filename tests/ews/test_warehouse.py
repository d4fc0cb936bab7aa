import errno

import duckdb
import pandas as pd
import pytest

import ews.warehouse
from ews.warehouse import (
    DiskFullError,
    IngestStore,
    WarehouseBusyError,
    WarehousePaths,
    content_digest,
    fetch_one,
    memory_capped,
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


def test_a_disk_that_fills_up_while_the_stores_are_copied_is_named(state_dir, monkeypatch):
    _seed(state_dir)
    path = WarehousePaths(state_dir).warehouse
    before = path.read_bytes()

    def full_copy(_source, _target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ews.warehouse, "_copy", full_copy)
    with pytest.raises(DiskFullError, match="the disk filled up") as raised, staged_write(state_dir):
        pytest.fail("the block ran")
    assert str(WarehousePaths(state_dir).versions) in str(raised.value) and "as before" in str(raised.value)
    assert path.read_bytes() == before and WarehousePaths(state_dir).warehouse == path
    assert [v.name for v in WarehousePaths(state_dir).versions.iterdir()] == [path.parent.name]


@pytest.mark.parametrize("full", [
    OSError(errno.ENOSPC, "No space left on device"),
    duckdb.IOException('Could not write file "x.tmp": No space left on device'),
    duckdb.TransactionException("Failed to commit: No space left on device"),
])
def test_a_disk_that_fills_up_during_the_run_is_named_and_the_version_removed(state_dir, full):
    _seed(state_dir)
    path = WarehousePaths(state_dir).warehouse
    before = path.read_bytes()
    with pytest.raises(DiskFullError, match="the disk filled up") as raised, staged_write(state_dir) as session:
        replace_rows(session.con, TABLE, _rows(["A"], [0.9]), {"source": "A"})
        raise full
    assert raised.value.__cause__ is full
    assert "GiB free now" in str(raised.value) and "as before" in str(raised.value)
    assert path.read_bytes() == before
    assert [v.name for v in WarehousePaths(state_dir).versions.iterdir()] == [path.parent.name]


def test_other_errors_of_a_run_are_not_called_a_full_disk(state_dir):
    _seed(state_dir)
    with pytest.raises(OSError, match="Permission") as raised, staged_write(state_dir):
        raise OSError(errno.EACCES, "Permission denied")
    assert not isinstance(raised.value, DiskFullError)


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


def test_a_capped_while_gives_the_cache_back_and_restores_the_limit_even_after_an_error(state_dir):
    def limit(con) -> str:
        return fetch_one(con, "SELECT current_setting('memory_limit')")[0]

    with staged_write(state_dir, "300MiB") as session:
        con = session.con
        with memory_capped(con, "64MiB"):
            assert limit(con) == "64.0 MiB"
            # queries still run inside the cap
            assert fetch_one(con, "SELECT count(*) FROM range(1000000)")[0] == 1_000_000
        assert limit(con) == "300.0 MiB"
        with pytest.raises(ZeroDivisionError), memory_capped(con, "64MiB"):
            1 / 0  # noqa: B018 - a failing fit
        assert limit(con) == "300.0 MiB"
        with pytest.raises(ValueError, match="not a memory size"), memory_capped(con, "64MiB'; DROP TABLE x; --"):
            pass
        assert limit(con) == "300.0 MiB"
        with memory_capped(con, "2GiB"):  # a cap above the limit leaves the limit alone
            assert limit(con) == "300.0 MiB"
        assert limit(con) == "300.0 MiB"


def test_a_cap_duckdb_cannot_reach_leaves_the_limit_and_the_phase_runs(state_dir, monkeypatch):
    class Refusing:
        """A connection whose memory limit cannot be lowered (pages pinned)."""

        def __init__(self, con):
            self.con, self.sets = con, []

        def execute(self, sql, *args):
            if sql.startswith("SET memory_limit"):
                self.sets.append(sql)
                raise duckdb.OutOfMemoryException("could not free up enough memory")
            return self.con.execute(sql, *args)

    with staged_write(state_dir, "300MiB") as session:
        refusing = Refusing(session.con)
        ran = []
        with memory_capped(refusing, "64MiB"):
            ran.append(True)
        assert ran and len(refusing.sets) == 1  # tried once, never "restored" to anything
        assert fetch_one(session.con, "SELECT current_setting('memory_limit')")[0] == "300.0 MiB"


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


def _duplicates_by_hand(con, source: str) -> list[dict]:
    """Each row whose key an earlier row (file name, then line) of the source has, with that first row."""
    rows = con.execute("SELECT source_file, source_line, _key_a, _key_b FROM raw_rows "
                       "WHERE source = $s AND _key_a IS NOT NULL", {"s": source}).df()
    found = []
    for _key, group in rows.sort_values(["source_file", "source_line"]).groupby(["_key_a", "_key_b"]):
        first = group.iloc[0]
        found += [{"source_file": row.source_file, "source_line": int(row.source_line),
                   "duplicate_of": int(first["source_line"]), "duplicate_file": first["source_file"]}
                  for row in group.iloc[1:].itertuples()]
    return sorted(found, key=lambda row: (row["source_file"], row["source_line"]))


def test_duplicate_verdicts_compared_again_only_for_changed_files_equal_a_full_comparison(state_dir):
    """``IngestStore.duplicate_rows`` with ``changed`` against the duplicates found by hand (issue 11).

    Sixty rounds of random changes to a source whose keys repeat within and across files, the
    kept verdicts carried from round to round: a file rewritten, removed, added (also under a
    name that sorts first, so that it holds the first row of keys other files repeat), or gone
    without the ingest (retention deletes its rows and verdicts, ``ews.retention.RAW_TABLES``),
    or nothing read (the known pupils changed: ``changed`` empty). After each round the verdicts
    are those of every key compared by hand.
    """
    import numpy as np

    from ews.retention import RAW_TABLES

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

        files = [f"f{i}.csv" for i in range(5)]
        for name in files:
            write(name, 40)
        # a second source with the same keys: verdicts never cross sources
        con.execute("INSERT INTO raw_rows BY NAME SELECT 'elever' AS source, * EXCLUDE (source) FROM raw_rows")
        store.duplicate_rows("elever")
        kept_for_elever = "SELECT * FROM raw_duplicates WHERE source = 'elever' ORDER BY ALL"
        elever = con.execute(kept_for_elever).fetchall()
        assert store.duplicate_rows(source).to_dict("records") == _duplicates_by_hand(con, source)
        actions = []
        for _round in range(60):
            action = str(rng.choice(["rewrite", "remove", "add", "add_first", "expire", "nothing"]))
            changed: list[str] = []
            if action in ("rewrite", "remove", "expire") and len(files) > 1:
                name = str(rng.choice(files))
                if action == "expire":  # between runs: retention, without the ingest
                    for table in RAW_TABLES:
                        con.execute(f"DELETE FROM {table} WHERE source = $s AND source_file = $f",
                                    {"s": source, "f": name})
                    files.remove(name)
                    action = "expire" if rng.random() < 0.5 else "expire, then nothing read"
                    if action == "expire":
                        actions.append(action)
                        continue  # the next round's comparison sees it
                else:
                    store.forget_files(source, [name])
                    changed.append(name)
                    if action == "rewrite":
                        write(name, int(rng.integers(0, 50)))
                    else:
                        files.remove(name)
            elif action in ("add", "add_first"):
                name = f"{'a' if action == 'add_first' else 'g'}{_round:02d}.csv"
                write(name, int(rng.integers(1, 50)))
                files.append(name)
                changed.append(name)
            actions.append(action)
            kept = store.duplicate_rows(source, changed).to_dict("records")
            assert kept == _duplicates_by_hand(con, source), actions
        assert len(kept) > 0 and {"expire", "nothing", "add_first"} <= set(actions)
        assert con.execute(kept_for_elever).fetchall() == elever and elever
        store.close()
