"""The termly follow-up summary of one network as a PDF (Danish, A4, reportlab).

Counts only, never a name or a pseudonym: what happened to the network's flags in a term
(flagged, reviewed, confirmed, dismissed with reasons, families contacted, steps on the
indsatstrappe, follow-up overdue). The review app serves it to the network's members
(``/netvaerk/<id>/opfoelgning.pdf``), access-checked and audited like the network's lists.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, Spacer, Table, TableStyle

from ews.config import MunicipalityConfig
from flags.followup import FOLLOWUP_STATES, OVERDUE_STATES, NetworkSummary
from flags.labels import DISCLAIMER_DA, SIGNAL_SHORT_DA
from flags.pdf import _BODY, _CELL, _CELL_BOLD, _DISCLAIMER, _GRID, _H2, _HEAD, _MARGIN, _SMALL, _TITLE

#: Danish labels of the dismissal reasons (the codes of the review app, ``dashboards.labels``).
DISMISS_REASONS_DA: dict[str, str] = {
    "kendt_indsats_i_gang": "Eleven er kendt, og en indsats er allerede i gang",
    "datafejl": "Forklaringen bygger på fejl eller mangler i data",
    "forbigaaende": "Forbigående forhold (fx en periode med sygdom)",
    "faglig_vurdering": "Skolens og vejlederens faglige vurdering er en anden",
}


def _p(text: object, style: Any = _CELL) -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)), style)


def _table(header: tuple[str, str], rows: list[tuple[str, object]], widths: tuple[float, float] = (120, 40)
           ) -> Table:
    data = [[_p(header[0], _CELL_BOLD), _p(header[1], _CELL_BOLD)]]
    data += [[_p(label), _p(value)] for label, value in rows]
    table = Table(data, colWidths=[widths[0] * mm, widths[1] * mm], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, _GRID), ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("ALIGN", (1, 1), (1, -1), "RIGHT"),
    ]))
    return table


def followup_pdf(summary: NetworkSummary, config: MunicipalityConfig, today: date, review_within_days: int,
                 run_id: str | None = None, manifest: Mapping[str, Any] | None = None,
                 dismiss_labels: Mapping[str, str] = DISMISS_REASONS_DA) -> bytes:
    """The network's termly follow-up summary.

    Args:
        summary: From :func:`flags.followup.network_summary`.
        config: The municipality config (the network's name).
        today: The day the follow-up was computed for.
        review_within_days: The config's ``followup.review_within_days``.
        run_id: The run whose flags are counted.
        manifest: That run's manifest (model and outcome, for the lineage line).
        dismiss_labels: Reason code -> Danish label.

    Returns:
        The PDF's bytes.
    """
    network = next((n for n in config.networks if n.id == summary.network_id), None)
    name = network.name if network else summary.network_id
    buffer = io.BytesIO()

    def footer(canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor("#444444"))
        canvas.drawString(_MARGIN, 8 * mm, f"{SIGNAL_SHORT_DA} — ikke en vurdering af eller afgørelse om et barn.")
        canvas.drawRightString(A4[0] - _MARGIN, 8 * mm, f"{name} · {summary.term} · side {doc.page}")
        canvas.restoreState()

    doc = BaseDocTemplate(buffer, pagesize=A4, title=f"Opfølgning {name} {summary.term}", author="Alle skal med",
                          subject=DISCLAIMER_DA, invariant=True, leftMargin=_MARGIN, rightMargin=_MARGIN,
                          topMargin=_MARGIN, bottomMargin=_MARGIN)
    frame = Frame(_MARGIN, _MARGIN, A4[0] - 2 * _MARGIN, A4[1] - 2 * _MARGIN, id="page")
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=footer)])
    overdue_states = [(FOLLOWUP_STATES[s], summary.states.get(s, 0)) for s in OVERDUE_STATES]
    story: list[Any] = [
        Paragraph(escape(f"Opfølgning på flag: {name}"), _TITLE),
        _p(f"Termin {summary.term}. Opgjort {today.strftime('%d-%m-%Y')}. Kun antal elever; ingen navne.", _BODY),
        Spacer(1, 2 * mm), _p(DISCLAIMER_DA, _DISCLAIMER),
        Paragraph("Terminens flag", _H2),
        _table(("", "Elever"), [
            ("Flaget (ny eller fortsat på listen)", summary.flagged),
            ("Vurderet af UU", summary.reviewed),
            ("Bekræftet (drøftes, familie kontaktet, henvist eller trin)", summary.confirmed),
            ("Afvist", summary.dismissed),
            ("Familien er kontaktet", summary.families_contacted),
            ("Ikke længere på listen, men indsatsen fortsætter", summary.continued),
            ("Opfølgning overskredet", summary.overdue),
        ]),
        Paragraph("Afviste flag efter begrundelse", _H2),
        _table(("Begrundelse", "Elever"), [(dismiss_labels.get(code, code), n)
                                          for code, n in sorted(summary.dismiss_reasons.items())]
               or [("Ingen afviste flag", 0)]),
        Paragraph("Trin på indsatstrappen", _H2),
        _table(("Seneste trin", "Elever"), sorted(summary.steps.items()) or [("Intet trin registreret", 0)]),
        Paragraph("Opfølgningspligt", _H2),
        _table(("Overskredet", "Elever"), overdue_states),
        Spacer(1, 2 * mm),
        _p(f"Et flag skal vurderes af UU senest {review_within_days} dage efter terminens opgørelsesdato. Et "
           "bekræftet flag skal have en ansvarlig (fra netværket eller UU-vejlederen) og en dato for næste "
           "skridt; opfølgningen er overskredet, når datoen er passeret, eller når ansvarlig og næste skridt "
           "mangler.", _SMALL),
    ]
    lineage = [f"kørsel {run_id}"] if run_id else []
    if manifest:
        model = (manifest.get("model") or {})
        if model.get("model_id"):
            lineage.append(f"model {model['model_id']}")
        if model.get("outcome_definition"):
            lineage.append(f"udfald {model['outcome_definition']}")
    if lineage:
        story += [Spacer(1, 2 * mm), _p("Grundlag: " + ", ".join(lineage), _SMALL)]
    doc.build(story)
    return buffer.getvalue()
