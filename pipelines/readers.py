"""Readers for municipal export files: bytes in, a frame of strings with line numbers out.

Readers know encodings, separators and Excel; they do not type values (``validation.parsing``
does). Whatever makes a whole file unusable raises :class:`FileLevelError` naming the file and
what to do; nothing is written before that.

CSV files are read by DuckDB's own CSV reader when the result is certain to be the same as
Python's ``csv`` module's, row for row and line for line: an encoding DuckDB decodes itself
(UTF-8; Windows-1252 through Latin-1 when the file has no byte 0x80-0x9F, the only bytes where
the two differ), no quote character, no NUL byte, no line end but LF or CRLF, and exactly one
row per physical line after the header (no blank line), checked by a first pass that counts
DuckDB's rows against the file's line ends and fails on any malformed line. Every other file,
and any file DuckDB's reader rejects, is read by the ``csv`` module, which finds the problem
and names its line (see :class:`ExportStream`).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ews.config import SourceConfig
from ews.pseudonym import mask_cpr
from validation.errors import FileLevelError

LINE_COLUMN = "source_line"
FILE_COLUMN = "source_file"
#: The longest field the ``csv`` module reads (its default, 128 KiB, would stop the whole
#: file at one oversized field). A field longer than the typing reads
#: (``validation.parsing.MAX_FIELD_CHARS``) sends its row to quarantine as ``field_too_long``;
#: only a field beyond this limit (in practice a quote that is never closed) stops the file.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


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
    """Read one export file of a source, all of it at once (small files and tests).

    The ingest streams files with :class:`ExportStream` instead, so that a national export
    never has to fit in memory.

    Args:
        path: The file.
        source: The source's config (format, encoding, separator, column mapping).

    Returns:
        The rows as strings with canonical column names and line numbers.

    Raises:
        FileLevelError: Empty, undecodable, wrongly separated or truncated file, or a
            mapped column missing.
    """
    stream = ExportStream(path, source)
    frames = list(stream.chunks(1 << 62))
    frame = frames[0] if frames else _map_columns(path, source, stream.header, [], [])
    return RawExport(path=path, sha256=file_sha256(path), frame=frame,
                     extra_columns=stream.extra_columns)


class ExportStream:
    """One export file, read in chunks of rows.

    Opening checks what can be checked before any row is read (the file exists and is not
    empty, its encoding, its header, its separator and the mapped columns), so that a run can
    look at the head of every file before it reads the first one in full. :meth:`chunks` then
    reads the rows; problems found on the way (bytes of another encoding, an unclosed quote, a
    truncated last line, no rows) raise :class:`FileLevelError` naming the line.

    Attributes:
        path: The file.
        source: The source's config.
        header: The file's column names.
        extra_columns: Columns in the file that the config neither maps nor ignores.
        rows_read: Data rows read so far.
    """

    def __init__(self, path: Path, source: SourceConfig) -> None:
        self.path = path
        self.source = source
        self.rows_read = 0
        self._empty_ok = False
        if not path.exists():
            raise FileLevelError(f"{path.name}: file not found in {path.parent}", file=path.name)
        try:
            if path.stat().st_size == 0:
                raise FileLevelError(
                    f"{path.name}: the file is empty (0 bytes). Export it again from the source system.",
                    file=path.name, check="empty_file",
                )
            self.header = (self._xlsx_header() if source.format == "xlsx" else self._csv_header())
        except FileLevelError as exc:
            if exc.check != "empty_file" or not self._accepts_empty():
                raise
            # the source is configured to accept an empty export: no rows, and the run goes on
            self.header = list(source.columns.values())
            self._empty_ok = True
        _check_columns(path, source, self.header)
        known = set(source.columns.values()) | set(source.ignore_columns)
        # a header cell is shown in warnings: a data row taken for the header must not leak
        self.extra_columns = [mask_cpr(h) for h in self.header if h not in known]

    def empty_frame(self) -> pd.DataFrame:
        """A frame with the file's columns and no rows."""
        return _map_columns(self.path, self.source, self.header, [], [])

    def _accepts_empty(self) -> bool:
        return self.source.severity.get("empty_file") == "row"

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """The file's rows, at most ``rows`` at a time, as :func:`read_export` frames.

        Args:
            rows: Largest number of rows in one chunk.

        Yields:
            Frames of string values with canonical column names, ``source_file``,
            ``source_line`` and ``_field_count_ok``; none when the file has no rows and the
            source accepts empty exports.

        Raises:
            FileLevelError: A problem found while reading the rows.
        """
        if self._empty_ok:
            return
        if self.source.format == "csv":
            fast = self._duckdb_chunks(rows)
            if fast is not None:
                yield from fast
                return
        batch: list[list[str]] = []
        lines: list[int] = []
        rows_iter = self._xlsx_rows() if self.source.format == "xlsx" else self._csv_rows()
        try:
            for line, row in rows_iter:
                batch.append(row)
                lines.append(line)
                if len(batch) >= rows:
                    self.rows_read += len(batch)
                    yield _map_columns(self.path, self.source, self.header, batch, lines)
                    batch, lines = [], []
        except FileLevelError as exc:
            if exc.check == "empty_file" and self._accepts_empty() and not self.rows_read:
                return
            raise
        if batch:
            self.rows_read += len(batch)
            yield _map_columns(self.path, self.source, self.header, batch, lines)

    # CSV ------------------------------------------------------------------------------------

    def _duckdb_chunks(self, rows: int) -> Iterator[pd.DataFrame] | None:
        """The file's rows through DuckDB's CSV reader, or None when the ``csv`` module must read it.

        One scan keeps the mapped columns in a temporary table (failing on any malformed line
        or undecodable value); only when its rows are one per physical line after the header
        are they streamed. Columns the config does not map (free text among them) are never
        kept: a second scan counts only them, so that their values are decoded and checked
        too. A file whose every column is mapped is scanned once.
        """
        plan = _duckdb_plan(self.path, self.source.encoding)
        if plan is None:
            return None
        encoding, expected_rows = plan
        import duckdb

        con = duckdb.connect(":memory:")
        spill = tempfile.mkdtemp(prefix="ews-csv-")
        con.execute("SET temp_directory = $dir", {"dir": spill})
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET enable_progress_bar = false")
        positions = {canonical: self.header.index(name) for canonical, name in self.source.columns.items()}
        options = {"path": str(self.path), "delim": self.source.delimiter, "encoding": encoding,
                   "columns": {f"c{i}": "VARCHAR" for i in range(len(self.header))}}
        scan = ("read_csv($path, delim = $delim, encoding = $encoding, columns = $columns, "
                "header = false, skip = 1, auto_detect = false, strict_mode = true, "
                "quote = '\"', escape = '\"', null_padding = false)")
        # the mapped columns are kept, in file order (rowid); the unmapped ones are only
        # counted (DuckDB decodes just the columns a scan uses), and never kept
        selected = ", ".join(f"c{position} AS m{i}" for i, position in enumerate(positions.values()))
        unmapped = [i for i in range(len(self.header)) if i not in set(positions.values())]
        try:
            con.execute(f"CREATE TEMP TABLE export_rows AS SELECT {selected} FROM {scan}", options)
            kept = con.execute("SELECT count(*) FROM export_rows").fetchall()[0][0]
            counted = kept if not unmapped else con.execute(
                f"SELECT count(*), {', '.join(f'count(c{i})' for i in unmapped)} FROM {scan}",
                options).fetchall()[0][0]
        except duckdb.Error:
            _close(con, spill)
            return None
        if counted != expected_rows or counted == 0 or kept != counted:
            _close(con, spill)
            return None
        if self._first_row() != self.header:
            _close(con, spill)
            raise self._changed()
        return self._stream_duckdb(con, spill, list(positions), rows)

    def _stream_duckdb(self, con: Any, spill: str, canonical: list[str], rows: int
                       ) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        try:
            reader = con.sql("SELECT * FROM export_rows ORDER BY rowid").to_arrow_reader(
                max(2048, min(rows, 1 << 20)))
            # DuckDB hands out batches of about 120,000 rows: gather them into chunks of
            # ``rows``, so that the typing's fixed costs are paid once a chunk
            pending: list[Any] = []
            held = 0
            line = 2
            for batch in reader:
                pending.append(batch)
                held += batch.num_rows
                while held >= rows:
                    table = pa.Table.from_batches(pending)
                    yield self._duckdb_frame(table.slice(0, rows), canonical, line)
                    line += rows
                    rest = table.slice(rows)
                    pending, held = rest.to_batches(), rest.num_rows
            if held:
                yield self._duckdb_frame(pa.Table.from_batches(pending), canonical, line)
        finally:
            _close(con, spill)

    def _duckdb_frame(self, table: Any, canonical: list[str], line: int) -> pd.DataFrame:
        """A chunk of DuckDB's rows (an Arrow table) as a frame; ``line`` is its first line."""
        import pyarrow.compute as pc

        # Arrow-backed text, as DuckDB gives it, without a copy (the typing would convert
        # object columns to it anyway); an empty field is "" as from the csv module
        frame = pd.DataFrame({name: pd.Series(pd.arrays.ArrowStringArray(
            pc.fill_null(table.column(f"m{i}"), ""))) for i, name in enumerate(canonical)})
        frame[FILE_COLUMN] = self.path.name
        frame[LINE_COLUMN] = np.arange(line, line + table.num_rows, dtype="int64")
        frame["_field_count_ok"] = True
        self.rows_read += table.num_rows
        return frame

    def _first_row(self) -> list[str]:
        with self._open_text() as text:
            first = next(csv.reader(text, delimiter=self.source.delimiter, strict=True), [])
        return [h.lstrip("\ufeff").strip() for h in first]

    def _open_text(self) -> io.TextIOWrapper:
        encoding = self.source.encoding
        if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
            encoding = "utf-8-sig"  # a byte-order mark is not part of the first column's name
        return open(self.path, encoding=encoding, newline="")  # noqa: SIM115

    def _csv_header(self) -> list[str]:
        path, encoding = self.path, self.source.encoding
        with open(path, "rb") as handle:
            head = handle.read(2)
        if head in (b"\xff\xfe", b"\xfe\xff") and not encoding.lower().startswith("utf-16"):
            raise FileLevelError(
                f"{path.name}, line 1: the file is UTF-16 ('Unicode text', from its first bytes), not "
                f"{encoding}. Export it again as CSV (UTF-8 or Windows-1252), or set 'encoding: utf-16' "
                "for this source.",
                file=path.name, line=1, check="encoding",
            )
        if encoding.lower().replace("_", "-") in ("cp1252", "windows-1252") and _looks_utf8(path):
            line = _first_non_ascii_line(path)
            raise FileLevelError(
                f"{path.name}, line {line}: the file is UTF-8 but the config says Windows-1252 "
                f"({encoding}); Danish letters would be garbled (line {line} is the first with a "
                "letter beyond ASCII). Set 'encoding: utf-8' for this source or export the file as "
                "Windows-1252.",
                file=path.name, line=line, check="encoding",
            )
        with self._open_text() as text:
            _raise_field_limit()
            reader = csv.reader(text, delimiter=self.source.delimiter, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                header = []
            except UnicodeDecodeError as exc:
                raise self._encoding_error(exc) from exc
            except csv.Error as exc:
                raise FileLevelError(f"{path.name}, line 1: unreadable header: {exc}", file=path.name,
                                     line=1, check="header") from exc
        header = [h.lstrip("\ufeff").strip() for h in header]
        if not any(header):
            raise FileLevelError(
                f"{path.name}: no header line. Export it again with column names in the first line.",
                file=path.name, line=1, check="empty_file",
            )
        if len(header) == 1 and len(self.source.columns) > 1:
            other = ";" if self.source.delimiter != ";" else ","
            raise FileLevelError(
                f"{path.name}, line 1: the header has one column; the file does not seem to use "
                f"'{self.source.delimiter}' as separator (perhaps '{other}'). Fix 'delimiter' for "
                f"source '{self.source.name}' or export with '{self.source.delimiter}'.",
                file=path.name, line=1, check="delimiter",
            )
        return header

    def _encoding_error(self, exc: UnicodeDecodeError) -> FileLevelError:
        line = _first_undecodable_line(self.path, self.source.encoding)
        hint = " " + _encoding_advice(self.path, self.source.encoding)
        return FileLevelError(
            f"{self.path.name}, line {line}: bytes that are not valid {self.source.encoding}.{hint}",
            file=self.path.name, line=line, check="encoding",
        )

    def _csv_rows(self) -> Iterator[tuple[int, list[str]]]:
        path = self.path
        last: list[str] | None = None
        last_line = 0
        _raise_field_limit()
        with self._open_text() as text:
            reader = csv.reader(text, delimiter=self.source.delimiter, strict=True)
            # the line where the record being read began (a quoted field may span lines)
            record_start = 1
            try:
                header = [h.lstrip("\ufeff").strip() for h in next(reader, [])]
                if header != self.header:
                    raise self._changed()
                record_start = reader.line_num + 1
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        record_start = reader.line_num + 1
                        continue
                    if last is not None:
                        yield last_line, last
                    last, last_line = row, reader.line_num
                    record_start = reader.line_num + 1
            except UnicodeDecodeError as exc:
                raise self._encoding_error(exc) from exc
            except csv.Error as exc:
                raise _unparseable(path, exc, record_start, reader.line_num) from exc
        if last is None:
            raise FileLevelError(
                f"{path.name}: the file has a header but no rows. Export it again, or remove it if "
                "the source really has nothing for this school year.",
                file=path.name, check="empty_file",
            )
        if (len(last) < len(self.header) and not _ends_with_newline(path, self.source.encoding)
                and self.source.severity.get("truncated") != "row"):
            raise FileLevelError(
                f"{path.name}, line {last_line}: the last line has {len(last)} of "
                f"{len(self.header)} fields and no line end: the file looks truncated. Export it again.",
                file=path.name, line=last_line, check="truncated",
            )
        yield last_line, last

    def _changed(self) -> FileLevelError:
        return FileLevelError(
            f"{self.path.name}, line 1: the header changed while the run was reading the exports "
            "(was the file replaced during the run?). Run again when the inbox is complete.",
            file=self.path.name, line=1, check="header")

    # Excel ----------------------------------------------------------------------------------

    def _sheet_rows(self, rows: int | None = None) -> tuple[int, list[list[object]]]:
        """The configured sheet's cells (python-calamine) and the sheet row of the first one.

        Args:
            rows: Only the first so many sheet rows (the header check needs one).
        """
        from python_calamine import CalamineError, CalamineWorkbook

        path, source = self.path, self.source
        try:
            workbook = CalamineWorkbook.from_path(str(path))
        except (CalamineError, OSError, ValueError) as exc:
            raise FileLevelError(
                f"{path.name}: not a readable Excel workbook ({type(exc).__name__}). Export it again "
                "as .xlsx.", file=path.name, check="format",
            ) from exc
        try:
            if source.sheet not in workbook.sheet_names:
                names = ", ".join(workbook.sheet_names)
                raise FileLevelError(
                    f"{path.name}: no sheet '{source.sheet}' (sheets: {names}). "
                    f"Rename the sheet or set 'sheet' for source '{source.name}'.",
                    file=path.name, check="sheet",
                )
            # from cell A1 (not from the first cell with a value): list positions are sheet rows
            cells = workbook.get_sheet_by_name(source.sheet).to_python(skip_empty_area=False, nrows=rows)
        except CalamineError as exc:
            raise FileLevelError(
                f"{path.name}: not a readable Excel workbook ({type(exc).__name__}). Export it again "
                "as .xlsx.", file=path.name, check="format",
            ) from exc
        finally:
            workbook.close()
        return 1, cells

    def _xlsx_header(self) -> list[str]:
        first, cells = self._sheet_rows(rows=1)
        header = [_cell_text(v).strip() for v in cells[0]] if cells and first == 1 else []
        while header and not header[-1]:
            header.pop()
        if not header:
            raise FileLevelError(f"{self.path.name}: sheet '{self.source.sheet}' is empty.",
                                 file=self.path.name, check="empty_file")
        return header

    def _xlsx_rows(self) -> Iterator[tuple[int, list[str]]]:
        width = len(self.header)
        found = False
        first, cells = self._sheet_rows()
        for number, values in enumerate(cells, start=first):
            cells_text = [_cell_text(v) for v in values]
            if number == 1:
                header = [c.strip() for c in cells_text]
                while header and not header[-1]:
                    header.pop()
                if header != self.header:
                    raise self._changed()
                continue
            if not any(c.strip() for c in cells_text):
                continue
            found = True
            yield number, cells_text[:width] + [""] * (width - len(cells_text))
        if not found:
            raise FileLevelError(f"{self.path.name}: sheet '{self.source.sheet}' has a header but no rows.",
                                 file=self.path.name, check="empty_file")


#: Bytes where Windows-1252 and Latin-1 differ (DuckDB decodes Latin-1, not Windows-1252).
_C1_BYTES = re.compile(rb"[\x80-\x9f]")
_UTF8_NAMES = ("utf-8", "utf8", "utf-8-sig")
_LATIN1_NAMES = ("latin-1", "latin1", "iso-8859-1")
_CP1252_NAMES = ("cp1252", "windows-1252")


def _duckdb_plan(path: Path, encoding: str) -> tuple[str, int] | None:
    """DuckDB's name of the file's encoding and the data rows it must read, or None.

    None when the file needs Python's ``csv`` module to be read the same way: an encoding
    DuckDB does not decode, quote characters, NUL bytes, a lone CR.
    """
    name = encoding.lower().replace("_", "-")
    if name in _UTF8_NAMES:
        duck, check_c1 = "utf-8", False
    elif name in _LATIN1_NAMES or name in _CP1252_NAMES:
        duck, check_c1 = "latin-1", name in _CP1252_NAMES
    else:
        return None
    newlines = returns = pairs = 0
    previous = b""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            if b'"' in block or b"\x00" in block or (check_c1 and _C1_BYTES.search(block)):
                return None
            newlines += block.count(b"\n")
            returns += block.count(b"\r")
            pairs += block.count(b"\r\n") + (previous.endswith(b"\r") and block.startswith(b"\n"))
            previous = block
    if returns != pairs or not previous:
        return None
    lines = newlines + (0 if previous.endswith(b"\n") else 1)
    return duck, lines - 1


def _raise_field_limit() -> None:
    """Let the ``csv`` module read fields up to :data:`CSV_FIELD_LIMIT` (never lowers it)."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)


def _unparseable(path: Path, exc: csv.Error, record_start: int, gave_up: int) -> FileLevelError:
    """The file-level error for a CSV file the ``csv`` module cannot parse, naming both lines.

    Args:
        path: The file.
        exc: The ``csv`` module's error.
        record_start: The line where the record being read began (where a quote was opened).
        gave_up: The line where the reader gave up.
    """
    text = str(exc)
    if "field larger than field limit" in text:
        cause = (f"a field beginning on line {record_start} runs past {CSV_FIELD_LIMIT // (1024 * 1024)} MB "
                 f"(the reader gave up at line {gave_up}): most likely a quote opened there is never closed")
    elif "unexpected end of data" in text or "EOF" in text:
        where = ("the same line" if gave_up <= record_start
                 else f"line {gave_up}, the end of the file")
        cause = (f"a quoted field opened on line {record_start} is never closed (the reader gave up "
                 f"at {where})")
    else:
        cause = f"line {gave_up} is not valid CSV ({text}; the record began on line {record_start})"
    return FileLevelError(
        f"{path.name}, line {record_start}: the file cannot be parsed as CSV: {cause}. It may be "
        "truncated or have an unclosed quote. Export it again.",
        file=path.name, line=record_start, check="truncated",
    )


def _encoding_advice(path: Path, configured: str) -> str:
    """What to do about bytes that are not the configured encoding, never naming that encoding.

    The advice names an encoding only when the whole file decodes in it and it is not the one
    configured; otherwise it says the file does not look like a text export.
    """
    names = {"utf-8": ("utf-8", "utf8", "utf-8-sig", "utf8-sig"),
             "cp1252": ("cp1252", "windows-1252", "latin-1", "latin1", "iso-8859-1")}
    current = configured.lower().replace("_", "-")
    if current not in names["utf-8"] and _decodes(path, "utf-8"):
        return "It looks like UTF-8: set 'encoding: utf-8' for this source or export as Windows-1252."
    if current not in names["cp1252"] and _decodes(path, "cp1252"):
        return "It looks like Windows-1252: set 'encoding: cp1252' for this source or export as UTF-8."
    return ("It decodes as neither UTF-8 nor Windows-1252: it does not look like a text (CSV) "
            "export at all. Export it again as CSV.")


def _decodes(path: Path, encoding: str) -> bool:
    """Whether the whole file decodes in an encoding (read in blocks)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as handle:
        try:
            for block in iter(lambda: handle.read(1 << 22), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _close(con: Any, spill: str) -> None:
    con.close()
    shutil.rmtree(spill, ignore_errors=True)


def _looks_utf8(path: Path) -> bool:
    """Whether a file decodes as UTF-8 and has bytes beyond ASCII (read in blocks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    beyond_ascii = False
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                return False
            beyond_ascii = beyond_ascii or not block.isascii()
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return beyond_ascii


def _first_non_ascii_line(path: Path) -> int:
    """The 1-based line of the first byte beyond ASCII (1 when there is none)."""
    newlines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            match = re.search(rb"[\x80-\xff]", block)
            if match is not None:
                return newlines + block[: match.start()].count(b"\n") + 1
            newlines += block.count(b"\n")
    return 1


def _first_undecodable_line(path: Path, encoding: str) -> int:
    """The 1-based line of the first bytes that are not valid in the encoding."""
    decoder = codecs.getincrementaldecoder(encoding)()
    newlines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # exc.start counts from the start of the bytes the decoder held plus this block
                held = len(exc.object) - len(block)
                return newlines + exc.object[: exc.start].count(b"\n") - (
                    exc.object[:held].count(b"\n") if held > 0 else 0) + 1
            newlines += block.count(b"\n")
    return newlines + 1


def _ends_with_newline(path: Path, encoding: str) -> bool:
    """Whether the file's last character is a line end (in the file's encoding)."""
    name = encoding.lower().replace("_", "-")
    with open(path, "rb") as handle:
        head = handle.read(2)
        if not name.startswith("utf-16"):
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) in (b"\n", b"\r")
        handle.seek(-2, os.SEEK_END)
        tail = handle.read(2)
    codec = name if name in ("utf-16-le", "utf-16-be") else (
        "utf-16-be" if head == b"\xfe\xff" else "utf-16-le")
    return tail in ("\n".encode(codec), "\r".encode(codec))


def _check_columns(path: Path, source: SourceConfig, header: list[str]) -> None:
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


def _cell_text(value: object) -> str:
    if value.__class__ is str:  # most cells: no further test
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, date):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _map_columns(
    path: Path, source: SourceConfig, header: list[str], rows: list[list[str]], lines: list[int]
) -> pd.DataFrame:
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
