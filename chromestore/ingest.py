"""Ingestion into the store: gene annotation (creates the store) and expression matrices.

Signal formats (reads, bigWig, peaks, CSV datasets) are added by the samplesheet
engine; this module owns store creation and ``expression``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.expression import Alignment, align_expression, read_rpkm
from chromestore.genes import read_genes


@dataclass
class IngestReport:
    created: bool = False
    cells_added: list[str] = field(default_factory=list)
    expression: Alignment | None = None
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        out = []
        if self.created:
            out.append("created a new store")
        if self.cells_added:
            out.append(f"added {len(self.cells_added)} epigenomes: {_short(self.cells_added)}")
        if self.expression is not None:
            out.append(self.expression.summary())
            if self.expression.missing_genes:
                out.append(
                    "genes without expression: " + _short(self.expression.missing_genes)
                )
        return "\n".join(out + self.lines)


def _short(items: Sequence[str], n: int = 8) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", … ({len(items)} in all)" if len(items) > n else "")


def open_or_create(
    path: str | os.PathLike,
    genes: str | os.PathLike | None,
    *,
    marks: Sequence[str] = V.DEFAULT_MARKS,
    window: int = 5000,
    bin_size: int = 100,
    genome: str = "hg19",
    gene_chunk: int = S.DEFAULT_GENE_CHUNK,
    storage_options: dict | None = None,
) -> tuple[xr.Dataset, bool]:
    """Open the store at ``path``, creating it from the ``genes`` annotation if absent.

    An existing store must have been built with the same window and bin size.
    """
    if S.exists(path, storage_options):
        ds = S.open_store(path, storage_options)
        for key, want in (("window", window), ("bin_size", bin_size)):
            if int(ds.attrs[key]) != int(want):
                raise S.StoreError(
                    f"{os.fspath(path)}: store has {key}={ds.attrs[key]}, not {want}; "
                    "use the store's settings or a new store"
                )
        return ds, False
    if genes is None:
        raise S.StoreError(f"{os.fspath(path)}: no store here; pass --genes to create one")
    table = read_genes(genes)
    ds = S.create_store(
        path,
        table,
        marks=marks,
        window=window,
        bin_size=bin_size,
        chunks={V.GENE: gene_chunk},
        genome=genome,
        storage_options=storage_options,
    )
    S.update_attrs(path, storage_options, genes_source=os.fspath(genes))
    return ds, True


def ingest_expression(
    path: str | os.PathLike,
    matrix_path: str | os.PathLike | pd.DataFrame,
    cells: Sequence[str] | None = None,
    storage_options: dict | None = None,
) -> tuple[Alignment, list[str]]:
    """Fill ``expression`` from an RPKM matrix for ``cells`` (default: every column).

    Cells not yet in the store are appended. The matrix is parsed and joined fully
    before anything is written, so a bad file leaves the store untouched.
    Returns the join report and the cells that were appended.
    """
    if isinstance(matrix_path, pd.DataFrame):
        matrix, matrix_path = matrix_path, matrix_path.attrs.get("source", "<DataFrame>")
    else:
        matrix = read_rpkm(matrix_path)
    if cells is None:
        cells = list(matrix.columns)
    absent = [c for c in cells if c not in matrix.columns]
    if absent:
        raise KeyError(f"{os.fspath(matrix_path)}: no column for epigenome(s) {absent}")
    ds = S.open_store(path, storage_options)
    aligned = align_expression(matrix, ds[V.gene_id.name].values, list(cells))
    added = S.add_cells(path, cells, storage_options)
    ds = S.open_store(path, storage_options)
    index = [S.cell_index(ds, c) for c in cells]
    order = np.argsort(index)
    # Write contiguous runs of cells in one region each.
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and index[order[stop]] == index[order[stop - 1]] + 1:
            stop += 1
        rows = order[start:stop]
        lo = index[rows[0]]
        part = xr.Dataset(
            {V.expression.name: (V.expression.dims, aligned.values[rows])}
        ).chunk({V.CELL: 1, V.GENE: ds.attrs["gene_chunk"]})
        S.write_region(
            path,
            part,
            {V.CELL: slice(lo, lo + len(rows)), V.GENE: slice(None)},
            storage_options,
        )
        start = stop
    S.update_attrs(
        path,
        storage_options,
        expression={
            c: {
                "source": os.fspath(matrix_path),
                "genes_matched": int(aligned.values.shape[1] - len(aligned.missing_genes)),
                "genes_missing": len(aligned.missing_genes),
            }
            for c in cells
        },
    )
    return aligned, added


# --- signal: aligning arrays onto the store and writing one cell ------------------


@dataclass
class Aligned:
    """Per-gene values reindexed onto the store's genes, with what did not match."""

    values: np.ndarray  # (store gene, ...) float32, NaN for store genes without data
    matched: int  # store genes that received values
    unmatched: list[str]  # source genes that match no store gene


def align_genes(ds: xr.Dataset, source: xr.DataArray) -> Aligned:
    """Reindex ``source`` (gene first) onto the store's genes.

    ``source.attrs["gene_key"]`` says which store coordinate its gene labels are:
    ``"gene"`` (``ENSGID_SYMBOL``, the default) or ``"gene_id"`` (an Ensembl id, which
    fills every store gene with that id: REMC repeats 7 ids under two symbols).
    """
    key = source.attrs.get("gene_key", V.GENE)
    store_keys = pd.Index(ds[key].values.astype(object))
    labels = pd.Index(source[V.GENE].values.astype(object))
    if labels.has_duplicates:
        raise ValueError(f"{source.attrs.get('source', 'input')}: duplicate genes")
    pos = labels.get_indexer(store_keys)
    have = pos >= 0
    values = np.full((len(store_keys),) + source.shape[1:], np.nan, dtype=np.float32)
    values[have] = source.values[pos[have]]
    unmatched = [str(g) for g in labels[~labels.isin(store_keys)]]
    return Aligned(values, int(have.sum()), unmatched)


def write_cell(
    path: str | os.PathLike,
    cell: str,
    signal: dict[str, np.ndarray] | None = None,
    peak_max: dict[str, np.ndarray] | None = None,
    storage_options: dict | None = None,
) -> None:
    """Write the given marks of one cell: ``signal[mark]`` (gene, bin), ``peak_max[mark]`` (gene).

    The store's chunks hold all marks of a cell, so the cell's current values are read,
    the given marks replaced and the cell's region written back whole: callers must
    serialise the writes of one cell (the engine runs one writer per cell). Other marks
    and other cells are left as they were.
    """
    ds = S.open_store(path, storage_options)
    ci = S.cell_index(ds, cell)
    marks = [str(m) for m in ds[V.MARK].values]
    chunk = {V.CELL: 1, V.GENE: int(ds.attrs["gene_chunk"])}
    for name, given in ((V.signal.name, signal), (V.peak_max.name, peak_max)):
        if not given:
            continue
        unknown = sorted(set(given) - set(marks))
        if unknown:
            raise S.StoreError(f"{os.fspath(path)}: marks {unknown} are not in the store ({marks})")
        current = ds[name].isel({V.CELL: ci}).values.copy()
        for mark, values in given.items():
            current[:, marks.index(mark)] = values
        part = xr.Dataset({name: (ds[name].dims, current[None])}).chunk(chunk)
        S.write_region(path, part, {V.CELL: slice(ci, ci + 1)}, storage_options)


def ingest_signal_array(
    path: str | os.PathLike,
    cell: str,
    source: xr.DataArray,
    storage_options: dict | None = None,
    info: dict | None = None,
) -> Aligned:
    """Write binned counts (gene, mark, bin) of one cell, e.g. from a CSV reader.

    Wider windows are centre-cropped to the store's bins; the cell is appended if
    new; each mark is recorded completed after the write. Store genes absent from
    ``source`` stay NaN; source genes absent from the store are returned as unmatched.
    """
    from chromestore.formats.csv import centre_crop

    ds = S.open_store(path, storage_options)
    source = centre_crop(source, ds.sizes[V.BIN])
    aligned = align_genes(ds, source.transpose(V.GENE, V.MARK, V.BIN))
    S.add_cells(path, [cell], storage_options)
    marks = [str(m) for m in source[V.MARK].values]
    write_cell(
        path, cell, {m: aligned.values[:, i] for i, m in enumerate(marks)},
        storage_options=storage_options,
    )
    for m in marks:
        S.mark_completed(
            path, cell, m,
            {
                "source": source.attrs.get("source"),
                "format": source.attrs.get("format"),
                "genes_matched": aligned.matched,
                "genes_unmatched": len(aligned.unmatched),
                **(info or {}),
            },
            storage_options,
        )
    return aligned
