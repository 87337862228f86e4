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

from chromestore import datasets
from chromestore import store as S
from chromestore import variables as V
from chromestore.genes import read_gene_bed
from chromestore.simulation.draw import cell_model, draw_cell
from chromestore.simulation.model import (
    BIN_SIZE,
    RPKM,
    WINDOW,
    aligned_rpkm,
    calibration,
    cell_depth,
    expression_percentiles,
    expression_scores,
    real_genes,
    real_rpkm,
    snr_weight,
    window_owner,
)
from chromestore.store import accessor as _accessor  # noqa: F401  (registers ds.chromestore)
from chromestore.store import records, select_cells

#: About this many draw tasks (cell × gene chunk) per region write: a few cells at a time.
WRITE_TASKS = 64


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


def _on_assembly(
    genome: str, genes_idx: np.ndarray, sub: pd.DataFrame
) -> tuple[np.ndarray, pd.DataFrame, str]:
    """The genes ``sub`` (rows ``genes_idx`` of the hg19 list) at their coordinates in
    ``genome``: in hg19 as they are; in another shipped annotation (GRCh38) the genes it
    has, at its TSS and strand. The signal is drawn by hg19 row as ever, so a gene has the
    same values (bins 5'→3') in either assembly."""
    name = datasets.assembly(genome)
    if name == "hg19":
        return genes_idx, sub, name
    other = read_gene_bed(datasets.gene_windows(name)).set_index("gene")
    keep = sub["gene"].isin(other.index).to_numpy()
    if not keep.any():
        raise ValueError(f"none of the {len(sub)} genes asked for is in the {name} annotation")
    sub = sub[keep].reset_index(drop=True)
    moved = other.loc[sub["gene"].to_numpy()]
    for column in ("chrom", "tss", "strand"):
        sub[column] = moved[column].to_numpy()
    return genes_idx[keep], sub, name


def _lazy_signal(
    cells: list[str], owners: np.ndarray, scores: np.ndarray, seed: int, gene_chunk: int
) -> da.Array:
    """(cell, gene, mark, bin) dask array, one task per (cell, gene chunk).

    ``owners`` are the genes' window owners (positions in the full list: the key of their
    random streams), ``scores`` (cell, gene) the owners' expression scores.
    """
    n_marks, n_bins = len(V.DEFAULT_MARKS), 2 * WINDOW // BIN_SIZE
    draw = dask.delayed(draw_cell, pure=True)
    cal = dask.delayed(calibration(), pure=True)  # one graph literal for all tasks
    rows = []
    for i, cell in enumerate(cells):
        model = cell_model(cell, seed)
        row = []
        for lo in range(0, len(owners), gene_chunk):
            idx = owners[lo : lo + gene_chunk]
            part = draw(model, idx, scores[i, lo : lo + gene_chunk], cal)
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
    genome: str = S.DEFAULT_GENOME,
) -> xr.Dataset:
    """Simulate a chromestore Dataset: real genes and RPKM, signal drawn from the fitted model.

    Parameters
    ----------
    path
        None: return a lazy (dask-backed) in-memory Dataset. Otherwise create a store
        there, fill it a few epigenomes at a time (about :data:`WRITE_TASKS` Dask tasks
        of one epigenome × one gene chunk per chunk-aligned region write; memory bounded
        by the chunks in flight), record their (cell, mark) pairs as completed with
        provenance ``simulated`` (each write clears the pairs' flags first, then writes
        the data, then provenance and flags), and return it opened. A store already
        there from the same call (same genes, cells, seed, chunks), e.g. one whose
        simulation was killed, is completed: the epigenomes not yet complete are simulated.
    cells
        ``"all"`` (the 56 epigenomes), the first N, or a list (or comma-separated
        string) of epigenome ids.
    genes
        ``"all"`` (19,802), the first N of the real gene list, or a list of gene keys.
    seed
        Same seed, same values, whatever the subset or chunking: each gene draws from
        its own random stream keyed on (seed, epigenome, gene), so ``genes=N`` costs N
        genes.
    genome
        ``hg19`` (default) or ``GRCh38``: the genes' coordinates (GRCh38: those of the
        ``genes`` that its shipped annotation has, 18,950 of all; each gene's values are
        the same as in hg19).

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
    sub = table.iloc[genes_idx].reset_index(drop=True)
    genes_idx, sub, genome = _on_assembly(genome, genes_idx, sub)
    owners = window_owner()[genes_idx]  # genes sharing a window share their signal
    scores = expression_scores(expression_percentiles(expr_all)[:, owners])
    expr = expr_all[:, genes_idx]
    gene_chunk = max(1, min(int(gene_chunk), len(sub)))
    if path is None:
        ds = S.template(sub, cell_list, gene_chunk=gene_chunk, genome=genome)
        signal = _lazy_signal(cell_list, owners, scores, seed, gene_chunk)
        ds = ds.assign(
            signal=(V.signal.dims, signal, ds.signal.attrs),
            expression=(
                V.expression.dims,
                da.from_array(expr, chunks=(1, gene_chunk)),
                ds.expression.attrs,
            ),
        )
        done = V.RECORDS_OF[V.signal.name]  # provenance needs a store (records/CELL/MARK)
        ds = ds.assign({done: (ds[done].dims, np.ones(ds[done].shape, bool))})
        units = V.signal_units.name  # read counts, as simulate writes them
        ds = ds.assign_coords({units: (ds[units].dims, np.full(ds[units].shape, V.READS, object))})
        ds.attrs.update(simulated=True)
        return ds
    path = os.fspath(path)
    ds = S.create_store(  # whole or not at all; a re-run after a kill resumes it
        path,
        sub,
        cell_list,
        chunks={V.GENE: gene_chunk},
        storage_options=storage_options,
        genome=genome,
        attrs={"simulated": True, "simulation_seed": int(seed)},
        resume=True,
    )
    n_chunks = -(-len(sub) // gene_chunk)
    step = max(1, WRITE_TASKS // n_chunks)
    complete = records.completion_table(ds).all(axis=1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(cell_list), desc="simulating epigenomes", unit="cell")
    provenance = {
        "format": "simulated",
        "units": V.READS,
        "seed": int(seed),
        "model": "chromestore.simulate",
    }
    for lo in range(0, len(cell_list), step):
        group = slice(lo, min(lo + step, len(cell_list)))
        if all(complete[c] for c in cell_list[group]):  # a resumed simulation's done part
            if bar is not None:
                bar.update(group.stop - group.start)
            continue
        part = xr.Dataset(
            {
                V.signal.name: (
                    V.signal.dims,
                    _lazy_signal(cell_list[group], owners, scores[group], seed, gene_chunk),
                ),
                V.expression.name: (
                    V.expression.dims,
                    da.from_array(expr[group], chunks=(1, gene_chunk)),
                ),
            }
        )
        infos = {}
        for cell in cell_list[group]:
            info = dict(provenance, depth=cell_depth(cell, seed), snr_weight=snr_weight(cell))
            infos[cell] = {m: info for m in V.DEFAULT_MARKS}
        records.write_recorded(  # flags cleared, data, provenance, flags
            path, part, {V.CELL: group, V.GENE: slice(None)}, V.signal.name, infos,
            storage_options,
        )  # fmt: skip
        if bar is not None:
            bar.update(group.stop - group.start)
    if bar is not None:
        bar.close()
    S.update_attrs(
        path,
        storage_options,
        expression={c: {"source": os.fspath(RPKM), "simulated": False} for c in cell_list},
    )
    return S.open_store(path, storage_options)
