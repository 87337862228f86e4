"""Training runs stored inside the store, as Zarr groups ``runs/NAME``: the one owner of runs.

A run is a plain ``xr.Dataset`` (see the "runs" section of :mod:`chromestore.variables`)
with dims ``model``, ``cell``, ``repeat``, ``gene``, ``epoch``: per-gene predictions,
targets, the split used, the training history and the chosen epoch of each
(model, cell, repeat), plus model extras named ``<model>_<what>`` (``svm-bin`` →
``svm_bin_test_auc_bin``). Everything about runs is here:

- where things live: :func:`run_store` (``runs/NAME``), :func:`weights_store`
  (``STORE.weights/NAME/<model>/<cell>/<repeat>.<ext>``), :func:`checkpoint_store`
  (``STORE.weights/NAME/.checkpoints/<model>/<tag>.pt``), :func:`metrics_store`
  (``runs/NAME/metrics``) and :func:`predictions_store` (``runs/NAME/predictions``), all as :class:`chromestore.store.Store` handles. Weights and
  checkpoints are plain files, so they live beside the store (``STORE.weights``), not in
  its Zarr hierarchy, where zarr would warn "Object at weights is not recognized";
- building a run from the specs: :func:`create_run_dataset`;
- joining runs along ``model``: :func:`merge_runs` (:mod:`chromestore.run_merge`);
- reading and writing: :func:`list_runs`, :func:`open_run`, :func:`write_run`.

Writing a model into an existing run merges it (a model already there is replaced);
child groups such as ``weights`` and ``metrics`` are kept. This module never imports torch.
"""

from __future__ import annotations

import os
import platform
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.attr_codec import decode_attrs, encode_attrs
from chromestore.integrity import checksummed
from chromestore.run_merge import MODEL_DICT_ATTRS, merge_runs, model_prefix
from chromestore.store import Store, StoreLike, consolidate, now_utc, run_files_root

__all__ = [
    "MODEL_DICT_ATTRS", "RunError", "checkpoint_store", "create_run_dataset", "jsonable",
    "list_runs", "merge_runs", "metrics_group", "metrics_store", "model_prefix", "open_run",
    "open_predictions", "predictions_store", "run_files_store", "run_path", "run_store",
    "validate_run", "versions", "weights_store", "write_predictions", "write_run",
]

RUNS = "runs"
CHECKPOINTS = ".checkpoints"
METRICS = "metrics"
PREDICTIONS = "predictions"


class RunError(KeyError):
    """A run does not exist (or cannot be written) in a store."""


# --- where things live ------------------------------------------------------------
def run_store(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """The handle of run ``name``'s group (weights, checkpoints and metrics are children)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid run name {name!r} (a non-empty name without '/')")
    return Store.of(store, storage_options).child(RUNS, name)


def run_path(store: StoreLike, name: str) -> str:
    """URL of run ``name``'s group."""
    return run_store(store, name).url


def run_files_store(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """``STORE.weights/NAME``: the plain files of run ``name`` (outside the Zarr hierarchy)."""
    run_store(store, name)  # validates the name
    return run_files_root(store, storage_options).child(name)


def weights_store(store: StoreLike, name: str, model: str, cell: str | None = None,
                  repeat: int | None = None, ext: str = "pt",
                  storage_options: Mapping | None = None) -> Store:
    """``STORE.weights/NAME/<model>[/<cell>[/<repeat>.<ext>]]``: a model's fitted weights."""
    parts = [model]
    if cell is not None:
        parts.append(cell)
        if repeat is not None:
            parts.append(f"{int(repeat)}.{ext}")
    return run_files_store(store, name, storage_options).child(*parts)


def checkpoint_store(store: StoreLike, name: str, model: str, tag: str,
                     storage_options: Mapping | None = None) -> Store:
    """``STORE.weights/NAME/.checkpoints/<model>/<tag>.pt``: a group's last finished epoch."""
    return run_files_store(store, name, storage_options).child(CHECKPOINTS, model, f"{tag}.pt")


def metrics_group(name: str) -> str:
    """The Zarr group of a run's reductions, relative to the store."""
    return f"{RUNS}/{name}/{METRICS}"


def metrics_store(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """``runs/NAME/metrics``: what analysis reduced the run to."""
    return run_store(store, name, storage_options).child(METRICS)


def predictions_store(store: StoreLike, name: str,
                      storage_options: Mapping | None = None) -> Store:
    """``runs/NAME/predictions``: a model's scores for epigenomes (``chromestore predict``)."""
    return run_store(store, name, storage_options).child(PREDICTIONS)


def write_predictions(store: StoreLike, name: str, scores: xr.DataArray,
                      storage_options: Mapping | None = None) -> str:
    """Write ``score (cell, gene)`` at ``runs/NAME/predictions``, replacing cells already
    there; returns the group's URL."""
    ensure_runs_group(store, storage_options)  # readers of the store see a group, not a folder
    target = predictions_store(store, name, storage_options)
    new = scores.to_dataset(name=V.score.name)
    if target.exists():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not recognized as a component")
            old = xr.open_zarr(target.url, consolidated=False, zarr_format=3,
                               storage_options=target.storage_options).load()
        old = old.assign_coords({c: old[c].values.astype(object) for c in (V.CELL, V.GENE)})
        if np.array_equal(old[V.GENE].values, new[V.GENE].values.astype(object)):
            keep = [c for c in old[V.CELL].values if c not in set(new[V.CELL].values)]
            new = xr.concat([old.sel({V.CELL: keep}), new], dim=V.CELL) if keep else new
    V.score.check(new)
    new = new.assign_coords({c: np.array([str(v) for v in new[c].values],
                                         dtype=np.dtypes.StringDType()) for c in (V.CELL, V.GENE)})
    attrs = jsonable(dict(scores.attrs))
    new[V.score.name].attrs = {}
    new.attrs = {}
    for var in new.variables.values():
        var.encoding = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        new.to_zarr(target.url, mode="w", zarr_format=3, consolidated=False,
                    encoding=checksummed(new), storage_options=target.storage_options)
    target.group(mode="r+").attrs.put(attrs)
    return target.url


def open_predictions(store: StoreLike, name: str,
                     storage_options: Mapping | None = None) -> xr.DataArray:
    """The ``score (cell, gene)`` kept at ``runs/NAME/predictions``."""
    target = predictions_store(store, name, storage_options)
    if not target.exists():
        raise RunError(f"no predictions at {target.url} (run chromestore predict first)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds = xr.open_zarr(target.url, consolidated=False, zarr_format=3,
                          storage_options=target.storage_options)
    ds = ds.assign_coords({c: ds[c].values.astype(object) for c in (V.CELL, V.GENE)})
    out = ds[V.score.name]
    out.attrs = dict(ds.attrs)
    return out


# --- building a run -------------------------------------------------------------------
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
    values = {"prediction": prediction, "target": target, "split": split,
              "history_loss": history_loss, "history_valid_auc": history_valid_auc,
              "best_epoch": best_epoch, "excluded": excluded}
    specs = [(spec, values[spec.name]) for spec in V.RUN_VARS]
    specs += list((extras or {}).items())
    data = {spec.name: xr.Variable(spec.dims, np.asarray(value, dtype=spec.dtype),
                                   {"description": spec.doc})
            for spec, value in specs}
    n_repeats, n_epochs = data["split"].shape[0], data["history_loss"].shape[-1]
    all_coords = {V.MODEL: np.array(list(models), dtype=object),
                  V.CELL: np.array(list(cells), dtype=object),
                  V.REPEAT: np.arange(n_repeats), V.GENE: np.asarray(genes, dtype=object),
                  V.EPOCH: np.arange(n_epochs), **(coords or {})}
    return xr.Dataset(data, coords=all_coords, attrs=dict(attrs or {}))


def versions(*packages: str) -> dict[str, str]:
    """Python's version, chromestore's and those of ``packages`` (read from their metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return {"python": platform.python_version(), "chromestore": of("chromestore"),
            **{p: of(p) for p in packages}}


def jsonable(value: Any, nonfinite_as_str: bool = False) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types (for attrs)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, nonfinite_as_str) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, nonfinite_as_str) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if nonfinite_as_str and isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


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
        ds = xr.open_zarr(run.url, consolidated=False, zarr_format=3,
                          storage_options=run.storage_options)
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


def ensure_runs_group(store: StoreLike, storage_options: Mapping | None = None) -> None:
    """Make ``runs/`` a real Zarr group, so readers of the store see a group, not a folder.

    Several workers may call this at once: one that loses the race to create the group
    finds it there, which is all it wanted.
    """
    from zarr.errors import ContainsGroupError

    runs = Store.of(store, storage_options).child(RUNS)
    try:
        runs.group(mode="a")
    except ContainsGroupError:
        runs.group(mode="r")


def write_run(store: StoreLike, name: str, ds: xr.Dataset,
              storage_options: Mapping | None = None) -> xr.Dataset:
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
            if not np.array_equal(old[V.GENE].values.astype(object),
                                  ds[V.GENE].values.astype(object)):
                raise ValueError(f"cannot merge into run {name!r} a model over other genes "
                                 "(a run holds one gene set)")
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
    ds.to_zarr(run.url, mode="w-", zarr_format=3, consolidated=False,
               encoding=checksummed(ds), storage_options=run.storage_options)
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
                if child != "zarr.json" and child not in arrays and not fs.exists(
                        f"{root}/{child}"):
                    os.rename(entry.rstrip("/"), f"{root}/{child}")
    for leftover in fs.ls(parent, detail=False):
        if leftover.rstrip("/").rsplit("/", 1)[-1].startswith((f".{name}.tmp-",
                                                                f".{name}.old-")):
            fs.rm(leftover.rstrip("/"), recursive=True)
