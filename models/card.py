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
from models.baselines import RULE_BASELINES  # noqa: E402
from models.outcomes import outcome_definition  # noqa: E402
from models.risk_model import OWN_PROBABILITY, ModelBundle  # noqa: E402

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


CANDIDATE_LABELS_DA = {"logistic": "logistisk regression", "boosting": "gradient boosting (beslutningstræer)"}
#: A group's flag rate outside this band around the overall flag rate (the four-fifths rule and
#: its inverse) counts as skewed when its bootstrap interval also lies outside the overall rate.
FLAG_RATE_BAND = (0.8, 1.25)
PROTECTED_ATTRIBUTES = {"sex": "køn", "origin": "oprindelse"}


def _pct(value: float | None, digits: int = 0) -> str:
    return _da((value or 0) * 100, digits)


def fairness_findings(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Which groups of sex and origin the lists reach markedly more or less often than average.

    Measured on the fairness report (``models.fairness``): a group is skewed when its flag
    rate is outside :data:`FLAG_RATE_BAND` times the overall flag rate (rows-weighted over the
    shown groups) and its 95 % bootstrap interval does not include the overall rate.

    Args:
        evaluation: From ``models.evaluation.evaluate_model``.

    Returns:
        ``checked`` (attributes with shown groups), ``skewed`` (``attribute``, ``group``,
        ``flag_rate``, ``overall``), ``uncertain`` (outside the band but without an interval
        to tell, e.g. no bootstrap), ``suppressed`` (groups too small to show) and
        ``unavailable`` (attributes the sources lack).
    """
    findings: dict[str, Any] = {"checked": [], "skewed": [], "uncertain": [], "suppressed": 0, "unavailable": []}
    for attribute in PROTECTED_ATTRIBUTES:
        report = evaluation.get("fairness", {}).get(attribute)
        if not report or not report.get("available"):
            findings["unavailable"].append(attribute)
            continue
        groups = report.get("groups", {})
        findings["suppressed"] += sum(1 for g in groups.values() if g.get("suppressed"))
        shown = {name: g for name, g in groups.items() if not g.get("suppressed") and g.get("flag_rate") is not None}
        if not shown:
            continue
        findings["checked"].append(attribute)
        rows = sum(g["rows"] for g in shown.values())
        overall = sum(g["flag_rate"] * g["rows"] for g in shown.values()) / rows if rows else 0.0
        for name, group in shown.items():
            rate, interval = group["flag_rate"], group.get("flag_rate_ci") or [None, None]
            outside = rate < FLAG_RATE_BAND[0] * overall or rate > FLAG_RATE_BAND[1] * overall
            low, high = interval
            if overall <= 0 or not outside:
                continue
            finding = {"attribute": attribute, "group": name, "flag_rate": rate, "overall": round(overall, 4)}
            if low is None or high is None:
                findings["uncertain"].append(finding)
            elif overall < low or overall > high:
                findings["skewed"].append(finding)
    return findings


def _selection_sentence(bundle: ModelBundle) -> str | None:
    selection = bundle.selection or {}
    if not selection:
        return None
    winner = selection.get("candidates", {}).get(bundle.candidate, {})
    label = CANDIDATE_LABELS_DA.get(winner.get("kind", ""), bundle.candidate)
    if selection.get("pinned"):
        return f"Modeltypen ({label}, `{bundle.candidate}`) er fastlagt i konfigurationen."
    origins = [o for o in selection.get("origins", []) if "skipped" not in o]
    auc = (winner.get("mean") or {}).get("roc_auc")
    if not origins or auc is None:
        return (f"Modeltypen ({label}) er valgt uden afprøvning på tidligere årgange, fordi der var for få "
                "årgange med kendt udfald; den enkleste model er brugt.")
    cohorts = ", ".join(o["validation_cohort"] for o in origins)
    aucs = [(e.get("mean") or {}).get("roc_auc") for e in selection.get("candidates", {}).values()]
    best = max(a for a in aucs if a is not None)
    why = (f"gav den højeste gennemsnitlige ROC AUC ({_da(auc, 3)})" if auc >= best else
           f"lå med en gennemsnitlig ROC AUC på {_da(auc, 3)} så tæt på den bedste ({_da(best, 3)}), "
           "at den enklere model er valgt")
    return (f"Modeltypen er valgt blandt {len(selection.get('candidates', {}))} kandidater ved at træne på "
            f"ældre årgange og afprøve på de næste ({cohorts}), kun inden for træningsårgangene: "
            f"{label} (`{bundle.candidate}`) {why}.")


def _learnt_something(checks: dict[str, Any]) -> bool:
    """False when ``risk_varies`` or ``better_than_chance`` failed: then no other figure is a quality."""
    return all(checks.get(name, {}).get("passed", True) for name in ("risk_varies", "better_than_chance"))


def _rule_sentences(evaluation: dict[str, Any], checks: dict[str, Any]) -> list[str]:
    model = evaluation["model"]
    rules = {k: v for k, v in evaluation["baselines"].items() if k in RULE_BASELINES}
    rule_checks = {name: checks[f"beats_{name}"] for name in rules if f"beats_{name}" in checks}
    if not rule_checks:
        return []
    mine = _pct(model.get("precision_at_capacity"))
    failed = [name for name, check in rule_checks.items() if not check.get("passed")]
    if not failed and not _learnt_something(checks):
        return ["Modellens liste er kun fyldt efter en fast tilfældig rækkefølge blandt ens risici; at den "
                "ved samme listelængde rammer mindst lige så godt som de enkle regler, er held, ikke kvalitet."]
    if not failed:
        best = max(rule_checks, key=lambda n: rules[n].get("precision_at_capacity") or 0)
        label = BASELINE_LABELS.get(best, (best,))[0].lower()
        return [f"Ved samme listelængde rammer modellen bedre end hver af de enkle regler: {mine} % mod "
                f"{_pct(rules[best].get('precision_at_capacity'))} % for den bedste regel ({label})."]
    parts = [f"{BASELINE_LABELS.get(n, (n,))[0].lower()} {_pct(rules[n].get('precision_at_capacity'))} %"
             for n in failed]
    return [f"Modellen rammer ikke bedre end alle enkle regler ved samme listelængde: modellen {mine} %, "
            f"{', '.join(parts)}. Modellen er ikke bedre end den regel, den skulle erstatte."]


def _gate_sentence(gate: dict[str, Any] | None) -> str | None:
    if not gate:
        return None
    published = gate.get("published")
    reasons = "; ".join(str(r) for r in gate.get("reasons") or [])
    because = f" ({reasons})" if reasons else ""
    if gate.get("passed") and published == "model":
        return "Kontrollen før offentliggørelse er bestået, og listerne bygger på modellen."
    if published == "rule":
        return (f"Kontrollen før offentliggørelse er ikke bestået{because}; listerne bygger derfor på den "
                "bedste enkle regel, ikke på modellen.")
    if published == "none":
        return f"Kontrollen før offentliggørelse er ikke bestået{because}; der offentliggøres ingen liste."
    state = "bestået" if gate.get("passed") else "ikke bestået"
    return f"Kontrollen før offentliggørelse er {state}{because}; offentliggjort: {published}."


def _fairness_sentence(evaluation: dict[str, Any]) -> str:
    findings = fairness_findings(evaluation)
    names = " eller ".join(PROTECTED_ATTRIBUTES[a] for a in PROTECTED_ATTRIBUTES)
    if not findings["checked"]:
        return (f"Om listerne rammer skævt efter {names}, kunne ikke kontrolleres "
                "(for få elever eller ingen oplysninger).")
    if findings["skewed"]:
        parts = [f"{f['group']} ({PROTECTED_ATTRIBUTES[f['attribute']]}) {_pct(f['flag_rate'], 1)} %"
                 for f in findings["skewed"]]
        overall = _pct(findings["skewed"][0]["overall"], 1)
        return ("Listerne rammer skævt: " + ", ".join(parts) + f" kommer på listen mod {overall} % samlet "
                "(uden for 0,8-1,25 gange gennemsnittet). Det skal følges af dataansvarlig og netværk.")
    checked = " og ".join(PROTECTED_ATTRIBUTES[a] for a in findings["checked"])
    note = (f" {findings['suppressed']} små grupper kunne ikke vurderes." if findings["suppressed"] else "")
    if findings["uncertain"]:
        parts = [f"{f['group']} ({PROTECTED_ATTRIBUTES[f['attribute']]}) {_pct(f['flag_rate'], 1)} %"
                 for f in findings["uncertain"]]
        overall = _pct(findings["uncertain"][0]["overall"], 1)
        return ("Om listerne rammer skævt, kan ikke afgøres: " + ", ".join(parts) + f" kommer på listen mod "
                f"{overall} % samlet, men uden usikkerhedsmål (bootstrap) kan forskellen ikke vurderes." + note)
    return (f"Ingen gruppe efter {checked} kommer på listen markant oftere eller sjældnere end gennemsnittet "
            f"(inden for 0,8-1,25 gange, målt med usikkerhed).{note}")


def _danish_summary(bundle: ModelBundle, evaluation: dict[str, Any]) -> list[str]:
    """The Danish summary: every sentence about quality follows the check that measures it."""
    spec = outcome_definition(bundle.outcome_definition.split("@")[0])
    model = evaluation["model"]
    checks = evaluation.get("checks", {})
    lines = [
        f"Modellen vurderer risikoen for udfaldet *{spec.description_da.lower()}* "
        f"(definition `{bundle.outcome_definition}`) for elever i 5.-9. klasse.",
        f"Den er trænet på årgangene {bundle.split.training_window[0]}–{bundle.split.training_window[1]} "
        f"og afprøvet på de senere årgange {', '.join(bundle.split.evaluation_cohorts)}, som modellen "
        "ikke har set. Alle oplysninger er fra før skæringsdatoen.",
    ]
    chosen = _selection_sentence(bundle)
    if chosen:
        lines.append(chosen)
    varies, chance = checks.get("risk_varies"), checks.get("better_than_chance")
    if varies is not None and not varies.get("passed"):
        lines.append(
            "Advarsel: modellen har ikke lært noget brugbart: risikoen er næsten den samme for alle elever "
            f"(spredning {_pct(varies.get('value'))} % af den størst mulige, grænse "
            f"{_pct(varies.get('limit'))} %). En liste efter denne model er ikke bedre end en tilfældig rækkefølge.")
    elif chance is not None and not chance.get("passed"):
        lines.append(
            "Advarsel: modellen har ikke lært noget brugbart: på de afprøvede årgange rangerer den ikke "
            "sikkert bedre end tilfældigt (ROC AUC's nedre grænse "
            f"{_da(chance.get('value'))}, skal være over 0,50).")
    lines.append(
        f"På de afprøvede årgange er ROC AUC {_da(model.get('roc_auc'))}, og af de elever, netværkene "
        f"har plads til at drøfte, har {_pct(model.get('precision_at_capacity'))} % senere fået udfaldet.")
    lines += _rule_sentences(evaluation, checks)
    if (bundle.selection or {}).get("rule_beats_learned"):
        rule = bundle.selection.get("best_rule")
        label = BASELINE_LABELS.get(rule, (rule,))[0].lower()
        lines.append(f"Allerede på træningsårgangene ramte en enkel regel ({label}) bedre end alle de "
                     "afprøvede modeller ved samme listelængde.")
    calibration = checks.get("calibration_error")
    if calibration is not None:
        gap = _da((model.get("calibration_error") or 0) * 100, 1)
        limit = _da((calibration.get("limit") or 0) * 100, 0)
        if calibration.get("passed") and not _learnt_something(checks):
            lines.append(f"Den gennemsnitlige afvigelse mellem forudsagt og observeret andel er {gap} procentpoint, "
                         "men når risikoen er den samme for alle, siger det intet om den enkelte elev.")
        elif calibration.get("passed"):
            lines.append(f"Risikoen er kalibreret: den gennemsnitlige afvigelse mellem forudsagt og observeret "
                         f"andel er {gap} procentpoint (grænse {limit}).")
        else:
            lines.append(f"Risikoen er ikke kalibreret: den gennemsnitlige afvigelse mellem forudsagt og "
                         f"observeret andel er {gap} procentpoint, over grænsen på {limit}. Læs risikoen som en "
                         "rækkefølge, ikke som en sandsynlighed.")
    if bundle.calibration == OWN_PROBABILITY:
        lines.append("Der var for få elever med (eller uden) udfaldet til den sædvanlige kalibrering "
                     "(Platt-skalering på krydsvalidering); risikoen er modellens egen sandsynlighed.")
    gate = _gate_sentence(evaluation.get("gate"))
    if gate:
        lines.append(gate)
    lines.append(_fairness_sentence(evaluation))
    lines.append(
        "Køn og oprindelse indgår ikke i modellen; de bruges kun til at kontrollere, om listerne rammer "
        "skævt. En markering er et signal til faglig drøftelse, aldrig en afgørelse om et barn.")
    return lines


def model_description(bundle: ModelBundle) -> str:
    """One English paragraph on what the model is and how its risk is calibrated."""
    params = json.dumps((bundle.selection or {}).get("candidates", {}).get(bundle.candidate, {}).get("params", {}),
                        sort_keys=True)
    if bundle.candidate.startswith("logistic"):
        what = (f"Regularised logistic regression (`{bundle.candidate}`, parameters `{params}`): median "
                "imputation with a missing indicator per feature, standardised inputs, L2 penalty.")
    else:
        what = (f"Gradient-boosted trees (`{bundle.candidate or 'boosting'}`, `HistGradientBoostingClassifier`, "
                f"parameters `{params}` with a leaf's least share of the fitted rows, fixed settings "
                f"`{json.dumps(bundle.model_config.get('boosting', {}), sort_keys=True)}`), monotone where the "
                "direction is known, missing values kept as missing.")
    if bundle.calibration == OWN_PROBABILITY:
        how = ("The training rows had too few outcomes (or non-outcomes) per fold for cross-validated Platt "
               "scaling, so the risk is the model's own probability (its logistic loss fit), not recalibrated.")
    else:
        how = ("Probabilities calibrated with Platt scaling (`CalibratedClassifierCV`, sigmoid, 3 folds that "
               "keep a pupil's rows together): the sigmoid is fitted on predictions for pupils the model was "
               "not fitted on.")
    return f"{what} {how}"


def selection_rows(bundle: ModelBundle) -> list[dict[str, str]]:
    """One row per candidate and rule: mean validation figures and AUC per origin."""
    selection = bundle.selection or {}
    origins = [o["validation_cohort"] for o in selection.get("origins", []) if "skipped" not in o]
    rows = []
    entries = [(name, e, False) for name, e in selection.get("candidates", {}).items()]
    entries += [(name, e, True) for name, e in selection.get("rules", {}).items()]
    for name, entry, is_rule in entries:
        per_origin = {o["validation_cohort"]: o.get("roc_auc") for o in entry.get("per_origin", [])}
        mean = entry.get("mean", {})
        label = " / ".join(BASELINE_LABELS[name]) if is_rule and name in BASELINE_LABELS else name
        rows.append({
            "name": label + (" (chosen)" if name == selection.get("winner") else ""),
            "roc_auc": _number(mean.get("roc_auc")), "average_precision": _number(mean.get("average_precision")),
            "precision_at_capacity": _number(mean.get("precision_at_capacity")),
            "per_origin": ", ".join(f"{c}: {_number(per_origin.get(c))}" for c in origins),
        })
    return rows


def _metric_rows(entry: dict[str, Any]) -> list[dict[str, str]]:
    def cells(metrics: dict[str, Any]) -> dict[str, str]:
        return {m: _number(metrics.get(m)) for m in METRIC_LABELS}

    rows = [{"name": "Model", **cells(entry["model"])}]
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
        "model_description": model_description(bundle),
        "selection": bundle.selection or {},
        "selection_rows": selection_rows(bundle),
        "gate": evaluation.get("gate"),
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


def restate_gate(bundle: ModelBundle, gate: dict[str, Any]) -> dict[str, Path]:
    """Record the publication gate's decision in the model's metrics and rewrite its card.

    The card is first written when the model is trained, before any gate has looked at it;
    the publication gate (``models.gate``) calls this with its decision so that the card states
    what was published and why.

    Args:
        bundle: The model (with ``metrics`` and ``card_paths``).
        gate: ``passed``, ``published`` (``model``, ``rule`` or ``none``) and ``reasons``.

    Returns:
        The rewritten ``markdown`` and ``html`` paths (beside the existing card).
    """
    bundle.metrics["gate"] = dict(gate)
    folder = Path(bundle.card_paths["markdown"]).parent
    paths = write_model_card(bundle, bundle.metrics, folder)
    bundle.card_paths = {k: str(v) for k, v in paths.items()}
    return paths


def _num(value: Any) -> str:
    """A figure with three decimals; missing (None or NaN) as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{float(value):.3f}"


def _interval(row: dict[str, Any], metric: str) -> str:
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or high is None or (isinstance(low, float) and low != low):
        return "no interval (too few pupils)"
    return f"{_num(low)}–{_num(high)}"


def _verdict(row: dict[str, Any], metric: str) -> str:
    promised = row.get(f"promised_{metric}")
    if not row.get("own_definition"):
        return "bridge: another outcome, not judged"
    if promised is None or (isinstance(promised, float) and promised != promised):
        return "nothing promised for these pupils"
    high = row.get(f"{metric}_high")
    if high is None or (isinstance(high, float) and high != high):
        return "not judged (too few pupils)"
    dropped = str(row.get("dropped") or "").split(",")
    return ("**a drop beyond the sampling error of both figures**" if metric in dropped
            else "within the sampling error of both figures")


def outcome_section_markdown(evaluation: Any, descriptive: Any | None = None, note: str | None = None) -> str:
    """The model-card section "Outcomes as they arrived" for every evaluated model (Markdown).

    Args:
        evaluation: Rows of ``models.prospective.evaluate_earlier_models`` (a DataFrame).
        descriptive: Rows of ``flags.outcomes.flag_outcomes`` (a DataFrame), or None.
        note: The sentence that says the descriptive comparison is no effect (Danish).

    Returns:
        Markdown: per model and scored term, the prospective figures beside what the card
        promised, with each verdict generated from the interval; then the descriptive counts.
    """
    lines = ["## Outcomes as they arrived (prospective evaluation)", "",
             "Each earlier model on the pupils it scored back then, with the outcomes assessed after the scoring. "
             "*Promised* is the held-out figure of the model's card; the interval is the 95 % bootstrap interval "
             "of the prospective figure (pupils resampled); a drop counts when the promise exceeds the figure by "
             "more than 1.96 standard errors of the difference (the interval's and the promise's own). A bridge "
             "row measures the model on another outcome definition than it was trained on (across the 2024/25 "
             "break) and is not judged.", ""]
    if evaluation is None or len(evaluation) == 0:
        return "\n".join([*lines, "No outcome of a scored pupil has arrived yet.", ""])
    records = evaluation.sort_values(["model_id", "scored_term", "outcome_definition", "grade"],
                                     na_position="first").to_dict("records")
    for (model_id, scored_term), group in _grouped(records, ("model_id", "scored_term")):
        first = group[0]
        lines += [f"### Model `{model_id}` (trained for {first['model_term']} on {first['model_outcome']}), "
                  f"scored {scored_term}", "",
                  "| outcome | grade at scoring | pupils | adverse | ROC AUC (95 % interval) | promised | verdict "
                  "| precision at capacity (interval) | promised | verdict | calibration error (promised) |",
                  "|---|---|---:|---:|---|---:|---|---|---:|---|---|"]
        for row in group:
            grade = "all" if row["grade"] is None or row["grade"] != row["grade"] else str(int(row["grade"]))
            lines.append(
                f"| {row['outcome_definition']}{'' if row['own_definition'] else ' (bridge)'} | {grade} | "
                f"{row['pupils']} | {row['positives']} | {_num(row['roc_auc'])} ({_interval(row, 'roc_auc')}) | "
                f"{_num(row.get('promised_roc_auc'))} | {_verdict(row, 'roc_auc')} | "
                f"{_num(row['precision_at_capacity'])} ({_interval(row, 'precision_at_capacity')}) | "
                f"{_num(row.get('promised_precision_at_capacity'))} | {_verdict(row, 'precision_at_capacity')} | "
                f"{_num(row['calibration_error'])} ({_num(row.get('promised_calibration_error'))}) |")
        lines.append("")
    if descriptive is not None and len(descriptive):
        lines += ["### Flagged and unflagged, confirmed and dismissed pupils (descriptive)", ""]
        if note:
            lines += [f"*{note}*", ""]
        lines += ["| scored term | list | outcome | group | pupils | adverse | share |",
                  "|---|---|---|---|---:|---:|---:|"]
        for row in descriptive.to_dict("records"):
            lines.append(f"| {row['scored_term']} | {row.get('list_basis') or ''} | {row['outcome_definition']} | "
                         f"{row['pupil_group']} | {row['pupils']} | {row['adverse']} | {_num(row['share'])} |")
        lines.append("")
    return "\n".join(lines)


def _grouped(records: list[dict[str, Any]], keys: tuple[str, ...]
             ) -> list[tuple[tuple[Any, ...], list[dict[str, Any]]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(tuple(record[k] for k in keys), []).append(record)
    return list(groups.items())


def write_outcome_section(evaluation: Any, descriptive: Any, path: Path, note: str | None = None) -> Path:
    """Write :func:`outcome_section_markdown` to ``path`` (the run's ``model_card_outcomes.md``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(outcome_section_markdown(evaluation, descriptive, note), encoding="utf-8")
    return path
