"""``ews fleet``: many municipalities run by one operator on Dask (issue 16).

``run`` runs every municipality's termly flow as a Prefect subflow on a Dask cluster and prints
the fleet summary; ``status`` prints the latest summary again; ``check`` validates the fleet
config (the tenants kept apart); ``env ID`` prints the shell lines that point every other
``ews`` command (``serve``, ``users``, ``audit``, ``evaluate``) at one municipality.
``pipelines.commands.registry`` registers the group.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

fleet_app = typer.Typer(
    name="fleet",
    help=(
        "Many municipalities, one operator: each municipality's termly run as a Prefect subflow on a "
        "Dask cluster (local by default, an existing one by address), each with its own state folder, "
        "pseudonymisation key, config and review app (the fleet config, docs/fleet.md). A municipality "
        "whose run fails stops alone, with its message on the fleet summary. Exit codes: 0 every "
        "municipality succeeded and passed the publication gate, 3 invalid fleet config, 6 all succeeded "
        "but at least one model did not pass the gate, 8 at least one municipality failed."
    ),
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
EXIT_CONFIG, EXIT_GATE = 3, 6

FleetOption = Annotated[Path, typer.Option("--fleet", envvar="EWS_FLEET_CONFIG",
                                           help="The fleet config (YAML) [env EWS_FLEET_CONFIG]")]


def _load(path: Path) -> Any:
    from ews.config import ConfigError
    from ews.fleet import load_fleet_config

    try:
        return load_fleet_config(path)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CONFIG) from None


def _use_fleet_prefect_home(fleet: Any) -> None:
    """Prefect's home in the operator's folder, unless the caller chose one (before Prefect starts)."""
    from ews.settings import get_settings

    default = str(get_settings().prefect_home.resolve())
    if "prefect" not in sys.modules and os.environ.get("PREFECT_HOME") in (None, default):
        home = fleet.state_dir / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)


@fleet_app.command("run")
def run(
    term: Annotated[str, typer.Option(help="The term to run, e.g. 2025/26-H1")],
    fleet_path: FleetOption = Path("fleet.yaml"),
    workers: Annotated[int | None, typer.Option(help="Local Dask workers (overrides the fleet config)")] = None,
    address: Annotated[str | None, typer.Option(
        help="Address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (overrides the fleet config)")] = None,
    threads: Annotated[bool, typer.Option(
        "--threads", help="One worker thread in this process instead of worker processes: one municipality at a "
                          "time (tests, tiny fleets)")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the fleet summary as JSON")] = False,
) -> None:
    """Run one term for every municipality of the fleet on Dask and print the fleet summary.

    The summary (JSON and an HTML page for the operator) is also written to the operator's folder,
    fleet_runs/<fleet run id>/. Each municipality's own run log, manifest and review app are in its
    own state folder, as for 'ews run'.
    """
    from pipelines.children import start_child_watchdog
    from pipelines.cli import parse_term, run_guarded

    term = parse_term(term)
    fleet = _load(fleet_path)
    _use_fleet_prefect_home(fleet)
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the summary says what happened
    start_child_watchdog()  # the Dask workers and Prefect's temporary server end with the run
    from pipelines.fleet import EXIT_FLEET_PARTIAL, run_fleet

    with err.status(f"fleet run {term}: {len(fleet.enabled())} municipalities"), _stdout_to_stderr():
        summary = run_guarded(lambda: run_fleet(term, fleet_path, n_workers=workers, address=address,
                                                processes=False if threads else None))
    print_summary(summary, json_output)
    if summary["status"] != "succeeded":
        raise typer.Exit(EXIT_FLEET_PARTIAL)
    if any(line["gate"] is not None and not line["gate"]["passed"] for line in summary["municipalities"]):
        raise typer.Exit(EXIT_GATE)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """While the fleet runs, file descriptor 1 is stderr, for this process and the workers it starts.

    Worker processes inherit it, and what they print at the C level (DuckDB's progress bar) would
    otherwise end up in the summary that ``--json`` writes to stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@fleet_app.command("status")
def status(
    fleet_path: FleetOption = Path("fleet.yaml"),
    json_output: Annotated[bool, typer.Option("--json", help="Print the fleet summary as JSON")] = False,
) -> None:
    """Print the summary of the fleet's latest run (exit 8 when a municipality failed in it)."""
    from pipelines.fleet import EXIT_FLEET_PARTIAL, read_latest_summary

    fleet = _load(fleet_path)
    summary = read_latest_summary(fleet)
    if summary is None:
        err.print(f"no fleet run yet in {fleet.state_dir / 'fleet_runs'}")
        raise typer.Exit(1)
    print_summary(summary, json_output)
    if summary["status"] != "succeeded":
        raise typer.Exit(EXIT_FLEET_PARTIAL)


@fleet_app.command("schedule")
def schedule(
    fleet_path: FleetOption = Path("fleet.yaml"),
    name: Annotated[str, typer.Option(help="Deployment name")] = "fleet-termly",
) -> None:
    """Serve a Prefect deployment that runs the fleet on the fleet calendar's as-of days (until stopped).

    Each scheduled run works out its term from the date. Give it a Prefect server
    (PREFECT_API_URL) to watch the runs in the Prefect UI.
    """
    from prefect import serve

    from pipelines.cli import run_guarded
    from pipelines.fleet import build_fleet_deployment

    fleet = _load(fleet_path)
    _use_fleet_prefect_home(fleet)
    run_guarded(lambda: serve(build_fleet_deployment(fleet_path, name)))


@fleet_app.command("check")
def check(fleet_path: FleetOption = Path("fleet.yaml")) -> None:
    """Validate the fleet config: folders, keys and ports of each municipality kept apart."""
    fleet = _load(fleet_path)
    out.print(f"{fleet_path}: valid ({len(fleet.municipalities)} municipalities, "
              f"{len(fleet.enabled())} enabled; each with its own folders, key and app port)")


@fleet_app.command("env")
def env(
    municipality: Annotated[str, typer.Argument(help="The municipality's id in the fleet config")],
    fleet_path: FleetOption = Path("fleet.yaml"),
) -> None:
    """Print shell lines that point 'ews' at one municipality (its folders, config and keys).

    Use: eval "$(ews fleet env herning)" && ews serve --port 8101. The key is read from its file
    or variable by the shell; it is never printed.
    """
    fleet = _load(fleet_path)
    try:
        entry = fleet.entry(municipality)
    except KeyError:
        err.print(f"[bold red]error:[/] no municipality '{municipality}' in {fleet_path}")
        raise typer.Exit(2) from None
    lines = [f"export EWS_STATE_DIR={shlex.quote(str(entry.state_dir))}",
             f"export EWS_CONFIG_PATH={shlex.quote(str(entry.config_path))}",
             f"export EWS_INBOX={shlex.quote(str(entry.inbox))}",
             f"export PREFECT_HOME={shlex.quote(str(entry.state_dir / 'prefect'))}",
             _secret_line("EWS_PSEUDONYM_KEY", entry.pseudonym_key)]
    lines.append(_secret_line("EWS_AUDIT_KEY", entry.audit_key) if entry.audit_key is not None
                 else "unset EWS_AUDIT_KEY")
    lines.append(f"# review app: ews serve --host {entry.app.host} --port {entry.app.port}")
    sys.stdout.write("\n".join(lines) + "\n")


def _secret_line(variable: str, source: Any) -> str:
    if source.file is not None:
        return f'export {variable}="$(cat {shlex.quote(str(source.file))})"'
    return f'export {variable}="${{{source.env}}}"'


def print_summary(summary: dict[str, Any], json_output: bool) -> None:
    """Print the fleet summary as a table (or JSON): status, counts, duration and gate; no pupil data.

    Args:
        summary: The fleet summary.
        json_output: Print JSON instead.
    """
    if json_output:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    cluster = summary["cluster"]
    where = {"local": lambda: f"local Dask cluster, {cluster['workers']} worker(s)",
             "existing": lambda: f"Dask cluster {cluster['address']}",
             "started": lambda: f"Dask cluster {cluster['cluster_class']}"}[cluster["kind"]]()
    table = Table(title=f"Fleet run {summary['fleet_run_id']} ({summary['term']}, {where}, "
                        f"{summary['duration_seconds']} s)")
    for column, right in (("municipality", False), ("status", False), ("seconds", True), ("files (read)", True),
                          ("rows read", True), ("quarantined", True), ("scored", True), ("flagged", True),
                          ("gate", False)):
        table.add_column(column, justify="right" if right else "left")
    failures = []
    for line in summary["municipalities"]:
        if line["status"] == "succeeded":
            gate = line["gate"]
            gate_text = ("-" if gate is None else "passed" if gate["passed"]
                         else f"[yellow]not passed[/] ({gate['published']})")
            table.add_row(line["id"], "[green]succeeded[/]", f"{line['duration_seconds']}",
                          f"{line['files']} ({line['files_read']})", f"{line['rows_read']:,}",
                          f"{line['rows_quarantined']:,}", str(line["pupils_scored"]), str(line["flagged"]),
                          gate_text)
        else:
            table.add_row(line["id"], f"[bold red]{line['status']}[/]", f"{line['duration_seconds']}",
                          "-", "-", "-", "-", "-", "-")
            failures.append(line)
    out.print(table)
    for line in failures:
        out.print(f"[bold red]{line['id']} failed[/] ({line['error_kind']}): {line['message']}\n"
                  "  nothing of this run was published; its warehouse is as before.", highlight=False)
    totals = summary["totals"]
    out.print(f"{totals['succeeded']} of {totals['municipalities']} municipalities succeeded, "
              f"{totals['gate_passed']} passed the publication gate; {totals['rows_read']:,} rows read, "
              f"{totals['pupils_scored']:,} pupils scored, {totals['flagged']:,} flagged.", highlight=False)
    if totals["step_share"]:
        out.print("share of run time per step: " + ", ".join(
            f"{step} {100 * share:.0f} %" for step, share in totals["step_share"].items()), highlight=False)
    out.print(f"summary: {summary.get('summary_path')}", highlight=False)
