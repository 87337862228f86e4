"""Genome coordinates of each gene's bins, ordered 5'→3' along the gene.

The window of a gene is ``[tss - window, tss + window)`` in genome coordinates,
cut into ``2 * window / bin_size`` bins. On the ``+`` strand bin ``i`` is the
``i``-th bin in genome order; on the ``-`` strand the order is reversed, so bin 0
is always the most upstream (5') bin. Pure numpy: shared by every ingester.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from chromestore import variables as V


def genome_bin_starts(
    tss: np.ndarray, strand: np.ndarray, window: int, bin_size: int
) -> np.ndarray:
    """(gene, bin) int64 genome start of each bin, bins ordered 5'→3'."""
    tss = np.asarray(tss, dtype=np.int64)
    n_bins = 2 * window // bin_size
    starts = tss[:, None] - window + np.arange(n_bins, dtype=np.int64)[None, :] * bin_size
    minus = np.asarray(strand).astype(object) == "-"
    starts[minus] = starts[minus, ::-1]
    return starts


def to_genome_order(values: np.ndarray, strand: np.ndarray, axis: int = -1) -> np.ndarray:
    """Flip the bin axis of ``-`` strand genes (gene on axis 0): 5'→3' ⇄ genome order."""
    out = np.array(values, copy=True)
    minus = np.asarray(strand).astype(object) == "-"
    out[minus] = np.flip(out[minus], axis=axis)
    return out


def bin_coordinates(ds: xr.Dataset) -> xr.DataArray:
    """(gene, bin) genome start of each bin of the store's genes (loads the small coords)."""
    starts = genome_bin_starts(
        ds[V.gene_tss.name].values,
        ds[V.gene_strand.name].values,
        int(ds.attrs["window"]),
        int(ds.attrs["bin_size"]),
    )
    return xr.DataArray(
        starts, dims=(V.GENE, V.BIN), coords={V.GENE: ds[V.GENE], V.BIN: ds[V.BIN]},
        name="bin_start",
    )
