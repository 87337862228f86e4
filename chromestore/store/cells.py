"""Grow a store along ``cell``: new epigenomes appended as NaN, nothing else rewritten."""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from chromestore import variables as V
from chromestore.store import names
from chromestore.store.dataset import consolidate, open_store, repair_cells
from chromestore.store.handle import Store, StoreLike, strs
from chromestore.store.layout import cell_vars
from chromestore.store.records import upgrade_records


def add_cells(
    path: StoreLike, cells: Sequence[str], storage_options: dict | None = None
) -> list[str]:
    """Append new epigenomes along ``cell`` (NaN-filled); existing cells are not rewritten.

    Cells already in the store are ignored. Returns the cells actually added (by this
    call: of two writers adding one cell, one gets it). Holds the store's write lock, and
    converts a format-2 store's records first (:func:`chromestore.store.records.upgrade_records`).
    """
    handle = Store.of(path, storage_options)
    with handle.lock():
        repair_cells(handle)

        upgrade_records(handle)
        return _add_cells(handle, cells)


def _add_cells(handle: Store, cells: Sequence[str]) -> list[str]:
    ds = open_store(handle)
    have = set(ds[V.CELL].values.tolist())
    new = names.check_all([c for c in dict.fromkeys(cells) if c not in have], "cell")
    if not new:
        return []
    attrs = dict(handle.group("r").attrs)  # as stored (JSON strings stay strings)
    part = xr.Dataset(
        cell_vars(
            len(new), ds.sizes[V.GENE], ds.sizes[V.MARK], ds.sizes[V.BIN], attrs["gene_chunk"]
        ),
        coords={V.CELL: strs(new)},
    )
    part.attrs.update(attrs)  # to_zarr(append_dim=...) replaces the group attrs
    part.to_zarr(
        handle.url,
        append_dim=V.CELL,
        compute=False,  # chunks equal to the NaN fill value are never written
        consolidated=False,
        zarr_format=3,
        storage_options=handle.storage_options,
    )
    consolidate(handle)
    return new
