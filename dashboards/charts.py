"""Charts as inline SVG, labelled in Danish (no JavaScript, no CDN).

Each chart is an ``<svg role="img">`` with a title and a description; the pages also show the
numbers in a table, so that a screen reader or a printout loses nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from ews.formats import number_da

INCREASE = "#b2182b"
DECREASE = "#2166ac"
NEUTRAL = "#4d4d4d"
GRID = "#d9d9d9"


def fmt_number(value: float | None, decimals: int = 1) -> str:
    """A number the Danish way (``1.234,5``: ``ews.formats.number_da``, as in every file and report)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return number_da(value, decimals)


def fmt_signed(value: float, decimals: int = 2) -> str:
    """A signed number the Danish way (``+0,42``, ``−0,13``)."""
    return ("+" if value >= 0 else "\u2212") + fmt_number(abs(value), decimals)


def fmt_pct(value: float | None, decimals: int = 0) -> str:
    """A share (0-1) as a Danish percentage (``42 %``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{fmt_number(100 * value, decimals)} %"


def percent_axis_top(largest: float) -> float:
    """The top of a percentage axis: the next whole 10 % above the largest value, at most 100 %.

    Args:
        largest: The largest share shown (0-1).

    Returns:
        A share between 0.1 and 1.0 (a risk axis never runs past 100 %).
    """
    return min(1.0, max(0.1, math.ceil(round(largest * 1.05, 6) * 10) / 10))


def _logistic(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class WaterfallStep:
    """One bar of the waterfall: a feature's (or a group's) contribution."""

    label: str
    value_text: str
    contribution: float


def _text(x: float, y: float, content: str, anchor: str = "start", size: int = 13,
          weight: str = "normal", fill: str = "#1a1a1a") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'font-weight="{weight}" fill="{fill}">{escape(content)}</text>')


def _svg(width: int, height: int, title: str, description: str, body: list[str], chart_id: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" class="chart" '
        f'font-family="system-ui, -apple-system, \'Segoe UI\', sans-serif">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")



def _waterfall_scale(base_value: float, steps: Sequence[Any]) -> tuple[list[float], float, float]:
    """The running totals of a waterfall and its axis's ends (padded by 8 %, at least 0.25)."""
    cumulative = [base_value]
    for step in steps:
        cumulative.append(cumulative[-1] + step.contribution)
    low, high = min(cumulative), max(cumulative)
    pad = max((high - low) * 0.08, 0.25)
    return cumulative, low - pad, high + pad

def waterfall_svg(base_value: float, steps: list[WaterfallStep], chart_id: str = "waterfall") -> Markup:
    """A SHAP waterfall: from the average pupil's log-odds, each factor's push up or down.

    Args:
        base_value: The explained model's expected log-odds (SHAP base value).
        steps: Contributions in the order to draw them (largest first); a last step may
            group the remaining factors.
        chart_id: Id prefix for the title and description elements.

    Returns:
        The chart. The axis is labelled in probabilities on the model's log-odds scale.
    """
    label_width, plot_width, value_width = 400, 330, 70
    width = label_width + plot_width + value_width
    row = 28
    top = 34
    height = top + row * (len(steps) + 2) + 46
    cumulative, low, high = _waterfall_scale(base_value, steps)
    final = cumulative[-1]

    def x_of(value: float) -> float:
        return label_width + (value - low) / (high - low) * plot_width

    body: list[str] = []
    body.append(f'<rect x="{label_width}" y="7" width="12" height="12" fill="{INCREASE}"/>')
    body.append(_text(label_width + 17, 18, "øger risikoen", size=12))
    body.append(f'<rect x="{label_width + 130}" y="7" width="12" height="12" fill="{DECREASE}"/>')
    body.append(_text(label_width + 147, 18, "mindsker risikoen", size=12))
    # Probability ticks on the log-odds axis.
    axis_y = top + row * (len(steps) + 2) + 6
    for p, x in _probability_ticks(low, high, x_of):
        body.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{axis_y}" stroke="{GRID}" '
                    'stroke-width="1"/>')
        body.append(_text(x, axis_y + 15, fmt_pct(p), anchor="middle", size=11, fill=NEUTRAL))
    body.append(_text(label_width + plot_width / 2, axis_y + 32,
                      "Modellens vurdering (før justering)", anchor="middle", size=11,
                      fill=NEUTRAL))

    def marker_row(index: int, label: str, value: float, note: str) -> None:
        y = top + row * index
        body.append(_text(label_width - 10, y + 18, label, anchor="end", weight="bold"))
        x = x_of(value)
        body.append(f'<line x1="{x:.1f}" y1="{y + 4}" x2="{x:.1f}" y2="{y + row - 4}" stroke="{NEUTRAL}" '
                    'stroke-width="3"/>')
        body.append(_text(width - 4, y + 18, note, anchor="end", weight="bold"))

    marker_row(0, "Udgangspunkt: gennemsnitlig elev", base_value, fmt_pct(_logistic(base_value)))
    for index, step in enumerate(steps, start=1):
        y = top + row * index
        start, end = cumulative[index - 1], cumulative[index]
        x0, x1 = sorted((x_of(start), x_of(end)))
        colour = INCREASE if step.contribution >= 0 else DECREASE
        label = step.label if len(step.label) <= 58 else step.label[:57] + "…"
        body.append(_text(label_width - 10, y + 13, label, anchor="end", size=12))
        if step.value_text:
            body.append(_text(label_width - 10, y + 25, step.value_text, anchor="end", size=10, fill=NEUTRAL))
        body.append(f'<rect x="{x0:.1f}" y="{y + 5}" width="{max(x1 - x0, 1.5):.1f}" height="{row - 10}" '
                    f'fill="{colour}"><title>{escape(step.label)}: {escape(fmt_signed(step.contribution))}'
                    '</title></rect>')
        body.append(_text(width - 4, y + 18, fmt_signed(step.contribution), anchor="end", size=12, fill=colour))
        if index < len(steps):
            x = x_of(end)
            body.append(f'<line x1="{x:.1f}" y1="{y + row - 5}" x2="{x:.1f}" y2="{y + row + 5}" '
                        f'stroke="{NEUTRAL}" stroke-width="1" stroke-dasharray="2 2"/>')
    marker_row(len(steps) + 1, "Modellens samlede vurdering", final, fmt_pct(_logistic(final)))
    description = (
        f"Vandfaldsdiagram. Udgangspunktet for en gennemsnitlig elev er {fmt_pct(_logistic(base_value))}. "
        + " ".join(f"{s.label}: {fmt_signed(s.contribution)}." for s in steps)
        + f" Samlet: {fmt_pct(_logistic(final))} før justering."
    )
    return _svg(width, height, "Hvad trækker risikoen op og ned", description, body, chart_id)


def _probability_ticks(low: float, high: float, x_of: Any, min_gap: float = 34) -> list[tuple[float, float]]:
    """Probability ticks on a log-odds axis from ``low`` to ``high``, at least ``min_gap`` apart."""
    ticks: list[tuple[float, float]] = []
    for p in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
        value = _logit(p)
        if low <= value <= high:
            x = x_of(value)
            if not ticks or x - ticks[-1][1] >= min_gap:
                ticks.append((p, x))
    return ticks


def waterfall_narrow_svg(base_value: float, steps: list[WaterfallStep], chart_id: str = "waterfall-narrow") -> Markup:
    """The waterfall for a phone: each factor's name on its own line above its bar.

    Drawn 360 units wide, so on a 390 px screen its text is shown at about its own size.

    Args:
        base_value: The explained model's expected log-odds (SHAP base value).
        steps: Contributions in the order to draw them (largest first).
        chart_id: Id prefix for the title and description elements.

    Returns:
        The chart.
    """
    width, left, plot_width, row, top = 360, 6, 290, 40, 30
    height = top + row * (len(steps) + 2) + 40
    cumulative, low, high = _waterfall_scale(base_value, steps)
    final = cumulative[-1]

    def x_of(value: float) -> float:
        return left + (value - low) / (high - low) * plot_width

    body = [f'<rect x="{left}" y="6" width="12" height="12" fill="{INCREASE}"/>',
            _text(left + 17, 17, "øger risikoen", size=12),
            f'<rect x="{left + 130}" y="6" width="12" height="12" fill="{DECREASE}"/>',
            _text(left + 147, 17, "mindsker risikoen", size=12)]
    axis_y = top + row * (len(steps) + 2)
    for p, x in _probability_ticks(low, high, x_of, min_gap=40):
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="{GRID}" stroke-width="1"/>')
        body.append(_text(x, axis_y + 14, fmt_pct(p), anchor="middle", size=11, fill=NEUTRAL))
    body.append(_text(left, axis_y + 32, "Modellens vurdering (før justering)", size=11, fill=NEUTRAL))

    def marker(index: int, label: str, value: float) -> None:
        y = top + row * index
        body.append(_text(left, y + 13, f"{label}: {fmt_pct(_logistic(value))}", weight="bold", size=12))
        x = x_of(value)
        body.append(f'<line x1="{x:.1f}" y1="{y + 18}" x2="{x:.1f}" y2="{y + 34}" stroke="{NEUTRAL}" '
                    'stroke-width="3"/>')

    marker(0, "Gennemsnitlig elev", base_value)
    for index, step in enumerate(steps, start=1):
        y = top + row * index
        label = step.label if len(step.label) <= 44 else step.label[:43] + "…"
        body.append(_text(left, y + 13, label, size=12))
        x0, x1 = sorted((x_of(cumulative[index - 1]), x_of(cumulative[index])))
        colour = INCREASE if step.contribution >= 0 else DECREASE
        body.append(f'<rect x="{x0:.1f}" y="{y + 19}" width="{max(x1 - x0, 1.5):.1f}" height="14" fill="{colour}">'
                    f'<title>{escape(step.label)}: {escape(fmt_signed(step.contribution))}</title></rect>')
        body.append(_text(width - 2, y + 31, fmt_signed(step.contribution), anchor="end", size=12, fill=colour))
    marker(len(steps) + 1, "Samlet for eleven", final)
    description = (
        f"Vandfaldsdiagram. Udgangspunktet for en gennemsnitlig elev er {fmt_pct(_logistic(base_value))}. "
        + " ".join(f"{s.label}: {fmt_signed(s.contribution)}." for s in steps)
        + f" Samlet: {fmt_pct(_logistic(final))} før justering."
    )
    return _svg(width, height, "Hvad trækker risikoen op og ned", description, body, chart_id)


def trajectory_svg(
    terms: list[str],
    risks: list[float | None],
    flagged: list[bool],
    tiers: list[tuple[str, float]],
    chart_id: str = "trajectory",
    width: int = 720,
) -> Markup:
    """The pupil's risk over terms, with the tier thresholds as dashed lines.

    Args:
        terms: Term labels, oldest first.
        risks: Calibrated risk per term (None where the pupil was not scored).
        flagged: Whether the pupil was on the flag list that term.
        tiers: (name, lower threshold) of each tier.
        chart_id: Id prefix for the title and description.
        width: The drawing's width; 360 gives a phone's version, whose text stays legible
            (about 11 px) because the drawing is shown at about its own width.

    Returns:
        The chart.
    """
    height = 260
    left, right, top, bottom = (56, 110, 16, 52) if width >= 600 else (44, 104, 16, 52)
    label_every = max(1, math.ceil(len(terms) / max(1, (width - left - right) // 80)))
    plot_w, plot_h = width - left - right, height - top - bottom
    known = [r for r in risks if r is not None]
    y_max = percent_axis_top(max([0.5, *known])) if known else 1.0

    def x_of(index: int) -> float:
        return left + (plot_w / 2 if len(terms) == 1 else index * plot_w / (len(terms) - 1))

    def y_of(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    body: list[str] = []
    for fraction in (0, 0.25, 0.5, 0.75, 1.0):
        value = fraction * y_max
        y = y_of(value)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y + 4, fmt_pct(value), anchor="end", size=11, fill=NEUTRAL))
    for name, threshold in tiers:
        if 0 < threshold <= y_max:
            y = y_of(threshold)
            body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{NEUTRAL}" '
                        'stroke-dasharray="5 4"/>')
            body.append(_text(left + plot_w + 6, y + 4, f"{name} ({fmt_pct(threshold)})", size=11, fill=NEUTRAL))
    points = [(x_of(i), y_of(r)) for i, r in enumerate(risks) if r is not None]
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{INCREASE}" stroke-width="2.5"/>')
    for index, (term, risk) in enumerate(zip(terms, risks, strict=True)):
        x = x_of(index)
        if index % label_every == 0 or index == len(terms) - 1:
            body.append(_text(x, height - bottom + 18, term, anchor="middle", size=11, fill=NEUTRAL))
        if risk is None:
            continue
        y = y_of(risk)
        if flagged[index]:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{INCREASE}"><title>{escape(term)}: '
                        f'{escape(fmt_pct(risk))}, på listen</title></circle>')
        else:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#ffffff" stroke="{INCREASE}" '
                        f'stroke-width="2"><title>{escape(term)}: {escape(fmt_pct(risk))}</title></circle>')
    body.append(_text(left if width >= 600 else 4, height - 8, "Fyldt punkt: på netværkets liste den termin",
                      size=11, fill=NEUTRAL))
    description = "Risiko over terminer. " + " ".join(
        f"{t}: {fmt_pct(r) if r is not None else 'ingen vurdering'}{' (på listen)' if f else ''}."
        for t, r, f in zip(terms, risks, flagged, strict=True))
    return _svg(width, height, "Risikoens udvikling over terminer", description, body, chart_id)


def histogram_svg(counts: list[int], title: str, chart_id: str = "histogram") -> Markup:
    """Pupils per equal-width risk bin from 0 to 1.

    Args:
        counts: Pupils per bin.
        title: The chart's title.
        chart_id: Id prefix for the title and description.

    Returns:
        The chart.
    """
    width, height = 720, 220
    left, right, top, bottom = 64, 16, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    bins = max(len(counts), 1)
    peak = max(counts) if counts and max(counts) > 0 else 1
    body: list[str] = []
    for fraction in (0, 0.5, 1):
        y = top + plot_h - fraction * plot_h
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y + 4, fmt_number(fraction * peak, 0), anchor="end", size=11, fill=NEUTRAL))
    bar_w = plot_w / bins
    for index, count in enumerate(counts):
        h = count / peak * plot_h
        x = left + index * bar_w
        body.append(f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                    f'fill="{NEUTRAL}"><title>{fmt_pct(index / bins)}–{fmt_pct((index + 1) / bins)}: '
                    f'{count} elever</title></rect>')
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        body.append(_text(left + fraction * plot_w, height - bottom + 16, fmt_pct(fraction), anchor="middle",
                          size=11, fill=NEUTRAL))
    body.append(_text(left + plot_w / 2, height - 6, "Risiko (kalibreret sandsynlighed)", anchor="middle",
                      size=11, fill=NEUTRAL))
    description = "Antal elever pr. risikointerval: " + ", ".join(
        f"{fmt_pct(i / bins)}–{fmt_pct((i + 1) / bins)}: {c}" for i, c in enumerate(counts))
    return _svg(width, height, title, description, body, chart_id)


def lines_svg(
    labels: list[str],
    series: dict[str, list[float | None]],
    title: str,
    chart_id: str = "lines",
    as_percent: bool = True,
) -> Markup:
    """A few series over terms (e.g. risk quantiles per term).

    Args:
        labels: x labels (terms), oldest first.
        series: Series name -> values, one per label.
        title: The chart's title.
        chart_id: Id prefix for the title and description.
        as_percent: Label the y axis as percentages.

    Returns:
        The chart.
    """
    width, height = 720, 240
    left, right, top, bottom = 56, 120, 14, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    if as_percent:
        y_max = percent_axis_top(max(values)) if values and max(values) > 0 else 1.0
    else:
        y_max = max(values) * 1.1 if values and max(values) > 0 else 1.0
    palette = ["#4d4d4d", INCREASE, DECREASE, "#1b7837", "#762a83"]
    dashes = ["", "6 3", "2 3", "8 3 2 3", "1 2"]

    def x_of(index: int) -> float:
        return left + (plot_w / 2 if len(labels) == 1 else index * plot_w / (len(labels) - 1))

    def y_of(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    body: list[str] = []
    for fraction in (0, 0.5, 1):
        value = fraction * y_max
        y = y_of(value)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GRID}"/>')
        tick = fmt_pct(value) if as_percent else fmt_number(value, 2)
        body.append(_text(left - 6, y + 4, tick, anchor="end", size=11, fill=NEUTRAL))
    for index, label in enumerate(labels):
        body.append(_text(x_of(index), height - bottom + 16, label, anchor="middle", size=11, fill=NEUTRAL))
    for number, (name, vs) in enumerate(series.items()):
        colour, dash = palette[number % len(palette)], dashes[number % len(dashes)]
        points = [(x_of(i), y_of(v)) for i, v in enumerate(vs) if v is not None]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(points) > 1:
            body.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}" fill="none" '
                        f'stroke="{colour}" stroke-width="2"{dash_attr}/>')
        for x, y in points:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        if points:
            body.append(_text(left + plot_w + 8, points[-1][1] + 4, name, size=11, fill=colour))
    description = " ".join(
        f"{name}: " + ", ".join(f"{lab} {fmt_pct(v) if as_percent else fmt_number(v, 2)}"
                                for lab, v in zip(labels, vs, strict=True) if v is not None) + "."
        for name, vs in series.items())
    return _svg(width, height, title, description, body, chart_id)
