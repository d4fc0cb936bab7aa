"""The PDF of one network's flag list (reportlab), made to be read on paper.

Page 1 (A4 portrait) is the summary: network, term, counts (new, still, no longer flagged),
capacity and selection rule, the screening disclaimer, tiers and disciplines, how to read the
list, and its lineage. The list follows on A4 landscape pages, one pupil per row with the
reasons written out, then the pupils no longer flagged. Every page carries the disclaimer in
its footer. Only the PDF standard fonts are used (Danish letters included), so the file needs
no font files and looks the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from flags.export import LINEAGE_LABELS, NetworkList
from flags.labels import (
    AUDIENCE_NETWORK,
    DISCLAIMER_DA,
    LIST_AUDIENCE_NOTE_DA,
    LIST_BEFORE_CONTACT_DA,
    LIST_TITLE_DA,
    RULE_LIST_SHORT_DA,
    SIGNAL_SHORT_DA,
)

_MARGIN = 15 * mm
_STYLES = getSampleStyleSheet()
_BODY = ParagraphStyle("body", parent=_STYLES["BodyText"], fontName="Helvetica", fontSize=10, leading=13)
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=8.5, leading=10.5)
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=9, leading=11)
_CELL_BOLD = ParagraphStyle("cellbold", parent=_CELL, fontName="Helvetica-Bold")
_TITLE = ParagraphStyle("title", parent=_STYLES["Title"], fontName="Helvetica-Bold", fontSize=20,
                        leading=24, alignment=0, spaceAfter=2 * mm)
_H2 = ParagraphStyle("h2", parent=_STYLES["Heading2"], fontName="Helvetica-Bold", fontSize=13,
                     leading=16, spaceBefore=4 * mm, spaceAfter=2 * mm, keepWithNext=1)
_ID = ParagraphStyle("id", parent=_CELL, fontSize=7, leading=9, textColor=colors.HexColor("#555555"))
_DISCLAIMER = ParagraphStyle("disclaimer", parent=_BODY, fontName="Helvetica-Bold", fontSize=11,
                             leading=14, textColor=colors.HexColor("#7a0010"))
_GRID = colors.HexColor("#9aa5b1")
_HEAD = colors.HexColor("#dde4ee")

#: Columns of the list pages: (header, key in the row dict, width in mm).
_LIST_COLUMNS = (
    ("Nr.", "Nr.", 9),
    ("Elev", "_pupil", 46),
    ("Status", "Status", 17),
    ("Risiko", "Risiko (%)", 14),
    ("Niveau / trin", "_tier", 33),
    ("Udvikling", "_development", 27),
    ("Årsager (elevens værdi og reference)", "_reasons", 87),
    ("Fagligheder", "_disciplines", 34),
)
#: The network's list: the UU decision in its own column, risk and tier together.
_NETWORK_COLUMNS = (
    ("Nr.", "Nr.", 9),
    ("Elev", "_pupil", 42),
    ("Status", "Status", 17),
    ("Risiko / niveau", "_risk_tier", 20),
    ("UU-vurdering og trin", "_review", 40),
    ("Udvikling", "_development", 25),
    ("Årsager (elevens værdi og reference)", "_reasons", 82),
    ("Fagligheder", "_disciplines", 32),
)
_LEAVING_COLUMNS = (
    ("Elev", "_pupil", 70),
    ("Risiko nu", "Risiko (%)", 20),
    ("Niveau", "Niveau", 30),
    ("Udvikling", "_development", 45),
)


#: What ``Paragraph.wrap`` returns below reportlab's smallest width (it breaks no line then).
_DOES_NOT_FIT = (0, 0x7FFFFFFF)


class _Text(Paragraph):
    """A paragraph that breaks its lines once for each width it is given.

    A table cell is wrapped to the same width when its row is measured (:func:`_row_heights`),
    when the table is laid out on a page and when the cell is drawn; reportlab breaks the lines
    again each time (about half of a list's CPU). ``Paragraph.wrap`` depends only on the width
    (the style and text are fixed), so the result of the last width is kept: the same PDF to the
    byte (``tests/flags/test_flags_export.py``).
    """

    _wrapped_width: float | None = None

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803 - reportlab's names
        if availWidth == self._wrapped_width and "blPara" in self.__dict__:  # split() drops it
            return self.width, self.height
        size = super().wrap(availWidth, availHeight)
        # below reportlab's smallest width wrap() answers "does not fit" and breaks nothing
        self._wrapped_width = None if size == _DOES_NOT_FIT else availWidth
        return size


def _p(text: object, style: ParagraphStyle = _CELL) -> Paragraph:
    return _Text(escape("" if text is None else str(text)).replace("\n", "<br/>"), style)


def _footer(network_list: NetworkList):  # noqa: ANN202 - reportlab page callback
    def draw(canvas: Canvas, doc: BaseDocTemplate) -> None:
        width, _ = canvas._pagesize
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor("#444444"))
        basis = f"{RULE_LIST_SHORT_DA} (ikke modellen) · " if network_list.basis_da else ""
        canvas.drawString(_MARGIN, 8 * mm,
                          f"{basis}{SIGNAL_SHORT_DA} — ikke en vurdering af eller afgørelse om et barn.")
        canvas.drawString(_MARGIN, canvas._pagesize[1] - 9 * mm, LIST_AUDIENCE_NOTE_DA[network_list.audience])
        canvas.drawRightString(width - _MARGIN, 8 * mm,
                               f"{network_list.network_name} · {network_list.term_da} · side {doc.page}")
        canvas.drawRightString(width - _MARGIN, canvas._pagesize[1] - 9 * mm,
                               "Fortroligt: indeholder personoplysninger")
        canvas.restoreState()

    return draw


def _summary_story(network_list: NetworkList) -> list:
    s = network_list.summary
    story: list = [
        Paragraph(escape(LIST_TITLE_DA[network_list.audience]), _TITLE),
        _p(f"{network_list.network_name} · {network_list.municipality} · termin "
           f"{network_list.term_da} · skæringsdato {network_list.lineage.get('as_of_date', '')}", _BODY),
        Spacer(1, 4 * mm),
    ]
    box = Table([[_p(DISCLAIMER_DA, _DISCLAIMER)]], colWidths=[180 * mm])
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.2, colors.HexColor("#7a0010")),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fbeff1")),
        ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 6),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))
    story += [box, Spacer(1, 2 * mm), _p(network_list.purpose_da, _DISCLAIMER)]
    if network_list.basis_da:
        story += [Spacer(1, 2 * mm), _p(network_list.basis_da, _DISCLAIMER)]
    story.append(Paragraph("Denne termin", _H2))
    counts = [
        ["Elever på listen", s["flagged"]],
        ["Nye på listen", s["ny"]],
        ["Fortsat på listen", s["fortsat"]],
    ]
    if network_list.audience == AUDIENCE_NETWORK:
        counts.append(["Afventer UU-vurdering (ikke navngivet)", s.get("afventer_vurdering", 0)])
    counts += [
        ["Ikke længere på listen", s["ikke_laengere"]],
        ["   heraf stadig i netværket (navngivet sidst i listen)", s["ikke_laengere_i_netvaerket"]],
        ["   heraf ikke længere i netværket (kun talt med)", s["ikke_laengere_udenfor"]],
        ["Netværkets kapacitet pr. termin", s["capacity"]],
    ]
    table = Table([[_p(a, _BODY), _p(b, _BODY)] for a, b in counts], colWidths=[120 * mm, 30 * mm])
    table.setStyle(TableStyle([
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, _GRID),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    story += [table, Spacer(1, 2 * mm),
              _p(f"Udvælgelse: {network_list.selection_da}.", _BODY)]
    tiers = ", ".join(f"{name}: {count}" for name, count in network_list.tiers.items())
    disciplines = ", ".join(f"{label}: {count}" for label, count in sorted(network_list.disciplines.items()))
    story += [
        Paragraph("Risikoniveau og fagligheder", _H2),
        _p(f"Elever pr. risikoniveau: {tiers or 'ingen'}.", _BODY),
        _p(f"Fagligheder, som årsagerne peger på (antal elever): {disciplines or 'ingen'}.", _BODY),
        Paragraph("Sådan læses listen", _H2),
        _p("Årsager er de største faktorer, netværket kan handle på, hver med elevens værdi og en "
           "referenceværdi for elever på samme klassetrin i kommunen. Forhold på skoleniveau og "
           "manglende data er ikke årsager"
           + ("." if network_list.audience == AUDIENCE_NETWORK else "; de står som kontekst i Excel-filen."),
           _BODY),
        _p("Udvikling er ændringen i risiko siden sidste termin i procentpoint (stigende, "
           "faldende, stabil). Mønster skelner mellem tidlig starter (mange risikofaktorer "
           "tidligt) og sen starter (få faktorer, stigende over tid).", _BODY),
        _p("Fagligheder: fravær peger på skolen og sundhedsplejersken, læring på PPR og lærerne, "
           "trivsel og støtte på socialrådgiveren, mobilitet på skolen; UU-vejlederen er med ved "
           "alle elever.", _BODY),
        *([_p("UU-vurdering er UU-vejlederens beslutning og dato. Trinnet på indsatstrappen er "
              "UU-vejlederens valg, ellers et forslag ud fra risikoniveauet.", _BODY)]
          if network_list.audience == AUDIENCE_NETWORK else []),
        _p(LIST_BEFORE_CONTACT_DA[network_list.audience], _BODY),
        Paragraph("Sporbarhed", _H2),
    ]
    lineage_rows = [[_p(label, _SMALL), _p(network_list.lineage.get(key, ""), _SMALL)]
                    for label, key in LINEAGE_LABELS]
    lineage = Table(lineage_rows, colWidths=[45 * mm, 135 * mm])
    lineage.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 0.3, _GRID),
                                 ("TOPPADDING", (0, 0), (-1, -1), 1),
                                 ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    story.append(lineage)
    return story


def _cells(row: dict, key: str) -> Paragraph | list[Paragraph]:
    if key == "_pupil":
        detail = f"{row['Klasse']} · {row['Skole']}".strip(" ·")
        pseudonym = [_p(f"id {row['Elev-id (pseudonym)']}", _ID)] if row.get("_show_id", True) else []
        return [_p(row["Navn"], _CELL_BOLD), _p(detail), *pseudonym]
    if key == "_disciplines":
        return _p("\n".join(row["_disciplines"]))
    if key == "_tier":
        return _p(f"{row['Niveau']}\n{row['Trin på indsatstrappen']}")
    if key == "_development":
        return _p("\n".join(x for x in (row["Udvikling"], row["Mønster"]) if x))
    if key == "_reasons":
        reasons = row["_reasons"] or ["Ingen enkeltårsag over tærsklen; se risikoniveau og kontekst."]
        return _Text("<br/>".join(f"• {escape(r)}" for r in reasons), _CELL)
    if key == "Risiko (%)":
        return _p(_risk_text(row[key]))
    if key == "_risk_tier":
        return _p("\n".join(x for x in (_risk_text(row["Risiko (%)"]), row["Niveau"]) if x))
    if key == "_review":
        decision = row["UU-vurdering"] + (f" ({row['Vurderet']})" if row["Vurderet"] else "")
        step = row["Trin på indsatstrappen"]
        return [_p(decision, _CELL_BOLD), *([_p(f"Trin: {step}")] if step else [])]
    return _p(row[key])


def _risk_text(percent: int | None) -> str:
    """A risk in whole percent; the extremes as ``>99 %`` / ``<1 %`` (a risk is never certain)."""
    if percent is None:
        return ""
    if percent >= 100:
        return ">99 %"
    if percent <= 0:
        return "<1 %"
    return f"{percent} %"


def _table(rows: list[dict], columns: tuple) -> Table:
    data = [[_p(header, _CELL_BOLD) for header, _, _ in columns]]
    data += [[_cells(row, key) for _, key, _ in columns] for row in rows]
    widths = [w * mm for _, _, w in columns]
    style = TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
        ("GRID", (0, 0), (-1, -1), 0.4, _GRID),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f5f7fa")]),
    ])
    table = Table(data, colWidths=widths, rowHeights=_row_heights(data, widths, style), repeatRows=1)
    table.setStyle(style)
    return table


def _row_heights(data: list[list], widths: list[float], style: TableStyle) -> list[float]:
    """Each row's height, measured once by reportlab itself.

    A table of unknown row heights measures its rows again on every page it is split over and
    while it draws them: about five measurements of every cell of a long list. Given the heights
    measured once, the PDF is the same to the byte and takes about 25 % less CPU
    (``tests/flags/test_flags_export.py``, docs/benchmarks.md).
    """
    probe = Table(data, colWidths=widths)
    probe.setStyle(style)  # none today, but a padding added to the style is part of a row's height
    probe.wrap(sum(widths), _UNBOUNDED)
    return list(probe._rowHeights)  # noqa: SLF001 - reportlab's own measurement, set by wrap


_UNBOUNDED = 1e9


def write_pdf(network_list: NetworkList, path: Path | BinaryIO) -> None:
    """Write the PDF.

    Args:
        network_list: From ``flags.export.build_network_list``.
        path: The ``.pdf`` file (or a binary stream) to write.
    """
    portrait_frame = Frame(_MARGIN, _MARGIN, A4[0] - 2 * _MARGIN, A4[1] - 2 * _MARGIN, id="portrait")
    wide = landscape(A4)
    landscape_frame = Frame(_MARGIN, _MARGIN, wide[0] - 2 * _MARGIN, wide[1] - 2 * _MARGIN, id="wide")
    footer = _footer(network_list)
    doc = BaseDocTemplate(
        str(path) if isinstance(path, Path) else path, pagesize=A4,
        title=f"{LIST_TITLE_DA[network_list.audience]} {network_list.network_name} {network_list.term_da}",
        author="Alle skal med", subject=DISCLAIMER_DA, invariant=True,
        leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=_MARGIN, bottomMargin=_MARGIN,
    )
    doc.addPageTemplates([
        PageTemplate(id="summary", frames=[portrait_frame], onPage=footer, pagesize=A4),
        PageTemplate(id="list", frames=[landscape_frame], onPage=footer, pagesize=wide),
    ])
    story = _summary_story(network_list)
    story += [NextPageTemplate("list"), PageBreak()]
    story += [Paragraph(escape(f"Elever på listen — {network_list.network_name}, {network_list.term_da}"), _H2)]
    if network_list.basis_da:
        story.append(_p(network_list.basis_da, _DISCLAIMER))
    columns = _NETWORK_COLUMNS if network_list.audience == AUDIENCE_NETWORK else _LIST_COLUMNS
    if network_list.rows:
        story.append(_table(network_list.rows, columns))
    else:
        story.append(_p("Ingen elever på listen denne termin.", _BODY))
    story.append(Paragraph("Ikke længere på listen", _H2))
    if network_list.leaving:
        story.append(_table(network_list.leaving, _LEAVING_COLUMNS))
    else:
        story.append(_p("Ingen elever i netværket er gået af listen siden sidste termin.", _BODY))
    outside = network_list.summary["ikke_laengere_udenfor"]
    if outside:
        story.append(KeepTogether([Spacer(1, 2 * mm), _p(
            f"{outside} elev(er) fra sidste termins liste er ikke længere i netværket (skoleskift, "
            "fraflytning eller uden for de screenede klassetrin) og vises derfor ikke her.", _BODY)]))
    story += [Spacer(1, 4 * mm), _p(DISCLAIMER_DA, _DISCLAIMER)]
    doc.build(story)
