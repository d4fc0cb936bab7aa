"""Command bodies of the data's life cycle (issue 15): exclusion, subject access, retention, records.

A CPR number is never an argument (it would land in the shell's history and in process
listings): it is typed at a hidden prompt, or read from standard input when that is not a
terminal (``ews subject-access < file``), hashed with the pseudonymisation key at once and
dropped. Like ``ews users``, these commands are for whoever administers the server (the shell
user is recorded as ``cli:<user>``), and every one that touches a pupil is written to the
review app's audit log. ``pipelines.commands.registry`` registers them.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)
EXIT_USAGE = 2


def _cli_user() -> str:
    return f"cli:{getpass.getuser()}"


def read_cpr(prompt: str = "CPR-nummer (vises ikke): ") -> str:
    """Read a CPR number at a hidden prompt, or one line of standard input when it is not a terminal.

    Returns:
        The text typed (not checked here; never echoed or logged).
    """
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.strip()


def _settings():  # noqa: ANN202 - Settings, imported lazily to keep `ews --help` fast
    from ews.settings import get_settings

    return get_settings()


def audit_cli(action: str, object_type: str | None, object_id: str | None, purpose: str,
              outcome: str = "allowed") -> None:
    """Write a command's use to the review app's audit log (keyed chain, as the app's own entries).

    Args:
        action: The audit action (``exclude``, ``subject_access``, ``retention``, ...).
        object_type: ``pupil`` or None.
        object_id: The pupil's pseudonym (never a CPR number or name) or None.
        purpose: Why (Danish, shown on the audit page).
        outcome: ``allowed`` or ``denied``.
    """
    from dashboards.store import AppStore, app_db_path

    settings = _settings()
    store = AppStore(app_db_path(settings.state_dir), audit_key=settings.audit_key_bytes())
    store.record_audit(action=action, outcome=outcome, username=_cli_user(), role="admin",
                       object_type=object_type, object_id=object_id, purpose=purpose, path="cli")


def _pupil_from_prompt() -> str:
    from ews.exclusions import ExclusionError, pupil_id_from_cpr

    try:
        return pupil_id_from_cpr(read_cpr(), _settings().key_bytes())
    except ExclusionError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


def exclude(
    reason: Annotated[str, typer.Option(help="Reason code: indsigelse, uden_for_maalgruppen, fejl_i_data, "
                                             "kommunens_afgoerelse")],
    from_date: Annotated[str | None, typer.Option(
        "--from", help="The day the exclusion takes effect, YYYY-MM-DD [default: today]")] = None,
) -> None:
    """Exclude a pupil from screening: from the next run neither scored, flagged, explained nor trained on.

    The CPR number is asked for at a hidden prompt (or read from standard input), hashed with
    the pseudonymisation key at once and not kept. An open flag of the pupil is withdrawn by
    the next run, with a note on the UU consultant's page. Audited.
    """
    from ews.exclusions import REASONS, ExclusionError, ExclusionStore

    if reason not in REASONS:
        err.print(f"[bold red]error:[/] --reason must be one of {', '.join(REASONS)}", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        effective = date.fromisoformat(from_date) if from_date else _settings().today_date()
    except ValueError:
        err.print("[bold red]error:[/] --from must be a date like 2026-01-31", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    pupil_id = _pupil_from_prompt()
    try:
        entry = ExclusionStore(_settings().state_dir).add(pupil_id, reason, effective, _cli_user())
    except ExclusionError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    audit_cli("exclude", "pupil", pupil_id, f"Udtaget af screeningen: {reason} fra {entry.excluded_on}")
    out.print(f"pupil {pupil_id} excluded from screening from {entry.excluded_on} (exclusion {entry.exclusion_id}, "
              f"reason {entry.reason}); the next run leaves the pupil out", highlight=False)


def exclusions(
    lift: Annotated[int | None, typer.Option(help="End the exclusion with this id (screened again from the "
                                                  "next run)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the exclusions as JSON")] = False,
) -> None:
    """List the exclusions from screening (pseudonyms, reasons, dates), or end one with --lift."""
    from ews.exclusions import ExclusionError, ExclusionStore

    store = ExclusionStore(_settings().state_dir)
    if lift is not None:
        try:
            store.lift(lift, _settings().today_date(), _cli_user())
        except ExclusionError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
        lifted = next(e for e in store.entries() if e.exclusion_id == lift)
        audit_cli("exclude", "pupil", lifted.pupil_id, f"Udtagelse {lift} ophævet")
    entries = store.entries()
    if json_output:
        sys.stdout.write(json.dumps([{
            "exclusion_id": e.exclusion_id, "pupil_id": e.pupil_id, "reason": e.reason,
            "excluded_on": str(e.excluded_on), "excluded_by": e.excluded_by,
            "lifted_on": str(e.lifted_on) if e.lifted_on else None} for e in entries], indent=2) + "\n")
        return
    table = Table(title=f"Exclusions from screening ({len(entries)})")
    for column in ("id", "pupil", "reason", "from", "by", "lifted"):
        table.add_column(column)
    for e in entries:
        table.add_row(str(e.exclusion_id), e.pupil_id, e.reason, str(e.excluded_on), e.excluded_by,
                      str(e.lifted_on or "-"))
    out.print(table)



def subject_access(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the two files [default: EWS_STATE_DIR/indsigt]")] = None,
) -> None:
    """Answer a subject-access request (GDPR art. 15): one Danish PDF and one JSON about one pupil.

    The CPR number is asked for at a hidden prompt (or read from standard input), hashed at
    once and not kept. The files hold every row loaded about the pupil per source, features,
    scores with tier and model, explanations in words, flags, withdrawn flags, exclusions,
    review decisions and who viewed the pupil when (audit log); nothing about other pupils.
    They are written with mode 600; hand them over and delete them. The request is audited.
    """
    from dashboards.store import AppStore, app_db_path
    from ews.exclusions import ExclusionStore
    from ews.warehouse import WarehousePaths, open_readonly
    from pipelines.corrections import corrections_of
    from pipelines.flows import load_checked_config
    from pipelines.subject_access import audit_entries_about, collect_subject_data, write_subject_access

    settings = _settings()
    pupil_id = _pupil_from_prompt()
    config = load_checked_config(settings.resolved_config_path)
    store = AppStore(app_db_path(settings.state_dir), audit_key=settings.audit_key_bytes())
    audit_cli("subject_access", "pupil", pupil_id, "Indsigt efter art. 15 (udtræk af alle oplysninger om eleven)")
    reviews = [dict(r) for r in store.reviews_of_pupil(pupil_id)]
    exclusions = [{"exclusion_id": e.exclusion_id, "reason": e.reason, "excluded_on": str(e.excluded_on),
                   "excluded_by": e.excluded_by, "lifted_on": str(e.lifted_on) if e.lifted_on else None}
                  for e in ExclusionStore(settings.state_dir).entries() if e.pupil_id == pupil_id]
    audit_rows = _all_audit(store)
    version = WarehousePaths(settings.state_dir).published()
    kinds = {s.name: s.kind for s in config.sources}
    with open_readonly(settings.state_dir, version=version) as con, \
            open_readonly(settings.state_dir, identity=True, version=version) as identity:
        data = collect_subject_data(con, identity, pupil_id, kinds=kinds, reviews=reviews, audit=[],
                                    exclusions=exclusions)
    data["views"] = audit_entries_about(audit_rows, pupil_id, data["flags"])
    data["corrections"] = corrections_of(settings.state_dir, pupil_id)
    files = write_subject_access(data, out_dir or settings.state_dir / "indsigt", _cli_user())
    summary = ", ".join(f"{key} {count}" for key, count in files.counts.items())
    out.print(f"subject access for pupil {pupil_id}: {files.pdf_path} and {files.json_path} ({summary})",
              highlight=False)


def _all_audit(store) -> list[dict[str, object]]:  # noqa: ANN001 - AppStore
    """The whole audit log, newest first, read page by page."""
    rows: list[dict[str, object]] = []
    before: int | None = None
    while True:
        page = store.read_audit(limit=1000, before_id=before)
        rows += page
        if len(page) < 1000:
            return rows
        before = int(page[-1]["audit_id"])


def retention(
    apply: Annotated[bool, typer.Option("--apply", help="Delete what is past its time (else only show it)")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the counts as JSON")] = False,
) -> None:
    """Show what the config's retention rules would delete now, or delete it with --apply.

    Ages count in school years back from today's (EWS_TODAY overrides today). --apply deletes in
    a new version of the warehouse and identity store, published with one pointer switch (a
    failure leaves both as they were), removes expired export files and run folders, and
    writes the counts (never an identity) to the run log's retention_log. Reviews and the audit
    log are counted, not deleted (docs/data-life-cycle.md). The termly run does this at its end.
    """
    from ews.retention import plan_retention, run_retention
    from ews.warehouse import WarehousePaths, open_readonly
    from pipelines.flows import load_checked_config

    settings = _settings()
    config = load_checked_config(settings.resolved_config_path)
    today = settings.today_date()
    if apply:
        counts = run_retention(settings.state_dir, config, today, settings.resolved_inbox, _cli_user())
    else:
        version = WarehousePaths(settings.state_dir).published()
        with open_readonly(settings.state_dir, version=version) as con, \
                open_readonly(settings.state_dir, identity=True, version=version) as identity:
            counts = plan_retention(con, identity, config, today, settings.state_dir, settings.resolved_inbox)
    if json_output:
        sys.stdout.write(json.dumps([{"item": c.item, "target": c.target, "rows": c.rows, "keep_from": c.keep_from,
                                      "deleted": apply and c.applied} for c in counts], indent=2) + "\n")
        return
    verb = "deleted" if apply else "would delete"
    table = Table(title=f"Retention on {today}: {verb} {sum(c.rows for c in counts if c.applied)} rows and files")
    for column in ("item", "target", "keep from", verb):
        table.add_column(column, justify="right" if column == verb else "left")
    for c in counts:
        table.add_row(c.item, c.target, c.keep_from, str(c.rows) if c.applied else f"{c.rows} (not deleted)")
    out.print(table)


def records(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the four files [default: EWS_STATE_DIR/records]")] = None,
) -> None:
    """Write the records of processing (GDPR art. 30) and DPIA input, Danish and English, Markdown and PDF.

    Generated from the config, the source contracts (every column's legal category) and the
    table catalogue (every table's retention), so they say what the code does. Exit 3 when a
    source column has no legal category or a table no retention rule.
    """
    from pipelines.flows import load_checked_config
    from pipelines.records import missing_entries, write_records

    settings = _settings()
    config = load_checked_config(settings.resolved_config_path)
    problems = missing_entries(config)
    if problems:
        for problem in problems:
            err.print(f"[bold red]error:[/] {problem}", highlight=False)
        raise typer.Exit(3)
    for path in write_records(config, out_dir or settings.state_dir / "records"):
        out.print(str(path), highlight=False)
