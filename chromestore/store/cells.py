"""Grow a store along ``cell`` and write one cell: new epigenomes appended as NaN, nothing
else rewritten; a cell's marks written in the order a crash cannot break."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
import zarr

from chromestore import variables as V
from chromestore.errors import StoreError
from chromestore.store import integrity, names
from chromestore.store.dataset import (
    cell_index,
    consolidate_unlocked,
    open_store,
    repair_cells,
    write_region,
)
from chromestore.store.handle import Store, StoreLike, names_store, strs
from chromestore.store.layout import cell_vars
from chromestore.store.presence import Required, chunk_exists
from chromestore.store.records import clear_records, upgrade_records, write_records


@names_store
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
    # the flags are written now, every one (false): a missing flag chunk is a lost one; the
    # units too ('') where the store has them (stores created before have none)
    units = V.signal_units.name
    part = part.assign({name: part[name].compute() for name in V.RECORDS_OF.values()})
    if units in ds.variables:
        part = part.assign_coords({units: part[units].compute()})
    else:
        part = part.drop_vars(units)
    part.attrs.update(attrs)  # to_zarr(append_dim=...) replaces the group attrs
    part.to_zarr(
        handle.url,
        append_dim=V.CELL,
        compute=False,  # chunks equal to the NaN fill value are never written
        consolidated=False,
        zarr_format=3,
        storage_options=handle.storage_options,
        write_empty_chunks=True,
    )
    consolidate_unlocked(handle)  # under the lock taken by add_cells
    return new


@dataclass
class CellWrite:
    """What :func:`write_cell` did besides writing: whether it appended the cell, and a line
    per chunk it found corrupt or missing (rewritten; the marks that lost values there are
    no longer complete)."""

    appended: bool = False
    notes: list[str] = field(default_factory=list)


@names_store
def write_cell(
    store: StoreLike,
    cell: str,
    signal: Mapping[str, np.ndarray] | None = None,
    peak_max: Mapping[str, np.ndarray] | None = None,
    storage_options: dict | None = None,
    records: Mapping[str, Mapping[str, dict]] | None = None,
    append: bool = False,
) -> CellWrite:
    """Write the given marks of one cell: ``signal[mark]`` (gene, bin), ``peak_max[mark]``
    (gene), and record each (cell, mark) of ``records`` (``{"signal" | "peak_max": {mark:
    provenance}}``) complete.

    All of it runs under the store's write lock on a store opened after taking it, so
    concurrent writers (of this cell or others, in other processes or on a cluster) never
    lose each other's marks. With ``append``, a cell not in the store is appended first
    (under the same lock: a cell is added only with its data). The store's chunks hold all
    marks of a cell, so the cell's current values are read chunk by chunk, the given marks
    replaced, and the cell's region written back whole; a chunk that is corrupt or missing
    is rewritten with the given marks (and NaN for the others, whose completion is then
    cleared). The order a crash cannot break: the flags of the marks written are cleared
    first, then the data is written, then each provenance, then each flag set.
    """
    from chromestore.executors import local_dask

    handle = Store.of(store, storage_options)
    done = CellWrite()
    # reads in this process (no nested tasks on the cluster): a task holding the lock that
    # waited on tasks queued behind writers waiting for the lock would deadlock the cluster
    with handle.lock() as held, local_dask(threads=False):
        repair_cells(handle)  # a cell append a killed writer left half done
        upgrade_records(handle)
        ds = open_store(handle)
        if append and cell not in ds.indexes[V.CELL]:
            done.appended = bool(_add_cells(handle, [cell]))
            ds = open_store(handle)
        ci = cell_index(ds, cell)
        marks = [str(m) for m in ds[V.MARK].values]
        cells = [str(c) for c in ds[V.CELL].values]
        for name, given in ((V.signal.name, signal), (V.peak_max.name, peak_max)):
            if not given:
                continue
            unknown = sorted(set(given) - set(marks))
            if unknown:
                raise StoreError(f"{handle}: marks {unknown} are not in the store ({marks})")
            array = handle.group("r")[name]
            current, lost = _read_cell(handle, array, ci, cells)
            for mark, values in given.items():
                current[:, marks.index(mark)] = values
            complete = _complete_marks(ds, name, cell)
            dropped = [m for m in marks if m in complete and m not in given] if lost else []
            clear_records(handle, ds, cell, name, [*given, *dropped])
            done.notes += [
                f"{cell}: chunk {key} of {name} was {how}; rewritten"
                + (
                    f" (marks {', '.join(dropped)} lost their values there and are no "
                    "longer complete: ingest them again)"
                    if dropped
                    else ""
                )
                for key, how in lost
            ]
            # numpy, not Dask: the values are in memory, and a Dask write would send them to a
            # running cluster inside its graph ("Sending large graph of size 37.8 MiB")
            part = xr.Dataset({name: (ds[name].dims, current[None])})
            write_region(handle, part, {V.CELL: slice(ci, ci + 1)})
        if any((records or {}).values()):
            held.verify()  # a lapsed lease (object stores): another writer may have written
        for target, infos in (records or {}).items():
            if infos:
                write_records(handle, ds, cell, target, infos)
    return done


def _complete_marks(ds: xr.Dataset, target: str, cell: str) -> set[str]:
    done = ds[V.RECORDS_OF[target]].sel({V.CELL: cell}).values
    return {str(m) for m, d in zip(ds[V.MARK].values, np.asarray(done, bool), strict=True) if d}


def _read_cell(
    handle: Store, array: zarr.Array, ci: int, cells: Sequence[str]
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The cell's values of ``array`` (gene, mark[, bin]), chunk by chunk; a chunk that is
    corrupt, or missing where it must exist, reads as NaN and is listed (key, what)."""
    required = Required.of(array, cells)
    n_genes, size = array.shape[1], array.chunks[1]
    out = np.full(array.shape[1:], np.nan, dtype=array.dtype)
    lost = []
    for g in range(array.cdata_shape[1]):
        coords = (ci, g) + (0,) * (array.ndim - 2)
        key = integrity.chunk_key(array, coords)
        try:
            block = array.get_block_selection(coords)
        except Exception as e:
            if integrity.is_access_error(e):
                raise
            lost.append((key, f"corrupt ({integrity.describe_failure(e)})"))
            continue
        if (
            required is not None
            and np.isnan(block).any()
            and required.why(coords)
            and not chunk_exists(array, coords)
        ):
            lost.append((key, "missing"))
            continue
        out[g * size : min(n_genes, (g + 1) * size)] = block[0]
    return out, lost
