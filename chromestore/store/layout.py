"""The store's layout: its default shape, its variables as lazy arrays, their chunks.

One place for the layout's defaults (the window around each TSS, the bin size, the
genome build, the gene chunk): every function and command that takes them defaults to
these. :func:`template` is the lazy, NaN-filled Dataset a new store is written from;
:func:`encoding` its chunks and codecs (zstd, then a CRC-32C checksum per chunk).

Importing this module loads numpy and the schema only (xarray, Dask and Zarr are loaded by
the functions that use them), so the command line's options take their defaults from here
and ``chromestore --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chromestore import datasets
from chromestore import variables as V
from chromestore.store import names

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: bp each side of the TSS (DeepChrome: ±5 kb).
DEFAULT_WINDOW = 5000
#: bp per bin (DeepChrome: 100 bins of 100 bp).
DEFAULT_BIN_SIZE = 100
#: The genome build of the shipped annotation.
DEFAULT_GENOME = datasets.DEFAULT_ASSEMBLY  # the shipped annotation's
#: Genes per chunk (a chunk is one cell × this many genes × all marks × all bins).
DEFAULT_GENE_CHUNK = 2048
#: Variables that have a ``cell`` dimension (the ones appended and region-written).
CELL_VARS = ("signal", "expression", "peak_max")


def bin_offsets(window: int, bin_size: int) -> np.ndarray:
    """Start of each bin relative to the TSS, 5'→3'."""
    if window <= 0 or bin_size <= 0 or (2 * window) % bin_size:
        raise ValueError(f"window 2×{window} bp must be a positive multiple of bin size {bin_size}")
    return np.arange(-window, window, bin_size, dtype=np.int64)


def cell_vars(n_cells: int, n_genes: int, n_marks: int, n_bins: int, gene_chunk: int) -> dict:
    import dask.array as da  # here: planning an ingest of a new store need not load it

    def nan(shape, chunks):
        return da.full(shape, np.nan, dtype=np.float32, chunks=chunks)

    c = (1, gene_chunk)
    out = {
        "signal": (V.signal.dims, nan((n_cells, n_genes, n_marks, n_bins), c + (n_marks, n_bins))),
        "expression": (V.expression.dims, nan((n_cells, n_genes), c)),
        "peak_max": (V.peak_max.dims, nan((n_cells, n_genes, n_marks), c + (n_marks,))),
    }
    return out | record_vars(n_cells, n_marks) | unit_vars(n_cells, n_marks)


def record_vars(n_cells: int, n_marks: int) -> dict:
    import dask.array as da

    shape = (n_cells, n_marks)
    return {
        done: ((V.CELL, V.MARK), da.zeros(shape, dtype=bool, chunks=(1, 1)))
        for done in V.RECORDS_OF.values()
    }


def unit_vars(n_cells: int, n_marks: int) -> dict:
    """``signal_units`` of new cells: '' (nothing written), one (cell, mark) a chunk."""
    import dask.array as da

    from chromestore.store.handle import STR

    empty = np.full((n_cells, n_marks), "", dtype=STR)  # the store's strings (UTF-8)
    spec = V.signal_units
    return {spec.name: (spec.dims, da.from_array(empty, chunks=(1, 1)))}


def template(
    genes: pd.DataFrame,
    cells: Sequence[str] = (),
    marks: Sequence[str] = V.DEFAULT_MARKS,
    window: int = DEFAULT_WINDOW,
    bin_size: int = DEFAULT_BIN_SIZE,
    gene_chunk: int = DEFAULT_GENE_CHUNK,
    genome: str = DEFAULT_GENOME,
) -> xr.Dataset:
    """A lazy, NaN-filled Dataset with the store's layout (nothing is allocated)."""
    import xarray as xr

    from chromestore.store.handle import now_utc, strs

    offsets = bin_offsets(window, bin_size)
    n_genes = len(genes)
    gene_chunk = max(1, min(gene_chunk, n_genes))
    names.check_all(cells, "cell")
    if len(set(cells)) != len(cells):
        raise ValueError(f"duplicate cells in {list(cells)}")
    if len(set(marks)) != len(marks):
        raise ValueError(f"duplicate marks in {list(marks)}")
    coords = {
        "cell": strs(cells),
        "gene": strs(genes["gene"]),
        "gene_id": ("gene", strs(genes["gene_id"])),
        "gene_name": ("gene", strs(genes["gene_name"])),
        "gene_chrom": ("gene", strs(genes["chrom"])),
        "gene_tss": ("gene", genes["tss"].to_numpy(np.int64)),
        "gene_strand": ("gene", strs(genes["strand"])),
        "mark": strs(marks),
        "bin": np.arange(len(offsets), dtype=np.int64),
        "bin_offset": ("bin", offsets),
    }
    ds = xr.Dataset(
        cell_vars(len(cells), n_genes, len(marks), len(offsets), gene_chunk), coords=coords
    ).set_coords(V.signal_units.name)  # a coordinate: plain xarray's where() sees numbers only
    for name, var in ds.variables.items():
        if name in V.ALL:
            var.attrs["description"] = V.ALL[name].doc
            if V.ALL[name].units:
                var.attrs["units"] = V.ALL[name].units
    ds.attrs.update(
        format=V.FORMAT_NAME,
        format_version=V.FORMAT_VERSION,
        orientation=V.ORIENTATION,
        genome=genome,
        window=int(window),
        bin_size=int(bin_size),
        gene_chunk=int(gene_chunk),
        created=now_utc(),
    )
    return ds


def encoding(ds: xr.Dataset, gene_chunk: int, level: int = 3) -> dict:
    """Chunks and codecs of every variable of ``ds``: one cell × ``gene_chunk`` genes × all
    marks × all bins, one (cell, mark) per completion chunk, coordinates in one chunk."""
    from chromestore.store import integrity

    zstd = integrity.compressors(level)  # zstd, then a CRC-32C checksum on every chunk
    n_marks, n_bins = ds.sizes[V.MARK], ds.sizes[V.BIN]
    enc: dict[str, dict[str, Any]] = {
        "signal": {"chunks": (1, gene_chunk, n_marks, n_bins), "compressors": zstd},
        "expression": {"chunks": (1, gene_chunk), "compressors": zstd},
        "peak_max": {"chunks": (1, gene_chunk, n_marks), "compressors": zstd},
    }
    for spec in (*V.RECORDS, V.signal_units):
        enc[spec.name] = {"chunks": (1, 1), "compressors": zstd}  # one (cell, mark) a chunk
    for name, var in ds.coords.items():
        if name in enc:  # signal_units: a coordinate, but one (cell, mark) a chunk
            continue
        enc[name] = {"compressors": zstd}
        if name != V.CELL:
            enc[name]["chunks"] = tuple(max(1, s) for s in var.shape)
    return enc
