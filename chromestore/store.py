"""The versioned Zarr store: create, open, grow along ``cell``, write regions.

Layout (Zarr v3, written through xarray): ``signal`` (cell, gene, mark, bin),
``expression`` (cell, gene) and ``peak_max`` (cell, gene, mark), chunked one cell
at a time (default 1 × 2048 genes × all marks × all bins, zstd), coordinates in one
chunk. Group attributes hold the format name and version, the bin orientation (``5to3``:
bin 0 is 5 kb upstream of the TSS on the gene's strand), the genome build, the
window and bin size. Per (cell, mark) completion is a variable (``signal_completed``,
``peak_max_completed``; bool, one chunk per (cell, mark)), and each (cell, mark)'s
provenance the attrs of the group ``records/CELL/MARK`` (``{"signal": {...}, "peak_max":
{...}}``): the provenance first, then the flag, only after that region was written
(:mod:`chromestore.records` writes and reads them).

Writers serialise through :meth:`Store.lock` (one store-wide lock, :data:`WRITE_LOCK`):
adding cells and each cell's read-modify-write with its records happen under it, so
concurrent ingests of one store (processes, Dask tasks, S3) neither lose nor mix data.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from chromestore import integrity, names
from chromestore import variables as V
from chromestore.attr_codec import decode_attrs, encode_attrs

STR = np.dtypes.StringDType()
DEFAULT_GENE_CHUNK = 2048
#: Variables that have a ``cell`` dimension (the ones appended and region-written).
CELL_VARS = ("signal", "expression", "peak_max")
#: The lock every writer of a store holds while adding cells or writing a cell (+ records).
WRITE_LOCK = "write"
#: key of ``ds.encoding`` under which :func:`open_store` keeps the :class:`Store` it opened
STORE_ENCODING = "chromestore_store"


from chromestore.errors import StoreError  # noqa: E402  (defined with the other errors)


@dataclass(frozen=True)
class Store:
    """Where a store lives: a local path or fsspec URL and the storage options to reach it.

    The one handle passed between functions instead of ``(path, storage_options)``
    pairs; it pickles, so Dask tasks take it as it is. Every function of this module
    (and the run, ingest and training functions) accepts a ``Store`` or a plain path.

    Examples
    --------
    >>> s = Store.of("memory://doc.zarr")
    >>> s.child("runs", "dc").url
    'memory://doc.zarr/runs/dc'
    """

    url: str
    storage_options: Mapping[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, store: StoreLike, storage_options: Mapping[str, Any] | None = None) -> Store:
        """``store`` as a handle (a ``Store`` keeps its own options unless others are given)."""
        if isinstance(store, Store):
            return store if storage_options is None else cls(store.url, dict(storage_options))
        return cls(os.fspath(store).rstrip("/") or "/", dict(storage_options) if storage_options
                   else None)

    def __str__(self) -> str:
        return self.url

    @property
    def options(self) -> dict:
        """The storage options as keyword arguments for fsspec (never None)."""
        return dict(self.storage_options or {})

    def fs(self) -> tuple[Any, str]:
        """``(filesystem, root path in it)``."""
        return fsspec.core.url_to_fs(self.url, **self.options)

    def child(self, *parts: str) -> Store:
        """The handle of a path inside this one (same storage options)."""
        return Store("/".join([self.url, *parts]), self.storage_options)

    def exists(self) -> bool:
        """Whether a Zarr group (``zarr.json``) is here."""
        fs, root = self.fs()
        return fs.exists(f"{root.rstrip('/')}/zarr.json")

    def open(self, validate: bool = True) -> xr.Dataset:
        """The store as a lazy ``xr.Dataset`` (see :func:`open_store`)."""
        return open_store(self, validate=validate)

    def group(self, mode: str = "r") -> zarr.Group:
        return zarr.open_group(self.url, mode=mode, zarr_format=3,
                               storage_options=self.storage_options)

    def attrs(self) -> dict:
        """The group attrs as Python values (JSON-string attrs decoded)."""
        return decode_attrs(self.group("r").attrs)

    def lock(self, name: str = WRITE_LOCK, timeout: float = 600.0):
        """A context manager holding the store's lock ``name`` (see :mod:`chromestore.store_locks`).

        A file lock beside a local store, a leased lock object on an object store, and a
        ``distributed.Lock`` as well while a Dask client is active. Re-entrant per thread.
        It gives a :class:`chromestore.store_locks.Held`: call its ``verify()`` before
        recording anything, so a holder whose lease lapsed stops instead.
        """
        from chromestore.store_locks import store_lock

        return store_lock(self, name, timeout)


#: what the functions of this package accept where they need a store
StoreLike = Store | str | os.PathLike


def _strs(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=STR)


def bin_offsets(window: int, bin_size: int) -> np.ndarray:
    """Start of each bin relative to the TSS, 5'→3'."""
    if window <= 0 or bin_size <= 0 or (2 * window) % bin_size:
        raise ValueError(f"window 2×{window} bp must be a positive multiple of bin size {bin_size}")
    return np.arange(-window, window, bin_size, dtype=np.int64)


def _cell_vars(n_cells: int, n_genes: int, n_marks: int, n_bins: int, gene_chunk: int) -> dict:
    import dask.array as da  # here: planning an ingest of a new store need not load it

    def nan(shape, chunks):
        return da.full(shape, np.nan, dtype=np.float32, chunks=chunks)

    c = (1, gene_chunk)
    out = {
        "signal": (V.signal.dims, nan((n_cells, n_genes, n_marks, n_bins), c + (n_marks, n_bins))),
        "expression": (V.expression.dims, nan((n_cells, n_genes), c)),
        "peak_max": (V.peak_max.dims, nan((n_cells, n_genes, n_marks), c + (n_marks,))),
    }
    return out | _record_vars(n_cells, n_marks)


def _record_vars(n_cells: int, n_marks: int) -> dict:
    import dask.array as da

    shape = (n_cells, n_marks)
    return {done: ((V.CELL, V.MARK), da.zeros(shape, dtype=bool, chunks=(1, 1)))
            for done in V.RECORDS_OF.values()}


def template(
    genes: pd.DataFrame,
    cells: Sequence[str] = (),
    marks: Sequence[str] = V.DEFAULT_MARKS,
    window: int = 5000,
    bin_size: int = 100,
    gene_chunk: int = DEFAULT_GENE_CHUNK,
    genome: str = "hg19",
) -> xr.Dataset:
    """A lazy, NaN-filled Dataset with the store's layout (nothing is allocated)."""
    offsets = bin_offsets(window, bin_size)
    n_genes = len(genes)
    gene_chunk = max(1, min(gene_chunk, n_genes))
    names.check_all(cells, "cell")
    if len(set(cells)) != len(cells):
        raise ValueError(f"duplicate cells in {list(cells)}")
    if len(set(marks)) != len(marks):
        raise ValueError(f"duplicate marks in {list(marks)}")
    coords = {
        "cell": _strs(cells),
        "gene": _strs(genes["gene"]),
        "gene_id": ("gene", _strs(genes["gene_id"])),
        "gene_name": ("gene", _strs(genes["gene_name"])),
        "gene_chrom": ("gene", _strs(genes["chrom"])),
        "gene_tss": ("gene", genes["tss"].to_numpy(np.int64)),
        "gene_strand": ("gene", _strs(genes["strand"])),
        "mark": _strs(marks),
        "bin": np.arange(len(offsets), dtype=np.int64),
        "bin_offset": ("bin", offsets),
    }
    ds = xr.Dataset(
        _cell_vars(len(cells), n_genes, len(marks), len(offsets), gene_chunk), coords=coords
    )
    for name, var in ds.variables.items():
        if name in V.ALL:
            var.attrs["description"] = V.ALL[name].doc
            if V.ALL[name].units:
                var.attrs["units"] = V.ALL[name].units
    ds.attrs.update(
        format=V.FORMAT_NAME,
        format_version=V.FORMAT_VERSION,
        orientation=V.ORIENTATION,
        genome=genome,
        window=int(window),
        bin_size=int(bin_size),
        gene_chunk=int(gene_chunk),
        created=_now(),
    )
    return ds


def _encoding(ds: xr.Dataset, gene_chunk: int, level: int = 3) -> dict:
    zstd = integrity.compressors(level)  # zstd, then a CRC-32C checksum on every chunk
    n_marks, n_bins = ds.sizes[V.MARK], ds.sizes[V.BIN]
    enc: dict[str, dict[str, Any]] = {
        "signal": {"chunks": (1, gene_chunk, n_marks, n_bins), "compressors": zstd},
        "expression": {"chunks": (1, gene_chunk), "compressors": zstd},
        "peak_max": {"chunks": (1, gene_chunk, n_marks), "compressors": zstd},
    }
    for spec in V.RECORDS:
        enc[spec.name] = {"chunks": (1, 1), "compressors": zstd}  # one (cell, mark) a chunk
    for name, var in ds.coords.items():
        enc[name] = {"compressors": zstd}
        if name != V.CELL:
            enc[name]["chunks"] = tuple(max(1, s) for s in var.shape)
    return enc


def create_store(
    path: StoreLike,
    genes: pd.DataFrame,
    cells: Sequence[str] = (),
    marks: Sequence[str] = V.DEFAULT_MARKS,
    window: int = 5000,
    bin_size: int = 100,
    chunks: Mapping[str, int] | None = None,
    genome: str = "hg19",
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
    from chromestore.replace import refuse_occupied

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
        encoding=_encoding(ds, gene_chunk),
        zarr_format=3,
        consolidated=False,
        storage_options=handle.storage_options,
    )
    _ensure_group(handle.child(V.RECORDS_GROUP))
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
        zarr.consolidate_metadata(zarr.storage.FsspecStore.from_url(
            handle.url, storage_options=handle.options, read_only=False)
            if "://" in handle.url else handle.url, zarr_format=3)


#: suffix of the folder beside a store that holds its runs' weights and checkpoints
RUN_FILES_SUFFIX = ".weights"


def run_files_root(path: StoreLike, storage_options: dict | None = None) -> Store:
    """``STORE.weights``: the plain files of the store's runs, beside it (outside the Zarr
    hierarchy, where zarr warns "Object at weights is not recognized")."""
    handle = Store.of(path, storage_options)
    return Store(handle.url + RUN_FILES_SUFFIX, handle.storage_options)


def drop_run_files(path: StoreLike, storage_options: dict | None = None) -> None:
    """Remove ``STORE.weights`` (when the store it belonged to is gone or replaced)."""
    fs, root = run_files_root(path, storage_options).fs()
    if fs.exists(root):
        fs.rm(root, recursive=True)


def exists(path: StoreLike, storage_options: dict | None = None) -> bool:
    return Store.of(path, storage_options).exists()


def open_store(
    path: StoreLike, storage_options: dict | None = None, validate: bool = True
) -> xr.Dataset:
    """Open a store as a lazy ``xr.Dataset`` (dask-backed, one chunk per store chunk).

    Raises :class:`chromestore.variables.SchemaError` when the store does not follow
    the schema or was written by an unsupported format version.
    """
    handle = Store.of(path, storage_options)
    if not handle.exists():
        from chromestore.replace import missing_bucket

        bucket = missing_bucket(handle)
        raise StoreError(f"{handle}: " + (f"the bucket {bucket!r} does not exist" if bucket
                                          else "no chromestore store here (no zarr.json)"))
    for attempt in range(20):
        try:
            ds = xr.open_zarr(handle.url, consolidated=False,
                              storage_options=handle.storage_options, zarr_format=3)
            arrays = _cell_arrays(ds, handle)
            break
        except ValueError as err:  # a writer is appending cells: variables differ by a moment
            if "conflicting sizes" not in str(err):
                raise
            if attempt == 19:
                raise StoreError(f"{handle}: its arrays differ in their number of cells ({err})"
                                 "; a writer was killed while adding cells, and the store "
                                 "could not be repaired here (read-only?)") from None
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
            raise ValueError(f"conflicting sizes for {name}: {tuple(array.shape)} on disk, "
                             f"{tuple(ds[name].shape)} opened (cells being appended)")
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
    return ds.assign_coords({
        name: xr.Variable(ds[name].dims, group[name][...], ds[name].attrs, ds[name].encoding)
        for name in lazy})


def _group(path: StoreLike, storage_options: dict | None, mode: str = "r+") -> zarr.Group:
    return Store.of(path, storage_options).group(mode)


def read_attrs(path: StoreLike, storage_options: dict | None = None) -> dict:
    return Store.of(path, storage_options).attrs()


def add_cells(
    path: StoreLike, cells: Sequence[str], storage_options: dict | None = None
) -> list[str]:
    """Append new epigenomes along ``cell`` (NaN-filled); existing cells are not rewritten.

    Cells already in the store are ignored. Returns the cells actually added (by this
    call: of two writers adding one cell, one gets it). Holds the store's write lock, and
    converts a format-2 store's records first (:func:`chromestore.records.upgrade_records`).
    """
    handle = Store.of(path, storage_options)
    with handle.lock():
        repair_cells(handle)
        from chromestore.records import upgrade_records

        upgrade_records(handle)
        return _add_cells(handle, cells)


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
            arrays[name] = zarr.open_array(handle.child(name).url, mode="r+", zarr_format=3,
                                           storage_options=handle.storage_options)
        except FileNotFoundError:  # a format-2 store has no completion arrays yet
            continue
    shortest = min((a.shape[0] for a in arrays.values()), default=0)
    cut = [a for a in arrays.values() if a.shape[0] != shortest]
    for array in cut:
        array.resize((shortest, *array.shape[1:]))
    if cut:
        consolidate(handle)
    return bool(cut)


def _add_cells(handle: Store, cells: Sequence[str]) -> list[str]:
    ds = open_store(handle)
    have = set(ds[V.CELL].values.tolist())
    new = names.check_all([c for c in dict.fromkeys(cells) if c not in have], "cell")
    if not new:
        return []
    attrs = dict(handle.group("r").attrs)  # as stored (JSON strings stay strings)
    part = xr.Dataset(
        _cell_vars(
            len(new), ds.sizes[V.GENE], ds.sizes[V.MARK], ds.sizes[V.BIN], attrs["gene_chunk"]
        ),
        coords={V.CELL: _strs(new)},
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


def update_attrs(
    path: StoreLike, storage_options: dict | None = None, **items: Any
) -> None:
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


def _ensure_group(handle: Store) -> zarr.Group:
    """The group at ``handle``, created when missing (a writer that loses a race to create it
    finds it there)."""
    from zarr.errors import ContainsGroupError

    try:
        return handle.group("a")
    except ContainsGroupError:
        return handle.group("r+")


def size_on_disk(path: StoreLike, storage_options: dict | None = None) -> int:
    fs, root = Store.of(path, storage_options).fs()
    try:
        return int(fs.du(root))
    except Exception:  # some filesystems cannot sum sizes
        return -1


def now_utc() -> str:
    """The current UTC time as ISO 8601 to the second (the timestamps of attrs)."""
    return _now()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")



from chromestore import accessor as _accessor  # noqa: E402, F401  (registers ds.chromestore)
