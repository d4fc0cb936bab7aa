"""Readers for municipal export files: bytes in, a frame of strings with line numbers out.

Readers know encodings, separators and Excel; they do not type values (``validation.parsing``
does). Whatever makes a whole file unusable raises :class:`FileLevelError` naming the file and
what to do; nothing is written before that.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from ews.config import SourceConfig
from validation.errors import FileLevelError

LINE_COLUMN = "source_line"
FILE_COLUMN = "source_file"


@dataclass
class RawExport:
    """One export file read as text.

    Attributes:
        path: The file.
        sha256: Hash of the file's bytes (the data snapshot is built from these).
        frame: One row per data row, canonical column names, string values, plus
            ``source_file`` and ``source_line`` (1-based; the header is line 1; for Excel the
            sheet row).
        extra_columns: Columns in the file that the config neither maps nor ignores.
    """

    path: Path
    sha256: str
    frame: pd.DataFrame
    extra_columns: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Data rows read from the file."""
        return len(self.frame)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_export(path: Path, source: SourceConfig) -> RawExport:
    """Read one export file of a source.

    Args:
        path: The file.
        source: The source's config (format, encoding, separator, column mapping).

    Returns:
        The rows as strings with canonical column names and line numbers.

    Raises:
        FileLevelError: Empty, undecodable, wrongly separated or truncated file, or a
            mapped column missing.
    """
    if not path.exists():
        raise FileLevelError(f"{path.name}: file not found in {path.parent}", file=path.name)
    try:
        if path.stat().st_size == 0:
            raise FileLevelError(
                f"{path.name}: the file is empty (0 bytes). Export it again from the source system.",
                file=path.name, check="empty_file",
            )
        if source.format == "xlsx":
            header, rows, lines = _read_xlsx(path, source)
        else:
            header, rows, lines = _read_csv(path, source)
    except FileLevelError as exc:
        if exc.check != "empty_file" or source.severity.get("empty_file") != "row":
            raise
        # the source is configured to accept an empty export: no rows, and the run goes on
        header, rows, lines = list(source.columns.values()), [], []
    frame = _map_columns(path, source, header, rows, lines)
    extra = [h for h in header if h not in set(source.columns.values()) | set(source.ignore_columns)]
    return RawExport(path=path, sha256=file_sha256(path), frame=frame, extra_columns=extra)


def _decode(path: Path, data: bytes, encoding: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) and not encoding.lower().startswith("utf-16"):
        raise FileLevelError(
            f"{path.name}: the file is UTF-16 ('Unicode text'), not {encoding}. Export it again as "
            "CSV (UTF-8 or Windows-1252), or set 'encoding: utf-16' for this source.",
            file=path.name, check="encoding",
        )
    if encoding.lower().replace("_", "-") in ("cp1252", "windows-1252"):
        try:
            data.decode("utf-8")
            looks_utf8 = any(byte >= 0x80 for byte in data)
        except UnicodeDecodeError:
            looks_utf8 = False
        if looks_utf8:
            raise FileLevelError(
                f"{path.name}: the file is UTF-8 but the config says Windows-1252 "
                f"({encoding}); Danish letters would be garbled. Set 'encoding: utf-8' for this "
                "source or export the file as Windows-1252.",
                file=path.name, check="encoding",
            )
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        hint = " It looks like Windows-1252: set 'encoding: cp1252' for this source or export as UTF-8."
        raise FileLevelError(
            f"{path.name}, line {line}: bytes that are not valid {encoding}.{hint}",
            file=path.name, line=line, check="encoding",
        ) from exc


def _read_csv(path: Path, source: SourceConfig) -> tuple[list[str], list[list[str]], list[int]]:
    text = _decode(path, path.read_bytes(), source.encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=source.delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise FileLevelError(f"{path.name}, line 1: unreadable header: {exc}", file=path.name,
                             line=1, check="header") from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise FileLevelError(
            f"{path.name}: no header line. Export it again with column names in the first line.",
            file=path.name, line=1, check="empty_file",
        )
    expected = len(source.columns)
    if len(header) == 1 and expected > 1:
        other = ";" if source.delimiter != ";" else ","
        raise FileLevelError(
            f"{path.name}, line 1: the header has one column; the file does not seem to use "
            f"'{source.delimiter}' as separator (perhaps '{other}'). Fix 'delimiter' for source "
            f"'{source.name}' or export with '{source.delimiter}'.",
            file=path.name, line=1, check="delimiter",
        )
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise FileLevelError(
            f"{path.name}, line {reader.line_num}: the file cannot be parsed as CSV ({exc}); "
            "it may be truncated or have an unclosed quote. Export it again.",
            file=path.name, line=reader.line_num, check="truncated",
        ) from exc
    if (rows and len(rows[-1]) < len(header) and not text.endswith(("\n", "\r"))
            and source.severity.get("truncated") != "row"):
        raise FileLevelError(
            f"{path.name}, line {lines[-1]}: the last line has {len(rows[-1])} of "
            f"{len(header)} fields and no line end: the file looks truncated. Export it again.",
            file=path.name, line=lines[-1], check="truncated",
        )
    if not rows:
        raise FileLevelError(
            f"{path.name}: the file has a header but no rows. Export it again, or remove it if "
            "the source really has nothing for this school year.",
            file=path.name, check="empty_file",
        )
    return header, rows, lines


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, date):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_xlsx(path: Path, source: SourceConfig) -> tuple[list[str], list[list[str]], list[int]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise FileLevelError(
            f"{path.name}: not a readable Excel workbook ({type(exc).__name__}). Export it again "
            "as .xlsx.", file=path.name, check="format",
        ) from exc
    try:
        if source.sheet not in workbook.sheetnames:
            raise FileLevelError(
                f"{path.name}: no sheet '{source.sheet}' (sheets: {', '.join(workbook.sheetnames)}). "
                f"Rename the sheet or set 'sheet' for source '{source.name}'.",
                file=path.name, check="sheet",
            )
        sheet = workbook[source.sheet]
        header: list[str] = []
        rows: list[list[str]] = []
        lines: list[int] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v).strip() if number == 1 else _cell_text(v) for v in values]
            if number == 1:
                header = cells
                continue
            if not any(c.strip() for c in cells):
                continue
            rows.append(cells)
            lines.append(number)
    finally:
        workbook.close()
    while header and not header[-1]:
        header.pop()
    if not header:
        raise FileLevelError(f"{path.name}: sheet '{source.sheet}' is empty.", file=path.name,
                             check="empty_file")
    if not rows:
        raise FileLevelError(f"{path.name}: sheet '{source.sheet}' has a header but no rows.",
                             file=path.name, check="empty_file")
    rows = [row[: len(header)] + [""] * (len(header) - len(row)) for row in rows]
    return header, rows, lines


def _map_columns(
    path: Path, source: SourceConfig, header: list[str], rows: list[list[str]], lines: list[int]
) -> pd.DataFrame:
    missing = [h for h in source.columns.values() if h not in header]
    if missing:
        details = []
        for name in missing:
            close = difflib.get_close_matches(name, header, n=1, cutoff=0.6)
            details.append(f"'{name}'" + (f" (found '{close[0]}': renamed?)" if close else ""))
        raise FileLevelError(
            f"{path.name}, line 1: missing column(s) {', '.join(details)}. Expected the columns of "
            f"source '{source.name}' in the config; fix the export or the config's column mapping.",
            file=path.name, line=1, column=missing[0], check="missing_column",
        )
    positions = {canonical: header.index(name) for canonical, name in source.columns.items()}
    width = len(header)
    lengths = pd.Series([len(row) for row in rows], dtype="int64")
    longest = int(lengths.max()) if len(lengths) else width
    if (lengths != longest).any():
        # pad ragged rows first (pandas will stop padding them); they stay flagged below
        rows = [row + [""] * (longest - len(row)) if len(row) < longest else row for row in rows]
    # one C-level pass; longer rows keep their extra fields
    table = pd.DataFrame(rows, dtype="object") if rows else pd.DataFrame(columns=range(width))
    frame = pd.DataFrame(
        {canonical: (table[position] if position in table.columns else None)
         for canonical, position in positions.items()}, dtype="object",
    ).fillna("")
    frame[FILE_COLUMN] = path.name
    frame[LINE_COLUMN] = pd.Series(lines, dtype="int64")
    frame["_field_count_ok"] = (lengths == width).to_numpy()
    return frame
