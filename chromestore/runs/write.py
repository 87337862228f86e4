"""Writing a run: one atomic, immutable unit of arrays, records and weights.

A run is written once. :class:`RunWriter` is the one writer of a run name: it holds the
run's lock from before training starts until the run is in place, so a second writer of
the same name is refused at once (neither mixes with the other), and it refuses a name
that is taken unless asked to replace the run (``existing="overwrite"``) or to add models
to it (``existing="add"``, only with every split-defining setting identical:
:func:`chromestore.runs.dataset.check_addable`). Training writes its weights into the
writer's private folder (:meth:`RunWriter.weights_target`); :meth:`RunWriter.commit` then

1. records every weights file with its SHA-256 in the run's attrs, and renames the private
   folder to the committed one those records name (:mod:`chromestore.runs.files`);
2. writes the new run beside the old one (``runs/.NAME.tmp-X``), with the child groups
   it keeps (an added model keeps the run's ``predictions``; its ``metrics``, computed
   without the new model, are dropped; a replaced run keeps neither);
3. swaps it in: one atomic exchange of the two folders where the OS offers it
   (``renameat2(RENAME_EXCHANGE)`` on Linux), else two renames, which
   :func:`_recover` rolls forward if a crash falls between them;
4. deletes the old run and the weights folders no run names any more.

So at any instant a reader finds the old run with its weights or the new run with its own,
never a mix; a crash leaves the old run as it was. Object stores have no rename: the swap
there deletes and copies, which a crash can interrupt (train again). Derived outputs of a
run, its ``metrics`` and ``predictions``, are replaced whole the same way
(:func:`replace_child`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.runs import files as run_files
from chromestore.runs.dataset import (
    check_add_settings,
    check_addable,
    derive_model_split,
    open_run,
    run_kind,
    validate_run,
)
from chromestore.runs.inputs import NORMALISE, store_quantiles, store_units
from chromestore.runs.merge import merge_runs
from chromestore.runs.paths import RUNS, RunError, ensure_runs_group, run_store
from chromestore.store.attrs import encode_attrs, jsonable
from chromestore.store.dataset import consolidate
from chromestore.store.handle import Store, StoreLike, now_utc
from chromestore.store.integrity import write_checksummed

#: What a writer does with a run name that is taken: refuse, replace the whole run, or add
#: its models to the run (``--overwrite``, ``--add``).
EXISTING = ("refuse", "overwrite", "add")
#: Seconds a writer waits for the run's lock before refusing (another writer holds it).
LOCK_WAIT = 2.0
#: The child groups of a run, derived from it: kept when models are added (predictions)
#: or dropped (metrics, which no longer cover every model).
KEPT_ON_ADD = ("predictions",)


class RunExists(RunError):
    """The run name is taken (or being written by another command)."""


def lock_name(name: str) -> str:
    return f"run-{name}"


def free_name(store: StoreLike, name: str, storage_options: Mapping | None = None) -> str:
    """A run name not taken in ``store``: ``NAME-2``, ``NAME-3``, …"""
    from chromestore.runs.dataset import list_runs

    taken = set(list_runs(store, storage_options))
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def taken_message(store: StoreLike, name: str, storage_options: Mapping | None = None) -> str:
    """The one line refusing a taken run name: it names ``--overwrite`` and a free name."""
    handle = Store.of(store, storage_options)
    return (
        f"run {name!r} already exists in {handle.url}; a run is never changed: pass "
        f"--overwrite to replace it whole, or choose a free name such as "
        f"{free_name(handle, name)!r}"
    )


class RunWriter:
    """The one writer of run ``name`` (see the module docstring).

    ``with RunWriter(store, name, existing=...) as writer:`` takes the run's lock (refusing
    at once, :class:`RunExists`, when another writer holds it or the name is taken and
    ``existing="refuse"``), gives a private folder for weights
    (:meth:`weights_target`, :attr:`staging`) and, on :meth:`commit`, puts the run in place
    with them. Leaving the block without a commit (an error, Ctrl-C) deletes the private
    folder; a process killed outright leaves it for the next writer to delete.

    Examples
    --------
    >>> with RunWriter("s.zarr", "dc", existing="overwrite") as w:  # doctest: +SKIP
    ...     save(w.weights_target("deepchrome", "E003", 0), weights)
    ...     run = w.commit(ds)
    """

    def __init__(
        self,
        store: StoreLike,
        name: str,
        *,
        existing: str = "refuse",
        storage_options: Mapping | None = None,
        wait: float = LOCK_WAIT,
        normalise: str = "none",
    ) -> None:
        if existing not in EXISTING:
            raise ValueError(f"existing must be one of {EXISTING}, not {existing!r}")
        if normalise not in NORMALISE:
            raise ValueError(f"normalise must be one of {NORMALISE}, not {normalise!r}")
        #: the per-epigenome normalisation of the models committed (``train --normalise``)
        self.normalise = normalise
        self.store = Store.of(store, storage_options)
        self.name, self.existing, self.wait = name, existing, wait
        self.run = run_store(self.store, name)
        self.staging = run_files.new_staging(self.store, name)
        self.committed: xr.Dataset | None = None
        self._stack: contextlib.ExitStack | None = None
        #: the weights folder a commit promoted, and whether the swap of its run began
        self._promoted: str | None = None
        self._swapping = False

    # --- the lock and the name ----------------------------------------------------------
    def __enter__(self) -> RunWriter:
        from chromestore.store.locks import LockTimeout

        stack = contextlib.ExitStack()
        try:
            stack.enter_context(self.store.lock(lock_name(self.name), timeout=self.wait))
        except LockTimeout:
            stack.close()
            raise RunExists(
                f"run {self.name!r} of {self.store.url} is being written by another "
                "chromestore command; wait for it to finish, or choose another run name"
            ) from None
        self._stack = stack
        try:
            self._tidy()
            self.check_name()
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.committed is None and not self._swapping:
                # no run names this writer's weights: its private or promoted folder goes
                # (once the swap began, the next writer's clean-up decides, after recovery)
                fs, root = self.staging.fs()
                if fs.exists(root):
                    fs.rm(root, recursive=True)
                if self._promoted is not None:
                    promoted = f"{root.rstrip('/').rsplit('/', 1)[0]}/{self._promoted}"
                    if fs.exists(promoted):
                        fs.rm(promoted, recursive=True)
        finally:
            if self._stack is not None:
                self._stack.close()

    def _tidy(self) -> None:
        """Finish what a writer killed mid-commit left, delete dead writers' leftovers."""
        if _local(self.run):
            _recover(self.run)
        keep = self._stored_dirs()
        run_files.collect_garbage(self.store, self.name, keep)

    def _stored_dirs(self) -> set[str]:
        if not self.run.exists():
            return set()
        return {e["dir"] for e in run_files.record_of(self.run.attrs()).values()}

    def check_name(self) -> None:
        """Refuse a taken name unless the writer replaces or adds to the run."""
        kind = run_kind(self.store, self.name)
        if kind is None:
            return
        if self.existing == "refuse":
            raise RunExists(taken_message(self.store, self.name))
        if self.existing == "add" and kind != "run":
            raise RunExists(
                f"run {self.name!r} of {self.store.url} holds only predictions; models can "
                "be added only to a run of trained models: pass --overwrite to replace it"
            )

    def expect(self, models: Iterable[str], **settings: Any) -> None:
        """Before anything is trained: with ``existing="add"``, refuse at once (one line) what
        the commit would refuse from the run's records: a model the run holds already, or
        other split settings (``settings``: ``split_scheme``, ``seed``, ``label_rule``)."""
        if self.existing != "add" or run_kind(self.store, self.name) != "run":
            return
        old = open_run(self.store, self.name)
        check_add_settings(old, self.name, [str(m) for m in models], settings)

    # --- weights -----------------------------------------------------------------------
    def weights_target(self, model: str, cell: str, repeat: int) -> Store:
        """Where to write one weights file (inside the writer's private folder)."""
        return self.staging.child(run_files.weights_key(model, cell, repeat))

    # --- the commit ----------------------------------------------------------------------
    def commit(self, ds: xr.Dataset, *, children: Mapping[str, Callable] | None = None):
        """Put run ``ds`` (and every weights file written to :attr:`staging`) in place as
        one unit; returns the run as stored, reopened.

        ``children`` maps a child group's name to a function writing it at a given
        :class:`~chromestore.store.Store` (used for a run of predictions only)."""
        if self.committed is not None:
            raise RunError(f"run {self.name!r} was committed already")
        if V.MODEL not in ds.dims and not children:
            raise V.SchemaError("a run needs a 'model' dimension")
        self.check_name()
        old = None
        if self.existing == "add" and run_kind(self.store, self.name) == "run":
            old = open_run(self.store, self.name).load()
            check_addable(old, ds, self.name)  # before anything is moved
            if not np.array_equal(
                old[V.GENE].values.astype(object), ds[V.GENE].values.astype(object)
            ):
                raise RunError(f"run {self.name!r}: --add needs the same gene set")
        new_models = [str(m) for m in ds[V.MODEL].values] if V.MODEL in ds.dims else []
        record = run_files.staged_files(self.staging)
        directory = run_files.promote(self.staging)
        self._promoted = directory
        weights = {key: {"dir": directory, **entry} for key, entry in record.items()}
        kept: Iterable[str] = ()
        if old is not None:
            weights = {**run_files.record_of(old.attrs), **weights}
            versions = {**(old.attrs.get("versions") or {}), **(ds.attrs.get("versions") or {})}
            ds = merge_runs([old, ds], names=[f"{self.name} (stored)", "new"], attrs="first")
            ds.attrs["versions"] = versions
            kept = KEPT_ON_ADD
        ds = ds.copy()
        if V.MODEL in ds.dims:
            ds.attrs.update(self._input_attrs(ds, new_models))
        if V.MODEL in ds.dims and V.model_split.name not in ds:
            ms = derive_model_split(
                ds["split"].values, ds["excluded"].values, ds["target"].values, ds.sizes[V.MODEL]
            )
            ds[V.model_split.name] = (V.model_split.dims, ms, {"description": V.model_split.doc})
        if V.MODEL in ds.dims:
            validate_run(ds)
        ds.attrs = {**ds.attrs, run_files.RECORD: weights, "run_format": V.RUN_FORMAT}
        ds.attrs.pop("split_records", None)
        ensure_runs_group(self.store)
        tmp = self.store.child(RUNS, f".{self.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            _write_arrays(tmp, ds)
            for child in kept:
                _copy_child(self.run, tmp, child)
            for child, write in (children or {}).items():
                write(tmp.child(child))
            self._swapping = True  # from here the new run may be in place: keep its weights
            _swap_in(tmp, self.run)
        except BaseException:
            with contextlib.suppress(Exception):
                fs, root = tmp.fs()
                if fs.exists(root) and self.run.exists():
                    fs.rm(root, recursive=True)
            raise
        keep = {e["dir"] for e in weights.values()}
        run_files.collect_garbage(self.store, self.name, keep, staging=False)
        if V.MODEL in ds.dims:
            run_files.drop_checkpoints(self.store, self.name, [str(m) for m in ds[V.MODEL].values])
        consolidate(self.store)
        self.committed = ds
        if V.MODEL not in ds.dims:
            return None
        return open_run(self.store, self.name)

    def _input_attrs(self, ds: xr.Dataset, new_models: list[str]) -> dict[str, Any]:
        """What the models' input was: ``signal_units`` (cell → mark → units) of the run's
        epigenomes, ``input_normalisation`` (model → ``none``/``quantile``) and, for
        ``quantile``, each training epigenome's ``signal_quantiles`` (mark × level)."""
        from chromestore.errors import StoreError
        from chromestore.store.dataset import open_store

        try:
            store = open_store(self.store)
        except StoreError:  # a run kept without a store around it: no data to read
            if self.normalise != "none":
                raise
            store = None
        cells = [str(c) for c in ds[V.CELL].values]
        cells += [c for c in ds.attrs.get("train_cells") or () if c not in cells]
        units = dict(ds.attrs.get("signal_units") or {})
        if store is not None:
            units.update(store_units(store, [c for c in cells if c in store.indexes[V.CELL]]))
        norm = dict(ds.attrs.get("input_normalisation") or {})
        norm.update(dict.fromkeys(new_models, self.normalise))
        out: dict[str, Any] = {"signal_units": units, "input_normalisation": norm}
        quantiles = dict(ds.attrs.get("signal_quantiles") or {})
        if self.normalise == "quantile":
            quantiles.update(store_quantiles(store, [c for c in cells if c not in quantiles]))
        if quantiles:
            out["signal_quantiles"] = quantiles
        return out


def write_run(
    store: StoreLike,
    name: str,
    ds: xr.Dataset,
    storage_options: Mapping | None = None,
    *,
    existing: str = "refuse",
) -> xr.Dataset:
    """Write run ``name`` from ``ds`` (a run without weights files) and return it as stored.

    A taken name is refused unless ``existing`` is ``"overwrite"`` (the run is replaced
    whole) or ``"add"`` (``ds``'s models join the run's, all split settings identical);
    see :class:`RunWriter`.
    """
    with RunWriter(store, name, existing=existing, storage_options=storage_options) as writer:
        return writer.commit(ds)


def _write_arrays(run: Store, ds: xr.Dataset) -> None:
    ds = ds.copy()
    for coord in (V.CELL, V.GENE, V.MODEL):
        if coord not in ds.coords:
            continue
        values = np.array([str(v) for v in ds[coord].values], dtype=np.dtypes.StringDType())
        ds = ds.assign_coords({coord: values})
    attrs: dict[str, Any] = dict(ds.attrs)
    attrs.setdefault("created", now_utc())
    ds.attrs = {}
    for var in ds.variables.values():
        var.encoding = {}
    write_checksummed(ds, run)
    run.group(mode="r+").attrs.put(encode_attrs(jsonable(attrs), keep=frozenset()))


def _local(run: Store) -> bool:
    return "file" in run.fs()[0].protocol


def _copy_child(run: Store, new: Store, child: str) -> None:
    """Copy ``run``'s child group ``child`` (if any) into ``new`` (the live run unchanged)."""
    fs, root = run.fs()
    src = f"{root.rstrip('/')}/{child}"
    if fs.exists(f"{src}/zarr.json"):
        _, new_root = new.fs()
        fs.copy(src, f"{new_root.rstrip('/')}/{child}", recursive=True)


def _exchange(a: str, b: str) -> bool:
    """Swap two local paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    OS or filesystem offers no such call."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: no exchange here
        return False
    raise OSError(err, os.strerror(err), a)


def _swap_in(new: Store, run: Store) -> None:
    """Make ``new`` (a complete run beside ``run``) the run, then delete the old one.

    Local: one atomic exchange of the folders, else two renames (``run`` →
    ``.NAME.old-X``, ``new`` → ``run``) that :func:`_recover` rolls forward after a crash.
    Object stores have no rename: the old run is deleted and the new one copied in (not
    atomic; a crash in between leaves the run incomplete, the new one still at ``new``).
    """
    fs, new_root = new.fs()
    _, root = run.fs()
    if not fs.exists(f"{root}/zarr.json"):
        if fs.exists(root):
            fs.rm(root, recursive=True)
        fs.mv(new_root, root, recursive=True)
        return
    if _local(run):
        if _exchange(new_root, root):
            fs.rm(new_root, recursive=True)  # now the old run
            return
        old = f"{root.rsplit('/', 1)[0]}/.{root.rsplit('/', 1)[1]}.old-{uuid.uuid4().hex[:8]}"
        os.rename(root, old)
        os.rename(new_root, root)
        fs.rm(old, recursive=True)
        return
    for entry in fs.ls(root, detail=False):
        fs.rm(entry.rstrip("/"), recursive=True)
    for entry in fs.ls(new_root, detail=False):
        base = entry.rstrip("/").rsplit("/", 1)[-1]
        fs.copy(entry.rstrip("/"), f"{root}/{base}", recursive=True)
    fs.rm(new_root, recursive=True)


def _recover(run: Store) -> None:
    """Finish what a crashed writer left (called under the run's lock).

    The old run moved aside (``.NAME.old-X``) with no run in place: the new run
    (``.NAME.tmp-Y``, complete) is renamed in (rolled forward). Every other leftover of
    an interrupted write is deleted.
    """
    fs, root = run.fs()
    parent, name = root.rsplit("/", 1)
    if not fs.exists(parent):
        return
    entries = {e.rstrip("/").rsplit("/", 1)[-1]: e.rstrip("/") for e in fs.ls(parent, detail=False)}
    olds = [e for b, e in entries.items() if b.startswith(f".{name}.old-")]
    tmps = [
        e
        for b, e in entries.items()
        if b.startswith(f".{name}.tmp-") and fs.exists(f"{e}/zarr.json")
    ]
    if olds and not fs.exists(f"{root}/zarr.json"):
        if fs.exists(root):
            fs.rm(root, recursive=True)
        os.rename(tmps[0] if len(tmps) == 1 else olds[0], root)
    for leftover in fs.ls(parent, detail=False):
        base = leftover.rstrip("/").rsplit("/", 1)[-1]
        if base.startswith((f".{name}.tmp-", f".{name}.old-")):
            fs.rm(leftover.rstrip("/"), recursive=True)
    for child in fs.ls(root, detail=False) if fs.exists(root) else []:
        base = child.rstrip("/").rsplit("/", 1)[-1]
        if base.startswith(".") and ".tmp-" in base:  # a child being replaced
            fs.rm(child.rstrip("/"), recursive=True)


def replace_child(
    store: StoreLike,
    name: str,
    child: str,
    write: Callable[[Store], None],
    storage_options: Mapping | None = None,
) -> Store:
    """Replace run ``name``'s child group ``child`` (``metrics``, ``predictions``) whole:
    ``write(target)`` writes the new one beside it, which is then swapped in under the run's
    lock (an atomic exchange where the OS offers one). Returns the child's handle."""
    handle = Store.of(store, storage_options)
    run = run_store(handle, name)
    with handle.lock(lock_name(name)):
        if not run.exists():
            raise RunError(f"no run {name!r} in {handle.url}")
        target = run.child(child)
        tmp = run.child(f".{child}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            write(tmp)
            _swap_in(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):
                fs, root = tmp.fs()
                if fs.exists(root):
                    fs.rm(root, recursive=True)
            raise
    consolidate(handle)
    return target


def _array_names(run: Store) -> list[str]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        return list(run.group(mode="r").array_keys())
