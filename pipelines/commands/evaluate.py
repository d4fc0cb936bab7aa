"""``ews evaluate``: the model against the simple rules and, given a ground truth, the oracle.

The only code that reads a ground-truth file: the synthetic municipality's
``ground_truth/asof.csv`` (``cpr;term;as_of_date;grade;p_upv``, the true probability as of
each date). Its CPR numbers are pseudonymised here with the warehouse's key, as at the door,
and never stored or printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

EXIT_ERROR, EXIT_USAGE = 1, 2
METRICS = ("roc_auc", "average_precision", "brier", "calibration_error", "precision_at_capacity",
           "recall_at_capacity")
HEADERS = ("AUC", "AP", "Brier", "Cal.err", "P@cap", "R@cap")
err = Console(stderr=True)


class EvaluationError(Exception):
    """Nothing to evaluate, or the ground truth cannot be read; the message says what to do."""


def read_ground_truth(path: Path, key: bytes) -> pd.DataFrame:
    """Read the oracle file and pseudonymise it.

    Args:
        path: ``asof.csv`` or the ``ground_truth`` folder (or the synthetic municipality's
            folder) holding it.
        key: The pseudonymisation key (``Settings.key_bytes()``).

    Returns:
        ``pupil_id``, ``as_of_date`` (date), ``p_true``; no CPR numbers.

    Raises:
        EvaluationError: When the file is missing or lacks a column.
    """
    from ews.pseudonym import pseudonymise_series

    candidates = [path, path / "asof.csv", path / "ground_truth" / "asof.csv"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise EvaluationError(f"{path}: no ground-truth file (expected asof.csv, e.g. data/synthetic/ground_truth)")
    frame = pd.read_csv(found, sep=";", dtype={"cpr": str})
    missing = sorted({"cpr", "as_of_date", "p_upv"} - set(frame.columns))
    if missing:
        raise EvaluationError(f"{found}: columns {missing} missing; expected cpr;term;as_of_date;grade;p_upv")
    ids = pseudonymise_series(frame["cpr"], key)["pupil_id"]
    return pd.DataFrame({
        "pupil_id": ids,
        "as_of_date": pd.to_datetime(frame["as_of_date"]).dt.date,
        "p_true": frame["p_upv"].astype(float),
    }).dropna(subset=["pupil_id"])


def run_evaluation(ground_truth: Path | None, term: str | None, state_dir: Path | None = None,
                   bootstrap: int | None = None) -> dict[str, Any]:
    """Evaluate the model of a term (default: the latest scored term) on its held-out cohorts.

    Args:
        ground_truth: The oracle file or folder; None leaves the oracle out.
        term: The term whose model to evaluate.
        state_dir: The state folder (default: from the settings).
        bootstrap: Bootstrap samples for the fairness intervals (default
            ``models.evaluation.FAIRNESS_BOOTSTRAP``).

    Returns:
        The evaluation (``models.evaluation.evaluate_model``).

    Raises:
        EvaluationError: When no model has scored a term yet.
    """
    from ews.config import load_config
    from ews.settings import get_settings
    from ews.warehouse import open_readonly
    from models.evaluation import FAIRNESS_BOOTSTRAP, evaluate_model
    from models.registry import latest_scored_model
    from models.training import load_bundle

    settings = get_settings()
    state = state_dir or settings.state_dir
    config = load_config(settings.resolved_config_path)
    truth = read_ground_truth(ground_truth, settings.key_bytes()) if ground_truth is not None else None
    with open_readonly(state) as con:
        found = latest_scored_model(con, term)
        if found is None:
            where = f"term {term}" if term else "any term"
            raise EvaluationError(f"no scored model for {where} in {state}; run 'ews run --term TERM' first")
        model_id, _ = found
        bundle = load_bundle(state / "models", model_id)
        if bundle.outcome_definition.split("@")[0] != "upv_ikke_uddannelsesparat" and truth is not None:
            err.print("[yellow]the ground truth is the UPV probability; the model's outcome is "
                      f"{bundle.outcome_definition}, so the oracle is left out[/]")
            truth = None
        n_boot = FAIRNESS_BOOTSTRAP if bootstrap is None else bootstrap
        return evaluate_model(con, config, bundle, ground_truth=truth, n_boot=n_boot)


def comparison_table(result: dict[str, Any], title: str) -> Table:
    """The model, the oracle and every baseline side by side."""
    table = Table(title=title, caption="P@cap / R@cap: precision / recall at each network's capacity")
    table.add_column("score", no_wrap=True)
    for header in HEADERS:
        table.add_column(header, justify="right")
    rows = [("model", result["model"])]
    if "oracle" in result:
        rows.append(("oracle", result["oracle"]))
    rows += [(name, entry) for name, entry in result["baselines"].items()]
    for name, entry in rows:
        table.add_row(name, *["–" if entry.get(m) is None else f"{entry[m]:.3f}" for m in METRICS])
    return table


def evaluate(
    ground_truth: Annotated[Path | None, typer.Option(
        "--ground-truth",
        help="The synthetic municipality's ground truth (asof.csv or its folder): adds the oracle")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
    term: Annotated[str | None, typer.Option(help="Term whose model to evaluate (default: the latest scored)")] = None,
    bootstrap: Annotated[int | None, typer.Option(
        help="Bootstrap samples for the fairness intervals (default 50; 0: none)", min=0)] = None,
) -> None:
    """Compare the model with the simple rules (and the true probability) on held-out cohorts.

    Every score is measured on the same pupils: the latest cohorts whose outcome is known,
    which the model never saw, in grades 5-8 before their outcome. Lists are as long as each
    network's capacity. Only this command reads a ground-truth file.
    """
    try:
        result = run_evaluation(ground_truth, term, bootstrap=bootstrap)
    except (EvaluationError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    if json_output:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return
    console = Console()
    console.print(comparison_table(
        result, f"Model {result['model_id']} ({result['outcome_definition']}), held-out cohorts "
                f"{', '.join(result['evaluation_cohorts'])}: {result['rows']} rows"))
    for grade, entry in result["per_grade"].items():
        console.print(comparison_table(entry, f"Grade {grade}"))
    checks = Table(title="Yardsticks")
    for column in ("check", "value", "limit", "passed"):
        checks.add_column(column)
    for name, check in result["checks"].items():
        checks.add_row(name, str(check["value"]), str(check["limit"]), "yes" if check["passed"] else "NO")
    console.print(checks)
    console.print(gate_table(result["gate"]))


def gate_table(gate: dict[str, Any]) -> Table:
    """The publication gate: the model's precision at capacity against each rule, with intervals."""
    figures = gate["figures"]
    precision = figures["precision_at_capacity"]
    verdict = "passed" if gate["passed"] else f"NOT passed ({'; '.join(gate['reasons'])})"
    calibration, constant = figures["calibration_error"], figures["constant_risk"]
    table = Table(title=f"Publication gate: {verdict}; published: {gate.get('published')}",
                  caption=f"difference = model minus rule, 95 % interval over {precision['bootstrap']} "
                          f"pupil bootstrap samples; calibration error {calibration['value']} "
                          f"(limit {calibration['limit']}); largest share of rows with one "
                          f"risk {constant['largest_share']} (limit {constant['limit']})")
    for column in ("rule", "P@cap rule", "P@cap model", "difference", "95 % interval"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for name, entry in precision["rules"].items():
        low, high = entry["difference_ci"]
        table.add_row(name + (" (best)" if name == gate.get("best_rule") else ""),
                      _number(entry["precision_at_capacity"]), _number(precision["model"]),
                      _number(entry["difference"]), f"{_number(low)} to {_number(high)}")
    return table


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
