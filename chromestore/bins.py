"""Genome coordinates of each gene's bins, ordered 5'→3' along the gene.

The window of a gene is ``[tss - window, tss + window)`` in genome coordinates,
cut into ``2 * window / bin_size`` bins. On the ``+`` strand bin ``i`` is the
``i``-th bin in genome order; on the ``-`` strand the order is reversed, so bin 0
is always the most upstream (5') bin. Genes of unknown strand (``.``) keep genome
order. Pure numpy: shared by every ingester, the CSV readers (whose published
layout is genome order) and the emitters.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class WindowLayout:
    """Where a store's bins lie around each TSS: ±``window`` bp cut into bins of ``bin_size``
    bp, bin ``i`` starting ``bin_offset[i]`` bp from the TSS (5'→3', negative = upstream).

    What a model's features see of the layout (``features(signal, layout)``), so a model
    asks for "the bins within 1 kb of the TSS" instead of counting them itself.

    Examples
    --------
    >>> layout = WindowLayout.from_offsets(range(-5000, 5000, 100))
    >>> layout.window, layout.bin_size, layout.n_bins
    (5000, 100, 100)
    >>> layout.within(1000)[[0, -1]]
    array([40, 59])
    """

    window: int
    bin_size: int
    bin_offset: tuple[int, ...]

    @property
    def n_bins(self) -> int:
        return len(self.bin_offset)

    def within(self, bp: int) -> np.ndarray:
        """Indices of the bins lying wholly within ``bp`` of the TSS (``[-bp, bp)``)."""
        start = np.asarray(self.bin_offset, dtype=np.int64)
        return np.flatnonzero((start >= -bp) & (start + self.bin_size <= bp))

    @classmethod
    def from_offsets(
        cls, bin_offset, window: int | None = None, bin_size: int | None = None
    ) -> WindowLayout:
        """The layout of bins starting at ``bin_offset``; the window and bin size are those
        given, else read off the offsets (a step of 100 from -5000: ±5000 bp, 100 bp)."""
        offsets = tuple(int(b) for b in bin_offset)
        if bin_size is None:
            bin_size = offsets[1] - offsets[0] if len(offsets) > 1 else 2 * abs(offsets[0])
        if window is None:
            window = len(offsets) * int(bin_size) // 2
        return cls(int(window), int(bin_size), offsets)

    @classmethod
    def of(cls, ds: xr.Dataset) -> WindowLayout:
        """The layout of a store (its ``window`` and ``bin_size`` attrs, ``bin_offset``)."""
        return cls.from_offsets(
            ds[V.bin_offset.name].values, ds.attrs.get("window"), ds.attrs.get("bin_size")
        )
