"""Typing of raw export rows: strings in, canonical typed columns out, bad values quarantined.

The CPR column is pseudonymised here, the first moment a value is interpreted, so nothing
after this step ever sees a CPR number. Identity columns (names) are split off for the
identity store. Only what prevents typing is quarantined here (empty required value, invalid
CPR, a CPR-shaped value in any other column, an oversized field, unparseable date or number,
wrong field count); whether a typed value is allowed (the
7-point scale, known disciplines, ...) is the contracts' business (``validation.gate``), so
that every such rule is recorded as an expectation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ews.config import SourceConfig
from ews.pseudonym import CPR_IN_TEXT, CPR_PATTERN, mask_cpr, pseudonymise_series
from ews.schema import SOURCE_KINDS, Column

LINEAGE = ["source_file", "source_line"]


@dataclass
class ParsedSource:
    """The typed rows of one source and the rows that could not be typed.

    Attributes:
        typed: Canonical typed columns, ``pupil_id`` instead of ``cpr``, ``birth_year`` and the
            lineage columns; identity columns removed.
        identity: ``pupil_id`` with the identity columns (names), for the identity store.
        quarantine: ``source_file``, ``source_line``, ``column_name``, ``reason``,
            ``raw_values`` (JSON of the row without CPR and identity columns).
        pupil_ids: Every pupil id with a valid CPR in the source, whether its row was typed or
            quarantined (for the pupils source: the pupils other sources may refer to).
    """

    typed: pd.DataFrame
    identity: pd.DataFrame
    quarantine: pd.DataFrame
    pupil_ids: pd.Index = field(default_factory=lambda: pd.Index([], dtype="object"))


QUARANTINE_COLUMNS = ["source_file", "source_line", "column_name", "reason", "raw_values"]
#: Dates outside these are typing errors (a year 3025 or 1025), never data about a pupil.
DATE_RANGE = (pd.Timestamp("1900-01-01"), pd.Timestamp("2199-12-31"))
#: A value of a read column longer than this is not data of this system (a name, a code, a
#: date, a number): its row is quarantined as ``field_too_long``, and the quarantine keeps
#: only the first :data:`RAW_VALUE_CHARS` characters of any value.
MAX_FIELD_CHARS = 1_000
RAW_VALUE_CHARS = 100


def _parse_dates(values: pd.Series, formats: list[str]) -> pd.Series:
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    remaining = values.notna() & (values != "")
    for fmt in [*formats, "%Y-%m-%d"]:
        if not remaining.any():
            break
        parsed = pd.to_datetime(values[remaining], format=fmt, errors="coerce")
        ok = parsed.notna()
        result.loc[ok[ok].index] = parsed[ok].astype("datetime64[s]")
        remaining &= result.isna()
    return result


def _parse_numbers(values: pd.Series, decimal: str) -> tuple[pd.Series, pd.Series]:
    """Numbers with the source's decimal mark; returns (numbers, mistaken-decimal mask)."""
    text = values.str.replace(" ", "", regex=False).str.replace("\u00a0", "", regex=False)
    wrong_mark = pd.Series(False, index=values.index)
    if decimal == ",":
        wrong_mark = text.str.contains(r"^-?\d+\.\d+$", regex=True, na=False)
        text = text.str.replace(",", ".", regex=False)
    else:
        wrong_mark = text.str.contains(r"^-?\d+,\d+$", regex=True, na=False)
    return pd.to_numeric(text.where(~wrong_mark), errors="coerce"), wrong_mark


class _Reasons:
    """The first reason (and its column) each row is quarantined for, in the order flagged."""

    def __init__(self, rows: int) -> None:
        self.held = np.zeros(rows, dtype=bool)
        self.reason = np.full(rows, None, dtype=object)
        self.column = np.full(rows, None, dtype=object)

    def flag_rows(self, mask: np.ndarray, column: str, text: str) -> None:
        """Flag the rows of ``mask`` that have no reason yet."""
        fresh = mask & ~self.held
        if fresh.any():
            self.held |= fresh
            self.reason[fresh] = text
            self.column[fresh] = column

    def flag_values(self, codes: np.ndarray, mask: pd.Series | np.ndarray, column: str,
                    text: str | pd.Series) -> None:
        """Flag the rows whose distinct value (``codes`` into ``mask``) is flagged.

        ``text`` is one text for every flagged value, or one text per distinct value.
        """
        flagged = np.asarray(mask, dtype=bool)
        if not flagged.any():
            return
        fresh = flagged[codes] & ~self.held
        if not fresh.any():
            return
        self.held |= fresh
        if isinstance(text, str):
            self.reason[fresh] = text
        else:
            self.reason[fresh] = text.to_numpy(dtype=object)[codes[fresh]]
        self.column[fresh] = column


def _spread(per_value: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """A result per distinct value (from ``pd.factorize``) spread back to the rows."""
    return per_value.take(codes).set_axis(index)


def parse_source_frame(raw: pd.DataFrame, source: SourceConfig, key: bytes,
                       pseudonyms: dict[str, tuple[str | None, float]] | None = None) -> ParsedSource:
    """Type one source's raw rows by its canonical schema.

    Every column is factorized once, and all of its typing and flagging (strip, value mapping,
    dates, numbers, the CPR hash, the reasons with the value they show) runs on its distinct
    values: a column of dates, codes or CPR numbers has a few hundred to a few thousand of them
    in a million rows. The results are spread back to the rows by the codes.

    Args:
        raw: Rows from :func:`pipelines.readers.read_export` (strings, canonical names,
            lineage columns), possibly several files of the same source.
        source: The source's config (value mappings, date formats, decimal mark).
        key: The pseudonymisation key.
        pseudonyms: Pseudonyms of CPR values of earlier chunks, under the same key (see
            :func:`ews.pseudonym.pseudonymise_series`); added to.

    Returns:
        Typed rows, identity rows and quarantined rows; every input row is in exactly one of
        ``typed`` and ``quarantine``.
    """
    columns: tuple[Column, ...] = SOURCE_KINDS[source.kind]
    frame = raw.reset_index(drop=True)
    reasons = _Reasons(len(frame))

    if "_field_count_ok" in frame:
        reasons.flag_rows(~frame["_field_count_ok"].astype(bool).to_numpy(), "",
                          "wrong_field_count: the line does not have as many fields as the header")
    # each column's distinct values (a missing value is one of them, so every step below
    # treats it exactly as it would on the rows)
    distinct: dict[str, tuple[np.ndarray, pd.Series]] = {}
    for column in columns:
        codes, values = pd.factorize(frame[column.name].astype("string"), use_na_sentinel=False)
        distinct[column.name] = (codes, pd.Series(values, dtype="string"))
    # the door's checks of every read column
    for column in columns:
        codes, values = distinct[column.name]
        lengths = values.str.len().fillna(0).astype("int64")
        long = lengths > MAX_FIELD_CHARS
        if long.any():
            shown = pd.Series([f"{n:,}" for n in lengths], index=values.index, dtype="object")
            reasons.flag_values(codes, long, column.name, f"field_too_long: {column.name} has " + shown
                                + f" characters (at most {MAX_FIELD_CHARS:,} are read)")
    for column in columns:
        if column.type == "cpr":
            continue
        # a CPR number typed into another column (a name, a class, a code) is caught at the
        # door: the row goes to quarantine (masked), never to the identity store or a table
        codes, values = distinct[column.name]
        reasons.flag_values(codes, values.str.contains(CPR_IN_TEXT, na=False), column.name,
                            f"cpr_in_field: {column.name} holds a value shaped like a CPR number "
                            "(not stored, masked here); fix the export")
    typed = pd.DataFrame(index=frame.index)
    identity = pd.DataFrame(index=frame.index)
    for column in columns:
        codes, values = distinct[column.name]
        text = values.str.strip()
        mapping = source.values.get(column.name)
        if mapping:
            text = text.map(lambda v, m=mapping: m.get(v, v) if isinstance(v, str) else v)
            text = text.astype("string")
        empty = (text.isna() | (text == "")).to_numpy(dtype=bool)

        def flag(mask: pd.Series | np.ndarray, message: str | pd.Series, name: str = column.name,
                 codes: np.ndarray = codes) -> None:
            reasons.flag_values(codes, mask, name, message)

        if column.required:
            flag(empty, f"missing_value: {column.name} is empty")
        if column.type == "cpr":
            ids = pseudonymise_series(text.where(~empty), key, pseudonyms)
            invalid = ~empty & ids["pupil_id"].isna().to_numpy()
            shaped = text.str.match(CPR_PATTERN.pattern, na=False).to_numpy(dtype=bool) & invalid
            flag(shaped, "invalid_cpr: the date of birth in the CPR number is not a day of the calendar "
                 "(e.g. 31 February, or 29 February outside a leap year)")
            flag(invalid, "invalid_cpr: the value is not a CPR number (ddmmyy-xxxx)")
            typed["pupil_id"] = _spread(ids["pupil_id"], codes, frame.index)
            typed["birth_year"] = _spread(ids["birth_year"], codes, frame.index)
        elif column.identity:
            identity[column.name] = _spread(text, codes, frame.index)
        elif column.type == "date":
            parsed = _parse_dates(text.where(~empty), source.date_formats)
            shown = text.fillna("")
            implausible = parsed.notna() & ((parsed < DATE_RANGE[0]) | (parsed > DATE_RANGE[1]))
            flag(implausible, "bad_date: '" + shown + f"' lies outside the years {DATE_RANGE[0].year}-"
                 f"{DATE_RANGE[1].year}: a typing error?")
            parsed = parsed.where(~implausible)
            flag(~empty & parsed.isna().to_numpy(),
                 "bad_date: '" + shown + f"' is not a date ({' or '.join(source.date_formats)})")
            typed[column.name] = _spread(parsed.dt.date, codes, frame.index)
        elif column.type in ("int", "float"):
            numbers, wrong_mark = _parse_numbers(text.where(~empty), source.decimal)
            shown = text.fillna("")
            flag(wrong_mark, "bad_decimal_mark: '" + shown
                 + f"' uses the wrong decimal mark (expected '{source.decimal}')")
            flag(~empty & numbers.isna().to_numpy(), "not_a_number: '" + shown + "' is not a number")
            if column.type == "int":
                fractional = numbers.notna() & (numbers != np.floor(numbers))
                flag(fractional, "not_a_whole_number: '" + shown + "' is not a whole number")
                typed[column.name] = _spread(numbers.where(~fractional).astype("Int64"), codes, frame.index)
            else:
                typed[column.name] = _spread(numbers.astype("Float64"), codes, frame.index)
        else:
            typed[column.name] = _spread(text.where(~empty), codes, frame.index)
    for name in LINEAGE:
        typed[name] = frame[name]
    if not identity.empty:
        identity.insert(0, "pupil_id", typed["pupil_id"])
    bad = pd.Series(reasons.held, index=frame.index)
    reason = pd.Series(reasons.reason, index=frame.index)
    reason_column = pd.Series(reasons.column, index=frame.index)
    quarantine = _quarantine_frame(frame[bad], typed[bad], reason[bad], reason_column[bad], columns)
    return ParsedSource(
        typed=typed[~bad].reset_index(drop=True),
        identity=identity[~bad].reset_index(drop=True) if not identity.empty else identity,
        quarantine=quarantine,
        pupil_ids=pd.Index(typed["pupil_id"].dropna().unique(), dtype="object"),
    )


def _quarantine_frame(
    raw: pd.DataFrame, typed: pd.DataFrame, reason: pd.Series, column: pd.Series,
    columns: tuple[Column, ...],
) -> pd.DataFrame:
    """Quarantine rows without CPR numbers or names: the pseudonym stands in for the CPR."""
    if raw.empty:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    keep = [c.name for c in columns if c.type != "cpr" and not c.identity]
    payload = raw[keep].astype("string").fillna("").map(lambda v: v[:RAW_VALUE_CHARS])
    payload = payload.assign(pupil_id=typed["pupil_id"].astype("string").fillna(""))
    raw_values = [mask_cpr(json.dumps(row, ensure_ascii=False))
                  for row in payload.to_dict("records")]
    return pd.DataFrame({
        "source_file": raw["source_file"].to_numpy(),
        "source_line": raw["source_line"].to_numpy(),
        "column_name": column.to_numpy(),
        "reason": [mask_cpr(str(text)) for text in reason],
        "raw_values": raw_values,
    })
