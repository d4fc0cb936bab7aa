"""Writing export files in the exact formats of ``docs/sources.md``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.synth.calendar import format_dates
from pipelines.synth.population import to_datetime64

WRITE_SLICE = 200_000


class CsvFile:
    """A CSV export written in chunks; the file is only created when a row arrives.

    Args:
        path: The file.
        header: Column names in order.
        sep: Field separator.
        encoding: ``'utf-8'``, ``'utf-8-sig'`` (with BOM) or ``'cp1252'``.
    """

    def __init__(self, path: Path, header: list[str], sep: str, encoding: str) -> None:
        self.path = path
        self.header = header
        self.sep = sep
        self.encoding = encoding
        self.rows = 0

    def write(self, columns: dict[str, np.ndarray]) -> None:
        """Append rows (a dict header -> string values, in header order).

        Values must be strings without the separator, quotes or line breaks (the synthetic
        exports never need quoting), so lines are joined directly, which is several times
        faster than ``DataFrame.to_csv``.
        """
        values = [np.asarray(columns[h], dtype=object) for h in self.header]
        n = len(values[0])
        if n == 0:
            return
        first = self.rows == 0
        with open(self.path, "wb" if first else "ab") as handle:
            for lo in range(0, n, WRITE_SLICE):  # slices keep memory flat for large files
                part = [v[lo:lo + WRITE_SLICE] for v in values]
                lines = "\n".join(map(self.sep.join, zip(*part, strict=True))) + "\n"
                if first and lo == 0:
                    lines = self.sep.join(self.header) + "\n" + lines
                    encoding = self.encoding
                else:
                    encoding = self.encoding.replace("-sig", "")
                handle.write(lines.encode(encoding))
        self.rows += n


def dates_dmy(days: np.ndarray, sep: str = "-") -> np.ndarray:
    """Day numbers -> ``dd-mm-yyyy`` (or ``dd.mm.yyyy``); ``''`` for none."""
    return format_dates(to_datetime64(days), "dmy-" if sep == "-" else "dmy.")


def halves(units: np.ndarray) -> np.ndarray:
    """Half-day counts -> days with a decimal comma (``3`` -> ``'1,5'``, ``2`` -> ``'1'``)."""
    units = np.asarray(units, dtype=np.int64)
    top = int(units.max(initial=0))
    table = np.array([str(u // 2) if u % 2 == 0 else f"{u // 2},5" for u in range(top + 1)],
                     dtype=object)
    return table[units]


def integers(values: np.ndarray) -> np.ndarray:
    """Integers -> strings (a lookup table when the values are small and non-negative)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and 0 <= values.min() and values.max() < 1000:
        table = np.array([str(i) for i in range(int(values.max()) + 1)], dtype=object)
        return table[values]
    return values.astype(str).astype(object)
