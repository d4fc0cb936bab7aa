"""Model cards: one Markdown and one self-contained HTML file per trained model.

The card opens with a Danish summary for networks, UU consultants and data stewards, then
documents (in English) the outcome, the temporal design, the metrics of the model against
every baseline per grade, calibration and fairness, with plots embedded as base64 PNG (no
external resources). Cards contain aggregates only: no pupil appears in them.
"""

from __future__ import annotations

import base64
import io
import json
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from features.catalogue import FAMILIES, feature_spec  # noqa: E402
from models.outcomes import outcome_definition  # noqa: E402
from models.risk_model import ModelBundle  # noqa: E402

BASELINE_LABELS = {
    "fravaer_over_10pct": ("Fravær over 10 %", "Absence above 10 %"),
    "abc_regel": ("ABC-regel", "ABC-style rule"),
    "kun_skole": ("Kun skole", "School only"),
    "logistisk_regression": ("Logistisk regression", "Logistic regression"),
}
METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "average_precision": "Average precision",
    "brier": "Brier score",
    "calibration_error": "Calibration error",
    "precision_at_capacity": "Precision at capacity",
    "recall_at_capacity": "Recall at capacity",
}
ATTRIBUTE_LABELS = {"sex": "køn / sex", "area": "område / area", "school_code": "skole / school",
                    "origin": "oprindelse / origin"}


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def _da(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}".replace(".", ",")


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def calibration_plot(evaluation: dict[str, Any]) -> bytes:
    """Observed rate against mean predicted risk per bin, with the diagonal."""
    points = evaluation.get("calibration_curve", [])
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    axis.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfekt / perfect")
    if points:
        axis.plot([p["predicted"] for p in points], [p["observed"] for p in points], marker="o",
                  color="#1f5f8b", label="model")
    axis.set_xlabel("Forudsagt risiko / predicted risk")
    axis.set_ylabel("Observeret andel / observed rate")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title("Kalibrering / calibration", fontsize=10)
    return _png(figure)


def precision_plot(evaluation: dict[str, Any]) -> bytes:
    """Precision at each network's capacity per grade: model, oracle and baselines."""
    grades = sorted(evaluation.get("per_grade", {}), key=int)
    names = ["model"] + (["oracle"] if "oracle" in evaluation else []) + list(evaluation["baselines"])
    figure, axis = plt.subplots(figsize=(7.2, 3.8))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = []
        for grade in grades:
            entry = evaluation["per_grade"][grade]
            metrics = entry.get(name) if name in ("model", "oracle") else entry["baselines"].get(name)
            values.append((metrics or {}).get("precision_at_capacity") or 0.0)
        label = BASELINE_LABELS.get(name, (name, name))[0]
        axis.bar([g + (i - (len(names) - 1) / 2) * width for g in range(len(grades))], values, width,
                 label=label)
    axis.set_xticks(range(len(grades)), [f"{g}. klasse" for g in grades])
    axis.set_ylabel("Præcision ved kapacitet / precision")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7, ncol=3, loc="upper left")
    axis.set_title("Præcision på listen pr. klassetrin / precision at capacity per grade", fontsize=10)
    return _png(figure)


def fairness_plot(evaluation: dict[str, Any], attribute: str) -> bytes | None:
    """Flag rate and precision per group with 95 % intervals (suppressed groups left out)."""
    report = evaluation.get("fairness", {}).get(attribute, {})
    groups = {g: e for g, e in report.get("groups", {}).items() if not e.get("suppressed")}
    if not groups:
        return None
    labels = list(groups)
    figure, axes = plt.subplots(1, 2, figsize=(7.2, max(1.6, 0.32 * len(labels) + 1.0)), sharey=True)
    for axis, metric, title in ((axes[0], "flag_rate", "Andel på listen / flag rate"),
                                (axes[1], "precision", "Præcision / precision")):
        values = [groups[g].get(metric) or 0.0 for g in labels]
        intervals = [groups[g].get(f"{metric}_ci") or [None, None] for g in labels]
        low = [max(v - (ci[0] if ci[0] is not None else v), 0) for v, ci in zip(values, intervals, strict=True)]
        high = [max((ci[1] if ci[1] is not None else v) - v, 0) for v, ci in zip(values, intervals, strict=True)]
        axis.barh(range(len(labels)), values, xerr=[low, high], color="#6b8fb3", capsize=2)
        axis.set_title(title, fontsize=9)
        axis.set_xlim(0, 1)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
    figure.suptitle(ATTRIBUTE_LABELS.get(attribute, attribute), fontsize=10)
    return _png(figure)


def _danish_summary(bundle: ModelBundle, evaluation: dict[str, Any]) -> list[str]:
    spec = outcome_definition(bundle.outcome_definition.split("@")[0])
    model = evaluation["model"]
    rules = {k: v for k, v in evaluation["baselines"].items() if k != "logistisk_regression"}
    best_rule = max(rules.items(), key=lambda kv: kv[1].get("precision_at_capacity") or 0) if rules else None
    lines = [
        f"Modellen vurderer risikoen for udfaldet *{spec.description_da.lower()}* "
        f"(definition `{bundle.outcome_definition}`) for elever i 5.-9. klasse.",
        f"Den er trænet på årgangene {bundle.split.training_window[0]}–{bundle.split.training_window[1]} "
        f"og afprøvet på de senere årgange {', '.join(bundle.split.evaluation_cohorts)}, som modellen "
        "ikke har set. Alle oplysninger er fra før skæringsdatoen.",
        f"På de afprøvede årgange er ROC AUC {_da(model.get('roc_auc'))}, og af de elever, netværkene "
        f"har plads til at drøfte, har {_da((model.get('precision_at_capacity') or 0) * 100, 0)} % "
        "senere fået udfaldet.",
    ]
    if best_rule is not None:
        label = BASELINE_LABELS.get(best_rule[0], (best_rule[0],))[0]
        share = _da((best_rule[1].get("precision_at_capacity") or 0) * 100, 0)
        lines.append(f"Den bedste enkle regel ({label.lower()}) rammer {share} % ved samme listelængde.")
    lines.append(
        f"Risikoen er kalibreret: den gennemsnitlige afvigelse mellem forudsagt og observeret andel er "
        f"{_da((model.get('calibration_error') or 0) * 100, 1)} procentpoint.")
    lines.append(
        "Køn og oprindelse indgår ikke i modellen; de bruges kun til at kontrollere, at listerne ikke "
        "rammer skævt. En markering er et signal til faglig drøftelse, aldrig en afgørelse om et barn.")
    return lines


def _metric_rows(entry: dict[str, Any]) -> list[dict[str, str]]:
    def cells(metrics: dict[str, Any]) -> dict[str, str]:
        return {m: _number(metrics.get(m)) for m in METRIC_LABELS}

    rows = [{"name": "Model (kalibreret / calibrated)", **cells(entry["model"])}]
    if "oracle" in entry:
        rows.append({"name": "Oracle (true probability)", **cells(entry["oracle"])})
    for name, metrics in entry["baselines"].items():
        label = " / ".join(BASELINE_LABELS.get(name, (name, name)))
        rows.append({"name": label, **{m: _number(metrics.get(m)) for m in METRIC_LABELS}})
    return rows


def card_context(bundle: ModelBundle, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Everything the card templates show."""
    spec = outcome_definition(bundle.outcome_definition.split("@")[0])
    families: dict[str, int] = {}
    for name in bundle.feature_names:
        family = feature_spec(name).family
        families[family] = families.get(family, 0) + 1
    fairness_rows = []
    for attribute, report in evaluation.get("fairness", {}).items():
        if not report.get("available"):
            fairness_rows.append({"attribute": ATTRIBUTE_LABELS.get(attribute, attribute), "group": "–",
                                  "note": "not provided by the sources"})
            continue
        for group, entry in report["groups"].items():
            row = {"attribute": ATTRIBUTE_LABELS.get(attribute, attribute), "group": group,
                   "pupils": entry["pupils"], "note": "suppressed (small group)" if entry["suppressed"] else ""}
            for metric in ("flag_rate", "precision", "recall", "false_positive_rate", "calibration_gap"):
                value, ci = entry.get(metric), entry.get(f"{metric}_ci")
                row[metric] = ("–" if value is None else
                               f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else ""))
            fairness_rows.append(row)
    return {
        "model_id": bundle.model_id,
        "summary_da": _danish_summary(bundle, evaluation),
        "outcome": spec,
        "outcome_versioned": bundle.outcome_definition,
        "split": bundle.split,
        "code_version": bundle.code_version,
        "data_snapshot": bundle.training_digest[:16],
        "feature_count": len(bundle.feature_names),
        "families": [(FAMILIES[f][1], f, n) for f, n in families.items()],
        "metric_labels": METRIC_LABELS,
        "overall": _metric_rows(evaluation),
        "per_grade": [(grade, _metric_rows(entry)) for grade, entry in
                      sorted(evaluation.get("per_grade", {}).items(), key=lambda kv: int(kv[0]))],
        "rows": evaluation.get("rows"),
        "pupils": evaluation.get("pupils"),
        "positives": evaluation.get("positives"),
        "checks": evaluation.get("checks", {}),
        "fairness_rows": fairness_rows,
        "boosting": json.dumps(bundle.model_config.get("boosting", {}), sort_keys=True),
        "calibration": json.dumps(bundle.model_config.get("calibration", {}), sort_keys=True),
    }


def _environment(html: bool) -> Environment:
    return Environment(autoescape=select_autoescape(default_for_string=html, default=html),
                       trim_blocks=True, lstrip_blocks=True)


def _template(name: str) -> str:
    return resources.files("models").joinpath(name).read_text(encoding="utf-8")


def write_model_card(bundle: ModelBundle, evaluation: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``card.md``, ``card.html`` and the plots (PNG) of a model.

    Args:
        bundle: The trained model.
        evaluation: From ``models.evaluation.evaluate_model``.
        out_dir: Folder (``models_dir/<model_id>``).

    Returns:
        ``markdown`` and ``html`` paths.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {"calibration": calibration_plot(evaluation), "precision": precision_plot(evaluation)}
    for attribute in ("sex", "area", "origin", "school_code"):
        image = fairness_plot(evaluation, attribute)
        if image is not None:
            plots[f"fairness_{attribute}"] = image
    for name, image in plots.items():
        (out_dir / f"{name}.png").write_bytes(image)
    context = card_context(bundle, evaluation)
    markdown = _environment(html=False).from_string(_template("card_template.md")).render(
        **context, images={k: f"{k}.png" for k in plots})
    html = _environment(html=True).from_string(_template("card_template.html")).render(
        **context, images={k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in plots.items()})
    paths = {"markdown": out_dir / "card.md", "html": out_dir / "card.html"}
    paths["markdown"].write_text(markdown, encoding="utf-8")
    paths["html"].write_text(html, encoding="utf-8")
    return paths
