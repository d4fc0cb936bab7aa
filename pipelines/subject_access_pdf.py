"""The Danish PDF of a subject-access report (reportlab, the PDF standard fonts only)."""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

#: Section key -> Danish heading and what it is.
SECTIONS_DA: tuple[tuple[str, str, str], ...] = (
    ("person", "Identitet", "Navn, skole og klasse, som de står i elevregisteret (kun i identitetslageret)."),
    ("names_per_source_row", "Navne pr. indlæst registerrække", "Navnene fra hver indlæst række af elevregisteret."),
    ("sources", "Rækker pr. kilde", "Hver række fra kommunens udtræk, som systemet har indlæst om eleven "
                                    "(fil og linje), uden CPR-nummer."),
    ("quarantined_rows", "Rækker i karantæne", "Rækker, som ikke bestod kontrollen, og som derfor ikke bruges."),
    ("outcomes", "Udfald", "Registrerede udfald (fx uddannelsesparathed), som modellen lærer af."),
    ("corrections", "Rettelser", "Rettede udtræk, som erstattede elevens rækker (fil, kørsel og antal rækker)."),
    ("features", "Beregnede oplysninger (features)", "De tal, som scoren beregnes ud fra, pr. opgørelsesdato."),
    ("scores", "Scorer", "Beregnet risiko, niveau og model pr. kørsel."),
    ("explanations", "Forklaringer", "Hvad der trak elevens beregnede risiko op eller ned, i ord."),
    ("flags", "Flag", "Om eleven stod på netværkets liste, og med hvilke begrundelser."),
    ("withdrawn_flags", "Tilbagetrukne flag", "Flag, der er trukket tilbage, fordi eleven er taget ud af screeningen."),
    ("exclusions", "Udtagelse af screeningen", "Om eleven er taget ud af screeningen, hvorfor og fra hvornår."),
    ("reviews", "UU-vejlederens vurderinger", "Faglige vurderinger af flaget."),
    ("views", "Hvem har set eleven", "Fra adgangsloggen: hvem så elevens side eller en liste, eleven stod på, og "
                                    "hvornår."),
)


def _table(rows: list[dict[str, Any]], style: Any) -> LongTable | Paragraph:
    if not rows:
        return Paragraph("Ingen oplysninger.", style)
    columns = list(rows[0].keys())
    data = [[Paragraph(escape(str(c)), style) for c in columns]]
    for row in rows:
        data.append([Paragraph(escape("" if row.get(c) is None else str(row.get(c))), style) for c in columns])
    width = (landscape(A4)[0] - 30 * mm) / max(len(columns), 1)
    table = LongTable(data, colWidths=[width] * len(columns), repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _features_long(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Features one value a line (date, description in Danish, value): a row has too many columns for a page."""
    from features.catalogue import FEATURE_NAMES, feature_spec

    keys = ("pupil_id", "as_of_date", "term", "grade", "school_code", "network_id")
    lines = []
    for row in rows:
        for name, value in row.items():
            if name in keys:
                continue
            described = feature_spec(name).description_da if name in FEATURE_NAMES else name
            lines.append({"opgørelsesdato": row.get("as_of_date"), "oplysning": described,
                          "værdi": "ukendt" if value is None else value})
    return lines


def render_pdf(document: dict[str, Any]) -> bytes:
    """The report as PDF bytes.

    Args:
        document: The JSON document (``pipelines.subject_access``).

    Returns:
        The PDF.
    """
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=6.5, leading=8)
    story: list[Any] = [
        Paragraph("Indsigt efter databeskyttelsesforordningens artikel 15", styles["Title"]),
        Paragraph(escape(f"Elev (pseudonym): {document['pupil_id']}. Udarbejdet {document['generated_at']} "
                         f"af {document['generated_by']}."), styles["BodyText"]),
        Paragraph("Systemet 'Alle skal med' er et screeningsværktøj: et flag er et signal til faglig vurdering, "
                  "aldrig en vurdering af eller en afgørelse om barnet. CPR-nummeret gemmes ikke i systemet; "
                  "eleven kendes under et pseudonym.", styles["BodyText"]),
    ]
    for key, heading, what in SECTIONS_DA:
        story += [Spacer(1, 4 * mm), Paragraph(heading, styles["Heading2"]), Paragraph(what, styles["BodyText"])]
        value = document.get(key)
        if key == "sources":
            if not value:
                story.append(Paragraph("Ingen oplysninger.", small))
            for source, rows in (value or {}).items():
                story += [Paragraph(escape(f"Kilde: {source} ({len(rows)} rækker)"), styles["Heading4"]),
                          _table(rows, small)]
        elif key == "features":
            story.append(_table(_features_long(value or []), small))
        elif key == "flags":
            rows = [{k: row.get(k) for k in ("term", "run_id", "network_id", "status", "tier", "list_basis",
                                              "reasons_da")} for row in value or []]
            story.append(_table(rows, small))
        else:
            story.append(_table(list(value or []), small))
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=15 * mm, rightMargin=15 * mm,
                      topMargin=12 * mm, bottomMargin=12 * mm, title="Indsigt (art. 15)",
                      author="Alle skal med").build(story)
    return buffer.getvalue()
