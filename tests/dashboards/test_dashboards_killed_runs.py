"""A run whose process vanished shows as killed on the steward page (issue 17)."""

from __future__ import annotations

import socket
import subprocess
from datetime import datetime

import httpx

from ews.warehouse import mark_killed_runs, open_runlog, process_start_ticks
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, login


def test_a_gone_attempt_is_marked_killed_and_shown_so(env: AppEnv, live: LiveServer) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    live_pid = subprocess.Popen(["sleep", "60"])
    try:
        with open_runlog(env.state_dir) as con:
            for run_id, pid in (("2025-26-H1-deadbeef00", gone.pid), ("2025-26-H1-a11ve00000", live_pid.pid)):
                con.execute(
                    "INSERT INTO runs (run_id, attempt, term, as_of_date, status, started_at, config_hash, "
                    "code_version, pid, host, process_start) VALUES ($run_id, 1, '2025/26-H1', DATE '2025-11-15', "
                    "'running', TIMESTAMP '2025-11-15 08:00:00', 'c', 'v', $pid, $host, $start)",
                    {"run_id": run_id, "pid": pid, "host": socket.gethostname(),
                     "start": process_start_ticks(pid) if pid == live_pid.pid else 1})
        marked = mark_killed_runs(env.state_dir, "2025-26-H1-0123456789", datetime(2025, 11, 16, 9, 30))
        assert marked == [("2025-26-H1-deadbeef00", 1)]  # the living process's attempt stays running
    finally:
        live_pid.kill()
        live_pid.wait()
    with open_runlog(env.state_dir) as con:
        row = con.execute("SELECT status, ended_at, message FROM runs WHERE run_id = '2025-26-H1-deadbeef00'"
                          ).fetchone()
    assert row[0] == "killed" and row[1] is None
    assert f"process {gone.pid}" in row[2] and "found at 2025-11-16 09:30:00" in row[2]
    with httpx.Client(base_url=live.url) as stig:
        login(stig, "stig")
        page = stig.get("/drift").text
    row_html = page[page.index("2025-26-H1-deadbeef00"):][:1500]
    assert "badge-killed" in row_html and "Afbrudt (processen var væk)" in row_html
    assert "found at 2025-11-16 09:30:00" in row_html
