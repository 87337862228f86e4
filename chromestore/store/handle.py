"""Where a store lives: the :class:`Store` handle, and the plain files kept beside it.

A ``Store`` is a local path or fsspec URL with the storage options to reach it; every
function of :mod:`chromestore.store` (and the run, ingest and training functions) takes
one or a plain path. The weights and checkpoints of a store's runs are plain files in
``STORE.weights`` beside it (:func:`run_files_root`).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import zarr

from chromestore.errors import StoreError
from chromestore.store.attrs import decode_attrs

#: The store's string dtype (variable-width numpy strings).
STR = np.dtypes.StringDType()
#: The lock every writer of a store holds while adding cells or writing a cell (+ records).
WRITE_LOCK = "write"
#: The object a creation on an object store writes first and removes last (inside the store):
#: where it is, the creation was interrupted (see :mod:`chromestore.store.creation`).
CREATING = "creating"


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
        return cls(
            os.fspath(store).rstrip("/") or "/", dict(storage_options) if storage_options else None
        )

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

    def creating(self) -> bool:
        """Whether a creation's ``creating`` marker is here: on an object store, a creation
        that was interrupted (or is still running: its creator holds the write lock)."""
        fs, root = self.fs()
        return fs.exists(f"{root.rstrip('/')}/{CREATING}")

    def interrupted(self) -> StoreError:
        """The error a reader raises where :meth:`creating` is true."""
        return StoreError(
            f"{self}: an interrupted creation (its '{CREATING}' marker is there): delete "
            f"{self} or re-run the command that created it (ingest/simulate resume it; "
            "run needs --overwrite)"
        )

    def group(self, mode: str = "r", live: bool = False) -> zarr.Group:
        """The store's root group; ``live``: its members read from their own metadata, not
        from the consolidated copy (which a killed writer may have left behind them)."""
        return zarr.open_group(
            self.url,
            mode=mode,
            zarr_format=3,
            storage_options=self.storage_options,
            use_consolidated=False if live else None,
        )

    def attrs(self) -> dict:
        """The group attrs as Python values (JSON-string attrs decoded)."""
        return decode_attrs(self.group("r").attrs)

    def lock(self, name: str = WRITE_LOCK, timeout: float = 600.0):
        """A context manager holding the store's lock ``name`` (see :mod:`chromestore.store.locks`).

        A file lock beside a local store, a leased lock object on an object store, and a
        ``distributed.Lock`` as well while a Dask client is active. Re-entrant per thread.
        It gives a :class:`chromestore.store.locks.Held`: call its ``verify()`` before
        recording anything, so a holder whose lease lapsed stops instead.
        """
        from chromestore.store.locks import store_lock

        return store_lock(self, name, timeout)


#: what the functions of this package accept where they need a store
StoreLike = Store | str | os.PathLike


def strs(values: Sequence[str]) -> np.ndarray:
    """``values`` as an array of the store's string dtype."""
    return np.array(list(values), dtype=STR)


def exists(path: StoreLike, storage_options: dict | None = None) -> bool:
    return Store.of(path, storage_options).exists()


def read_attrs(path: StoreLike, storage_options: dict | None = None) -> dict:
    return Store.of(path, storage_options).attrs()


def ensure_group(handle: Store) -> zarr.Group:
    """The group at ``handle``, created when missing (a writer that loses a race to create it
    finds it there)."""
    from zarr.errors import ContainsGroupError

    try:
        return handle.group("a")
    except ContainsGroupError:
        return handle.group("r+")


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


def size_on_disk(path: StoreLike, storage_options: dict | None = None) -> int:
    fs, root = Store.of(path, storage_options).fs()
    try:
        return int(fs.du(root))
    except Exception:  # some filesystems cannot sum sizes
        return -1


def names_store(fn):
    """Decorate a function whose first argument is a store: an OS error it raises without a
    file name (a full disk: ``[Errno 28] No space left on device``, raised by a write) gets
    the store's path as its file name, so the one-line message says where."""

    @functools.wraps(fn)
    def wrapper(store, *args, **kwargs):
        try:
            return fn(store, *args, **kwargs)
        except OSError as e:
            if e.filename is not None or e.errno is None:
                raise
            raise OSError(e.errno, e.strerror or str(e), str(Store.of(store))) from e

    return wrapper


def now_utc() -> str:
    """The current UTC time as ISO 8601 to the second (the timestamps of attrs)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
