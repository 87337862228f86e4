"""Expression from samplesheet rows: the ``expression`` formats (``rsem-genes``), one file
per epigenome, joined into the matrix the plan fills ``expression`` from.

Their rows leave the samplesheet's signal rows (nothing to count) and are read while
planning, so a bad file stops the ingest before anything is written. A store's
``expression`` holds one quantity (RPKM from a REMC matrix, TPM or FPKM from RSEM files):
it is recorded per epigenome in the store's ``expression`` attribute (``quantity``), and an
ingest that would mix two is refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
import xarray as xr

from chromestore import formats
from chromestore import variables as V
from chromestore.errors import InputError, StoreError
from chromestore.expression import read_rpkm
from chromestore.ingest.samplesheet import Sample

#: the quantity of a REMC matrix (``--expression``), and of stores that predate the record
RPKM = "RPKM"


def split_rows(sheet: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    """The rows that fill signal or peaks, and those that fill ``expression``."""
    rows = [s for s in sheet if s.target != V.expression.name]
    return rows, [s for s in sheet if s.target == V.expression.name]


def read_quantified(rows: Sequence[Sample], quantity: str, sheet: str = "") -> pd.DataFrame:
    """The expression of ``rows`` (one file per epigenome) as a matrix: index unversioned
    Ensembl gene id (the union of the files'; NaN where a file lacks a gene), one column per
    epigenome. ``attrs``: ``quantity``, ``source`` (the samplesheet ``sheet``'s rows),
    ``sources`` (epigenome → file) and ``report`` (a line per file)."""
    series, sources, report = {}, {}, []
    for s in rows:
        values, stats = formats.get(s.format).read(
            s.path, formats.ReadRequest(mark="", layout=None, quantity=quantity)
        )
        series[s.cell] = values
        sources[s.cell] = s.path
        report.append(
            f"  {s.cell:<6} {s.format} {stats['quantity']}: {stats['genes']:,} genes"
            f" ({stats['par_y_rows']} _PAR_Y rows left out, {stats['other_ids']} ids not "
            f"Ensembl genes)  {os.path.basename(s.path)}"
        )
    matrix = pd.concat(series, axis=1, sort=False)
    matrix.index.name = "gene_id"
    formats_used = ", ".join(dict.fromkeys(s.format for s in rows))
    matrix.attrs.update(
        quantity=quantity,
        source=f"the {formats_used} rows of {sheet or 'the samplesheet'}",
        sources=sources,
        report=report,
    )
    return matrix


def expression_matrix(
    expression: str | os.PathLike | None,
    rows: Sequence[Sample],
    quantity: str,
    ds: xr.Dataset | None = None,
    store: str = "the store",
    sheet: str = "",
) -> pd.DataFrame | None:
    """The matrix an ingest fills ``expression`` from: the REMC RPKM matrix
    (``expression``) or the expression rows' files (``quantity``), never both; None
    when there is neither. Refused when the store (``ds``, if it exists) already holds
    another quantity."""
    if expression and rows:
        raise InputError(
            rows[0].path,
            None,
            f"{rows[0].format} rows (samplesheet line {rows[0].line}) and --expression "
            f"{os.fspath(expression)} (RPKM) in one ingest: a store's expression holds one "
            "quantity; give one of them",
        )
    if expression:
        matrix = read_rpkm(expression)
        matrix.attrs["quantity"] = RPKM
    elif rows:
        matrix = read_quantified(rows, quantity, sheet)
    else:
        return None
    held = recorded_quantities(ds)
    other = {c: q for c, q in held.items() if q != matrix.attrs["quantity"]}
    if other:
        cell, q = next(iter(other.items()))
        raise StoreError(
            f"{store}: its expression is {q} ({cell}{' …' if len(other) > 1 else ''}), not "
            f"{matrix.attrs['quantity']}; a store's expression holds one quantity (labels "
            "compare genes within an epigenome, predictions across them): use a new store"
        )
    return matrix


def recorded_quantities(ds: xr.Dataset | None) -> dict[str, str]:
    """The quantity of each epigenome's expression in a store (RPKM where the store
    predates the record)."""
    if ds is None:
        return {}
    records = ds.attrs.get("expression") or {}
    return {str(c): str(r.get("quantity", RPKM)) for c, r in records.items()}
