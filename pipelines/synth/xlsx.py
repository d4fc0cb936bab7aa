"""A minimal, deterministic .xlsx writer (one sheet, text, integer and date cells).

openpyxl stamps the current time into the workbook and the zip entries, so two runs never
give the same bytes; this writer fixes every timestamp, which makes the synthetic exports
byte-identical for the same seed. The files open in Excel, LibreOffice and openpyxl.
"""

from __future__ import annotations

import re
import zipfile
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape, unescape

import numpy as np
import pandas as pd

EXCEL_MAX_ROWS = 1_048_576
_EPOCH = np.datetime64(date(1899, 12, 30), "D")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_PACKAGE = "http://schemas.openxmlformats.org/package/2006"
_OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_CONTENT_TYPES = (
    _XML + f'<Types xmlns="{_PACKAGE}/content-types">'
    f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_SHEET_TYPE}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_SHEET_TYPE}.worksheet+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{_SHEET_TYPE}.styles+xml"/>'
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_SHEET_TYPE}.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    _XML + f'<Relationships xmlns="{_PACKAGE}/relationships">'
    f'<Relationship Id="rId1" Type="{_OFFICE}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    _XML + f'<Relationships xmlns="{_PACKAGE}/relationships">'
    f'<Relationship Id="rId1" Type="{_OFFICE}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_OFFICE}/styles" Target="styles.xml"/>'
    f'<Relationship Id="rId3" Type="{_OFFICE}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="dd-mm-yyyy"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '</cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>'
)


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def write_xlsx(path: Path, sheet: str, columns: dict[str, np.ndarray], kinds: dict[str, str]
               ) -> int:
    """Write one sheet with a header row.

    Args:
        path: The .xlsx file to write.
        sheet: Sheet name.
        columns: Header -> values (all the same length).
        kinds: Header -> ``'text'``, ``'int'`` or ``'date'`` (``datetime64[D]`` values,
            written as Excel dates shown ``dd-mm-yyyy``).

    Returns:
        Number of data rows written.

    Raises:
        ValueError: When the rows do not fit in one Excel sheet.
    """
    headers = list(columns)
    n = len(next(iter(columns.values()))) if headers else 0
    if n + 1 > EXCEL_MAX_ROWS:
        raise ValueError(f"{path.name}: {n} rows do not fit in one Excel sheet")
    texts = [np.asarray(headers, dtype=object)]
    for header in headers:
        if kinds[header] == "text":
            texts.append(np.asarray(columns[header], dtype=object))
    codes, uniques = pd.factorize(np.concatenate(texts), sort=False)
    lookup = dict(zip(uniques, range(len(uniques)), strict=True))

    letters = [_column_letter(i) for i in range(len(headers))]
    header_cells = "".join(
        f'<c r="{letter}1" t="s"><v>{lookup[h]}</v></c>'
        for letter, h in zip(letters, headers, strict=True))
    head = (
        _XML + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="A1:{letters[-1]}{n + 1}"/><sheetData>'
        f'<row r="1">{header_cells}</row>'
    )
    strings = "".join(f"<si><t xml:space=\"preserve\">{escape(str(s))}</t></si>" for s in uniques)
    shared = (
        _XML + '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'count="{len(codes)}" uniqueCount="{len(uniques)}">{strings}</sst>'
    )
    workbook = (
        _XML + '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{escape(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    entries = [
        ("[Content_Types].xml", _CONTENT_TYPES),
        ("_rels/.rels", _ROOT_RELS),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
        ("xl/styles.xml", _STYLES),
        ("xl/sharedStrings.xml", shared),
    ]
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries:
            archive.writestr(_entry(name), text.encode("utf-8"))
        with archive.open(_entry("xl/worksheets/sheet1.xml"), "w", force_zip64=True) as stream:
            stream.write(head.encode("utf-8"))
            for lo in range(0, n, _ROW_SLICE):
                rows = _sheet_rows({h: columns[h][lo:lo + _ROW_SLICE] for h in headers},
                                   kinds, letters, lookup, first_row=lo + 2)
                stream.write(rows.encode("utf-8"))
            stream.write(b"</sheetData></worksheet>")
    return n


_ROW_SLICE = 100_000


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    return info


def _sheet_rows(columns: dict[str, np.ndarray], kinds: dict[str, str], letters: list[str],
                lookup: dict[str, int], first_row: int) -> str:
    """The ``<row>`` elements of a slice of rows."""
    headers = list(columns)
    n = len(columns[headers[0]])
    row_numbers = np.arange(first_row, first_row + n).astype(str).astype(object)
    body = '<row r="' + row_numbers + '">'
    for letter, header in zip(letters, headers, strict=True):
        values = columns[header]
        ref = letter + row_numbers
        kind = kinds[header]
        if kind == "text":
            index = pd.Series(np.asarray(values, dtype=object)).map(lookup).to_numpy()
            cell = '<c r="' + ref + '" t="s"><v>' + index.astype(str).astype(object) + "</v></c>"
        elif kind == "int":
            cell = ('<c r="' + ref + '"><v>'
                    + np.asarray(values, dtype=np.int64).astype(str).astype(object) + "</v></c>")
        elif kind == "date":
            serial = (np.asarray(values, dtype="datetime64[D]") - _EPOCH).astype(np.int64)
            cell = ('<c r="' + ref + '" s="1"><v>' + serial.astype(str).astype(object)
                    + "</v></c>")
        else:
            raise ValueError(f"unknown cell kind {kind!r}")
        body = body + cell
    body = body + "</row>"
    return "".join(body.tolist())


_CELL = re.compile(r'<c r="([A-Z]+)(\d+)"([^>]*?)(?:/>|>(.*?)</c>)', re.S)
_VALUE = re.compile(r"<v>(.*?)</v>", re.S)
_INLINE = re.compile(r"<t[^>]*>(.*?)</t>", re.S)
_SHEET = re.compile(r'<sheet [^>]*name="([^"]*)"[^>]*r:id="([^"]*)"')
_REL = re.compile(r'<Relationship [^>]*Id="([^"]*)"[^>]*Target="([^"]*)"')


def read_xlsx(path: Path, sheet: str) -> pd.DataFrame:
    """Read one sheet of a simple workbook as text (a fast reader for large exports).

    Handles shared and inline strings and numbers; dates come back as Excel serial numbers
    (text). Meant for the synthetic exports, whose layout is known; use openpyxl for
    anything else.

    Args:
        path: The .xlsx file.
        sheet: Sheet name.

    Returns:
        The sheet with the first row as header, every value a string.

    Raises:
        KeyError: When the sheet does not exist.
    """
    with zipfile.ZipFile(path) as archive:
        workbook = archive.read("xl/workbook.xml").decode("utf-8")
        rels = dict(_REL.findall(archive.read("xl/_rels/workbook.xml.rels").decode("utf-8")))
        sheets = {unescape(name): rid for name, rid in _SHEET.findall(workbook)}
        if sheet not in sheets:
            raise KeyError(f"{path.name}: no sheet {sheet!r} (sheets: {', '.join(sheets)})")
        target = rels[sheets[sheet]].lstrip("/")
        target = target if target.startswith("xl/") else "xl/" + target
        xml = archive.read(target).decode("utf-8")
        shared: list[str] = []
        if "xl/sharedStrings.xml" in archive.namelist():
            text = archive.read("xl/sharedStrings.xml").decode("utf-8")
            shared = [unescape("".join(_INLINE.findall(si)))
                      for si in re.findall(r"<si>(.*?)</si>", text, re.S)]
    rows: dict[int, dict[str, str]] = {}
    for column, row, attributes, body in _CELL.findall(xml):
        body = body or ""
        if 't="s"' in attributes:
            value = shared[int(_VALUE.search(body).group(1))]
        elif 't="inlineStr"' in attributes:
            value = unescape("".join(_INLINE.findall(body)))
        else:
            found = _VALUE.search(body)
            value = unescape(found.group(1)) if found else ""
        rows.setdefault(int(row), {})[column] = value
    if not rows:
        return pd.DataFrame()
    numbers = sorted(rows)
    header_cells = rows[numbers[0]]
    columns = sorted(header_cells, key=lambda c: (len(c), c))
    data = {header_cells[c]: [rows[r].get(c, "") for r in numbers[1:]] for c in columns}
    return pd.DataFrame(data, dtype=object)
