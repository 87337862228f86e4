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

#: attr ``kind`` of a run group holding only a model's scores (``chromestore predict
#: --model-dir``); a run of trained models has none
KIND = "kind"
PREDICTIONS_ONLY = "predictions"
#: attr set when an older run's ``model_split`` was derived from its ``split`` on reading
SPLIT_RECORDS = "split_records"


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
    model_split: np.ndarray | None = None,
    extras: Mapping[V.Spec, np.ndarray] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A run Dataset from arrays, laid out and typed by the run specs of :mod:`chromestore.variables`.

    Each array of :data:`chromestore.variables.RUN_VARS` gets its spec's dims, dtype and
    description; ``extras`` maps a model's own specs (e.g. ``svm_bin_test_auc_bin``) to
    their arrays. ``repeat`` and ``epoch`` are numbered from 0; ``coords`` adds others
    (``mark``, ``bin``). ``model_split`` (model, cell, repeat, gene) records the genes each
    model was fitted with (:data:`chromestore.variables.model_split`); by default every
    model's is the run's ``split`` where the gene has signal and a label
    (:func:`derive_model_split`).

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
    if model_split is None:
        model_split = derive_model_split(split, excluded, target, len(models))
    values["model_split"] = model_split
    specs = [(spec, values[spec.name]) for spec in (*V.RUN_VARS, V.model_split)]
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


def derive_model_split(
    split: np.ndarray, excluded: np.ndarray, target: np.ndarray, n_models: int
) -> np.ndarray:
    """``model_split`` (model, cell, repeat, gene) of models fitted on the run's ``split``
    (repeat, gene) in every epigenome: -1 where the gene was ``excluded`` there or has no
    ``target``.

    Examples
    --------
    >>> derive_model_split([[0, 1, 2]], [[False, False, True]], [[1, 0, 1]], 1).tolist()
    [[[[0, 1, -1]]]]
    """
    split = np.asarray(split, np.int8)
    unused = np.asarray(excluded, bool) | ~np.isfinite(np.asarray(target, np.float32))
    out = np.broadcast_to(split[None, None], (n_models, unused.shape[0], *split.shape)).copy()
    out[np.broadcast_to(unused[None, :, None, :], out.shape)] = -1
    return out


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
    attrs = run.attrs()
    if attrs.get(KIND) == PREDICTIONS_ONLY:
        raise RunError(
            f"run {name!r} in {Store.of(store).url} holds only predictions (of "
            f"{attrs.get('model', 'a model')}, by chromestore predict), no trained models: "
            "read them with chromestore.runs.open_predictions"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds = xr.open_zarr(
            run.url, consolidated=False, zarr_format=3, storage_options=run.storage_options
        )
    for coord in (V.CELL, V.GENE, V.MODEL):
        if coord in ds.coords and ds[coord].dtype.kind == "T":
            ds = ds.assign_coords({coord: ds[coord].values.astype(object)})
    ds.attrs = decode_attrs(ds.attrs)
    if V.model_split.name not in ds and V.MODEL in ds.dims:
        # written before each model's genes were recorded: each model's are the run's
        ms = derive_model_split(
            ds["split"].values, ds["excluded"].values, ds["target"].values, ds.sizes[V.MODEL]
        )
        ds[V.model_split.name] = (V.model_split.dims, ms, {"description": V.model_split.doc})
        ds.attrs[SPLIT_RECORDS] = "derived"
    return ds


def run_kind(store: StoreLike, name: str, storage_options: Mapping | None = None) -> str | None:
    """``"run"`` (trained models), ``"predictions"`` (only a model's scores, written by
    ``chromestore predict``) or None (no run of that name)."""
    run = run_store(store, name, storage_options)
    if not run.exists():
        return None
    return run.attrs().get(KIND) or "run"


def check_test_genes(run: xr.Dataset, name: str) -> xr.Dataset:
    """Refuse (:class:`RunError`, one line) a run in which a model would be scored on genes it
    was trained or validated on; returns ``run`` unchanged.

    A model is scored on the run's test genes (``split``); its own record
    (``model_split``) says which genes it was fitted with. A run written before those
    records existed that holds several models cannot be checked and is refused too.
    """
    if V.MODEL not in run.dims or "split" not in run:
        return run
    models = [str(m) for m in run[V.MODEL].values]
    if run.attrs.get(SPLIT_RECORDS) == "derived" and len(models) > 1:
        raise RunError(
            f"run {name!r} holds {len(models)} models ({', '.join(models)}) written before "
            "chromestore recorded each model's genes; their test genes cannot be checked "
            "against their training genes: train each into a run of its own"
        )
    own = run[V.model_split.name].transpose(V.MODEL, V.CELL, V.REPEAT, V.GENE).values
    test = run["split"].transpose(V.REPEAT, V.GENE).values == V.TEST
    scored = test[None, None] & ~run["excluded"].values.astype(bool)[None, :, None, :]
    bad = scored & ((own == V.TRAIN) | (own == V.VALID))
    if bad.any():
        m, c, r = (int(i[0]) for i in np.nonzero(bad.any(axis=3)))
        raise RunError(
            f"run {name!r}: model {models[m]!r} was trained or validated on "
            f"{int(bad[m, c, r].sum())} of the {int(scored[m, c, r].sum())} genes it would be "
            f"tested on in {run[V.CELL].values[c]} (repeat {r}): its test and training genes "
            "overlap, so it is not scored; train it into a run of its own"
        )
    return run


#: run attrs that define the split and labels; ``--add`` needs them all identical
SPLIT_SETTINGS = ("task", "split_scheme", "seed", "label_rule")


def check_add_settings(
    old: xr.Dataset, name: str, models: Sequence[str], settings: Mapping[str, Any]
) -> None:
    """The part of :func:`check_addable` known before anything is trained: refuse
    (:class:`RunError`, one line) to add ``models`` to stored run ``old`` when it was written
    without the records ``--add`` checks, holds one of them already, or was trained with
    other ``settings`` (those of :data:`SPLIT_SETTINGS` that are given)."""
    if old.attrs.get(SPLIT_RECORDS) == "derived" or "run_format" not in old.attrs:
        raise RunError(
            f"run {name!r} was written by an older chromestore without the records --add "
            "checks; use --overwrite to replace it, or another run name"
        )
    there = sorted({str(m) for m in old[V.MODEL].values} & {str(m) for m in models})
    if there:
        raise RunError(
            f"run {name!r} already holds model {there[0]!r}; a run is never changed: pass "
            "--overwrite to replace the whole run, or train into another run name"
        )
    for key in SPLIT_SETTINGS:
        if key not in settings:
            continue
        a, b = old.attrs.get(key), settings[key]
        if str(a) != str(b):
            raise RunError(
                f"run {name!r} was trained with {key} {a!r}, this training has {b!r}; --add "
                "needs identical split settings (scheme, seed, K, genes, label rule): train "
                "into another run name"
            )


def check_addable(old: xr.Dataset, new: xr.Dataset, name: str) -> None:
    """Refuse (:class:`RunError`, one line) to add ``new``'s models to stored run ``old``
    unless every setting that defines the split and labels is identical, as the run's
    records show: scheme (and K), seed, label rule, the genes, the split itself and the
    labels of the epigenomes both hold; and no model is there already."""
    check_add_settings(
        old,
        name,
        [str(m) for m in new[V.MODEL].values],
        {key: new.attrs.get(key) for key in SPLIT_SETTINGS},
    )
    genes_a = [str(g) for g in old[V.GENE].values]
    genes_b = [str(g) for g in new[V.GENE].values]
    if genes_a != genes_b:
        raise RunError(
            f"run {name!r} holds {len(genes_a)} genes, this training {len(genes_b)} (or other "
            "genes, or another order); --add needs the same gene set: train into another "
            "run name"
        )
    if not np.array_equal(old["split"].values, new["split"].values):
        raise RunError(
            f"run {name!r} and this training split the genes differently; --add needs the "
            "same split: train into another run name"
        )
    both = [c for c in new[V.CELL].values if c in set(old[V.CELL].values)]
    if both and not np.array_equal(
        old["target"].sel({V.CELL: both}).values,
        new["target"].sel({V.CELL: both}).values,
        equal_nan=True,
    ):
        raise RunError(
            f"run {name!r} and this training label the genes of {both[0]} differently; --add "
            "needs the same labels: train into another run name"
        )


def validate_run(ds: xr.Dataset) -> xr.Dataset:
    """Check a run Dataset against the run specs; returns it unchanged."""
    for spec in (*V.RUN_VARS, V.model_split):
        spec.check(ds)
    for key in ("task", "models"):
        if key not in ds.attrs:
            raise V.SchemaError(f"run is missing attribute {key!r}")
    return ds
