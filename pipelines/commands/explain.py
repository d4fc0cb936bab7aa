"""``ews explain PUPIL --run RUN``: one pupil's explanation, as stored with the run, and reproduced.

Shows the run's lineage (term, as-of date, model), the pupil's risk and tier, the reasons in
Danish (or English) with the pupil's values and the reference values, the context items, the
family totals and every feature's contribution. Then it computes the explanation again from the
run's model and the stored features and says whether it matches. Only pseudonyms are printed:
a CPR number given as PUPIL is pseudonymised with the configured key and never echoed.

Exit codes: 0 shown (and reproduced); 1 the recomputed explanation differs from the stored one;
2 wrong usage (unknown run or pupil).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ews.pseudonym import normalise_cpr, pseudonymise
from ews.settings import Settings, get_settings
from ews.sql import load_sql
from ews.warehouse import fetch_one, open_readonly, table_exists

EXIT_MISMATCH, EXIT_USAGE = 1, 2

#: Loads the bundle of a model id (settings, model id, warehouse connection), or None.
BundleLoader = Callable[[Settings, str, Any], Any]
#: Where the termly flow saves model bundles (``models.training.save_bundle``), under the state folder.
MODELS_FOLDER = "models"


def _sql(name: str) -> str:
    return load_sql("pipelines.commands", name)


def default_bundle_loader(settings: Settings, model_id: str, con: Any) -> Any:
    """The run's model bundle as saved by the termly flow.

    Looks in ``EWS_STATE_DIR/models/<model_id>/`` and, failing that, in the folder of the model
    card the registry (``models`` table) recorded for the model.

    Args:
        settings: The settings (state folder).
        model_id: The model.
        con: A warehouse connection (for the registry).

    Returns:
        The bundle, or None when no saved bundle is found.
    """
    from pathlib import Path

    from models.registry import read_registered
    from models.training import load_bundle

    folders = [settings.state_dir / MODELS_FOLDER]
    registered = read_registered(con, model_id)
    if registered and registered.get("card_markdown"):
        folders.append(Path(registered["card_markdown"]).parent.parent)
    for folder in folders:
        try:
            return load_bundle(folder, model_id)
        except FileNotFoundError:
            continue
    return None


def resolve_pupil(pupil: str, settings: Settings) -> str:
    """A pseudonym from what the user typed (a pseudonym, or a CPR number to pseudonymise)."""
    digits = normalise_cpr(pupil)
    if digits is not None:
        return pseudonymise(digits, settings.key_bytes())
    return pupil.strip()


def explain_pupil(
    pupil: str,
    run_id: str,
    lang: str = "da",
    recompute: bool = True,
    settings: Settings | None = None,
    bundle_loader: BundleLoader = default_bundle_loader,
    console: Console | None = None,
) -> int:
    """Print one pupil's explanation and reproduce it (the body of ``ews explain``).

    Args:
        pupil: The pupil's pseudonym (or CPR number, pseudonymised here and never printed).
        run_id: The run.
        lang: ``da`` (default) or ``en`` for the reasons.
        recompute: Compute the explanation again from the model and compare.
        settings: Settings (default: from the environment).
        bundle_loader: Loads the run's model bundle (tests pass their own).
        console: Where to print.

    Returns:
        The exit code: 0 shown (and reproduced), 1 not reproduced, 2 unknown run or pupil.
    """
    from flags.labels import SIGNAL_SHORT_DA, STATUS_DA, TRAJECTORY_DA, format_percent_da
    from flags.reasons import family_label, reasons_for_pupils
    from flags.selection import reference_values_sql
    from models.explain import read_explanation, reproduce_explanation

    settings = settings or get_settings()
    console = console or Console()
    pupil_id = resolve_pupil(pupil, settings)
    with open_readonly(settings.state_dir) as con:
        if not table_exists(con, "explanations_pupil_term"):
            console.print("no explanations in the warehouse yet; run 'ews run --term TERM' first")
            return EXIT_USAGE
        stored = read_explanation(con, run_id, pupil_id)
        if stored.empty:
            known = fetch_one(con, _sql("explain_run_exists.sql"), {"run_id": run_id})
            what = f"pupil {pupil_id} was not scored in run {run_id}" if known and known[0] \
                else f"run {run_id} has no explanations (check the run id in data/runs/)"
            console.print(f"[red]{what}[/]")
            return EXIT_USAGE
        score = con.execute(_sql("explain_score.sql"), {"run_id": run_id, "pupil_id": pupil_id}).df()
        flag = con.execute(_sql("explain_flag.sql"), {"run_id": run_id, "pupil_id": pupil_id}).df() \
            if table_exists(con, "flags_pupil_term") else pd.DataFrame()
        grade = int(score["grade"].iloc[0]) if len(score) else None
        references = reference_values_sql(con, run_id) if len(score) else pd.DataFrame(
            columns=["grade", "feature", "reference", "pupils"])
        reproduction = None
        if recompute:
            bundle = bundle_loader(settings, str(stored["model_id"].iloc[0]), con)
            if bundle is not None:
                reproduction = reproduce_explanation(con, bundle, run_id, pupil_id)

    first = stored.iloc[0]
    as_of = pd.Timestamp(first["as_of_date"]).date() if pd.notna(first["as_of_date"]) else ""
    console.print(f"[bold]Pupil {pupil_id}[/] · run {run_id} · term {first['term']} · "
                  f"as of {as_of} · model {first['model_id']}", highlight=False)
    if len(score):
        row = score.iloc[0]
        console.print(f"risk {format_percent_da(float(row['risk']))} · tier {row['tier']} · grade "
                      f"{row['grade']} · network {row['network_id']}", highlight=False)
    if len(flag):
        f = flag.iloc[0]
        console.print(f"on the list: {STATUS_DA.get(f['status'], f['status'])} · "
                      f"{TRAJECTORY_DA.get(f['trajectory'], '') if isinstance(f['trajectory'], str) else ''}",
                      highlight=False)
    console.print(f"[italic]{SIGNAL_SHORT_DA} — ikke en afgørelse.[/]")

    pupils = pd.DataFrame({"pupil_id": [pupil_id], "grade": [grade]})
    chosen = reasons_for_pupils(stored, pupils, references)
    from flags.reasons import reasons_from_json

    reasons = reasons_from_json(chosen["reasons_da"].iloc[0]) if len(chosen) else []
    context = reasons_from_json(chosen["context_da"].iloc[0]) if len(chosen) else []
    text = (lambda r: r.text_da) if lang == "da" else (lambda r: r.text_en)
    console.print("[bold]Årsager[/]" if lang == "da" else "[bold]Reasons[/]")
    for reason in reasons or []:
        console.print(f"  • {text(reason)}", highlight=False)
    if not reasons:
        console.print("  (ingen enkeltårsag over tærsklen)" if lang == "da"
                      else "  (no single reason above the threshold)")
    if context:
        console.print("[bold]Kontekst[/]" if lang == "da" else "[bold]Context[/]")
        for item in context:
            console.print(f"  • {text(item)}", highlight=False)

    families = stored.groupby("family")["contribution"].sum().sort_values(ascending=False)
    family_table = Table(title="Contributions by family (log-odds)")
    family_table.add_column("family")
    family_table.add_column("contribution", justify="right")
    for family, total in families.items():
        family_table.add_row(family_label(str(family), lang), f"{total:+.3f}")
    console.print(family_table)

    table = Table(title="Every feature (SHAP contribution, log-odds)")
    for column in ("feature", "family", "value", "contribution"):
        table.add_column(column, justify="right" if column in ("value", "contribution") else "left")
    for r in stored.itertuples(index=False):
        value = "" if pd.isna(r.feature_value) else f"{r.feature_value:g}"
        table.add_row(r.feature, r.family, value, f"{r.contribution:+.4f}")
    console.print(table)
    base = float(first["base_value"])
    total = base + float(stored["contribution"].sum())
    console.print(f"base value {base:+.4f} + contributions {stored['contribution'].sum():+.4f} "
                  f"= model output {total:+.4f} log-odds", highlight=False)

    if not recompute:
        return 0
    if reproduction is None:
        console.print("[yellow]not recomputed:[/] the model bundle of this run is not available")
        return 0
    if reproduction.ok:
        console.print(f"[green]reproduced[/]: recomputed from model {first['model_id']} and the stored "
                      f"features; largest difference {reproduction.max_gap:.2e} log-odds")
        return 0
    console.print(f"[red]NOT reproduced[/]: largest difference {reproduction.max_gap:.3g} log-odds; "
                  "the stored explanation does not match this model and these features")
    return EXIT_MISMATCH


_PUPIL_HELP = "The pupil's pseudonym ('Elev-id' on the list); a CPR number is pseudonymised, never shown"
_RUN_HELP = "The run id (on the list's lineage sheet, or in data/runs/)"
_RECOMPUTE_HELP = "Compute the explanation again from the run's model and compare"


def explain(
    pupil: Annotated[str, typer.Argument(help=_PUPIL_HELP)],
    run: Annotated[str, typer.Option("--run", help=_RUN_HELP)],
    lang: Annotated[str, typer.Option(help="Language of the reasons: da or en")] = "da",
    recompute: Annotated[bool, typer.Option("--recompute/--no-recompute", help=_RECOMPUTE_HELP)] = True,
) -> None:
    """Show why one pupil was flagged in a run, and reproduce the explanation from its model.

    Prints the reasons (the pupil's values next to reference values for the same grade), the
    context, the contribution of each feature family and of every feature, and checks that
    base value + contributions equal the model's output. Exit code 1 when the recomputed
    explanation differs from the stored one, 2 when the run or pupil is unknown.
    """
    if lang not in ("da", "en"):
        raise typer.BadParameter("--lang must be da or en")
    try:
        code = explain_pupil(pupil, run, lang=lang, recompute=recompute)
    except FileNotFoundError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if code:
        raise typer.Exit(code)
