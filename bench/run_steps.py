"""The termly run's steps as Prefect tasks against the plain functions: what the tasks cost.

Usage (from the repository root):

    .venv/bin/python bench/run_steps.py --state /tmp/steps-bench/state

``--state`` is a state folder after ``ews demo`` (its ``synthetic/`` inside it, as the demo and
the test suite's finished run keep it); ``EWS_PSEUDONYM_KEY`` (environment or ``.env``) must be
the key it was made with, or every file is read again under new pseudonyms. The current term
is run again three times in one process with the same files (the ingest reads nothing, the
model is reused; a first run, not reported, trains it when the code version changed): once
through the flow (each step a Prefect task, ``termly_flow``) and twice as the plain function
(``run_term(publish=False)``, the steps' ``.fn``), alternating plain, flow, plain. Prints the
seconds per step (the manifest's ``step_seconds``) and the rest of each run's time (hashing,
publication, report and, in the flow, the task runs' bookkeeping) as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

TERM = "2025/26-H1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--term", default=TERM)
    args = parser.parse_args()
    state = args.state.resolve()
    os.environ.update({
        "EWS_STATE_DIR": str(state), "EWS_CONFIG_PATH": str(state / "synthetic" / "municipality.yaml"),
        "EWS_INBOX": str(state / "synthetic" / "exports"),
        "PREFECT_HOME": str(state / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    })
    from pipelines.flows import run_term, termly_flow
    from pipelines.steps import STEP_NAMES

    run_term(args.term)  # warm-up: trains the model when the code version changed
    runs = []
    for label, call in (("plain", lambda: run_term(args.term)), ("flow", lambda: termly_flow(args.term)),
                        ("plain", lambda: run_term(args.term))):
        started = time.perf_counter()
        manifest = call()
        wall = time.perf_counter() - started
        runs.append((label, manifest, wall))
    print("| step | " + " | ".join(label for label, _, _ in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for name in STEP_NAMES:
        print(f"| {name} | " + " | ".join(f"{m['step_seconds'].get(name, 0):.2f}" for _, m, _ in runs) + " |")
    steps = [sum(m["step_seconds"].values()) for _, m, _ in runs]
    print("| all steps | " + " | ".join(f"{s:.2f}" for s in steps) + " |")
    print("| rest of the run (manifest) | " + " | ".join(
        f"{m['duration_seconds'] - s:.2f}" for (_, m, _), s in zip(runs, steps, strict=True)) + " |")
    print("| wall, call to return | " + " | ".join(f"{w:.2f}" for _, _, w in runs) + " |")


if __name__ == "__main__":
    main()
