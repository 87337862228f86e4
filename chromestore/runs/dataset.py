"""A run as an ``xr.Dataset``: built from the run specs, listed, opened and checked.

A run is a plain ``xr.Dataset`` (see the "runs" section of :mod:`chromestore.variables`)
with dims ``model``, ``cell``, ``repeat``, ``gene``, ``epoch``: per-gene predictions,
targets, the split used, the training history and the chosen epoch of each
(model, cell, repeat), plus model extras named ``<model>_<what>`` (``svm-bin`` →
``svm_bin_test_auc_bin``). :func:`create_run_dataset` builds one, :func:`open_run` reads
one, :func:`chromestore.runs.write.write_run` writes one. This package never imports torch.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.runs.paths import RUNS, RunError, run_store
from chromestore.store.attrs import decode_attrs, jsonable
from chromestore.store.handle import Store, StoreLike


def create_run_dataset(
    *,
    models: Sequence[str],
    cells: Sequence[str],
    genes: Sequence[str] | np.ndarray,
    prediction: np.ndarray,
    target: np.ndarray,
    split: np.ndarray,
    history_loss: np.ndarray,
    history_valid_auc: np.ndarray,
    best_epoch: np.ndarray,
    excluded: np.ndarray,
    extras: Mapping[V.Spec, np.ndarray] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A run Dataset from arrays, laid out and typed by the run specs of :mod:`chromestore.variables`.

    Each array of :data:`chromestore.variables.RUN_VARS` gets its spec's dims, dtype and
    description; ``extras`` maps a model's own specs (e.g. ``svm_bin_test_auc_bin``) to
    their arrays. ``repeat`` and ``epoch`` are numbered from 0; ``coords`` adds others
    (``mark``, ``bin``).

    Examples
    --------
    >>> ds = create_run_dataset(models=["m"], cells=["E003"], genes=["g0", "g1"],
    ...     prediction=[[[[0.2, 0.9]]]], target=[[0, 1]], split=[[1, 2]],
    ...     history_loss=[[[[0.5]]]], history_valid_auc=[[[[1.0]]]], best_epoch=[[[0]]],
    ...     excluded=[[False, False]], attrs={"task": "classification", "models": {"m": {}}})
    >>> dict(ds.prediction.sizes), str(ds.split.dtype)
    ({'model': 1, 'cell': 1, 'repeat': 1, 'gene': 2}, 'int8')
    """
    values = {
        "prediction": prediction,
        "target": target,
        "split": split,
        "history_loss": history_loss,
        "history_valid_auc": history_valid_auc,
        "best_epoch": best_epoch,
        "excluded": excluded,
    }
    specs = [(spec, values[spec.name]) for spec in V.RUN_VARS]
    specs += list((extras or {}).items())
    data = {
        spec.name: xr.Variable(
            spec.dims, np.asarray(value, dtype=spec.dtype), {"description": spec.doc}
        )
        for spec, value in specs
    }
    n_repeats, n_epochs = data["split"].shape[0], data["history_loss"].shape[-1]
    all_coords = {
        V.MODEL: np.array(list(models), dtype=object),
        V.CELL: np.array(list(cells), dtype=object),
        V.REPEAT: np.arange(n_repeats),
        V.GENE: np.asarray(genes, dtype=object),
        V.EPOCH: np.arange(n_epochs),
        **(coords or {}),
    }
    return xr.Dataset(data, coords=all_coords, attrs=dict(attrs or {}))


def versions(*packages: str) -> dict[str, str]:
    """Python's version, chromestore's and those of ``packages`` (read from their metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return {
        "python": platform.python_version(),
        "chromestore": of("chromestore"),
        **{p: of(p) for p in packages},
    }


def run_attrs(
    *,
    task: str,
    models: Mapping[str, Mapping[str, Any]],
    split_scheme: str,
    seed: int,
    label_rule: str | float,
    packages: Sequence[str],
    wall_seconds: Mapping[str, float],
    mode: str,
    device: str,
    **extra: Any,
) -> dict[str, Any]:
    """The attrs of a run (:data:`chromestore.variables.RUN_ATTRS`, in that order), built by
    every runner the same way.

    ``models`` maps each model to its hyper-parameters (made JSON-safe, non-finite numbers
    as strings); ``packages`` are those whose versions are recorded besides Python's and
    chromestore's (:func:`versions`); ``wall_seconds`` gives each model's training time;
    ``mode`` and ``device`` say how it trained. ``extra`` attrs (a runner's own, such as
    ``excluded_genes`` or ``train_cells``) follow.

    Examples
    --------
    >>> a = run_attrs(task="classification", models={"m": {"lr": 1e-3}}, split_scheme="random",
    ...     seed=0, label_rule="median", packages=(), wall_seconds={"m": 1.5}, mode="loop",
    ...     device="cpu")
    >>> list(a)
    ['task', 'models', 'split_scheme', 'seed', 'label_rule', 'versions', 'wall_seconds', 'mode', 'device']
    """
    if set(wall_seconds) != set(models):
        raise ValueError(
            f"wall_seconds names {sorted(wall_seconds)}, the run's models are {sorted(models)}"
        )
    values = {
        "task": str(task),
        "models": jsonable(dict(models), nonfinite_as_str=True),
        "split_scheme": str(split_scheme),
        "seed": int(seed),
        "label_rule": str(label_rule),
        "versions": versions(*packages),
        "wall_seconds": {m: float(s) for m, s in wall_seconds.items()},
        "mode": str(mode),
        "device": str(device),
    }
    return {**{k: values[k] for k in V.RUN_ATTRS}, **extra}


# --- reading and writing -------------------------------------------------------------
def list_runs(store: StoreLike, storage_options: Mapping | None = None) -> list[str]:
    """Names of the runs in a store, sorted."""
    fs, root = Store.of(store, storage_options).child(RUNS).fs()
    if not fs.exists(root):
        return []
    names = []
    for entry in fs.ls(root, detail=False):
        if entry.rstrip("/").rsplit("/", 1)[-1].startswith("."):
            continue  # a run being written or swapped (see write_run)
        if fs.exists(f"{entry.rstrip('/')}/zarr.json"):
            names.append(entry.rstrip("/").rsplit("/", 1)[-1])
    return sorted(names)


def open_run(store: StoreLike, name: str, storage_options: Mapping | None = None) -> xr.Dataset:
    """Open run ``name`` of a store as a lazy ``xr.Dataset``.

    Examples
    --------
    >>> run = chromestore.open_run("store.zarr", "dc")  # doctest: +SKIP
    >>> run.prediction.sel(model="deepchrome", cell="E003")  # doctest: +SKIP
    """
    run = run_store(store, name, storage_options)
    if not run.exists():
        have = list_runs(store, storage_options)
        raise RunError(f"no run {name!r} in {Store.of(store).url} (runs: {have or 'none'})")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds = xr.open_zarr(
            run.url, consolidated=False, zarr_format=3, storage_options=run.storage_options
        )
    for coord in (V.CELL, V.GENE, V.MODEL):
        if coord in ds.coords and ds[coord].dtype.kind == "T":
            ds = ds.assign_coords({coord: ds[coord].values.astype(object)})
    ds.attrs = decode_attrs(ds.attrs)
    return ds


def validate_run(ds: xr.Dataset) -> xr.Dataset:
    """Check a run Dataset against the run specs; returns it unchanged."""
    for spec in V.RUN_VARS:
        spec.check(ds)
    for key in ("task", "models"):
        if key not in ds.attrs:
            raise V.SchemaError(f"run is missing attribute {key!r}")
    return ds
