"""Child processes end with the run, however the run ends (issue 17).

Prefect starts a temporary API server as a child process (``uvicorn``) for a flow run without
a configured server; it stops it from an ``atexit`` hook, which a killed run never reaches.
:func:`start_child_watchdog` starts a small watchdog process that holds the read end of a
pipe whose write end only the run holds. The watchdog notes the run's descendants every half
second; when the pipe reaches end-of-file (the run ended: normally, by a signal or by
``kill -9``; the kernel closes the pipe in every case) it ends every noted descendant that is
still the same process (pid and start time), first with SIGTERM, then SIGKILL.

Linux only (it reads ``/proc``); elsewhere it does nothing. A child started less than half a
second before the run was killed can be missed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WATCHDOG = r"""
import os, select, signal, sys, time

run = int(sys.argv[1])
me = os.getpid()


def children(pid):
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found += [int(x) for x in handle.read().split()]
        except OSError:
            pass
    return found


def started(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def note(roots, seen):
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid == me:
            continue
        start = started(pid)
        if start is None or seen.get(pid) == start:
            continue
        seen[pid] = start
        stack += children(pid)


seen = {}
while True:
    ready, _, _ = select.select([0], [], [], 0.5)
    note(children(run), seen)
    if ready and not os.read(0, 4096):
        break
note(list(seen), seen)  # grandchildren started since the last look
alive = lambda: [p for p, s in seen.items() if started(p) == s]
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in alive():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    for _ in range(40):
        if not alive():
            break
        time.sleep(0.05)
"""

_watchdog: subprocess.Popen[bytes] | None = None


def start_child_watchdog() -> int | None:
    """Start the watchdog that ends this process's children when it ends (once per process).

    Returns:
        The watchdog's pid, or None where ``/proc`` is missing.
    """
    global _watchdog
    if _watchdog is not None:
        return _watchdog.pid
    if not Path(f"/proc/{os.getpid()}/task").is_dir():
        return None
    # own session: a Ctrl-C to the terminal's process group must not end it before the run's
    # children; stdout and stderr not inherited: the run's own output ends with the run
    _watchdog = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", WATCHDOG, str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return _watchdog.pid
