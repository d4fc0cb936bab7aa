"""One atomic publication of both stores (issue 17): a failure or a kill at every step of the
publication leaves the warehouse and the identity store both as before or both as after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import ews.warehouse as warehouse
from ews.warehouse import PUBLISH_STEPS, WarehousePaths, open_readonly, replace_rows, staged_write

#: Steps after which the new version is published (the pointer switch is ``switch``'s work).
AFTER_SWITCH = ("cleanup",)


def _publish(state_dir: Path, value: int) -> None:
    with staged_write(state_dir) as session:
        # a declared table (ews/tables_warehouse.sql): replace_rows refuses any other
        replace_rows(session.con, "raw_sources", pd.DataFrame({"source": ["test"], "known_fingerprint": [str(value)]}))
        session.identity.execute("DELETE FROM identity_pupils")
        session.identity.execute(
            "INSERT INTO identity_pupils VALUES ($id, 'Navn', $last, '101', '5A', '2025/26')",
            {"id": f"p{value}", "last": f"Efternavn{value}"})


def _published(state_dir: Path) -> tuple[int, str]:
    """What a reader sees: both stores of the version the pointer names, resolved once."""
    version = WarehousePaths(state_dir).published()
    with open_readonly(state_dir, version=version) as con:
        value = con.execute("SELECT known_fingerprint::INTEGER FROM raw_sources").fetchall()
    with open_readonly(state_dir, identity=True, version=version) as con:
        names = con.execute("SELECT pupil_id FROM identity_pupils").fetchall()
    assert len(value) == 1 and len(names) == 1
    return value[0][0], names[0][0]


class InjectedFailure(Exception):
    pass


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_failure_at_any_step_leaves_both_stores_before_or_after(state_dir, monkeypatch, step):
    _publish(state_dir, 1)
    assert _published(state_dir) == (1, "p1")

    def fail_at(name: str) -> None:
        if name == step:
            raise InjectedFailure(name)

    monkeypatch.setattr(warehouse, "_publish_step", fail_at)
    with pytest.raises(InjectedFailure):
        _publish(state_dir, 2)
    expected = (2, "p2") if step in AFTER_SWITCH else (1, "p1")
    assert _published(state_dir) == expected
    monkeypatch.undo()
    _publish(state_dir, 3)  # the next run publishes normally and clears what was left
    assert _published(state_dir) == (3, "p3")
    versions = sorted(v.name for v in WarehousePaths(state_dir).versions.iterdir())
    assert len(versions) == 2 and not any(v.endswith(".partial") for v in versions)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import ews.warehouse as warehouse
    from tests.ews.test_publication import _publish

    def die_at(name):
        if name == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)

    warehouse._publish_step = die_at
    _publish(Path(sys.argv[1]), 2)
""")


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_kill_at_any_step_leaves_both_stores_before_or_after(state_dir, step):
    _publish(state_dir, 1)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", KILLER, str(state_dir), step], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    expected = (2, "p2") if step in AFTER_SWITCH else (1, "p1")
    assert _published(state_dir) == expected
    _publish(state_dir, 3)
    assert _published(state_dir) == (3, "p3")
    left = sorted(p.name for p in state_dir.iterdir())
    assert "CURRENT.next" not in left and not [p for p in left if p.startswith(".ingest-")]


def test_a_state_folder_from_before_versions_is_read_then_replaced(state_dir):
    import duckdb

    state_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(state_dir / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE raw_sources AS SELECT 'test' AS source, '7' AS known_fingerprint")
    with duckdb.connect(str(state_dir / "identity.duckdb")) as con:
        warehouse.ensure_identity_schema(con)
        con.execute("INSERT INTO identity_pupils VALUES ('p7', 'Navn', 'X', '101', '5A', '2025/26')")
    assert _published(state_dir) == (7, "p7")
    _publish(state_dir, 8)
    assert _published(state_dir) == (8, "p8")
    assert (state_dir / "warehouse.duckdb").exists()  # kept while it was the version just replaced
    _publish(state_dir, 9)
    assert not (state_dir / "warehouse.duckdb").exists() and not (state_dir / "identity.duckdb").exists()
    assert len(list(WarehousePaths(state_dir).versions.iterdir())) == 2
