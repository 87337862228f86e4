"""Values of one epigenome onto the store: aligned on the store's genes, written as a region.

:func:`write_cell` writes the given marks of one cell in one region write;
:func:`ingest_signal_array` does both for an array already in memory (no samplesheet). Aligning values on the store's genes is
:mod:`chromestore.ingest.align`'s (its names are importable from here too).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.executors import local_dask
from chromestore.ingest.align import Aligned, GeneKeys, align_genes, per_mark
from chromestore.store.dataset import open_store

__all__ = ["Aligned", "GeneKeys", "align_genes", "ingest_signal_array", "per_mark", "write_cell"]
from chromestore.store.records import upgrade_records, write_records


def write_cell(
    store: S.StoreLike,
    cell: str,
    signal: dict[str, np.ndarray] | None = None,
    peak_max: dict[str, np.ndarray] | None = None,
    storage_options: dict | None = None,
    records: dict[str, dict[str, dict]] | None = None,
) -> None:
    """Write the given marks of one cell: ``signal[mark]`` (gene, bin), ``peak_max[mark]`` (gene).

    The store's chunks hold all marks of a cell, so the cell's current values are read,
    the given marks replaced and the cell's region written back whole. All of it runs
    under the store's write lock on a store opened after taking it, so concurrent writers
    (of this cell or others, in other processes or on a cluster) never lose each other's
    marks. ``records`` (``{"signal" | "peak_max": {mark: provenance}}``) are written after
    the data, under the same lock: a writer killed before them leaves its marks not
    completed. Other marks and other cells are left as they were.
    """
    store = S.Store.of(store, storage_options)
    # reads in this process (no nested tasks on the cluster): a task holding the lock that
    # waited on tasks queued behind writers waiting for the lock would deadlock the cluster
    with store.lock() as held, local_dask(threads=False):
        S.repair_cells(store)  # a cell append a killed writer left half done
        upgrade_records(store)
        ds = open_store(store)
        ci = S.cell_index(ds, cell)
        marks = [str(m) for m in ds[V.MARK].values]
        for name, given in ((V.signal.name, signal), (V.peak_max.name, peak_max)):
            if not given:
                continue
            unknown = sorted(set(given) - set(marks))
            if unknown:
                raise S.StoreError(f"{store}: marks {unknown} are not in the store ({marks})")
            current = ds[name].isel({V.CELL: ci}).values  # computed now: ours to change
            if not current.flags.writeable:  # (a copy only where it is not: 40 MB a cell)
                current = current.copy()
            for mark, values in given.items():
                current[:, marks.index(mark)] = values
            # numpy, not Dask: the values are in memory, and a Dask write would send them to a
            # running cluster inside its graph ("Sending large graph of size 37.8 MiB")
            part = xr.Dataset({name: (ds[name].dims, current[None])})
            S.write_region(store, part, {V.CELL: slice(ci, ci + 1)})
        if any((records or {}).values()):
            held.verify()  # a lapsed lease (object stores): another writer may have written
        for target, infos in (records or {}).items():
            if infos:
                write_records(store, ds, cell, target, infos)


def ingest_signal_array(
    store: S.StoreLike,
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

    store = S.Store.of(store, storage_options)
    keys = GeneKeys.from_store(open_store(store))
    source = centre_crop(source, keys.n_bins)
    aligned = align_genes(keys, source.transpose(V.GENE, V.MARK, V.BIN))
    S.add_cells(store, [cell])
    marks = [str(m) for m in source[V.MARK].values]
    provenance = {
        "source": source.attrs.get("source"),
        "format": source.attrs.get("format"),
        "genes_matched": aligned.matched,
        "genes_unmatched": len(aligned.unmatched),
        **(info or {}),
    }
    write_cell(
        store,
        cell,
        {m: aligned.values[:, i] for i, m in enumerate(marks)},
        records={V.signal.name: {m: provenance for m in marks}},
    )
    return aligned
