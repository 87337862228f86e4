"""Training runs stored inside the store, as Zarr groups ``runs/NAME``.

A run is a plain ``xr.Dataset`` (see the "runs" section of :mod:`chromestore.variables`)
with dims ``model``, ``cell``, ``repeat``, ``gene``, ``epoch``: per-gene predictions,
targets, the split used, the training history and the chosen epoch of each
(model, cell, repeat). Model weights live beside it under ``runs/NAME/weights/``;
analysis results under ``runs/NAME/metrics``. Writing a model into an existing run
merges it along ``model`` (a model already there is replaced); child groups such as
``weights`` and ``metrics`` are kept. This module never imports torch.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import fsspec
import numpy as np
import xarray as xr
import zarr

from chromestore import variables as V

RUNS = "runs"
#: attrs that are per-model dicts, merged when a model is added to a run
MODEL_DICT_ATTRS = ("models", "wall_seconds")


class RunError(KeyError):
    """A run does not exist (or cannot be written) in a store."""


def _root(store_path: str | os.PathLike) -> str:
    return os.fspath(store_path).rstrip("/")


def run_path(store_path: str | os.PathLike, name: str) -> str:
    """URL of run ``name``'s group (weights and metrics are children of it)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid run name {name!r} (a non-empty name without '/')")
    return f"{_root(store_path)}/{RUNS}/{name}"


def _exists(url: str, storage_options: dict | None) -> bool:
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs.exists(f"{root.rstrip('/')}/zarr.json")


def list_runs(store_path: str | os.PathLike, storage_options: dict | None = None) -> list[str]:
    """Names of the runs in a store, sorted."""
    fs, root = fsspec.core.url_to_fs(f"{_root(store_path)}/{RUNS}", **(storage_options or {}))
    if not fs.exists(root):
        return []
    names = []
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if fs.exists(f"{entry.rstrip('/')}/zarr.json"):
            names.append(name)
    return sorted(names)


def open_run(
    store_path: str | os.PathLike, name: str, storage_options: dict | None = None
) -> xr.Dataset:
    """Open run ``name`` of a store as a lazy ``xr.Dataset``.

    Examples
    --------
    >>> run = chromestore.open_run("store.zarr", "dc")  # doctest: +SKIP
    >>> run.prediction.sel(model="deepchrome", cell="E003")  # doctest: +SKIP
    """
    url = run_path(store_path, name)
    if not _exists(url, storage_options):
        have = list_runs(store_path, storage_options)
        raise RunError(f"no run {name!r} in {_root(store_path)} (runs: {have or 'none'})")
    with warnings.catch_warnings():  # weights/ and checkpoints/ are plain folders
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds = xr.open_zarr(url, consolidated=False, zarr_format=3, storage_options=storage_options)
    for coord in (V.CELL, V.GENE, V.MODEL):
        if coord in ds.coords and ds[coord].dtype.kind == "T":
            ds = ds.assign_coords({coord: ds[coord].values.astype(object)})
    return ds


def validate_run(ds: xr.Dataset) -> xr.Dataset:
    """Check a run Dataset against the run specs; returns it unchanged."""
    for spec in V.RUN_VARS:
        spec.check(ds)
    for key in ("task", "models"):
        if key not in ds.attrs:
            raise V.SchemaError(f"run is missing attribute {key!r}")
    return ds


def _merge(old: xr.Dataset, new: xr.Dataset) -> xr.Dataset:
    models = [str(m) for m in new[V.MODEL].values]
    kept = old.drop_sel({V.MODEL: [m for m in old[V.MODEL].values if str(m) in models]})
    for key in ("task",):
        if old.attrs.get(key) != new.attrs.get(key):
            raise ValueError(
                f"cannot merge into a run with {key}={old.attrs.get(key)!r} "
                f"a model trained with {key}={new.attrs.get(key)!r}"
            )
    if not np.array_equal(old[V.GENE].values.astype(object), new[V.GENE].values.astype(object)):
        raise ValueError("cannot merge runs over different gene sets")
    model_vars = [v for v in new.data_vars if V.MODEL in new[v].dims]
    other_vars = [v for v in new.data_vars if V.MODEL not in new[v].dims]
    parts = xr.concat(
        [kept[[v for v in model_vars if v in kept]], new[model_vars]],
        dim=V.MODEL, join="outer", data_vars="all", coords="minimal", compat="override",
    )
    shared = xr.merge(
        [new[other_vars], old[[v for v in other_vars if v in old]]],
        join="outer", compat="override",
    )
    out = xr.merge([parts, shared], join="outer", compat="override")
    for v in out.data_vars:  # restore dtypes an outer join may have widened
        ref = new[v] if v in new else old[v]
        if out[v].dtype != ref.dtype:
            fill = -1 if ref.dtype.kind in "iu" else (False if ref.dtype.kind == "b" else np.nan)
            out[v] = out[v].fillna(fill).astype(ref.dtype)
    attrs = dict(old.attrs)
    attrs.update({k: v for k, v in new.attrs.items() if k not in MODEL_DICT_ATTRS})
    for key in MODEL_DICT_ATTRS:
        merged = dict(old.attrs.get(key, {}))
        merged.update(new.attrs.get(key, {}))
        attrs[key] = merged
    out.attrs = attrs
    return out


def ensure_runs_group(store_path: str | os.PathLike, storage_options: dict | None = None) -> None:
    """Make ``runs/`` a real Zarr group, so readers of the store see a group, not a folder."""
    zarr.open_group(f"{_root(store_path)}/{RUNS}", mode="a", zarr_format=3,
                    storage_options=storage_options)


def write_run(
    store_path: str | os.PathLike,
    name: str,
    ds: xr.Dataset,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Write (or merge into) run ``name`` and return the run as stored, reopened.

    Models of ``ds`` already in the run are replaced; other models are kept. Child
    groups (``weights``, ``metrics``, checkpoints) are never touched.
    """
    url = run_path(store_path, name)
    if V.MODEL not in ds.dims:
        raise V.SchemaError("a run needs a 'model' dimension")
    if _exists(url, storage_options):
        old = open_run(store_path, name, storage_options).load()
        ds = _merge(old, ds)
        group = zarr.open_group(url, mode="r+", zarr_format=3, storage_options=storage_options)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not recognized as a component")
            array_names = list(group.array_keys())
        for array_name in array_names:
            del group[array_name]
    validate_run(ds)
    ensure_runs_group(store_path, storage_options)
    ds = ds.copy()
    for coord in (V.CELL, V.GENE, V.MODEL):
        values = np.array([str(v) for v in ds[coord].values], dtype=np.dtypes.StringDType())
        ds = ds.assign_coords({coord: values})
    attrs: dict[str, Any] = dict(ds.attrs)
    ds.attrs = {}
    for var in ds.variables.values():
        var.encoding = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds.to_zarr(url, mode="a", zarr_format=3, consolidated=False,
                   storage_options=storage_options)
    group = zarr.open_group(url, mode="r+", zarr_format=3, storage_options=storage_options)
    group.attrs.put(jsonable(attrs))
    return open_run(store_path, name, storage_options)


def jsonable(value: Any, nonfinite_as_str: bool = False) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types (for attrs)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, nonfinite_as_str) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, nonfinite_as_str) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if nonfinite_as_str and isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value

