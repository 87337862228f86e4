"""Genome coordinates of each gene's bins, ordered 5'→3' along the gene.

The window of a gene is ``[tss - window, tss + window)`` in genome coordinates,
cut into ``2 * window / bin_size`` bins. On the ``+`` strand bin ``i`` is the
``i``-th bin in genome order; on the ``-`` strand the order is reversed, so bin 0
is always the most upstream (5') bin. Genes of unknown strand (``.``) keep genome
order. Pure numpy: shared by every ingester, the CSV readers (whose published
layout is genome order) and the emitters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from chromestore import variables as V

if TYPE_CHECKING:
    import xarray as xr


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


#: The value of a store's ``orientation`` attribute: bins 5'→3' along each gene.
ORIENTATION = V.ORIENTATION


def flip_minus_strand(values: np.ndarray, strand: np.ndarray, axis: int = -1) -> np.ndarray:
    """A copy of ``values`` (gene on axis 0) with the bin ``axis`` of ``-`` genes reversed.

    Its own inverse: it turns genome order into 5'→3' and back. ``+`` and ``.`` genes
    (and anything else in ``strand``, e.g. NaN for genes without a known strand) are
    left as they are.

    Examples
    --------
    >>> flip_minus_strand(np.array([[1, 2, 3], [1, 2, 3]]), np.array(["+", "-"]))
    array([[1, 2, 3],
           [3, 2, 1]])
    """
    out = np.array(values, copy=True)
    minus = np.asarray(strand).astype(object) == "-"
    if len(minus) != out.shape[0]:
        raise ValueError(f"{len(minus)} strands for {out.shape[0]} genes")
    out[minus] = np.flip(out[minus], axis=axis)
    return out


def to_genome_order(values: np.ndarray, strand: np.ndarray, axis: int = -1) -> np.ndarray:
    """Bins 5'→3' → genome order (ascending coordinate), gene on axis 0."""
    return flip_minus_strand(values, strand, axis)


def to_5to3(values: np.ndarray, strand: np.ndarray, axis: int = -1) -> np.ndarray:
    """Bins in genome order (e.g. the published CSV datasets) → 5'→3', gene on axis 0."""
    return flip_minus_strand(values, strand, axis)


def bin_coordinates(ds: xr.Dataset) -> xr.DataArray:
    """(gene, bin) genome start of each bin of the store's genes (loads the small coords)."""
    import xarray as xr

    starts = genome_bin_starts(
        ds[V.gene_tss.name].values,
        ds[V.gene_strand.name].values,
        int(ds.attrs["window"]),
        int(ds.attrs["bin_size"]),
    )
    return xr.DataArray(
        starts,
        dims=(V.GENE, V.BIN),
        coords={V.GENE: ds[V.GENE], V.BIN: ds[V.BIN]},
        name="bin_start",
    )
