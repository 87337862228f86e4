"""Samplesheets: the CSV (``cell,mark,format,path``) that lists the files to ingest.

The formats are those of the registry (:mod:`chromestore.formats`): a row's format names
one, or is inferred from the file's suffix; what it fills and whether it needs a mark
come from its entry.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chromestore import formats
from chromestore import variables as V
from chromestore.errors import InputError
from chromestore.store import names
from chromestore.textio import open_text

#: the header of every samplesheet
SAMPLE_COLUMNS = ("cell", "mark", "format", "path")
#: an optional fifth column: what a signal file's values are (empty: its format's units)
UNITS_COLUMN = "units"


@dataclass(frozen=True)
class Sample:
    """One samplesheet row: a file of one cell (and one mark, or every mark the file holds)."""

    cell: str
    mark: str  # "" for formats that carry all marks
    format: str
    path: str
    line: int = 0
    units: str = ""  # the samplesheet's units column ("": the format's)

    @property
    def target(self) -> str:
        """The store variable the row fills (``signal``, ``peak_max`` or ``expression``)."""
        return formats.get(self.format).target

    @property
    def signal_units(self) -> str:
        """What the values this row writes are (``""`` for peaks and expression)."""
        return self.units or formats.get(self.format).units


@dataclass(frozen=True)
class Row:
    """A samplesheet row as written, its path made absolute and its format inferred."""

    sheet: str
    line: int
    cell: str
    mark: str
    format: str  # lower case; from the file name when the row leaves it empty ("": unknown)
    given_format: str  # the row's format column, as written
    path: str
    units: str = ""

    def require_file(self) -> None:
        """:class:`InputError` unless the row's file exists."""
        if not os.path.exists(self.path):
            raise InputError(
                self.path, None, f"file not found (samplesheet {self.sheet}, line {self.line})"
            )


def sheet_rows(path: str | os.PathLike) -> list[Row]:
    """The rows of a samplesheet (header ``cell,mark,format,path``, optionally ``,units``;
    blank lines skipped).

    Paths are relative to the samplesheet's folder. Errors name the samplesheet and line.
    """
    path = os.fspath(path)
    base = os.path.dirname(os.path.abspath(path))
    with open_text(path) as fh:
        rows = list(csv.reader(fh))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header not in (list(SAMPLE_COLUMNS), [*SAMPLE_COLUMNS, UNITS_COLUMN]):
        raise InputError(
            path,
            1,
            f"expected the header {','.join(SAMPLE_COLUMNS)} (optionally ,{UNITS_COLUMN})",
        )
    out = []
    for lineno, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise InputError(path, lineno, f"expected {len(header)} columns, found {len(row)}")
        cell, mark, fmt, file, *rest = (x.strip() for x in row)
        units = rest[0] if rest else ""
        if units and units not in V.SIGNAL_UNITS:
            raise InputError(
                path,
                lineno,
                f"units {units!r} is not one of {', '.join(V.SIGNAL_UNITS)} (or empty)",
            )
        if names.problem(cell):
            raise InputError(path, lineno, names.problem(cell))
        full = file if os.path.isabs(file) else os.path.join(base, file)
        inferred = "" if fmt else formats.infer_format(file) or ""
        if inferred == "bed":  # ENCODE names its peak files *.bed.gz: look inside
            from chromestore.formats.peaks import sniff_bed

            inferred = sniff_bed(full)
        out.append(
            Row(
                path,
                lineno,
                cell,
                mark,
                fmt.lower() or inferred,
                fmt or file,
                full,
                units,
            )
        )
    return out


def read_samplesheet(
    path: str | os.PathLike, marks: Sequence[str] = V.DEFAULT_MARKS
) -> list[Sample]:
    """Read and validate a samplesheet CSV (header ``cell,mark,format,path``).

    Paths are relative to the samplesheet's folder; an empty format is inferred from
    the file name. Every file must exist. Errors name the samplesheet and line.
    """
    path = os.fspath(path)
    out: list[Sample] = []
    seen: dict[tuple[str, str, str], int] = {}
    for row in sheet_rows(path):
        if row.format not in formats.names():
            raise InputError(
                path,
                row.line,
                f"unknown format {row.given_format!r} (known: {', '.join(formats.names())})",
            )
        entry = formats.get(row.format)
        if entry.needs_mark and not row.mark:
            raise InputError(path, row.line, f"format {row.format} needs a mark")
        expression = entry.target == V.expression.name
        if expression and row.mark:
            raise InputError(
                path, row.line, f"format {row.format} is expression: leave the mark empty"
            )
        if row.mark and row.mark not in marks:
            raise InputError(
                path, row.line, f"mark {row.mark!r} is not in the store ({', '.join(marks)})"
            )
        if row.units and entry.target != V.signal.name:
            raise InputError(
                path,
                row.line,
                f"format {row.format} fills {entry.target}: units are for signal files "
                "(leave the column empty)",
            )
        row.require_file()
        for m in [row.mark] if row.mark or expression else marks:
            key = (row.cell, m, entry.target)
            if key in seen:
                hint = (
                    ""
                    if entry.needs_mark
                    else f"; a {row.format} row without a mark fills every mark: give a "
                    "sample folder (train/valid/test CSVs) as one row"
                )
                raise InputError(
                    path,
                    row.line,
                    f"duplicate ({row.cell}{', ' + m if m else ''}) for "
                    f"{entry.target}, first on line {seen[key]}{hint}",
                )
            seen[key] = row.line
        out.append(Sample(row.cell, row.mark, row.format, row.path, row.line, row.units))
    return out


def write_samplesheet(path: str | os.PathLike, rows: Iterable[Sequence[str]]) -> None:
    """Write ``(cell, mark, format, path)`` rows under the samplesheet header, or
    ``(cell, mark, format, path, units)`` rows under the header with ``units``."""
    rows = [list(r) for r in rows]
    units = any(len(r) > len(SAMPLE_COLUMNS) for r in rows)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*SAMPLE_COLUMNS, UNITS_COLUMN] if units else SAMPLE_COLUMNS)
        w.writerows([(r + [""])[: len(SAMPLE_COLUMNS) + 1] if units else r for r in rows])
