"""Which (cell, mark) of a store is written, and where its data came from.

Format 3 keeps both where two writers never touch the same object: completion is a bool
``(cell, mark)`` variable per target (``signal_completed``, ``peak_max_completed``; one
chunk per pair, every one written) and each pair's provenance (file, format, counts, time)
the attrs of the Zarr group ``records/CELL/MARK``.

The order a crash cannot break, for each (cell, mark) written: its flag cleared first
(:func:`clear_records`), then the data, then the provenance, then the flag set
(:func:`write_records`), the records under the store's write lock
(:meth:`chromestore.store.Store.lock`). A writer killed at any instant leaves the pair
either complete with the data and provenance it recorded, or not complete (the next run
redoes it): never complete with new data and old provenance. :func:`write_recorded` does
the whole sequence for a region of cells (``simulate``); the cell writer of ingest is
:func:`chromestore.store.cells.write_cell`. :func:`upgrade_records` converts a format-2
store, whose records were two JSON blobs in the group attrs; :func:`completed` and
:func:`provenance` read both layouts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from chromestore import variables as V
from chromestore.store import integrity, pair_chunks
from chromestore.store.attrs import encode_attrs
from chromestore.store.dataset import (
    STORE_ENCODING,
    cell_index,
    consolidate,
    open_store,
    repair_cells,
    write_region,
)
from chromestore.store.handle import Store, StoreLike, ensure_group, names_store, now_utc
from chromestore.store.layout import record_vars


def mark_completed(
    path: StoreLike,
    cell: str,
    mark: str,
    info: Mapping[str, Any],
    storage_options: dict | None = None,
    target: str = "signal",
) -> None:
    """Record that (cell, mark) of ``target`` was written, with its provenance (file, format,
    counts); takes the store's write lock. Call it only after the data is written."""
    record_completed(path, cell, target, {mark: info}, storage_options)


def record_completed(
    path: StoreLike,
    cell: str,
    target: str,
    infos: Mapping[str, Mapping[str, Any]],
    storage_options: dict | None = None,
) -> None:
    """:func:`write_records` under the store's write lock, on a freshly opened store."""
    record_cells_completed(path, target, {cell: infos}, storage_options)


def record_cells_completed(
    path: StoreLike,
    target: str,
    infos: Mapping[str, Mapping[str, Mapping[str, Any]]],
    storage_options: dict | None = None,
) -> None:
    """:func:`write_cells_records` (cell → mark → provenance) under one hold of the store's
    write lock, on a freshly opened store."""
    handle = Store.of(path, storage_options)
    with handle.lock() as held:
        repair_cells(handle)
        upgrade_records(handle)
        ds = open_store(handle)
        held.verify()  # a lapsed lease (object stores): another writer may have written
        write_cells_records(handle, ds, target, infos)


def write_records(
    store: StoreLike, ds: xr.Dataset, cell: str, target: str, infos: Mapping[str, Mapping[str, Any]]
) -> None:
    """Record the marks of ``infos`` (mark → provenance) of ``cell`` as written
    (:func:`write_cells_records` of one cell)."""
    write_cells_records(store, ds, target, {cell: infos})


def write_cells_records(
    store: StoreLike,
    ds: xr.Dataset,
    target: str,
    infos: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> None:
    """Record the (cell, mark) pairs of ``infos`` (cell → mark → provenance; a ``completed``
    time is added) of ``target`` as written: every provenance into the attrs of
    ``records/CELL/MARK`` first (all at once), then the ``{target}_completed`` flags (one
    chunk per (cell, mark); the cells that share a set of marks in one write). The caller
    holds the store's write lock and has written the data; other marks and targets keep
    theirs."""
    from zarr.core.sync import sync

    handle = Store.of(store)
    infos = {cell: marks for cell, marks in infos.items() if marks}
    if not infos:
        return
    flags = flag_array(handle, target)
    stamp = now_utc()
    items = {
        (cell, mark): {target: {**info, "completed": stamp}}
        for cell, marks in infos.items()
        for mark, info in marks.items()
    }
    provenances = {
        f"{V.RECORDS_GROUP}/{cell}/{mark}": json.loads(json.dumps(dict(new), default=str))
        for (cell, mark), new in items.items()
    }
    levels = [{V.RECORDS_GROUP: {}}, {f"{V.RECORDS_GROUP}/{c}": {} for c in sorted(infos)}]
    root = handle.group("r+")
    if not pair_chunks.merge_group_attrs(root, [*levels, provenances]):  # else through Zarr
        sync(_put_provenances(handle, items))
    if target == V.signal.name:  # the units of the data, before the flags
        _write_units(
            handle, ds, {c: {m: _units(i) for m, i in marks.items()} for c, marks in infos.items()}
        )
    # the flags last, after every provenance
    _set_flags(flags, ds, {cell: list(marks) for cell, marks in infos.items()}, True)


def _set_flags(
    flags: zarr.Array, ds: xr.Dataset, pairs: Mapping[str, Sequence[str]], value: bool
) -> None:
    """Set the flags of the (cell, mark) pairs (cell → marks) to ``value``: one orthogonal
    write per distinct set of marks."""
    blocks = _blocks(ds, pairs)
    chunks = {(r, c): value for _, rows, cols in blocks for r in rows for c in cols}
    if pair_chunks.write_pairs(flags, chunks):  # every chunk at once
        return
    for _, rows, cols in blocks:
        flags.set_orthogonal_selection((rows, cols), value)


def _blocks(
    ds: xr.Dataset, pairs: Mapping[str, Sequence[str]]
) -> list[tuple[list[str], list[int], list[int]]]:
    """The (cell, mark) pairs (cell → marks) as blocks of cells that share a set of marks:
    ``(cells, their row indices, the marks' column indices)``, one orthogonal write each."""
    marks_all = [str(m) for m in ds[V.MARK].values]
    by_marks: dict[tuple[str, ...], list[str]] = {}
    for cell, marks in pairs.items():
        if marks:
            by_marks.setdefault(tuple(marks), []).append(cell)
    return [
        (cells, [cell_index(ds, c) for c in cells], [marks_all.index(m) for m in marks])
        for marks, cells in by_marks.items()
    ]


def _units(info: Mapping[str, Any]) -> str:
    """The units of a provenance: its ``units``, else those of its format (a bigWig's
    values: ``mean value``; every other format of a store without units counts reads)."""
    units = info.get("units")
    if units:
        return str(units)
    return V.SIGNAL_UNITS[-1] if str(info.get("format", "")).lower() == "bigwig" else V.READS


def _write_units(handle: Store, ds: xr.Dataset, units: Mapping[str, Mapping[str, str]]) -> None:
    """Each (cell, mark)'s ``signal_units`` (cell → mark → units; one chunk per pair),
    before its flag is set: one orthogonal write per distinct set of marks. A store created
    before the variable keeps them in its provenance only."""
    try:
        array = zarr.open_array(
            handle.child(V.signal_units.name).url,
            mode="r+",
            zarr_format=3,
            storage_options=handle.storage_options,
        )
    except FileNotFoundError:
        return
    blocks = _blocks(ds, {c: list(u) for c, u in units.items()})
    chunks = {
        (r, col): units[cell][m]
        for cells, rows, cols in blocks
        for cell, r in zip(cells, rows, strict=True)
        for m, col in zip(units[cells[0]], cols, strict=True)
    }
    if pair_chunks.write_pairs(array, chunks):  # every chunk at once
        return
    for cells, rows, cols in blocks:
        marks = list(units[cells[0]])
        values = np.array([[units[c][m] for m in marks] for c in cells], dtype=array.dtype)
        array.set_orthogonal_selection((rows, cols), values)


def signal_units(ds: xr.Dataset, store: StoreLike | None = None) -> xr.DataArray:
    """What each (cell, mark)'s signal is (:data:`chromestore.variables.SIGNAL_UNITS`), '' where
    nothing is recorded written. From the ``signal_units`` variable; a store created before it
    (or a pair written there before) reads its provenance: its ``units``, else its format's
    (a bigWig's ``mean value``, reads for every other format). Never raises on an old store."""
    spec = V.signal_units
    cells = [str(c) for c in ds[V.CELL].values]
    marks = [str(m) for m in ds[V.MARK].values]
    out = np.full((len(cells), len(marks)), "", dtype=object)
    if spec.name in ds.variables:
        out[...] = np.asarray(ds[spec.name].values).astype(object)
        if V.RECORDS_OF[V.signal.name] not in ds.variables:  # a Dataset built in memory
            return xr.DataArray(
                out.astype(str), dims=spec.dims, coords={V.CELL: cells, V.MARK: marks}
            ).rename(spec.name)
    done = completed(ds, V.signal.name)
    todo = [(c, m) for c, m in done if not out[cells.index(c), marks.index(m)]]
    if todo:
        try:
            prov = provenance(ds, V.signal.name, store)
        except ValueError:  # an in-memory Dataset without its store: reads
            prov = {}
        for c, m in todo:
            out[cells.index(c), marks.index(m)] = _units(prov.get((c, m), {}))
    for i, c in enumerate(cells):
        for j, m in enumerate(marks):
            if (c, m) not in done:
                out[i, j] = ""
    return xr.DataArray(
        out.astype(str), dims=spec.dims, coords={V.CELL: cells, V.MARK: marks}, name=spec.name
    )


def flag_array(store: StoreLike, target: str) -> zarr.Array:
    """The ``{target}_completed`` array, opened for writing on its live metadata; every chunk
    it writes is stored, false ones too (a missing flag chunk is a lost one)."""
    handle = Store.of(store)
    array = zarr.open_array(
        handle.child(V.RECORDS_OF[target]).url,
        mode="r+",
        zarr_format=3,
        storage_options=handle.storage_options,
    )
    return array.with_config({"write_empty_chunks": True})


def clear_records(
    store: StoreLike, ds: xr.Dataset, cell: str, target: str, marks: Sequence[str]
) -> None:
    """Record the (cell, mark) pairs of ``target`` as not complete: the first step of
    rewriting them, before their data. The caller holds the store's write lock."""
    clear_cells_records(store, ds, target, {cell: marks})


def clear_cells_records(
    store: StoreLike, ds: xr.Dataset, target: str, pairs: Mapping[str, Sequence[str]]
) -> None:
    """:func:`clear_records` of several cells (cell → marks) in as few writes as their sets
    of marks allow; a flag already false is read, not written again (the caller holds the
    write lock, so none is set meanwhile): a new store's or a killed writer's pairs cost
    reads only."""
    if not any(pairs.values()):
        return
    flags = flag_array(store, target)
    marks_all = [str(m) for m in ds[V.MARK].values]
    todo: dict[str, list[str]] = {}
    whole = pair_chunks.read_whole(flags)  # every flag at once
    whole = np.asarray(flags[...] if whole is None else whole, bool)
    for cells, rows, cols in _blocks(ds, pairs):
        now = whole[np.ix_(rows, cols)]
        for cell, row in zip(cells, now, strict=True):
            set_marks = [marks_all[c] for c, v in zip(cols, row, strict=True) if v]
            if set_marks:
                todo[cell] = set_marks
    if todo:
        _set_flags(flags, ds, todo, False)


@names_store
def write_recorded(
    path: StoreLike,
    part: xr.Dataset,
    region: Mapping[str, slice],
    target: str,
    infos: Mapping[str, Mapping[str, Mapping[str, Any]]],
    storage_options: dict | None = None,
) -> None:
    """Write ``part`` into ``region`` of the store and record ``infos`` (cell → mark →
    provenance) of ``target``, in the order a crash cannot break: the pairs' flags cleared
    first (under the lock), then the data (:func:`chromestore.store.write_region`), then
    each provenance and flag (:func:`record_cells_completed`)."""
    handle = Store.of(path, storage_options)
    with handle.lock():
        repair_cells(handle)
        upgrade_records(handle)
        ds = open_store(handle)
        clear_cells_records(handle, ds, target, {c: list(m) for c, m in infos.items()})
    write_region(handle, part, region)
    record_cells_completed(handle, target, infos)


def _ensure_cell_records(handle: Store, cell: str) -> None:
    """``records`` and ``records/CELL``, created where missing (zarr does not create
    missing parents)."""
    records = handle.child(V.RECORDS_GROUP)
    for node in (records, records.child(cell)):
        if not node.exists():
            ensure_group(node)


def _put_provenance(
    handle: Store, cell: str, mark: str, items: Mapping[str, Any], parents: bool = True
) -> None:
    """Merge ``items`` (target → provenance) into the attrs of ``records/CELL/MARK``
    (``parents``: create ``records/CELL`` first where missing)."""
    if parents:
        _ensure_cell_records(handle, cell)
    group = ensure_group(handle.child(V.RECORDS_GROUP).child(cell, mark))
    group.attrs.update(json.loads(json.dumps(dict(items), default=str)))


async def _put_provenances(
    handle: Store, items: Mapping[tuple[str, str], Mapping[str, Any]]
) -> None:
    """:func:`_put_provenance` of many (cell, mark) pairs, concurrently: the parents
    (``records``, then each ``records/CELL``) first, then every pair's group, each merged
    into what it holds."""
    import asyncio

    from zarr.api.asynchronous import open_group
    from zarr.errors import ContainsGroupError

    options = handle.storage_options

    async def ensure(node: Store):
        try:
            return await open_group(
                store=node.url, mode="a", zarr_format=3, storage_options=options
            )
        except ContainsGroupError:  # created by another writer between look and create
            return await open_group(
                store=node.url, mode="r+", zarr_format=3, storage_options=options
            )

    records = handle.child(V.RECORDS_GROUP)
    await ensure(records)
    await asyncio.gather(*(ensure(records.child(c)) for c in sorted({c for c, _ in items})))

    async def put(cell: str, mark: str, new: Mapping[str, Any]) -> None:
        group = await ensure(records.child(cell, mark))
        await group.update_attributes(json.loads(json.dumps(dict(new), default=str)))

    await asyncio.gather(*(put(c, m, new) for (c, m), new in items.items()))


def _legacy_records(attrs: Mapping, target: str) -> dict[str, Any]:
    """Format-2 records: ``{"cell/mark": provenance}`` of the group attrs."""
    done_key, prov_key = (
        ("completed", "provenance")
        if target == V.signal.name
        else (f"{target}_completed", f"{target}_provenance")
    )
    prov = attrs.get(prov_key, {})
    return {k: {**prov.get(k, {}), "completed": t} for k, t in attrs.get(done_key, {}).items()}


def upgrade_records(path: StoreLike, storage_options: dict | None = None) -> bool:
    """Convert a format-2 store (records in group attrs) to completion variables and
    ``records/CELL/MARK`` provenance groups (v3).

    Returns whether anything was converted. Writers call it under the store's write lock;
    readers need not (:func:`completed` and :func:`provenance` read both layouts).
    """
    handle = Store.of(path, storage_options)
    attrs = handle.attrs()
    if attrs.get("format_version", V.FORMAT_VERSION) >= V.RECORDS_VERSION:
        return False
    ds = open_store(handle)
    cells = [str(c) for c in ds[V.CELL].values]
    marks = [str(m) for m in ds[V.MARK].values]
    part = xr.Dataset(record_vars(len(cells), len(marks))).compute()
    legacy = {target: _legacy_records(attrs, target) for target in V.RECORDS_OF}
    for target, done_name in V.RECORDS_OF.items():
        for key in legacy[target]:
            cell, mark = key.split("/", 1)
            part[done_name].values[cells.index(cell), marks.index(mark)] = True
    part = part.chunk({V.CELL: 1, V.MARK: 1})
    enc = {
        spec.name: {"chunks": (1, 1), "compressors": integrity.compressors()} for spec in V.RECORDS
    }
    ensure_group(handle.child(V.RECORDS_GROUP))
    for key in sorted({k for records in legacy.values() for k in records}):
        cell, mark = key.split("/", 1)
        _put_provenance(
            handle,
            cell,
            mark,
            {target: records[key] for target, records in legacy.items() if key in records},
        )
    part.to_zarr(
        handle.url,
        mode="a",
        encoding=enc,
        consolidated=False,
        zarr_format=3,
        storage_options=handle.storage_options,
    )
    kept = {
        k: v
        for k, v in attrs.items()  # to_zarr(mode="a") replaced the group attrs
        if k not in ("completed", "provenance", "peak_max_completed", "peak_max_provenance")
    }
    handle.group("r+").attrs.put(encode_attrs({**kept, "format_version": V.FORMAT_VERSION}))
    consolidate(handle)
    return True


def completed(ds: xr.Dataset, target: str = "signal") -> set[tuple[str, str]]:
    """The (cell, mark) pairs of ``target`` (``signal`` or ``peak_max``) recorded as written."""
    done_name = V.RECORDS_OF[target]
    if done_name not in ds.variables:  # a format-2 store, not yet converted
        return {tuple(k.split("/", 1)) for k in _legacy_records(ds.attrs, target)}  # type: ignore[misc]
    whole = integrity.whole_values(ds[done_name])  # one read, not one task per pair
    done = np.asarray(ds[done_name].values if whole is None else whole, dtype=bool)
    cells = [str(c) for c in ds[V.CELL].values]
    marks = [str(m) for m in ds[V.MARK].values]
    return {(cells[i], marks[j]) for i, j in zip(*np.nonzero(done), strict=True)}


def provenance(
    ds: xr.Dataset, target: str = "signal", store: StoreLike | None = None
) -> dict[tuple[str, str], dict]:
    """``{(cell, mark): provenance}`` of every completed (cell, mark) of ``target``.

    The provenance lives in the store (``records/CELL/MARK``): ``store`` defaults to the one
    ``ds`` was opened from by :func:`open_store`.
    """
    if V.RECORDS_OF[target] not in ds.variables:  # a format-2 store, not yet converted
        return {
            tuple(k.split("/", 1)): v  # type: ignore[misc]
            for k, v in _legacy_records(ds.attrs, target).items()
        }
    handle = Store.of(store) if store is not None else ds.encoding.get(STORE_ENCODING)
    if handle is None:
        raise ValueError(
            "provenance is kept in the store (records/CELL/MARK): pass store=, "
            "or open the Dataset with chromestore.open_store"
        )
    done = sorted(completed(ds, target))
    fs, root = handle.fs()
    paths = [f"{root.rstrip('/')}/{V.RECORDS_GROUP}/{c}/{m}/zarr.json" for c, m in done]
    docs = fs.cat(paths, on_error="return") if paths else {}
    docs = {fs._strip_protocol(k): v for k, v in docs.items()}
    out = {}
    for key, path in zip(done, paths, strict=True):
        doc = docs.get(fs._strip_protocol(path))
        attrs = json.loads(doc).get("attributes", {}) if isinstance(doc, bytes) else {}
        out[key] = attrs.get(target, {})
    return out


def completion_table(ds: xr.Dataset, target: str = "signal") -> pd.DataFrame:
    """A cell × mark table of booleans: which (cell, mark) of ``target`` is complete."""
    done = completed(ds, target)
    cells = [str(c) for c in ds[V.CELL].values]
    marks = [str(m) for m in ds[V.MARK].values]
    return pd.DataFrame(
        [[(c, m) in done for m in marks] for c in cells], index=cells, columns=marks, dtype=bool
    )
