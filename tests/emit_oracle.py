"""The test oracle of ``chromestore.simulation.emit``: what ingesting an emitted file gives back.

It recomputes, from the simulated counts and independently of the ingest engine, the
reads (values, peaks) each bin receives, overlapping windows included.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.simulation.emit import READ_LEN, _coverage, _layout, _peaks_of, reads_from_counts


def expected_ingest(ds: xr.Dataset, cell: str, mark: str, fmt: str, seed: int = 0) -> np.ndarray:
    """What ingesting the emitted ``fmt`` file of (cell, mark) gives for ``ds``'s genes.

    ``tagalign``: reads overlapping each bin by ≥ 1 bp (gene, bin); ``bigwig``: the mean
    of the summed track over each bin (gene, bin); ``narrowpeak``: the max signalValue
    of the peaks overlapping each window (gene,). It equals the simulated signal for
    genes whose window overlaps no other; overlapping windows add their neighbour's
    reads in the shared stretch.
    """
    from chromestore.simulation import cell_depth

    genes, starts = _layout(ds)
    bin_size = int(ds.attrs["bin_size"])
    j = [str(m) for m in ds[V.MARK].values].index(mark)
    counts_all = ds[V.signal.name].sel({V.CELL: cell}).values[:, j]
    distinct = genes["distinct"].to_numpy()
    d_genes = genes[distinct].reset_index(drop=True)
    counts, d_starts = counts_all[distinct], starts[distinct]
    chroms = genes["chrom"].to_numpy()
    d_chroms = d_genes["chrom"].to_numpy()
    if fmt == "narrowpeak":
        peaks = _peaks_of(d_genes, d_starts, counts, mark, cell_depth(cell, seed), bin_size)
        out = np.zeros(len(genes), dtype=np.float32)
        lo, hi = starts.min(axis=1), starts.max(axis=1) + bin_size
        for i in range(len(genes)):
            p = peaks[
                (peaks["chrom"] == chroms[i]) & (peaks["start"] < hi[i]) & (peaks["end"] > lo[i])
            ]
            out[i] = p["signal"].max() if len(p) else 0.0
        return out
    out = np.zeros(starts.shape, dtype=np.float64)
    for chrom in np.unique(chroms):
        mine = chroms == chrom
        src = d_chroms == chrom
        if fmt == "tagalign":
            _, rstart, _ = reads_from_counts(counts[src], d_starts[src], bin_size)
            rstart = np.sort(rstart)
            s = starts[mine]
            out[mine] = np.searchsorted(rstart, s + bin_size, side="left") - np.searchsorted(
                rstart, s - READ_LEN, side="right"
            )
        elif fmt == "bigwig":
            seg = _coverage(
                np.repeat(d_chroms[src], counts.shape[1]),
                d_starts[src].reshape(-1),
                counts[src].reshape(-1),
                bin_size,
            )[chrom]
            seg_s, seg_e, val = seg
            # integral of the track from -inf to x, at any x
            cum = np.concatenate([[0.0], np.cumsum((seg_e - seg_s) * val)])

            def integral(x, seg_s=seg_s, seg_e=seg_e, val=val, cum=cum):
                k = np.searchsorted(seg_s, x, side="right") - 1
                inside = np.clip(x - seg_s[np.maximum(k, 0)], 0, None)
                width = seg_e[np.maximum(k, 0)] - seg_s[np.maximum(k, 0)]
                part = np.where(k >= 0, np.minimum(inside, width) * val[np.maximum(k, 0)], 0)
                return np.where(k >= 0, cum[np.maximum(k, 0)], 0.0) + part

            s = starts[mine]
            out[mine] = (integral(s + bin_size) - integral(s)) / bin_size
        else:
            raise ValueError(f"no expectation for format {fmt!r}")
    return out.astype(np.float32)
