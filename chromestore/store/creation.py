"""Creating a store so that no reader ever sees half of one.

On a local disk the new store is built under a temporary name beside its path
(``.NAME.creating-<random>``) and renamed into place when whole: a rename is atomic, so the
path holds nothing or a complete store (its layout, coordinates, completion flags, attrs).
Object stores have no rename: there a ``creating`` object inside the store is written first
and removed last, and every reader that finds it stops with one line ("an interrupted
creation": :meth:`chromestore.store.Store.interrupted`).

Creation holds the store's write lock, so a creator that finds the leftovers of a killed
creation under that lock (a temporary folder, a ``creating`` marker) knows their creator is
gone, removes them and starts again: re-running the command that was killed completes the
store. With ``resume``, a store already there with exactly the layout asked for is opened
instead (``simulate`` re-run after a kill fills what is not complete).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import variables as V
from chromestore.errors import StoreError
from chromestore.store import pair_chunks
from chromestore.store.attrs import decode_attrs, encode_attrs
from chromestore.store.dataset import consolidate_unlocked, open_store
from chromestore.store.handle import (
    CREATING,
    Store,
    StoreLike,
    drop_run_files,
    ensure_group,
    names_store,
    now_utc,
)
from chromestore.store.layout import (
    DEFAULT_BIN_SIZE,
    DEFAULT_GENE_CHUNK,
    DEFAULT_GENOME,
    DEFAULT_WINDOW,
    encoding,
    template,
)
from chromestore.store.presence import EMPTY_CHUNKS, WRITTEN
from chromestore.store.safety import refuse_missing_bucket, refuse_occupied

#: the attrs and coordinates that make two stores' layouts the same (see ``resume``)
LAYOUT_ATTRS = ("format_version", "orientation", "genome", "window", "bin_size", "gene_chunk")
LAYOUT_COORDS = (
    V.CELL,
    V.GENE,
    V.gene_id.name,
    V.gene_name.name,
    V.gene_chrom.name,
    V.gene_tss.name,
    V.gene_strand.name,
    V.MARK,
    V.bin_offset.name,
)


class StoreExists(StoreError):
    """A store is already at the path where a new one was to be created."""


@names_store
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
    attrs: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> xr.Dataset:
    """Create an empty store (all signal NaN) and return it opened.

    The store appears whole or not at all (see the module docstring). A store already at
    ``path`` raises :class:`StoreExists`, unless ``resume`` and its layout (genes, cells,
    marks, window, bin size, gene chunk, genome and ``attrs``) is the one asked for: it is
    then opened and returned as it is.

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
    attrs
        More group attrs, written with the store (e.g. ``simulated``, ``genes_source``).
    resume
        Open a store already there when its layout is the one asked for.

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
    ds = template(
        genes, cells, marks, window, bin_size, chunks.get(V.GENE, DEFAULT_GENE_CHUNK), genome
    )
    ds.attrs.update(encode_attrs({**dict(attrs or {}), EMPTY_CHUNKS: WRITTEN}))
    refuse_missing_bucket(handle)  # before the lock, whose object would go there
    with handle.lock():  # a leftover found under the lock was left by a creator now gone
        if handle.creating():
            _remove_interrupted(handle)
        if handle.exists():
            if not resume:
                raise StoreExists(f"{handle}: a store already exists here")
            existing = open_store(handle)
            different = layout_difference(existing, ds, attrs or {})
            if different:
                raise StoreExists(
                    f"{handle}: a store already exists here, made with other settings "
                    f"({different}); choose another path, or delete it first"
                )
            return existing
        refuse_occupied(handle)  # a new store goes only where nothing is
        drop_run_files(handle)  # weights of a store once here would be resumed as this one's
        if _is_local(handle):
            _build_beside(handle, ds)
        else:
            _build_in_place(handle, ds)
    return open_store(handle)


def layout_difference(existing: xr.Dataset, new: xr.Dataset, attrs: Mapping[str, Any]) -> str:
    """What differs between the layout of ``existing`` (an opened store) and ``new`` (the
    template of a store, ``attrs`` its extra attrs), in a few words; "" when nothing."""
    have, want = decode_attrs(existing.attrs), decode_attrs(new.attrs)
    for key in (*LAYOUT_ATTRS, *attrs):
        if have.get(key) != want.get(key):
            return f"{key} {have.get(key)!r} there, {want.get(key)!r} asked"
    for name in LAYOUT_COORDS:
        a, b = existing[name].values, new[name].values
        if a.shape != b.shape or not np.array_equal(a.astype(object), b.astype(object)):
            return f"other {name} values ({a.size} there, {b.size} asked)"
    return ""


def _is_local(handle: Store) -> bool:
    fs, _ = handle.fs()
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _write(target: Store, ds: xr.Dataset, mode: str = "w-") -> None:
    """Write the template ``ds`` as a store at ``target``: its arrays, coordinates and
    attrs, every completion flag (false) and the ``records`` group (``mode`` ``"a"``: where
    the ``creating`` marker already is)."""
    import dask
    import dask.local

    # every completion flag (false) and unit (''), one chunk per (cell, mark), put below;
    # their small graph runs here (a scheduler named by a string would import distributed)
    names = (*V.RECORDS_OF.values(), V.signal_units.name)
    values = dask.compute(
        *(ds[n].data for n in names), scheduler=dask.local.get_sync, optimize_graph=False
    )
    pairs = {n: np.asarray(v) for n, v in zip(names, values, strict=True)}
    ds = ds.assign({n: ds[n].chunk(1) for n in V.RECORDS_OF.values()})
    ds = ds.assign_coords({V.signal_units.name: ds[V.signal_units.name].chunk(1)})
    ds.to_zarr(
        target.url,
        mode=mode,
        compute=False,  # the data stay unwritten (NaN) until a cell is written
        encoding=encoding(ds, ds.attrs["gene_chunk"]),
        zarr_format=3,
        consolidated=False,
        storage_options=target.storage_options,
        write_empty_chunks=True,
    )
    group = target.group("r+")
    for name, values in pairs.items():
        array = group[name].with_config({"write_empty_chunks": True})
        chunks = {index: values[index] for index in np.ndindex(*values.shape)}
        if not pair_chunks.write_pairs(array, chunks):  # all at once, else through Zarr
            array[...] = values
    ensure_group(target.child(V.RECORDS_GROUP))
    consolidate_unlocked(target)


def _build_beside(handle: Store, ds: xr.Dataset) -> None:
    """Build the store under a temporary name beside its path, then rename it into place."""
    _, root = handle.fs()
    root = root.rstrip("/")
    parent, name = os.path.split(root)
    for stale in glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.creating-*")):
        shutil.rmtree(stale, ignore_errors=True)  # a killed creation's (we hold the lock)
    tmp = os.path.join(parent, f".{name}.creating-{uuid.uuid4().hex[:12]}")
    try:
        _write(Store(tmp, handle.storage_options), ds)
        os.rename(tmp, root)  # atomic; replaces an empty folder, never a full one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build_in_place(handle: Store, ds: xr.Dataset) -> None:
    """Build the store at its path, between a ``creating`` marker written first and
    removed last (object stores: no rename)."""
    fs, root = handle.fs()
    root = root.rstrip("/")
    marker = {"started": now_utc(), "by": f"{socket.gethostname()}:{os.getpid()}"}
    fs.pipe_file(f"{root}/{CREATING}", json.dumps(marker).encode())
    try:
        with warnings.catch_warnings():  # zarr: "Object at creating is not recognized"
            warnings.filterwarnings("ignore", message=f".*Object at {CREATING} ")
            _write(handle, ds, mode="a")  # the path held nothing but the marker (checked)
    except BaseException:
        with contextlib.suppress(Exception):  # nothing was there before (refuse_occupied)
            fs.rm(root, recursive=True)
        raise
    fs.rm_file(f"{root}/{CREATING}")


def _remove_interrupted(handle: Store) -> None:
    """Remove what a killed creation left at ``handle`` (its marker says nothing of it is
    complete); the caller holds the write lock, so its creator is gone."""
    fs, root = handle.fs()
    fs.rm(root.rstrip("/"), recursive=True)
