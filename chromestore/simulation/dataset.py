"""A REMC-scale simulator calibrated on real data: real genes and RPKM, simulated signal.

What is real: the 19,802 gene windows and strands (``data/gene_windows.hg19.bed.gz``)
and the RPKM of the 56 DeepChrome epigenomes (``data/rpkm.56epigenomes.tsv.gz``), so
``expression`` and the labels derived from it are the paper's. What is simulated:
``signal``, drawn in the store's 5'→3' frame from a generative model fitted at run time
on the real binned read counts of 600 E003 genes (``data/samples/deepdiff_E003``,
central 100 bins, minus-strand genes reversed). The modules:

* :mod:`chromestore.simulation.model`: the real inputs and the model fitted on them;
* :mod:`chromestore.simulation.draw`: the seeded, chunk-independent draw of one epigenome;
* :mod:`chromestore.simulation.report`: real vs simulated E003, with tolerances;
* this module: :func:`simulate`, a lazy Dataset or a store;
* :mod:`chromestore.simulation.emit`: the same draw written as the files REMC publishes.

Accuracy measured on simulated signal is never comparable with published accuracy.
Genes that share a window (:func:`window_owner`) share their signal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.simulation.draw import DRAW_BLOCK, cell_model, draw_cell
from chromestore.simulation.model import (
    BIN_SIZE,
    RPKM,
    WINDOW,
    aligned_rpkm,
    cell_depth,
    expression_levels,
    expression_percentiles,
    real_genes,
    real_rpkm,
    snr_weight,
    window_owner,
)
from chromestore.store import accessor as _accessor  # noqa: F401  (registers ds.chromestore)
from chromestore.store import records, select_cells


def _resolve_genes(genes: str | int | Sequence[str]) -> np.ndarray:
    table = real_genes()
    if isinstance(genes, str) and genes == "all":
        return np.arange(len(table))
    if isinstance(genes, int | np.integer):
        if not 0 < genes <= len(table):
            raise ValueError(f"genes must be between 1 and {len(table)}, got {genes}")
        return np.arange(int(genes))
    keys = [genes] if isinstance(genes, str) else list(genes)
    pos = pd.Index(table["gene"]).get_indexer(keys)
    if (pos < 0).any():
        missing = [k for k, p in zip(keys, pos, strict=True) if p < 0]
        raise ValueError(f"unknown gene key(s) {missing[:5]} (use ENSGID_SYMBOL)")
    return pos.astype(np.int64)


def _lazy_signal(
    cells: list[str], genes_idx: np.ndarray, pct: np.ndarray, seed: int, gene_chunk: int
) -> da.Array:
    """(cell, gene, mark, bin) dask array, one task per (cell, gene chunk)."""
    n_total = pct.shape[1]
    n_marks, n_bins = len(V.DEFAULT_MARKS), 2 * WINDOW // BIN_SIZE
    draw = dask.delayed(draw_cell, pure=True)
    rows = []
    for i, cell in enumerate(cells):
        model = dask.delayed(cell_model(cell, seed), pure=True)  # one graph literal per cell
        levels = expression_levels(pct[i])
        row = []
        for lo in range(0, len(genes_idx), gene_chunk):
            idx = genes_idx[lo : lo + gene_chunk]
            base = int(idx.min()) // DRAW_BLOCK * DRAW_BLOCK
            top = min((int(idx.max()) // DRAW_BLOCK + 1) * DRAW_BLOCK, n_total)
            part = draw(model, idx, levels[base:top], base, n_total, seed)
            row.append(da.from_delayed(part, (len(idx), n_marks, n_bins), dtype=np.float32))
        rows.append(da.concatenate(row, axis=0)[None])
    return da.concatenate(rows, axis=0)


def simulate(
    path: str | os.PathLike | None = None,
    cells: str | int | Sequence[str] = "all",
    genes: str | int | Sequence[str] = "all",
    seed: int = 0,
    gene_chunk: int = S.DEFAULT_GENE_CHUNK,
    storage_options: dict | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Simulate a chromestore Dataset: real genes and RPKM, signal drawn from the fitted model.

    Parameters
    ----------
    path
        None: return a lazy (dask-backed) in-memory Dataset. Otherwise create a store
        there, fill it one epigenome at a time with chunk-aligned region writes (Dask
        tasks, bounded memory), record each (cell, mark) as completed with provenance
        ``simulated``, and return it opened. A store already there from the same call
        (same genes, cells, seed, chunks), e.g. one whose simulation was killed, is
        completed: the epigenomes not yet complete are simulated.
    cells
        ``"all"`` (the 56 epigenomes), the first N, or a list (or comma-separated
        string) of epigenome ids.
    genes
        ``"all"`` (19,802), the first N of the real gene list, or a list of gene keys.
    seed
        Same seed, same values, whatever the subset or chunking.

    Examples
    --------
    >>> import chromestore
    >>> ds = chromestore.simulate(cells=3, genes=500)
    >>> dict(ds.sizes)
    {'cell': 3, 'gene': 500, 'mark': 5, 'bin': 100}
    >>> bool((ds.signal >= 0).all())
    True
    """
    cell_list = select_cells(cells, list(real_rpkm().columns), where="the real RPKM table")
    genes_idx = _resolve_genes(genes)
    table = real_genes()
    expr_all = aligned_rpkm(table["gene_id"].to_numpy(object), cell_list)
    pct = expression_percentiles(expr_all)
    sub = table.iloc[genes_idx].reset_index(drop=True)
    gene_chunk = max(1, min(int(gene_chunk), len(sub)))
    provenance = {"format": "simulated", "seed": int(seed), "model": "chromestore.simulate"}
    if path is None:
        ds = S.template(sub, cell_list, gene_chunk=gene_chunk)
        signal = _lazy_signal(cell_list, window_owner()[genes_idx], pct, seed, gene_chunk)
        expr = da.from_array(expr_all[:, genes_idx], chunks=(1, gene_chunk))
        ds = ds.assign(
            signal=(V.signal.dims, signal, ds.signal.attrs),
            expression=(V.expression.dims, expr, ds.expression.attrs),
        )
        done = V.RECORDS_OF[V.signal.name]  # provenance needs a store (records/CELL/MARK)
        ds = ds.assign({done: (ds[done].dims, np.ones(ds[done].shape, bool))})
        ds.attrs.update(simulated=True)
        return ds
    return _simulate_store(
        os.fspath(path),
        sub,
        cell_list,
        genes_idx,
        pct,
        expr_all,
        seed,
        gene_chunk,
        storage_options,
        provenance,
        progress,
    )


def _simulate_store(
    path,
    sub,
    cells,
    genes_idx,
    pct,
    expr_all,
    seed,
    gene_chunk,
    storage_options,
    provenance,
    progress,
) -> xr.Dataset:
    ds = S.create_store(  # whole or not at all; a re-run after a kill resumes it
        path,
        sub,
        cells,
        chunks={V.GENE: gene_chunk},
        storage_options=storage_options,
        attrs={"simulated": True, "simulation_seed": int(seed)},
        resume=True,
    )
    marks = list(V.DEFAULT_MARKS)
    complete = records.completion_table(ds).all(axis=1)
    iterator = [i for i in range(len(cells)) if not complete[cells[i]]]
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="simulating epigenomes", unit="cell")
    for i in iterator:
        cell = cells[i]
        signal = _lazy_signal([cell], window_owner()[genes_idx], pct[i : i + 1], seed, gene_chunk)
        expr = da.from_array(expr_all[i : i + 1, genes_idx], chunks=(1, gene_chunk))
        part = xr.Dataset(
            {
                V.signal.name: (V.signal.dims, signal),
                V.expression.name: (V.expression.dims, expr),
            }
        )
        info = dict(provenance, depth=cell_depth(cell, seed), snr_weight=snr_weight(cell))
        records.write_recorded(  # flags cleared, data, provenance, flags
            path,
            part,
            {V.CELL: slice(i, i + 1), V.GENE: slice(None)},
            V.signal.name,
            {cell: {m: info for m in marks}},
            storage_options,
        )
    S.update_attrs(
        path,
        storage_options,
        expression={c: {"source": os.fspath(RPKM), "simulated": False} for c in cells},
    )
    return S.open_store(path, storage_options)
