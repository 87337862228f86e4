"""Values of one epigenome onto the store: aligned on the store's genes, written as a region.

:func:`write_cell` (the store's cell writer, :func:`chromestore.store.cells.write_cell`)
writes the given marks of one cell in one region write, in the order a crash cannot break;
:func:`ingest_signal_array` aligns and writes an array already in memory (no
samplesheet). Aligning values on the store's genes is :mod:`chromestore.ingest.align`'s
(its names are importable from here too).
"""

from __future__ import annotations

import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.ingest.align import Aligned, GeneKeys, align_genes, per_mark
from chromestore.store.cells import write_cell
from chromestore.store.dataset import open_store

__all__ = ["Aligned", "GeneKeys", "align_genes", "ingest_signal_array", "per_mark", "write_cell"]


def ingest_signal_array(
    store: S.StoreLike,
    cell: str,
    source: xr.DataArray,
    storage_options: dict | None = None,
    info: dict | None = None,
) -> Aligned:
    """Write binned counts (gene, mark, bin) of one cell, e.g. from a CSV reader.

    Wider windows are centre-cropped to the store's bins; the cell is appended if
    new (with its data, under the store's lock); each mark is recorded completed after the
    write. Store genes absent from
    ``source`` stay NaN; source genes absent from the store are returned as unmatched.
    """
    from chromestore.formats.csv import centre_crop

    store = S.Store.of(store, storage_options)
    keys = GeneKeys.from_store(open_store(store))
    source = centre_crop(source, keys.n_bins)
    aligned = align_genes(keys, source.transpose(V.GENE, V.MARK, V.BIN))
    marks = [str(m) for m in source[V.MARK].values]
    provenance = {
        "source": source.attrs.get("source"),
        "format": source.attrs.get("format"),
        "genes_matched": aligned.matched,
        "genes_unmatched": len(aligned.unmatched),
        "units": V.READS,  # binned read counts (the CSV datasets)
        **(info or {}),
    }
    write_cell(
        store,
        cell,
        {m: aligned.values[:, i] for i, m in enumerate(marks)},
        records={V.signal.name: {m: provenance for m in marks}},
        append=True,
    )
    return aligned
