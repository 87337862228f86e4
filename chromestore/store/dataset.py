"""The store as an ``xr.Dataset``: open it, write regions and attrs (a store is created by
:mod:`chromestore.store.creation`).

Layout (Zarr v3, written through xarray; :mod:`chromestore.store.layout`): ``signal``
(cell, gene, mark, bin), ``expression`` (cell, gene) and ``peak_max`` (cell, gene, mark),
chunked one cell at a time, coordinates in one chunk. Group attributes hold the format
name and version, the bin orientation (``5to3``: bin 0 is 5 kb upstream of the TSS on the
gene's strand), the genome build, the window and bin size. Per (cell, mark) completion is
a variable (``signal_completed``, ``peak_max_completed``) and each pair's provenance the
attrs of the group ``records/CELL/MARK`` (:mod:`chromestore.store.records`).

Writers serialise through :meth:`Store.lock` (one store-wide lock,
:data:`chromestore.store.handle.WRITE_LOCK`): adding cells
(:mod:`chromestore.store.cells`) and each cell's read-modify-write with its records
happen under it, so concurrent ingests of one store (processes, Dask tasks, S3) neither
lose nor mix data.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
import zarr

from chromestore import variables as V
from chromestore.errors import StoreError
from chromestore.store import integrity, pair_chunks, region_chunks
from chromestore.store.attrs import decode_attrs, encode_attrs
from chromestore.store.handle import Store, StoreLike, names_store
from chromestore.store.layout import CELL_VARS
from chromestore.store.presence import chunk_exists
from chromestore.store.safety import missing_bucket

#: key of ``ds.encoding`` under which :func:`open_store` keeps the :class:`Store` it opened
STORE_ENCODING = "chromestore_store"
#: the variables read through :class:`~chromestore.store.integrity.CheckedArray`: the data
#: and the completion flags (a chunk that fails names itself; a missing one is not NaN)
CHECKED_VARS = (*CELL_VARS, *V.RECORDS_OF.values())


def consolidate(path: StoreLike, storage_options: dict | None = None) -> None:
    """Refresh the consolidated metadata, so plain ``xr.open_zarr(STORE)`` opens it quietly.

    Called after every write that changes the hierarchy (creation, cell appends, runs,
    metrics). chromestore itself always reads the live metadata, never this copy. Holds the
    store's write lock: it rewrites the root ``zarr.json``, attrs included, which a
    concurrent :func:`update_attrs` must not lose.
    """
    handle = Store.of(path, storage_options)
    if not handle.exists():
        return
    with handle.lock():
        consolidate_unlocked(handle)


@names_store
def consolidate_unlocked(handle: Store) -> None:
    """:func:`consolidate` for a caller that holds the lock, or owns the store alone (one
    being created under a temporary name)."""
    clean_partials(handle)
    with warnings.catch_warnings():  # zarr: "not part in the Zarr format 3 spec"
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata")
        zarr.consolidate_metadata(
            zarr.storage.FsspecStore.from_url(
                handle.url, storage_options=handle.options, read_only=False
            )
            if "://" in handle.url
            else handle.url,
            zarr_format=3,
        )


def open_store(
    path: StoreLike, storage_options: dict | None = None, validate: bool = True
) -> xr.Dataset:
    """Open a store as a lazy ``xr.Dataset`` (dask-backed, one chunk per store chunk).

    Raises :class:`chromestore.variables.SchemaError` when the store does not follow
    the schema or was written by an unsupported format version, and
    :class:`chromestore.errors.ChunkError` naming the chunk where a coordinate does not
    read back (or is missing); reads of the data and the completion flags raise it later,
    chunk by chunk (:mod:`chromestore.store.integrity`).
    """
    handle = Store.of(path, storage_options)
    if handle.creating():
        raise handle.interrupted()
    if not handle.exists():
        bucket = missing_bucket(handle)
        raise StoreError(
            f"{handle}: "
            + (
                f"the bucket {bucket!r} does not exist"
                if bucket
                else "no chromestore store here (no zarr.json)"
            )
        )
    for attempt in range(20):
        try:
            with warnings.catch_warnings():
                # a killed writer's half-written metadata (zarr.<id>.partial): never read,
                # removed by the next writer (clean_partials); not the reader's concern
                warnings.filterwarnings("ignore", message=r"Object at .*\.partial is not")
                ds = xr.open_zarr(
                    handle.url,
                    consolidated=False,
                    storage_options=handle.storage_options,
                    zarr_format=3,
                )
            arrays = _cell_arrays(ds, handle)
            break
        except ValueError as err:  # a writer is appending cells: variables differ by a moment
            if "conflicting sizes" not in str(err):
                _raise_located(handle, err)
            if attempt == 19:
                raise StoreError(
                    f"{handle}: its arrays differ in their number of cells ({err})"
                    "; a writer was killed while adding cells, and the store "
                    "could not be repaired here (read-only?)"
                ) from None
            if attempt >= 2:  # under the lock no append is running: a killed one is undone
                with contextlib.suppress(OSError):
                    with handle.lock():
                        repair_cells(handle)
            time.sleep(0.05 * (attempt + 1))
        except Exception as err:  # a coordinate that does not decode: name its chunk
            _raise_located(handle, err)
    try:
        ds = eager_coords(ds, handle)
    except Exception as err:
        _raise_located(handle, err)
    check_coordinates(ds, handle)
    ds.attrs = decode_attrs(ds.attrs)
    if validate:
        try:
            ds = V.validate(ds)
        except V.SchemaError as e:
            raise V.SchemaError(f"{handle}: {e}") from None
    # reads of a chunk that fails its checksum raise ChunkError naming the chunk
    ds = integrity.checked_variables(ds, arrays, handle.url, CHECKED_VARS)
    ds.encoding[STORE_ENCODING] = handle  # where provenance() finds the records
    return ds


def _cell_arrays(ds: xr.Dataset, handle: Store) -> dict[str, zarr.Array]:
    """The Zarr arrays of ``CELL_VARS`` in ``ds``, opened now, of the shapes ``ds`` has.

    Raises ``ValueError("conflicting sizes ...")`` where a writer appended cells between
    the opening of ``ds`` and of the arrays (:func:`open_store` then opens again).
    """
    group = handle.group("r")
    arrays = {name: group[name] for name in CHECKED_VARS if name in ds.data_vars}
    for name, array in arrays.items():
        if tuple(array.shape) != tuple(ds[name].shape):
            raise ValueError(
                f"conflicting sizes for {name}: {tuple(array.shape)} on disk, "
                f"{tuple(ds[name].shape)} opened (cells being appended)"
            )
    return arrays


def _raise_located(handle: Store, err: Exception) -> None:
    """Raise ``err``, or the :class:`ChunkError` of the coordinate chunk that caused it."""
    failure = None if integrity.is_access_error(err) else coordinate_failure(handle, err)
    if failure is None or failure is err:
        raise err
    raise failure from err


def coordinate_failure(handle: Store, err: BaseException) -> BaseException:
    """The :class:`ChunkError` of the first coordinate chunk of ``handle`` that does not
    read back (the cause of ``err``, raised while opening), else ``err`` itself."""
    try:
        group = handle.group("r")
        names = sorted(n for n, _ in group.arrays() if n not in CHECKED_VARS)
    except Exception:
        return err
    for name in names:
        array = group[name]
        for coords in np.ndindex(*array.cdata_shape):
            failure = integrity.read_chunk(array, coords)
            if failure is not None:
                return integrity.chunk_error(handle.url, array, coords, None, failure)
    return err


def check_coordinates(ds: xr.Dataset, handle: Store) -> None:
    """Raise :class:`ChunkError` for a coordinate chunk that is missing (every one is
    written with the store): a chunk whose values are all its fill value is looked for."""
    group = None
    for name, coord in ds.coords.items():
        values = np.asarray(coord.values)
        if values.size == 0:
            continue
        if group is None:
            group = handle.group("r")
        try:
            array = group[name]
        except KeyError:
            continue
        fill = array.fill_value
        size = array.chunks[0] if array.ndim == 1 else None
        if size is None:
            continue
        for c in range(array.cdata_shape[0]):
            part = values[c * size : (c + 1) * size]
            if part.dtype.kind == "f" and np.isnan(fill):
                empty = bool(np.isnan(part).all())
            else:
                empty = bool((part == fill).all())
            if empty and not chunk_exists(array, (c,)):
                raise integrity.missing_chunk_error(
                    handle.url,
                    array,
                    (c,),
                    None,
                    "every coordinate chunk is written with the store",
                    "restore it from a copy of the store, or create the store again",
                )


def eager_coords(ds: xr.Dataset, store: StoreLike) -> xr.Dataset:
    """``ds`` with every coordinate in memory, read straight from ``store`` (no Dask task).

    ``groupby("gene_chrom")`` and ``where(ds.gene_name == ..., drop=True)`` need numpy,
    not Dask, coordinates; plain ``xr.open_zarr`` chunks every non-index coordinate.
    """
    lazy = [name for name, coord in ds.coords.items() if coord.chunks is not None]
    if not lazy:
        return ds
    group = Store.of(store).group("r")

    def values(array: zarr.Array) -> np.ndarray:
        whole = pair_chunks.read_whole(array) if array.nchunks > 1 else None
        return array[...] if whole is None else whole  # (cell, mark): one chunk per pair

    return ds.assign_coords(
        {
            name: xr.Variable(ds[name].dims, values(group[name]), ds[name].attrs, ds[name].encoding)
            for name in lazy
        }
    )


#: What zarr's local store leaves of a metadata file whose writer was killed mid-write:
#: zarr writes ``zarr.json`` as ``zarr.<32 hex>.partial``, then renames it.
_PARTIAL = re.compile(r"^zarr\.[0-9a-f]{32}\.partial$")


def clean_partials(path: StoreLike, storage_options: dict | None = None) -> list[str]:
    """Remove the ``zarr.<hex>.partial`` files killed writers left beside the metadata of a
    local store, which zarr would otherwise report on every open ("Object at … is not
    recognized as a component of a Zarr hierarchy"). Chunk folders (``c``) hold none;
    writers' private dot-folders (a run being staged) are theirs and are left alone. The
    caller holds the store's write lock, under which every metadata file of the shared
    hierarchy is written. Returns the paths removed (object stores: none, their writes are
    whole)."""
    url = Store.of(path, storage_options).url
    if "://" in url and not url.startswith("file://"):
        return []
    root = url.removeprefix("file://")
    removed = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d != "c" and not d.startswith(".")]
        for name in files:
            if _PARTIAL.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
                    removed.append(os.path.join(folder, name))
    return removed


@names_store
def repair_cells(path: StoreLike, storage_options: dict | None = None) -> bool:
    """Undo a cell append that a killed writer left half done (arrays along ``cell`` of
    different lengths, which no reader can open): every array along ``cell`` is cut back to
    the shortest. Nothing of the cells cut was written or recorded (their data is written
    only after the append, under the lock). Writers call it under the store's write lock
    before they open the store (it also removes the half-written metadata files killed
    writers left, :func:`clean_partials`); returns whether cells were cut back."""
    handle = Store.of(path, storage_options)
    clean_partials(handle)  # a metadata write a killed writer left half done
    arrays = {}
    for name in (V.CELL, *CELL_VARS, *V.RECORDS_OF.values(), V.signal_units.name):
        try:
            arrays[name] = zarr.open_array(
                handle.child(name).url,
                mode="r+",
                zarr_format=3,
                storage_options=handle.storage_options,
            )
        except FileNotFoundError:  # a format-2 store has no completion arrays yet (nor units)
            continue
    shortest = min((a.shape[0] for a in arrays.values()), default=0)
    cut = [a for a in arrays.values() if a.shape[0] != shortest]
    for array in cut:
        array.resize((shortest, *array.shape[1:]))
    if cut:
        consolidate(handle)
    return bool(cut)


def cell_index(ds: xr.Dataset, cell: str) -> int:
    idx = ds.indexes[V.CELL].get_indexer([cell])[0]
    if idx < 0:
        raise KeyError(f"cell {cell!r} is not in the store (cells: {list(ds[V.CELL].values)})")
    return int(idx)


@names_store
def write_region(
    path: StoreLike,
    part: xr.Dataset,
    region: Mapping[str, slice],
    storage_options: dict | None = None,
) -> None:
    """Write ``part`` (variables with a ``cell`` dim) into ``region`` of an existing store.

    Regions should be chunk-aligned along ``cell`` and ``gene`` so concurrent writers
    never share a chunk. Every chunk of the region is written, even one holding only NaN
    (a missing chunk then means a lost one: :mod:`chromestore.store.presence`). Dask
    blocks that are the store's chunks are each encoded and put by the task that computes
    them (:mod:`chromestore.store.region_chunks`); anything else goes through xarray.
    """
    drop = [v for v in part.variables if V.CELL not in part[v].dims]
    part = part.drop_vars(drop)
    part.attrs = {}
    handle = Store.of(path, storage_options)
    if region_chunks.write_aligned(handle.group("r+", live=True), part, dict(region)):
        return
    part.to_zarr(
        handle.url,
        region=dict(region),
        mode="r+",
        consolidated=False,
        zarr_format=3,
        storage_options=handle.storage_options,
        write_empty_chunks=True,
    )


@names_store
def update_attrs(path: StoreLike, storage_options: dict | None = None, **items: Any) -> None:
    """Merge ``items`` into the store's group attrs (dict values are merged one level deep).

    Holds the store's write lock: concurrent updates are serialised, none lost.
    """
    handle = Store.of(path, storage_options)
    with handle.lock():
        _update_attrs(handle, items)


def _update_attrs(handle: Store, items: Mapping[str, Any]) -> None:
    group = handle.group("r+")
    attrs = decode_attrs(group.attrs)
    for key, value in items.items():
        if isinstance(value, dict) and isinstance(attrs.get(key), dict):
            merged = dict(attrs[key])
            merged.update(value)
            attrs[key] = merged
        else:
            attrs[key] = value
    group.attrs.put(encode_attrs(attrs))
