"""The ``ews`` command line.

Exit codes: 0 done; 1 unexpected error; 2 wrong usage; 3 the config is invalid; 4 an input file
or source is unusable (file-level validation); 5 another run holds the warehouse; 6 the run
succeeded but the model did not pass the publication gate (the rule list, or no list, was
published instead; the manifest's ``gate`` says why); 7 ``ews audit verify`` found the audit
trail broken.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ews.settings import get_settings

EXIT_ERROR, EXIT_USAGE, EXIT_CONFIG, EXIT_DATA, EXIT_BUSY, EXIT_GATE = 1, 2, 3, 4, 5, 6

app = typer.Typer(
    name="ews",
    help=(
        "Alle skal med: early-warning screening from grade 5.\n\n"
        "Loads a municipality's exports (attendance, assessments, service contacts) into a "
        "DuckDB warehouse, validates them, scores every pupil in grades 5-9 with a calibrated "
        "model and writes each school network's termly flag list as a working list for the UU "
        "consultants, who review every flag before the network sees it (in 'ews serve'). "
        "A flag is a screening signal for people to weigh, never a decision about a child.\n\n"
        "State lives in EWS_STATE_DIR (default ./data). Exit codes: 0 ok, 1 unexpected error, "
        "2 usage, 3 invalid config, 4 unusable input file, 5 warehouse busy, 6 run succeeded but "
        "the model did not pass the publication gate (the best rule's list, or no list, was "
        "published; see the manifest's 'gate'), 7 'ews audit verify' found the audit trail broken."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _prepare_environment() -> None:
    """Prefect settings that must be in place before Prefect is imported."""
    settings = get_settings()
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home.resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # our own messages say what failed; Prefect's tracebacks would only bury them
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    if "prefect" in sys.modules:
        # imported before this ran (tests, or a caller's own code): the variable came too late
        import logging

        for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _fail(code: int, message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def check_settings() -> None:
    """Read the EWS_* settings before anything else, so a bad value is one clear message.

    Raises:
        typer.Exit: With exit code 3 and the variables at fault.
    """
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"EWS_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors())
        raise _fail(EXIT_CONFIG, f"settings: {problems}. Fix the environment or .env.") from None


def run_guarded(action: Any) -> Any:
    """Run an action, turning known failures into a message and an exit code (no traceback).

    Args:
        action: A callable with no arguments.

    Returns:
        What the action returns.

    Raises:
        typer.Exit: With the exit code of the failure.
    """
    from ews.config import ConfigError
    from ews.warehouse import DiskFullError, WarehouseBusyError
    from validation.errors import FileLevelError

    try:
        return action()
    except ConfigError as exc:
        raise _fail(EXIT_CONFIG, str(exc)) from None
    except FileLevelError as exc:
        raise _fail(EXIT_DATA, f"{exc}\nNothing was written; the warehouse is as before.") from None
    except WarehouseBusyError as exc:
        raise _fail(EXIT_BUSY, str(exc)) from None
    except DiskFullError as exc:
        raise _fail(EXIT_ERROR, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - anything else: a message here, the traceback in a file
        log = _write_traceback()
        raise _fail(EXIT_ERROR, f"unexpected {type(exc).__name__}: {exc}\nDetails for developers: {log}") from None


def _write_traceback() -> Path:
    """Keep the traceback of an unexpected error for developers (no pupil data is in it)."""
    import traceback

    folder = get_settings().state_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "last-error.txt"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


def parse_term(text: str) -> str:
    """Check a term given on the command line.

    Raises:
        typer.Exit: With exit code 2 and the expected form.
    """
    from ews.terms import Term

    try:
        return str(Term.parse(text))
    except ValueError as exc:
        raise _fail(EXIT_USAGE, str(exc)) from None


@app.command()
def synth(
    out: Annotated[Path | None, typer.Option(help="Folder to write (default EWS_STATE_DIR/synthetic)")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Random seed: the same seed gives the same files [default: 7]")] = None,
    schools: Annotated[int | None, typer.Option(help="Number of schools [default: 20]")] = None,
    pupils_per_grade: Annotated[int | None, typer.Option(
        help="Pupils per grade, municipality-wide [default: 1000]")] = None,
    first_school_year: Annotated[str | None, typer.Option(
        help="First school year, e.g. 2014/15 [default: 2014/15]")] = None,
    last_term: Annotated[str | None, typer.Option(
        help="Data up to the end of this term [default: 2025/26-H1]")] = None,
    params: Annotated[Path | None, typer.Option(
        help="YAML of parameters, in the form of a world's ground_truth/generator.yaml (options "
             "given here override it)")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="A generating-model parameter as NAME=VALUE, repeatable: effect_laering, "
                        "effect_fravaer, effect_trivsel, effect_mobilitet, upv_share, "
                        "late_starter_share, late_drift_mean, early_starter_scale, upv_noise_sd, "
                        "observation_noise, concept_drift_from, concept_drift_share "
                        "(docs/synthetic-municipality.md)")] = None,
    marks_from_grade: Annotated[int | None, typer.Option(
        help="First grade with standing marks in the exports [default: 8]")] = None,
    describe: Annotated[bool, typer.Option(
        "--describe", help="Print the base rates of the written files next to DOMAIN figures")] = False,
) -> None:
    """Write a synthetic municipality: the exports a municipality would send, with their quirks.

    Herning-sized by default (20 schools, about 1,000 pupils a grade, 2014/15 onward). Also
    writes a ground-truth folder (never read by the pipeline; generator.yaml records every
    parameter) and a matching municipality config. The defaults give the default world.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.synth import describe_municipality, generate_municipality

    target = out or get_settings().synthetic_dir
    synth_params = _synth_params(params, model or [], {
        "seed": seed, "schools": schools, "pupils_per_grade": pupils_per_grade,
        "first_school_year": first_school_year, "last_term": last_term,
        "marks_from_grade": marks_from_grade})
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        job = bar.add_task("synthetic municipality", total=1.0)

        def report(step: str, fraction: float) -> None:
            bar.update(job, description=step, completed=fraction)

        summary = run_guarded(lambda: generate_municipality(target, synth_params, progress=report))
    err.print(f"wrote the synthetic municipality to [bold]{target}[/]")
    if summary is not None and hasattr(summary, "describe"):
        err.print(summary.describe())
    if describe:
        _print_frame(describe_municipality(target), "Base rates of the synthetic municipality")


def _synth_params(path: Path | None, model_settings: list[str], options: dict[str, Any]) -> Any:
    """The synth parameters: defaults, then the YAML file, then the options given.

    Raises:
        typer.Exit: With exit code 2 and what is wrong (unreadable file, unknown or bad value).
    """
    import yaml

    from pipelines.synth import SynthParams

    document: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise _fail(EXIT_USAGE, f"{path}: cannot read the parameters: {exc}") from None
        if not isinstance(loaded, dict):
            raise _fail(EXIT_USAGE, f"{path}: expected a mapping of parameters")
        document = loaded
    document.update({k: v for k, v in options.items() if v is not None})
    gen = dict(document.get("model") or {})
    for setting in model_settings:
        name, sep, value = setting.partition("=")
        if not sep:
            raise _fail(EXIT_USAGE, f"--model {setting}: expected NAME=VALUE, e.g. upv_share=0.15")
        gen[name.strip()] = yaml.safe_load(value)
    document["model"] = gen
    try:
        return SynthParams.from_document(document)
    except (TypeError, ValueError) as exc:
        raise _fail(EXIT_USAGE, str(exc)) from None


def _print_frame(frame: Any, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*["" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in row])
    Console().print(table)


def _run_with_progress(term: str) -> dict[str, Any]:
    _prepare_environment()
    from pipelines.children import start_child_watchdog

    start_child_watchdog()  # Prefect's temporary server ends with the run, even a killed one
    from pipelines.flows import termly_flow

    with err.status(f"termly run {term}") as status:
        def report(message: str) -> None:
            status.update(f"termly run {term}: {message}")

        return run_guarded(lambda: termly_flow(term, progress=report))


@app.command()
def run(
    term: Annotated[str, typer.Option(help="The term to run, e.g. 2025/26-H1")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the run manifest as JSON")] = False,
) -> None:
    """Run one term: load and validate every source, score, explain and write the flag lists.

    Re-running a term with the same files changes nothing; a run that fails leaves the
    warehouse as it was. Every run is logged (data/runs.duckdb) with a JSON manifest.
    """
    manifest = _run_with_progress(parse_term(term))
    _report_manifest(manifest, json_output)
    _exit_on_gate(manifest)


def _exit_on_gate(manifest: dict[str, Any]) -> None:
    """Exit with code 6 when the run's model did not pass the publication gate.

    Raises:
        typer.Exit: With :data:`EXIT_GATE`.
    """
    gate = manifest.get("gate")
    if gate is not None and not gate.get("passed"):
        raise typer.Exit(EXIT_GATE)


def _report_manifest(manifest: dict[str, Any], json_output: bool) -> None:
    if json_output:
        sys.stdout.write(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    table = Table(title=f"Run {manifest['run_id']} ({manifest['term']}, as of {manifest['as_of_date']})")
    for column in ("source", "file", "read", "loaded", "quarantined"):
        table.add_column(column, justify="right" if column in ("read", "loaded", "quarantined") else "left")
    for entry in manifest["sources"]:
        table.add_row(entry["name"], entry["file"], str(entry["rows_read"]),
                      str(entry["rows_loaded"]), str(entry["rows_quarantined"]))
    console = Console()
    console.print(table)
    for warning in manifest.get("warnings", []):
        if warning.startswith("publication gate:"):
            console.print(f"[bold red]warning:[/] {warning}", highlight=False)
        else:
            console.print(f"[yellow]note:[/] {warning}", highlight=False)
    console.print(f"status: [bold]{manifest['status']}[/]; manifest: {manifest['outputs']['manifest']}")


@app.command()
def demo(
    json_output: Annotated[bool, typer.Option("--json", help="Print the last run's manifest as JSON")] = False,
    pupils_per_grade: Annotated[int, typer.Option(help="Pupils per grade")] = 1000,
    schools: Annotated[int, typer.Option(help="Number of schools")] = 20,
) -> None:
    """The whole termly pipeline on the built-in synthetic municipality (Herning-sized).

    Writes the synthetic exports, runs the previous term and the current term (so the flag
    lists can say what changed), and ends with a summary of what was produced and where.
    """
    from pipelines.children import start_child_watchdog
    from pipelines.demo import run_demo

    _prepare_environment()
    start_child_watchdog()
    manifest = run_guarded(lambda: run_demo(pupils_per_grade=pupils_per_grade, schools=schools,
                                            console=err))
    _report_manifest(manifest, json_output)
    _exit_on_gate(manifest)


@app.command()
def schedule(
    name: Annotated[str, typer.Option(help="Deployment name")] = "termly",
) -> None:
    """Serve a Prefect deployment that runs the termly flow on the term calendar's as-of days.

    Runs until stopped (Ctrl-C). Each scheduled run works out its term from the date.
    """
    _prepare_environment()
    from pipelines.schedule import serve_schedule

    run_guarded(lambda: serve_schedule(name))


@app.command("check-config")
def check_config(
    path: Annotated[Path | None, typer.Argument(help="Config file (default: the one in use)")] = None,
) -> None:
    """Validate a municipality config in full and say what is wrong, or that it is fine."""
    from pipelines.flows import load_checked_config

    target = path or get_settings().resolved_config_path
    config = run_guarded(lambda: load_checked_config(target))
    from ews.config import config_hash

    Console().print(f"{target}: valid (version {config.config_version}, {len(config.schools)} schools, "
                    f"{len(config.networks)} networks, {len(config.sources)} sources, "
                    f"hash {config_hash(config)})")


def _register_area_commands() -> None:
    """Commands whose bodies live with their area (evaluation, explanations, dashboards)."""
    from pipelines.commands import registry

    for name, function in registry.COMMANDS:
        app.command(name)(function)
    for name, sub_app in registry.GROUPS:
        app.add_typer(sub_app, name=name)


_register_area_commands()


def main() -> None:
    """Entry point of the ``ews`` command."""
    try:
        check_settings()
    except typer.Exit as stop:
        raise SystemExit(stop.exit_code) from None
    _prepare_environment()
    try:
        app()
        code = 0
    except SystemExit as stop:
        if isinstance(stop.code, str):
            sys.stderr.write(stop.code + "\n")
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - unexpected: the traceback, then the same quiet exit
        import traceback

        traceback.print_exc()
        code = EXIT_ERROR
    _exit_quietly(code)


def _exit_quietly(code: int) -> None:
    """End the process without the duckdb binding's noise at interpreter shutdown.

    The duckdb 2 binding (nanobind) prints ``nanobind: leaked N instances!`` lines while the
    interpreter finalises after a flow run; they would bury the one message a steward must
    read. The ``atexit`` hooks (Prefect stops its temporary server there) run as usual, the
    output is flushed, and the process ends without finalising the interpreter.
    """
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
