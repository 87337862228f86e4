"""Values of one epigenome onto the store: aligned on the store's genes, written as a region.

:func:`per_mark` turns what a format's reader returns into ``{mark: values on the store's
genes}``; :func:`write_cell` writes the given marks of one cell in one region write;
:func:`ingest_signal_array` does both for an array already in memory (no samplesheet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.bins import to_5to3
from chromestore.errors import InputError
from chromestore.executors import local_dask
from chromestore.records import upgrade_records, write_records


@dataclass
class GeneKeys:
    """The store's gene labels (small enough to ship to every worker)."""

    gene: np.ndarray  # ENSGID_SYMBOL keys, store order
    gene_id: np.ndarray  # Ensembl ids
    n_bins: int
    strand: np.ndarray | None = None  # orients sources in genome order as the store (5'→3')

    @classmethod
    def from_store(cls, ds: xr.Dataset) -> GeneKeys:
        return cls(ds[V.GENE].values.astype(object), ds[V.gene_id.name].values.astype(object),
                   ds.sizes[V.BIN], ds[V.gene_strand.name].values.astype(object))


@dataclass
class Aligned:
    """Per-gene values reindexed onto the store's genes, with what did not match."""

    values: np.ndarray  # (store gene, ...) float32, NaN for store genes without data
    matched: int  # store genes that received values
    unmatched: list[str]  # source genes that match no store gene


def align_genes(keys: GeneKeys, source: xr.DataArray) -> Aligned:
    """Reindex ``source`` (gene first) onto the store's genes.

    ``source.attrs["gene_key"]`` says which store labels its gene labels are:
    ``"gene"`` (``ENSGID_SYMBOL``, the default) or ``"gene_id"`` (an Ensembl id, which
    fills every store gene with that id: REMC repeats 7 ids under two symbols). A source
    whose ``attrs["orientation"]`` is ``"genome"`` (bins in genome order, as the published
    CSV datasets) has the bins of the store's ``-`` genes reversed: 5'→3', as the store.
    """
    key = source.attrs.get("gene_key", V.GENE)
    store_keys = pd.Index(getattr(keys, key))
    labels = pd.Index(source[V.GENE].values.astype(object))
    if labels.has_duplicates:
        raise ValueError(f"{source.attrs.get('source', 'input')}: duplicate genes")
    pos = labels.get_indexer(store_keys)
    have = pos >= 0
    values = np.full((len(store_keys),) + source.shape[1:], np.nan, dtype=np.float32)
    values[have] = source.values[pos[have]]
    if (source.attrs.get("orientation") == "genome" and keys.strand is not None
            and V.BIN in source.dims):
        values = to_5to3(values, keys.strand, axis=source.dims.index(V.BIN))
    unmatched = [str(g) for g in labels[~labels.isin(store_keys)]]
    return Aligned(values, int(have.sum()), unmatched)


def per_mark(values, keys: GeneKeys, target: str, mark: str, path: str, fmt: str
             ) -> tuple[dict[str, np.ndarray], dict]:
    """A reader's ``values`` as ``{mark: array on the store's genes}``, and alignment stats.

    ``values`` is an array already on the store's genes (the row's ``mark``), or an
    ``xr.DataArray`` labelled by gene, with or without a ``mark`` dim, aligned here
    (wider windows centre-cropped); see :mod:`chromestore.formats.registry`.
    """
    from chromestore.formats.csv import centre_crop

    want = (V.BIN,) if target == V.signal.name else ()
    if not isinstance(values, xr.DataArray):
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(keys.gene),) + ((keys.n_bins,) if want else ()):
            raise ValueError(f"format {fmt}: its reader gave shape {values.shape} for {path}, "
                             f"not (genes{', bins' if want else ''}) of the store")
        return {mark: values}, {}
    dims = set(values.dims)
    if V.GENE not in dims or dims - {V.GENE, V.MARK, V.BIN} or (V.BIN in dims) != bool(want):
        raise ValueError(f"format {fmt}: its reader gave dims {values.dims} for {path}, not "
                         f"('gene'[, 'mark']{', ' + repr(V.BIN) if want else ''}) for {target}")
    if want:
        values = centre_crop(values, keys.n_bins, path)
    if V.MARK in dims:
        have = [str(m) for m in values[V.MARK].values]
        if mark and mark not in have:
            raise InputError(path, None, f"has no mark {mark!r} (marks: {', '.join(have)})")
        values = values.sel({V.MARK: [mark] if mark else have})
    elif not mark:
        raise ValueError(f"format {fmt}: gives one mark, so a samplesheet row needs a mark")
    order = [d for d in (V.GENE, V.MARK, V.BIN) if d in dims]
    aligned = align_genes(keys, values.transpose(*order))
    stats = {"genes_matched": aligned.matched, "genes_unmatched": len(aligned.unmatched)}
    if V.MARK not in dims:
        return {mark: aligned.values}, stats
    marks = [str(m) for m in values[V.MARK].values]
    return {m: aligned.values[:, marks.index(m)] for m in marks}, stats


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
        ds = store.open()
        ci = S.cell_index(ds, cell)
        marks = [str(m) for m in ds[V.MARK].values]
        for name, given in ((V.signal.name, signal), (V.peak_max.name, peak_max)):
            if not given:
                continue
            unknown = sorted(set(given) - set(marks))
            if unknown:
                raise S.StoreError(f"{store}: marks {unknown} are not in the store ({marks})")
            current = ds[name].isel({V.CELL: ci}).values.copy()
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
    keys = GeneKeys.from_store(store.open())
    source = centre_crop(source, keys.n_bins)
    aligned = align_genes(keys, source.transpose(V.GENE, V.MARK, V.BIN))
    S.add_cells(store, [cell])
    marks = [str(m) for m in source[V.MARK].values]
    provenance = {"source": source.attrs.get("source"), "format": source.attrs.get("format"),
                  "genes_matched": aligned.matched, "genes_unmatched": len(aligned.unmatched),
                  **(info or {})}
    write_cell(store, cell, {m: aligned.values[:, i] for i, m in enumerate(marks)},
               records={V.signal.name: {m: provenance for m in marks}})
    return aligned
