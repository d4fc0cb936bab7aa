"""The Excel workbook of one network's flag list (openpyxl).

Sheets: ``Resumé`` (the one-page summary), ``Flagliste`` (the list: disclaimer in row 1, Danish
headers in row 2), ``Ikke længere`` (pupils no longer flagged who are still in the network) and
``Sporbarhed`` (run, model, config and data snapshot). Printed, each sheet fits the page width
in landscape and repeats the disclaimer and page number in the footer.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from ews.cells import spreadsheet_cell
from flags.export import LINEAGE_LABELS, NetworkList, first_line
from flags.labels import (
    AUDIENCE_NETWORK,
    DISCLAIMER_DA,
    LIST_AUDIENCE_NOTE_DA,
    LIST_BEFORE_CONTACT_DA,
    LIST_TITLE_DA,
    RULE_LIST_SHORT_DA,
    SIGNAL_SHORT_DA,
)

#: Header row of the sheets "Flagliste" and "Ikke længere" (row 1 is the disclaimer).
HEADER_ROW = 2
#: Column widths (characters). Narrow enough that the network's list (15 columns) fits an A4
#: landscape page at no less than 70 % (:func:`print_scale`); long cells wrap.
_WIDTHS = {
    "Nr.": 4, "Status": 9, "Navn": 18, "Klasse": 7, "Skole": 13, "Klassetrin": 6,
    "Risiko (%)": 7, "Niveau": 9, "Trin på indsatstrappen": 16, "Udvikling": 12, "Mønster": 9,
    "Årsager": 40, "Kontekst": 24, "Fagligheder": 16, "Faglig vurdering påkrævet": 9,
    "Elev-id (pseudonym)": 17, "UU-vurdering": 16, "Vurderet": 11, "Listegrundlag": 10,
}
#: Page margins of every sheet, in inches (narrower than Excel's 0.7 so the list prints larger).
_MARGIN_SIDE, _MARGIN_TOP = 0.4, 0.6
#: The printable width of an A4 page in pixels at 96 dpi: landscape and portrait.
_A4_PX = {"landscape": 297 / 25.4 * 96, "portrait": 210 / 25.4 * 96}
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_THIN = Side(style="thin", color="999999")
#: Every list cell's alignment: one object, not one a cell (a national run writes 1,100 workbooks).
_WRAP_TOP = Alignment(wrap_text=True, vertical="top")


def write_workbook(network_list: NetworkList, path: Path | BinaryIO) -> None:
    """Write the workbook.

    Args:
        network_list: From ``flags.export.build_network_list``.
        path: The ``.xlsx`` file (or a binary stream) to write.
    """
    workbook = Workbook()
    summary = workbook.active
    summary.title = "Resumé"
    _summary_sheet(summary, network_list)
    _list_sheet(workbook.create_sheet("Flagliste"), network_list.rows, network_list)
    _list_sheet(workbook.create_sheet("Ikke længere"), network_list.leaving, network_list)
    _lineage_sheet(workbook.create_sheet("Sporbarhed"), network_list)
    title = LIST_TITLE_DA[network_list.audience]
    workbook.properties.title = f"{title} {network_list.network_name} {network_list.term_da}"
    workbook.properties.creator = "Alle skal med"
    workbook.save(path)


def column_pixels(width: float) -> int:
    """An Excel column width (characters of the default font, Calibri 11) in pixels: 7 per character + 5."""
    return int(7 * width + 5)


def print_scale(sheet: Worksheet) -> float:
    """The scale (percent) at which a sheet set to fit one page wide prints.

    Args:
        sheet: A sheet of the workbook (its column widths, orientation and margins).

    Returns:
        100 when the columns fit the printable width, otherwise the shrink Excel applies.
    """
    used = [sheet.column_dimensions[get_column_letter(c)].width or 8.43 for c in range(1, sheet.max_column + 1)]
    needed = sum(column_pixels(w) for w in used)
    margins = sheet.page_margins
    printable = _A4_PX[sheet.page_setup.orientation or "portrait"] - 96 * (margins.left + margins.right)
    return min(100.0, 100 * printable / needed)


def _print_setup(sheet: Worksheet, network_list: NetworkList, landscape: bool = True) -> None:
    sheet.page_margins.left = sheet.page_margins.right = _MARGIN_SIDE
    sheet.page_margins.top = sheet.page_margins.bottom = _MARGIN_TOP
    sheet.page_setup.orientation = "landscape" if landscape else "portrait"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    basis = f"{RULE_LIST_SHORT_DA} (ikke modellen) · " if network_list.basis_da else ""
    sheet.oddFooter.left.text = basis + SIGNAL_SHORT_DA + " — ikke en afgørelse"
    sheet.oddFooter.center.text = LIST_AUDIENCE_NOTE_DA[network_list.audience]
    sheet.oddFooter.right.text = "Side &P af &N"
    sheet.oddHeader.left.text = f"{network_list.network_name}, {network_list.term_da}"
    sheet.oddHeader.right.text = "Fortroligt: personoplysninger"


def _summary_sheet(sheet: Worksheet, network_list: NetworkList) -> None:
    s = network_list.summary
    for_network = network_list.audience == AUDIENCE_NETWORK
    counts: list[tuple[str, object]] = [
        ("Elever på listen", s["flagged"]),
        ("Nye på listen", s["ny"]),
        ("Fortsat på listen", s["fortsat"]),
    ]
    if for_network:
        counts.append(("Afventer UU-vurdering (ikke navngivet)", s.get("afventer_vurdering", 0)))
    counts += [
        ("Ikke længere på listen", s["ikke_laengere"]),
        ("  heraf stadig i netværket (vist på fanen 'Ikke længere')", s["ikke_laengere_i_netvaerket"]),
        ("  heraf ikke længere i netværket (ikke navngivet)", s["ikke_laengere_udenfor"]),
        ("Netværkets kapacitet pr. termin", s["capacity"]),
        ("Udvælgelse", network_list.selection_da),
    ]
    lines: list[tuple[str, object]] = [
        (LIST_TITLE_DA[network_list.audience], None),
        (f"{network_list.network_name} — {network_list.municipality}", None),
        ("Termin", network_list.term_da),
        ("Skæringsdato", network_list.lineage.get("as_of_date", "")),
        ("", None),
        (DISCLAIMER_DA, None),
        (network_list.purpose_da, None),
        *([(network_list.basis_da, None)] if network_list.basis_da else []),
        ("", None),
        *counts,
        ("", None),
        ("Elever pr. risikoniveau", None),
        *[(f"  {tier}", count) for tier, count in network_list.tiers.items()],
        ("", None),
        ("Fagligheder, som årsagerne peger på (antal elever)", None),
        *[(f"  {label}", count) for label, count in sorted(network_list.disciplines.items())],
        ("", None),
        ("Sådan læses listen", None),
        ("  Årsager: de største faktorer, netværket kan handle på, med elevens værdi og en "
         "referenceværdi for samme klassetrin.", None),
        *([] if for_network else [("  Kontekst: forhold, der påvirker signalet, men ikke er årsager "
                                   "(skoleniveau, manglende data).", None)]),
        ("  Udvikling: ændring i risiko siden sidste termin (point = procentpoint).", None),
        *([("  UU-vurdering: UU-vejlederens beslutning og dato; trinnet på indsatstrappen er "
            "UU-vejlederens valg, ellers et forslag ud fra risikoniveauet.", None)] if for_network else []),
        ("  " + LIST_BEFORE_CONTACT_DA[network_list.audience], None),
    ]
    emphasised = {DISCLAIMER_DA, network_list.purpose_da, network_list.basis_da}
    for index, (label, value) in enumerate(lines, start=1):
        cell = sheet.cell(row=index, column=1, value=spreadsheet_cell(label))
        if value is not None:
            sheet.cell(row=index, column=2, value=spreadsheet_cell(value))
        if label in emphasised:
            cell.font = Font(bold=True, color="9C0006")
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        elif label in ("Elever pr. risikoniveau", "Sådan læses listen",
                       "Fagligheder, som årsagerne peger på (antal elever)"):
            cell.font = Font(bold=True)
    sheet["A1"].font = Font(bold=True, size=16)
    sheet["A2"].font = Font(bold=True, size=12)
    sheet.column_dimensions["A"].width = 62
    sheet.column_dimensions["B"].width = 60
    _print_setup(sheet, network_list, landscape=False)


def _list_sheet(sheet: Worksheet, rows: list[dict[str, object]], network_list: NetworkList) -> None:
    headers = network_list.headers
    sheet.cell(row=1, column=1, value=spreadsheet_cell(first_line(network_list))).font = Font(
        bold=True, color="9C0006")
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(headers))
    for column, header in enumerate(headers, start=1):
        cell = sheet.cell(row=HEADER_ROW, column=column, value=header)
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        cell.border = Border(bottom=_THIN)
        sheet.column_dimensions[get_column_letter(column)].width = _WIDTHS.get(header, 12)
    for offset, row in enumerate(rows, start=1):
        for column, header in enumerate(headers, start=1):
            cell = sheet.cell(row=HEADER_ROW + offset, column=column, value=spreadsheet_cell(row[header]))
            cell.alignment = _WRAP_TOP
    sheet.freeze_panes = sheet.cell(row=HEADER_ROW + 1, column=1)
    last = get_column_letter(len(headers))
    sheet.auto_filter.ref = f"A{HEADER_ROW}:{last}{HEADER_ROW + max(len(rows), 1)}"
    sheet.print_title_rows = f"1:{HEADER_ROW}"
    _print_setup(sheet, network_list)


def _lineage_sheet(sheet: Worksheet, network_list: NetworkList) -> None:
    sheet.cell(row=1, column=1, value="Sporbarhed").font = Font(bold=True, size=14)
    sheet.cell(row=2, column=1, value="Listen kan spores til kørsel, model, konfiguration og data:")
    for index, (label, key) in enumerate(LINEAGE_LABELS, start=3):
        sheet.cell(row=index, column=1, value=label).font = Font(bold=True)
        sheet.cell(row=index, column=2, value=spreadsheet_cell(network_list.lineage.get(key, "")))
    after = 3 + len(LINEAGE_LABELS) + 1
    sheet.cell(row=after, column=1, value="Forklaring af én elev")
    sheet.cell(row=after, column=2,
               value=f"ews explain <Elev-id> --run {network_list.lineage.get('run_id', '')}")
    sheet.column_dimensions["A"].width = 28
    sheet.column_dimensions["B"].width = 70
    _print_setup(sheet, network_list, landscape=False)
