"""Many municipalities at once: each one's termly flow as a Prefect subflow on Dask (issue 16).

    fleet config (validated in full, tenants kept apart) -> Dask cluster (local, or an existing
    one by address) -> one Dask task per municipality, largest export folder first:
        subflow "municipality-termly-run": reach its folders (retried) -> run_term with its
        own settings (hash files, retried -> staged ingest ... flag lists -> publish)
    -> fleet summary (JSON, page) in the operator's folder

A municipality whose run fails stops alone: its run discards its staged version as any failed
run does (its published stores stay as they were, byte for byte), its message goes on the
fleet summary, and the other municipalities finish. Each municipality's warehouse has one
writer: it is in exactly one task of a fleet run (ids and state folders are unique), and the
writers' lock of its state folder refuses a second fleet run working on it at the same time.

The summary holds counts, durations and gate results only: no pupil id, name or CPR number
(messages pass through :func:`ews.pseudonym.mask_cpr`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from ews.config import ConfigError
from ews.fleet import (
    DaskSettings,
    FleetConfig,
    MunicipalityEntry,
    load_fleet_config,
    municipality_artifacts,
    municipality_settings,
)
from ews.pseudonym import mask_cpr
from ews.terms import Term

#: Exit code of ``ews fleet run`` when at least one municipality failed (the others finished).
EXIT_FLEET_PARTIAL = 8
#: The part of a municipality's time outside its run's steps (reaching its folders, hashing the
#: files, the subflow, the publication, the manifest and the report), in ``step_seconds``.
OTHER_STEP = "other"
#: The longest message kept on the summary for a failed municipality.
MAX_MESSAGE = 600


def line_step_seconds(manifest: dict[str, Any], seconds: float) -> dict[str, float]:
    """Seconds per step of a municipality's run, from its manifest, and the rest of its time.

    Args:
        manifest: The run's manifest (``step_seconds``: one entry per step, in data-flow order).
        seconds: Wall time of the municipality's task.

    Returns:
        The manifest's ``step_seconds`` and :data:`OTHER_STEP`: the task's time outside them.
    """
    steps = {name: float(value) for name, value in (manifest.get("step_seconds") or {}).items()}
    return {**steps, OTHER_STEP: round(max(seconds - sum(steps.values()), 0.0), 2)}


@task(name="reach-municipality", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE,
      retry_condition_fn=lambda _task, _run, state: _is_os_error(state))
def reach_municipality_task(entry: MunicipalityEntry) -> None:
    """Check that the municipality's folders and config can be reached (I/O, retried on OSError).

    A network share that is briefly away is retried; a missing folder or config is not.

    Raises:
        ConfigError: When the config or the export folder does not exist.
        OSError: When a folder cannot be read or written (retried).
    """
    if not entry.config_path.exists():
        raise ConfigError(f"{entry.config_path}: config file not found")
    if not entry.inbox.is_dir():
        raise ConfigError(f"{entry.inbox}: export folder not found")
    os.listdir(entry.inbox)
    entry.state_dir.mkdir(parents=True, exist_ok=True)
    probe = entry.state_dir / f".fleet-probe-{os.getpid()}"
    probe.write_text("ok", encoding="utf-8")
    probe.unlink()


def _is_os_error(state: Any) -> bool:
    try:
        state.result()
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - any other failure is not worth a retry
        return False
    return False


@flow(name="municipality-termly-run", validate_parameters=False, log_prints=False)
def municipality_flow(entry: MunicipalityEntry, term: str) -> dict[str, Any]:
    """One municipality's termly run with its own settings (a subflow of the fleet run).

    The parameters name folders and where the keys are, never a key.

    Args:
        entry: The municipality.
        term: The term, e.g. ``2025/26-H1``.

    Returns:
        The run manifest (with ``step_seconds``, the seconds of each of its steps).
    """
    from pipelines.flows import run_term

    reach_municipality_task(entry)
    with municipality_artifacts(entry.id):  # "<id>-run-manifest" etc.: not the last one's under a shared key
        return run_term(term, publish=True, settings=municipality_settings(entry))


@task(name="municipality", retries=0, cache_policy=NO_CACHE, task_run_name="{entry.id}")
def municipality_task(entry: MunicipalityEntry, term: str) -> dict[str, Any]:
    """Run one municipality on a Dask worker and return its line of the fleet summary.

    A failure of the municipality's run is its own: it becomes the line's ``failed`` status and
    message, never an exception that would stop the fleet.

    Args:
        entry: The municipality.
        term: The term.

    Returns:
        The municipality's summary line (:func:`summary_line`).
    """
    started, started_at = time.perf_counter(), _now()
    where = f"{socket.gethostname()}:{os.getpid()}"
    try:
        manifest = municipality_flow.with_options(flow_run_name=f"{entry.id} {term}")(entry, term)
        line = summary_line(entry, manifest, time.perf_counter() - started, where)
    except Exception as exc:  # noqa: BLE001 - one municipality's failure must not stop the others
        line = failed_line(entry, term, exc, time.perf_counter() - started, where)
    return {**line, "started_at": started_at, "finished_at": _now()}


def _now() -> str:
    """The time (UTC, to the millisecond) a municipality's task started or finished."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def summary_line(entry: MunicipalityEntry, manifest: dict[str, Any], seconds: float,
                 worker: str) -> dict[str, Any]:
    """A succeeded municipality's line of the fleet summary: counts, duration, gate; no pupil data.

    Args:
        entry: The municipality.
        manifest: Its run's manifest.
        seconds: Wall time of its task (subflow included).
        worker: ``host:pid`` of the worker that ran it.

    Returns:
        The line.
    """
    sources = manifest.get("sources", [])
    worklists = manifest.get("outputs", {}).get("uu_worklists") or []
    gate = manifest.get("gate")
    return {
        "id": entry.id, "name": entry.name, "status": manifest.get("status", "succeeded"),
        "term": manifest.get("term"), "run_id": manifest.get("run_id"),
        "duration_seconds": round(seconds, 1), "run_seconds": manifest.get("duration_seconds"),
        "files": len(sources), "files_read": len(manifest.get("files_read", [])),
        "rows_read": sum(s["rows_read"] for s in sources),
        "rows_loaded": sum(s["rows_loaded"] for s in sources),
        "rows_quarantined": sum(s["rows_quarantined"] for s in sources),
        "pupils_scored": (manifest.get("scores") or {}).get("pupils"),
        "networks": len(worklists), "flagged": sum(int(w.get("flagged", 0)) for w in worklists),
        "gate": None if gate is None else {"passed": bool(gate.get("passed")), "published": gate.get("published"),
                                           "list_basis": gate.get("list_basis")},
        "warnings": len(manifest.get("warnings", [])),
        "step_seconds": line_step_seconds(manifest, seconds),
        "manifest": manifest.get("outputs", {}).get("manifest"),
        "message": None, "error_kind": None, "worker": worker, "started_at": None, "finished_at": None,
    }


def failed_line(entry: MunicipalityEntry, term: str, exc: BaseException, seconds: float,
                worker: str) -> dict[str, Any]:
    """A failed municipality's line: its message (CPR-shaped text masked) and the kind of failure.

    Args:
        entry: The municipality.
        term: The term.
        exc: What stopped its run.
        seconds: Wall time until it stopped.
        worker: ``host:pid`` of the worker that ran it.

    Returns:
        The line.
    """
    from ews.warehouse import WarehouseBusyError
    from validation.errors import FileLevelError

    kind = ("config" if isinstance(exc, ConfigError) else "data" if isinstance(exc, FileLevelError)
            else "busy" if isinstance(exc, WarehouseBusyError) else "error")
    message = mask_cpr(f"{type(exc).__name__}: {exc}")
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    return {
        "id": entry.id, "name": entry.name, "status": "failed", "term": term, "run_id": None,
        "duration_seconds": round(seconds, 1), "run_seconds": None, "files": None, "files_read": None,
        "rows_read": None, "rows_loaded": None, "rows_quarantined": None, "pupils_scored": None,
        "networks": None, "flagged": None, "gate": None, "warnings": None, "step_seconds": {},
        "manifest": None, "message": message, "error_kind": kind, "worker": worker,
        "started_at": None, "finished_at": None,
    }


def inbox_bytes(entry: MunicipalityEntry) -> int:
    """Size of a municipality's export folder (the order of the work: largest first)."""
    try:
        return sum(p.stat().st_size for p in entry.inbox.iterdir() if p.is_file())
    except OSError:
        return 0


def task_runner(settings: DaskSettings) -> Any:
    """The ``DaskTaskRunner`` of the fleet settings: an existing cluster, or a local one.

    The local cluster listens on loopback only. With ``processes: false`` it is one worker
    thread in this process (tests, tiny fleets): one municipality at a time.

    Args:
        settings: The fleet's Dask settings.

    Returns:
        A ``prefect_dask.DaskTaskRunner``.
    """
    from prefect_dask import DaskTaskRunner

    if settings.address:
        return DaskTaskRunner(address=settings.address)
    if settings.cluster_class:  # Kubernetes, an HPC queue: started for the run, closed after it
        try:
            return DaskTaskRunner(cluster_class=settings.cluster_class, cluster_kwargs=dict(settings.cluster_kwargs))
        except ImportError as exc:
            raise ConfigError(f"dask.cluster_class {settings.cluster_class} cannot be imported ({exc}); install "
                              "its package, e.g. uv sync --extra kubernetes or --extra hpc (docs/fleet.md)") from None
    if not settings.processes:
        # workers as threads of this process: one municipality at a time, as the termly run was not
        # written to run twice in one process (pyplot's global state for the model card, for one)
        cluster = {"n_workers": 1, "threads_per_worker": 1, "processes": False}
    else:  # worker processes over TCP, on loopback only (the dashboard too, on a free port)
        cluster = {"n_workers": settings.n_workers, "threads_per_worker": settings.threads_per_worker,
                   "processes": True, "memory_limit": settings.memory_limit, "host": "127.0.0.1",
                   "dashboard_address": "127.0.0.1:0"}
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster)


@task(name="write-fleet-summary", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def write_summary_task(summary: dict[str, Any], state_dir: Path) -> Path:
    """Write the fleet summary (JSON and the operator's page) to the operator's folder (I/O, retried).

    Returns:
        The summary's JSON file.
    """
    return write_summary(summary, state_dir)


def write_summary(summary: dict[str, Any], state_dir: Path) -> Path:
    """Write ``fleet_runs/<fleet_run_id>/summary.json`` and ``fleet.html``, and ``fleet_runs/latest.json``.

    Args:
        summary: The fleet summary.
        state_dir: The operator's folder.

    Returns:
        The summary's JSON file.
    """
    from dashboards.fleet_page import render_fleet_page

    folder = state_dir / "fleet_runs" / summary["fleet_run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2, ensure_ascii=False, default=str)
    path = folder / "summary.json"
    path.write_text(text, encoding="utf-8")
    (folder / "fleet.html").write_text(render_fleet_page(summary), encoding="utf-8")
    latest = state_dir / "fleet_runs" / "latest.json"
    partial = latest.with_suffix(".json.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, latest)
    return path


def fleet_status(lines: list[dict[str, Any]]) -> str:
    """``succeeded`` (every municipality), ``partial`` (some failed) or ``failed`` (all failed)."""
    failed = sum(1 for line in lines if line["status"] != "succeeded")
    return "succeeded" if failed == 0 else "failed" if failed == len(lines) else "partial"


def totals(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Fleet-wide counts and the share of run time each step took (succeeded municipalities)."""
    done = [line for line in lines if line["status"] == "succeeded"]
    steps: dict[str, float] = {}
    for line in done:
        for step, seconds in line["step_seconds"].items():
            steps[step] = steps.get(step, 0.0) + seconds
    all_steps = sum(steps.values()) or 1.0
    return {
        "municipalities": len(lines), "succeeded": len(done), "failed": len(lines) - len(done),
        "gate_passed": sum(1 for line in done if line["gate"] and line["gate"]["passed"]),
        "rows_read": sum(line["rows_read"] for line in done),
        "pupils_scored": sum(line["pupils_scored"] or 0 for line in done),
        "flagged": sum(line["flagged"] or 0 for line in done),
        "step_seconds": {k: round(v, 1) for k, v in steps.items()},
        "step_share": {k: round(v / all_steps, 3) for k, v in steps.items()},
    }


@flow(name="fleet-termly-run", validate_parameters=False, log_prints=False)
def fleet_flow(term: str, fleet_path: str, cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every enabled municipality's termly run as a subflow on the flow's Dask task runner.

    Args:
        term: The term, e.g. ``2025/26-H1``.
        fleet_path: The fleet config file.
        cluster: What the summary says about the cluster (default: from the fleet config).

    Returns:
        The fleet summary.
    """
    fleet = load_fleet_config(Path(fleet_path))
    started = datetime.now(UTC).replace(tzinfo=None)
    clock = time.perf_counter()
    entries = sorted(fleet.enabled(), key=inbox_bytes, reverse=True)
    lines: dict[str, dict[str, Any]] = {}
    waiting, running = list(entries), {}
    while waiting or running:
        # at most one municipality a worker thread is handed to the cluster (largest first);
        # the next is submitted when one finishes, so none ever waits on a worker (below)
        slots = max(1, _worker_threads())
        while waiting and len(running) < slots:
            entry = waiting.pop(0)
            running[municipality_task.submit(entry, term)] = entry
        future = next(as_completed(list(running)))
        entry = running.pop(future)
        try:
            lines[entry.id] = future.result()
        except Exception as exc:  # noqa: BLE001 - the worker died (memory, node lost): this municipality only
            lines[entry.id] = failed_line(entry, term, exc, time.perf_counter() - clock, "worker lost")
    ordered = [lines[entry.id] for entry in fleet.enabled()]
    summary = {
        "fleet_run_id": f"{Term.parse(term)}-{started:%Y%m%dT%H%M%S}".replace("/", "-"),
        "term": str(Term.parse(term)), "operator": fleet.operator, "status": fleet_status(ordered),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_seconds": round(time.perf_counter() - clock, 1),
        "cluster": cluster or cluster_description(fleet.dask),
        "municipalities": ordered, "totals": totals(ordered),
    }
    summary["summary_path"] = str(write_summary_task(summary, fleet.state_dir))
    return summary


def _worker_threads() -> int:
    """Worker threads of the running flow's Dask cluster (0: no worker yet; 1 under another runner).

    Why the fleet hands the cluster no more municipalities than it has worker threads: a
    municipality waiting on a worker starts in the same process as the one running there as
    soon as that run secedes, which it does while its chunks of pupils run on the cluster
    (``EWS_COMPUTE_ON_DASK``). Two runs in one process broke the first national-sized fleet
    (34 of 36 failed: the first to finish closed the Prefect client the other used). Dask's own
    queue does not prevent it: by default it sends a worker of one thread a second task
    (``worker-saturation`` 1.1). Read each time a municipality finishes, so that a cluster that
    grows or shrinks is followed.
    """
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    client = getattr(context.task_runner, "client", None) if context is not None else None
    if client is None:
        return 1
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return sum(int(worker.get("nthreads", 1)) for worker in workers.values())


def cluster_description(settings: DaskSettings) -> dict[str, Any]:
    """What the summary says about the cluster (no credentials)."""
    if settings.address:
        return {"kind": "existing", "address": settings.address}
    if settings.cluster_class:
        return {"kind": "started", "cluster_class": settings.cluster_class}
    if not settings.processes:
        return {"kind": "local", "workers": 1, "threads_per_worker": 1, "processes": False}
    return {"kind": "local", "workers": settings.n_workers, "threads_per_worker": settings.threads_per_worker,
            "processes": True}


def run_fleet(term: str, fleet_path: Path, *, n_workers: int | None = None,
              address: str | None = None, processes: bool | None = None,
              on_server: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Validate the fleet, make sure the workers share one Prefect server, and run the fleet flow.

    Worker processes without ``PREFECT_API_URL`` would each start a temporary Prefect server of
    their own (about 25 s each, and their subflows would be recorded apart): with a local
    cluster of processes and no server configured, one temporary server is started here and
    handed to the workers. An existing cluster needs a Prefect server its workers reach
    (``prefect_api_url`` in the fleet config, or ``PREFECT_API_URL``).

    Args:
        term: The term.
        fleet_path: The fleet config file.
        n_workers: Overrides the fleet's local worker count.
        address: Overrides the fleet's scheduler address.
        processes: Overrides whether local workers are processes (False: threads of this process).
        on_server: Told the Prefect API URL in use.

    Returns:
        The fleet summary.

    Raises:
        ConfigError: When the fleet config is invalid or the tenants are not kept apart.
    """
    fleet = load_fleet_config(fleet_path)
    overrides = {k: v for k, v in {"n_workers": n_workers, "address": address, "processes": processes}.items()
                 if v is not None}
    dask_settings = fleet.dask.model_copy(update=overrides)
    api_url = fleet.prefect_api_url or os.environ.get("PREFECT_API_URL")
    remote = dask_settings.address or dask_settings.cluster_class
    if remote and not api_url:
        raise ConfigError(f"{fleet_path}: a Dask cluster on other machines ({remote}) needs a Prefect server "
                          "its workers reach: set prefect_api_url in the fleet config or PREFECT_API_URL")
    if api_url is None and dask_settings.processes:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the one this process's flows use too
        server.start(timeout=120)
        api_url = server.api_url
    if api_url is not None:
        os.environ["PREFECT_API_URL"] = api_url  # before the cluster starts: its workers inherit it
        if on_server is not None:
            on_server(api_url)
    runner = task_runner(dask_settings)
    flow_with_runner = fleet_flow.with_options(task_runner=runner)
    arguments = (str(Term.parse(term)), str(fleet_path), cluster_description(dask_settings))
    if fleet.prefect_api_url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            return flow_with_runner(*arguments)
    return flow_with_runner(*arguments)


def read_latest_summary(fleet: FleetConfig) -> dict[str, Any] | None:
    """The summary of the fleet's latest run, or None before the first."""
    path = fleet.state_dir / "fleet_runs" / "latest.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@flow(name="fleet-termly-run-scheduled", validate_parameters=False, log_prints=False)
def scheduled_fleet_flow(fleet_path: str) -> dict[str, Any]:
    """Work out the term from today's date (the fleet's calendar) and run the fleet.

    Args:
        fleet_path: The fleet config file.

    Returns:
        The fleet summary.
    """
    from ews.settings import get_settings
    from pipelines.schedule import term_on

    fleet = load_fleet_config(Path(fleet_path))
    return run_fleet(str(term_on(get_settings().today_date(), fleet.terms)), Path(fleet_path))


def build_fleet_deployment(fleet_path: Path, name: str = "fleet-termly") -> Any:
    """The deployment ``ews fleet schedule`` serves: the fleet run on each term's as-of day.

    Args:
        fleet_path: The fleet config file (its ``terms`` calendar and ``schedule_hour``).
        name: Deployment name.

    Returns:
        A ``RunnerDeployment``.
    """
    from types import SimpleNamespace

    from prefect.schedules import Cron

    from pipelines.schedule import TIMEZONE, schedule_crons

    fleet = load_fleet_config(fleet_path)
    crons = schedule_crons(SimpleNamespace(terms=fleet.terms), hour=fleet.schedule_hour)
    return scheduled_fleet_flow.to_deployment(
        name=name, schedules=[Cron(cron, timezone=TIMEZONE) for cron in crons],
        parameters={"fleet_path": str(fleet_path.resolve())},
        description=f"Termly early-warning run of {len(fleet.enabled())} municipalities on Dask ({fleet.operator})",
        tags=["ews", "termly", "fleet"],
    )
