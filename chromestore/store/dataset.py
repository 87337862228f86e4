"""The store as an ``xr.Dataset``: create it, open it, write regions and attrs.

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
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import xarray as xr
import zarr

from chromestore import variables as V
from chromestore.errors import StoreError
from chromestore.store import integrity
from chromestore.store.attrs import decode_attrs, encode_attrs
from chromestore.store.handle import Store, StoreLike, drop_run_files, ensure_group
from chromestore.store.layout import (
    CELL_VARS,
    DEFAULT_BIN_SIZE,
    DEFAULT_GENE_CHUNK,
    DEFAULT_GENOME,
    DEFAULT_WINDOW,
    encoding,
    template,
)
from chromestore.store.safety import missing_bucket, refuse_occupied

#: key of ``ds.encoding`` under which :func:`open_store` keeps the :class:`Store` it opened
STORE_ENCODING = "chromestore_store"


def create_store(
    path: StoreLike,
    genes: pd.DataFrame,
    cells: Sequence[str] = (),
    marks: Sequence[str] = V.DEFAULT_MARKS,
    window: int = DEFAULT_WINDOW,
    bin_size: int = DEFAULT_BIN_SIZE,
    chunks: Mapping[str, int] | None = None,
    genome: str = DEFAULT_GENOME,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Create an empty store (all signal NaN) and return it opened.

    Parameters
    ----------
    path
        Local directory or fsspec URL (``s3://bucket/x.zarr``, ``memory://x.zarr``).
    genes
        Gene table from :func:`chromestore.genes.read_genes`, in store order.
    cells, marks
        Initial epigenome ids and mark names; more cells can be added later.
    window, bin_size
        bp each side of the TSS and bin width: ``2 * window / bin_size`` bins.
    chunks
        ``{"gene": n}`` overrides the gene chunk (cells are always one per chunk).

    Examples
    --------
    >>> from chromestore import create_store, read_genes
    >>> ds = create_store("memory://doc.zarr", read_genes("data/gene_windows.hg19.bed.gz"))
    >>> dict(ds.sizes)
    {'cell': 0, 'gene': 19802, 'mark': 5, 'bin': 100}
    """
    handle = Store.of(path, storage_options)
    chunks = dict(chunks or {})
    unknown = set(chunks) - {V.GENE, V.CELL}
    if unknown or chunks.get(V.CELL, 1) != 1:
        raise ValueError(f"chunks may only set 'gene' (cells are one per chunk), got {chunks}")
    if handle.exists():
        raise StoreError(f"{handle}: a store already exists here")
    refuse_occupied(handle)  # a new store goes only where nothing is
    drop_run_files(handle)  # weights of a store once here would be resumed as this one's
    ds = template(
        genes, cells, marks, window, bin_size, chunks.get(V.GENE, DEFAULT_GENE_CHUNK), genome
    )
    gene_chunk = ds.attrs["gene_chunk"]
    ds.to_zarr(
        handle.url,
        mode="w-",
        compute=False,
        encoding=encoding(ds, gene_chunk),
        zarr_format=3,
        consolidated=False,
        storage_options=handle.storage_options,
    )
    ensure_group(handle.child(V.RECORDS_GROUP))
    consolidate(handle)
    return open_store(handle)


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
    with handle.lock(), warnings.catch_warnings():  # zarr: "not part in the Zarr format 3 spec"
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
    the schema or was written by an unsupported format version.
    """
    handle = Store.of(path, storage_options)
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
                raise
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
    ds = eager_coords(ds, handle)
    ds.attrs = decode_attrs(ds.attrs)
    if validate:
        try:
            ds = V.validate(ds)
        except V.SchemaError as e:
            raise V.SchemaError(f"{handle}: {e}") from None
    # reads of a chunk that fails its checksum raise ChunkError naming the chunk
    ds = integrity.checked_variables(ds, arrays, handle.url, CELL_VARS)
    ds.encoding[STORE_ENCODING] = handle  # where provenance() finds the records
    return ds


def _cell_arrays(ds: xr.Dataset, handle: Store) -> dict[str, zarr.Array]:
    """The Zarr arrays of ``CELL_VARS`` in ``ds``, opened now, of the shapes ``ds`` has.

    Raises ``ValueError("conflicting sizes ...")`` where a writer appended cells between
    the opening of ``ds`` and of the arrays (:func:`open_store` then opens again).
    """
    group = handle.group("r")
    arrays = {name: group[name] for name in CELL_VARS if name in ds.data_vars}
    for name, array in arrays.items():
        if tuple(array.shape) != tuple(ds[name].shape):
            raise ValueError(
                f"conflicting sizes for {name}: {tuple(array.shape)} on disk, "
                f"{tuple(ds[name].shape)} opened (cells being appended)"
            )
    return arrays


def eager_coords(ds: xr.Dataset, store: StoreLike) -> xr.Dataset:
    """``ds`` with every coordinate in memory, read straight from ``store`` (no Dask task).

    ``groupby("gene_chrom")`` and ``where(ds.gene_name == ..., drop=True)`` need numpy,
    not Dask, coordinates; plain ``xr.open_zarr`` chunks every non-index coordinate.
    """
    lazy = [name for name, coord in ds.coords.items() if coord.chunks is not None]
    if not lazy:
        return ds
    group = Store.of(store).group("r")
    return ds.assign_coords(
        {
            name: xr.Variable(ds[name].dims, group[name][...], ds[name].attrs, ds[name].encoding)
            for name in lazy
        }
    )


def repair_cells(path: StoreLike, storage_options: dict | None = None) -> bool:
    """Undo a cell append that a killed writer left half done (arrays along ``cell`` of
    different lengths, which no reader can open): every array along ``cell`` is cut back to
    the shortest. Nothing of the cells cut was written or recorded (their data is written
    only after the append, under the lock). Writers call it under the store's write lock
    before they open the store; returns whether anything was repaired."""
    handle = Store.of(path, storage_options)
    arrays = {}
    for name in (V.CELL, *CELL_VARS, *V.RECORDS_OF.values()):
        try:
            arrays[name] = zarr.open_array(
                handle.child(name).url,
                mode="r+",
                zarr_format=3,
                storage_options=handle.storage_options,
            )
        except FileNotFoundError:  # a format-2 store has no completion arrays yet
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


def write_region(
    path: StoreLike,
    part: xr.Dataset,
    region: Mapping[str, slice],
    storage_options: dict | None = None,
) -> None:
    """Write ``part`` (variables with a ``cell`` dim) into ``region`` of an existing store.

    Regions should be chunk-aligned along ``cell`` and ``gene`` so concurrent writers
    never share a chunk.
    """
    drop = [v for v in part.variables if V.CELL not in part[v].dims]
    part = part.drop_vars(drop)
    part.attrs = {}
    handle = Store.of(path, storage_options)
    part.to_zarr(
        handle.url,
        region=dict(region),
        mode="r+",
        consolidated=False,
        zarr_format=3,
        storage_options=handle.storage_options,
    )


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
