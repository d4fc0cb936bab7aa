"""Command bodies of ``ews audit verify`` and ``ews audit checkpoint``.

The chain over the review app's audit log and reviews is keyed from the settings
(``EWS_AUDIT_KEY``, else derived from the pseudonymisation key); these commands must run with
the same settings as the app. ``pipelines.commands.registry`` registers the group.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.console import Console

audit_app = typer.Typer(
    name="audit",
    help=(
        "The review app's tamper-evident trail (state_dir/app.sqlite and state_dir/audit-anchor.log). "
        "'verify' checks the keyed hash chains of the audit log and the reviews against the anchor "
        "file and exits 7 when a row was edited, the newest rows were deleted or the log was "
        "rewritten and re-chained; 'checkpoint' appends the current heads to the anchor file and "
        "prints them (call it at the end of each termly run, and keep the output elsewhere too)."
    ),
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
#: Exit code of a verification that found the trail broken.
EXIT_TAMPERED = 7


def _store():  # noqa: ANN202 - AppStore, imported lazily to keep `ews --help` fast
    from dashboards.store import AppStore, app_db_path
    from ews.settings import get_settings

    settings = get_settings()
    return AppStore(app_db_path(settings.state_dir), audit_key=settings.audit_key_bytes())


def _heads_json(heads: list) -> list[dict[str, object]]:  # noqa: ANN001 - ChainHead list
    return [{"table": h.table, "rows": h.rows, "keyed_rows": h.keyed_rows, "head_id": h.head_id,
             "head_hash": h.head_hash} for h in heads]


def verify(
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Verify the audit log and the reviews; exit 0 when intact, 7 when not (naming the first bad row).

    The result is kept in app.sqlite and shown on the steward page of the audit log (/revision).
    """
    store = _store()
    report = store.verify_chains()
    store.record_verification(report, by=f"cli:{getpass.getuser()}")
    if json_output:
        out.print_json(json.dumps({
            "ok": report.ok, "summary": report.summary(), "checkpoints": report.anchor_lines,
            "heads": _heads_json(list(report.heads.values())),
            "problems": [{"table": p.table, "row_id": p.row_id, "reason": p.reason} for p in report.problems]}))
    if report.ok:
        if not json_output:
            out.print(f"audit trail {report.summary()}", highlight=False)
        return
    if not json_output:
        err.print(f"[bold red]audit trail broken:[/] first bad row: {report.problems[0].describe()}",
                  highlight=False)
        for problem in report.problems[1:20]:
            err.print(f"  also: {problem.describe()}", highlight=False)
        if len(report.problems) > 20:
            err.print(f"  ... and {len(report.problems) - 20} more", highlight=False)
    raise typer.Exit(EXIT_TAMPERED)


def checkpoint(
    json_output: Annotated[bool, typer.Option("--json", help="Print the heads as JSON")] = False,
) -> None:
    """Append the current head of each chain to the anchor file and print the heads."""
    heads = _store().checkpoint()
    if json_output:
        out.print_json(json.dumps(_heads_json(heads)))
        return
    for head in heads:
        out.print(f"{head.table}: {head.rows} rows, head {head.head_id} {head.head_hash or '-'}", highlight=False)


audit_app.command("verify")(verify)
audit_app.command("checkpoint")(checkpoint)
