"""The inputs that are tables, not signal: the gene annotation (which creates the store)
and an RPKM matrix (which fills ``expression``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.expression import Alignment, align_expression, read_rpkm
from chromestore.genes import read_genes
from chromestore.store.dataset import open_store


def check_store(
    store: S.StoreLike, genes, window: int, bin_size: int, storage_options: dict | None = None
) -> bool:
    """Whether a store is at ``store``; raises when ingest could not go on there.

    An existing store must have been built with the same window and bin size; where
    there is none (or only an interrupted creation), ``genes`` must be given to create it.
    """
    store = S.Store.of(store, storage_options)
    if not store.exists() or store.creating():
        if genes is None:
            raise S.StoreError(f"{store}: no store here; pass --genes to create one")
        return False
    attrs = store.attrs()
    for key, want in (("window", window), ("bin_size", bin_size)):
        if int(attrs[key]) != int(want):
            raise S.StoreError(
                f"{store}: store has {key}={attrs[key]}, not {want}; "
                "use the store's settings or a new store"
            )
    return True


def check_columns(matrix: pd.DataFrame, cells: Sequence[str], source) -> None:
    """Raise ``KeyError`` naming the RPKM matrix and the ``cells`` it has no column for."""
    absent = [c for c in cells if c not in matrix.columns]
    if absent:
        raise KeyError(f"{os.fspath(source)}: no column for epigenome(s) {absent}")


def open_or_create(
    store: S.StoreLike,
    genes: str | os.PathLike | None,
    *,
    table: pd.DataFrame | None = None,
    cells: Sequence[str] = (),
    marks: Sequence[str] = V.DEFAULT_MARKS,
    window: int = S.DEFAULT_WINDOW,
    bin_size: int = S.DEFAULT_BIN_SIZE,
    genome: str = S.DEFAULT_GENOME,
    gene_chunk: int = S.DEFAULT_GENE_CHUNK,
    storage_options: dict | None = None,
) -> tuple[xr.Dataset, bool]:
    """Open the store, creating it from the ``genes`` annotation if absent (``table``:
    that annotation already read) with the epigenomes ``cells``.

    An existing store must have been built with the same window and bin size. The store
    is created whole or not at all (:mod:`chromestore.store.creation`); one that another
    ingest created meanwhile is opened. Returns the store and whether it was created.
    """
    store = S.Store.of(store, storage_options)
    if check_store(store, genes, window, bin_size):
        return open_store(store), False
    if table is None:
        table = read_genes(genes)
    try:
        ds = S.create_store(
            store,
            table,
            cells=list(cells),
            marks=marks,
            window=window,
            bin_size=bin_size,
            chunks={V.GENE: gene_chunk},
            genome=genome,
            attrs={"genes_source": os.fspath(genes)},
        )
    except S.StoreExists:  # another ingest created it meanwhile
        check_store(store, genes, window, bin_size)
        return open_store(store), False
    return ds, True


def ingest_expression(
    store: S.StoreLike,
    matrix_path: str | os.PathLike | pd.DataFrame,
    cells: Sequence[str] | None = None,
    storage_options: dict | None = None,
) -> tuple[Alignment, list[str]]:
    """Fill ``expression`` from an RPKM matrix for ``cells`` (default: every column).

    Cells not yet in the store are appended. The matrix is parsed and joined fully
    before anything is written, so a bad file leaves the store untouched.
    Returns the join report and the cells that were appended.
    """
    store = S.Store.of(store, storage_options)
    if isinstance(matrix_path, pd.DataFrame):
        matrix, matrix_path = matrix_path, matrix_path.attrs.get("source", "<DataFrame>")
    else:
        matrix = read_rpkm(matrix_path)
    if cells is None:
        cells = list(matrix.columns)
    check_columns(matrix, cells, matrix_path)
    ds = open_store(store)
    aligned = align_expression(matrix, ds[V.gene_id.name].values, list(cells))
    added = S.add_cells(store, cells)
    ds = open_store(store)
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
        part = xr.Dataset({V.expression.name: (V.expression.dims, aligned.values[rows])}).chunk(
            {V.CELL: 1, V.GENE: ds.attrs["gene_chunk"]}
        )
        S.write_region(store, part, {V.CELL: slice(lo, lo + len(rows)), V.GENE: slice(None)})
        start = stop
    matched = int(aligned.values.shape[1] - len(aligned.missing_genes))
    sources = matrix.attrs.get("sources", {})
    S.update_attrs(
        store,
        expression={
            c: {
                "source": os.fspath(sources.get(c, matrix_path)),
                "quantity": matrix.attrs.get("quantity", "RPKM"),
                "genes_matched": matched,
                "genes_missing": len(aligned.missing_genes),
            }
            for c in cells
        },
    )
    return aligned, added
