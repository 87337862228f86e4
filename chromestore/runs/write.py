"""Writing a run: the new run beside the old one, swapped in whole under the run's lock.

Writing a model into an existing run merges it (a model already there is replaced);
child groups such as ``metrics`` and ``predictions`` are kept.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.runs.dataset import open_run, validate_run
from chromestore.runs.merge import merge_runs
from chromestore.runs.paths import RUNS, ensure_runs_group, run_store
from chromestore.store.attrs import encode_attrs, jsonable
from chromestore.store.dataset import consolidate
from chromestore.store.handle import Store, StoreLike, now_utc
from chromestore.store.integrity import checksummed


def write_run(
    store: StoreLike, name: str, ds: xr.Dataset, storage_options: Mapping | None = None
) -> xr.Dataset:
    """Write (or merge into) run ``name`` and return the run as stored, reopened.

    Models of ``ds`` already in the run are replaced; other models are kept
    (:func:`merge_runs`). Child groups (``metrics``, ``predictions``) are kept.
    The new run is written beside the old one (``runs/.NAME.tmp-XXXX``) and swapped in
    (:func:`_swap_in`), so a crash while writing leaves the old run readable.
    """
    run = run_store(store, name, storage_options)
    if V.MODEL not in ds.dims:
        raise V.SchemaError("a run needs a 'model' dimension")
    local = "file" in run.fs()[0].protocol
    with Store.of(store, storage_options).lock(f"run-{name}"):
        if local:
            _recover(run)
        if run.exists():
            old = open_run(store, name, storage_options).load()
            if not np.array_equal(
                old[V.GENE].values.astype(object), ds[V.GENE].values.astype(object)
            ):
                raise ValueError(
                    f"cannot merge into run {name!r} a model over other genes "
                    "(a run holds one gene set)"
                )
            ds = merge_runs([old, ds], names=[f"{name} (stored)", "new"], attrs="last")
        validate_run(ds)
        ensure_runs_group(store, storage_options)
        tmp = Store.of(store, storage_options).child(RUNS, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
        _write_arrays(tmp, ds)
        _swap_in(tmp, run)
        consolidate(store, storage_options)
    return open_run(store, name, storage_options)


def _write_arrays(run: Store, ds: xr.Dataset) -> None:
    ds = ds.copy()
    for coord in (V.CELL, V.GENE, V.MODEL):
        values = np.array([str(v) for v in ds[coord].values], dtype=np.dtypes.StringDType())
        ds = ds.assign_coords({coord: values})
    attrs: dict[str, Any] = dict(ds.attrs)
    attrs.setdefault("created", now_utc())
    ds.attrs = {}
    for var in ds.variables.values():
        var.encoding = {}
    ds.to_zarr(
        run.url,
        mode="w-",
        zarr_format=3,
        consolidated=False,
        encoding=checksummed(ds),
        storage_options=run.storage_options,
    )
    run.group(mode="r+").attrs.put(encode_attrs(jsonable(attrs), keep=frozenset()))


def _swap_in(new: Store, run: Store) -> None:
    """Make ``new`` (a complete run beside ``run``) the run, keeping ``run``'s child groups.

    Local: the old run's child groups (weights, metrics, checkpoints) are moved into the
    new one, then two renames swap the folders (``run`` → ``.NAME.old-X``, ``new`` →
    ``run``) and the old one is deleted; :func:`_recover` finishes or rolls back a swap
    that a crash interrupted, so a reader always finds a complete run. Object stores have
    no rename: the old arrays are deleted and the new ones copied in (not atomic; a crash
    in between leaves the run without arrays, the new ones still at ``new``).
    """
    fs, new_root = new.fs()
    _, root = run.fs()
    if not fs.exists(f"{root}/zarr.json"):
        fs.mv(new_root, root, recursive=True)
        return
    arrays = set(_array_names(new))
    old_arrays = set(_array_names(run))
    children = [e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(root, detail=False)]
    children = [c for c in children if c != "zarr.json" and c not in old_arrays]
    if "file" in fs.protocol:
        for child in children:
            os.rename(f"{root}/{child}", f"{new_root}/{child}")
        old = f"{root.rsplit('/', 1)[0]}/.{root.rsplit('/', 1)[1]}.old-{uuid.uuid4().hex[:8]}"
        os.rename(root, old)
        os.rename(new_root, root)
        fs.rm(old, recursive=True)
        return
    for name in old_arrays:
        fs.rm(f"{root}/{name}", recursive=True)
    for name in arrays:
        fs.copy(f"{new_root}/{name}", f"{root}/{name}", recursive=True)
    fs.pipe_file(f"{root}/zarr.json", fs.cat_file(f"{new_root}/zarr.json"))
    fs.rm(new_root, recursive=True)


def _array_names(run: Store) -> list[str]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        return list(run.group(mode="r").array_keys())


def _recover(run: Store) -> None:
    """Finish what a crashed :func:`write_run` left (called under the run's lock).

    The old run moved aside (``.NAME.old-X``) with no run in place: the new run
    (``.NAME.tmp-Y``, complete, children already in it) is renamed in (rolled forward).
    A run in place: child groups moved into an unfinished ``.NAME.tmp-Y`` go back, and the
    leftovers are deleted.
    """
    fs, root = run.fs()
    parent, name = root.rsplit("/", 1)
    if not fs.exists(parent):
        return
    entries = {e.rstrip("/").rsplit("/", 1)[-1]: e.rstrip("/") for e in fs.ls(parent, detail=False)}
    olds = [e for b, e in entries.items() if b.startswith(f".{name}.old-")]
    tmps = [e for b, e in entries.items() if b.startswith(f".{name}.tmp-")]
    if olds and not fs.exists(f"{root}/zarr.json"):
        os.rename(tmps[0] if len(tmps) == 1 else olds[0], root)
    elif fs.exists(f"{root}/zarr.json"):
        for tmp in tmps:
            arrays = set(_array_names(Store.of(tmp)))
            for entry in fs.ls(tmp, detail=False):
                child = entry.rstrip("/").rsplit("/", 1)[-1]
                if (
                    child != "zarr.json"
                    and child not in arrays
                    and not fs.exists(f"{root}/{child}")
                ):
                    os.rename(entry.rstrip("/"), f"{root}/{child}")
    for leftover in fs.ls(parent, detail=False):
        if leftover.rstrip("/").rsplit("/", 1)[-1].startswith((f".{name}.tmp-", f".{name}.old-")):
            fs.rm(leftover.rstrip("/"), recursive=True)
