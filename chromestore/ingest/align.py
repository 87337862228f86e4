"""Values of one epigenome aligned onto the store's genes: :class:`GeneKeys` (the store's
gene labels), :func:`align_genes` (a gene-labelled source reindexed onto them) and
:func:`per_mark` (what a format's reader returns, as ``{mark: values on the store's
genes}``).

Light to import (numpy; pandas and xarray only for labelled sources): counting workers
load it before their first file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chromestore import variables as V
from chromestore.bins import to_5to3
from chromestore.errors import InputError

if TYPE_CHECKING:
    import xarray as xr


@dataclass
class GeneKeys:
    """The store's gene labels (small enough to ship to every worker)."""

    gene: np.ndarray  # ENSGID_SYMBOL keys, store order
    gene_id: np.ndarray  # Ensembl ids
    n_bins: int
    strand: np.ndarray | None = None  # orients sources in genome order as the store (5'→3')

    @classmethod
    def from_store(cls, ds: xr.Dataset) -> GeneKeys:
        return cls(
            ds[V.GENE].values.astype(object),
            ds[V.gene_id.name].values.astype(object),
            ds.sizes[V.BIN],
            ds[V.gene_strand.name].values.astype(object),
        )


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
    import pandas as pd

    key = source.attrs.get("gene_key", V.GENE)
    store_keys = pd.Index(getattr(keys, key))
    labels = pd.Index(source[V.GENE].values.astype(object))
    if labels.has_duplicates:
        raise ValueError(f"{source.attrs.get('source', 'input')}: duplicate genes")
    pos = labels.get_indexer(store_keys)
    have = pos >= 0
    values = np.full((len(store_keys),) + source.shape[1:], np.nan, dtype=np.float32)
    values[have] = source.values[pos[have]]
    if (
        source.attrs.get("orientation") == "genome"
        and keys.strand is not None
        and V.BIN in source.dims
    ):
        values = to_5to3(values, keys.strand, axis=source.dims.index(V.BIN))
    unmatched = [str(g) for g in labels[~labels.isin(store_keys)]]
    return Aligned(values, int(have.sum()), unmatched)


def per_mark(
    values, keys: GeneKeys, target: str, mark: str, path: str, fmt: str
) -> tuple[dict[str, np.ndarray], dict]:
    """A reader's ``values`` as ``{mark: array on the store's genes}``, and alignment stats.

    ``values`` is an array already on the store's genes (the row's ``mark``), or an
    ``xr.DataArray`` labelled by gene, with or without a ``mark`` dim, aligned here
    (wider windows centre-cropped); see :mod:`chromestore.formats.registry`.
    """
    want = (V.BIN,) if target == V.signal.name else ()
    if not hasattr(values, "dims"):  # an array (not an xr.DataArray)
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(keys.gene),) + ((keys.n_bins,) if want else ()):
            raise ValueError(
                f"format {fmt}: its reader gave shape {values.shape} for {path}, "
                f"not (genes{', bins' if want else ''}) of the store"
            )
        return {mark: values}, {}
    dims = set(values.dims)
    if V.GENE not in dims or dims - {V.GENE, V.MARK, V.BIN} or (V.BIN in dims) != bool(want):
        raise ValueError(
            f"format {fmt}: its reader gave dims {values.dims} for {path}, not "
            f"('gene'[, 'mark']{', ' + repr(V.BIN) if want else ''}) for {target}"
        )
    if want:
        from chromestore.formats.csv import centre_crop

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
