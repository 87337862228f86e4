"""A model's scores for epigenomes, kept at ``runs/NAME/predictions`` (``chromestore predict``).

The scores of one model live in one ``predictions`` group, whose attrs say which model made
them (:data:`SOURCE`: the model, the SHA-256 of its weights, where they came from). They
belong to a run: the run of trained models they were predicted from, or a run holding only
predictions (attr ``kind: "predictions"``), made for the scores of an exported model
folder. Scores of the same model (same weights) for more epigenomes join the group; scores
of another model never do: that is refused unless asked to replace them (``existing=
"overwrite"``). Every write replaces the group whole, swapped in under the run's lock.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.runs.dataset import KIND, PREDICTIONS_ONLY, run_kind
from chromestore.runs.paths import PREDICTIONS, RunError, predictions_store, run_store
from chromestore.runs.write import RunExists, RunWriter, free_name, replace_child, taken_message
from chromestore.store.attrs import decode_attrs, encode_attrs, jsonable
from chromestore.store.handle import Store, StoreLike
from chromestore.store.integrity import write_checksummed

#: attr of a predictions group naming the model that made the scores
SOURCE = "source"


def same_source(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two predictions' sources are one model: the same name and weights."""
    if not a or not b:
        return False
    return a.get("model") == b.get("model") and a.get("weights_sha256") == b.get("weights_sha256")


def _describe(source: Mapping[str, Any] | None) -> str:
    source = source or {}
    return f"{source.get('model', 'an unknown model')} ({source.get('from', 'unknown origin')})"


def _read(target: Store) -> xr.Dataset | None:
    if not target.exists():
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds = xr.open_zarr(
            target.url, consolidated=False, zarr_format=3, storage_options=target.storage_options
        ).load()
    ds.attrs = decode_attrs(ds.attrs)
    return ds.assign_coords({c: ds[c].values.astype(object) for c in (V.CELL, V.GENE)})


def _merged(old: xr.Dataset | None, scores: xr.DataArray) -> xr.Dataset:
    """The new scores, with the old group's other epigenomes when both cover the same genes."""
    new = scores.to_dataset(name=V.score.name)
    if old is not None and np.array_equal(old[V.GENE].values, new[V.GENE].values.astype(object)):
        keep = [c for c in old[V.CELL].values if c not in set(new[V.CELL].values)]
        if keep:
            new = xr.concat([old[[V.score.name]].sel({V.CELL: keep}), new], dim=V.CELL)
    return new


def _writer(new: xr.Dataset, attrs: Mapping[str, Any]):
    def write(target: Store) -> None:
        ds = new.copy()
        V.score.check(ds)
        ds = ds.assign_coords(
            {
                c: np.array([str(v) for v in ds[c].values], dtype=np.dtypes.StringDType())
                for c in (V.CELL, V.GENE)
            }
        )
        ds[V.score.name].attrs = {}
        ds.attrs = {}
        for var in ds.variables.values():
            var.encoding = {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not recognized as a component")
            write_checksummed(ds, target)
        target.group(mode="r+").attrs.put(encode_attrs(jsonable(dict(attrs)), keep=frozenset()))

    return write


def write_predictions(
    store: StoreLike,
    name: str,
    scores: xr.DataArray,
    storage_options: Mapping | None = None,
    *,
    source: Mapping[str, Any] | None = None,
    existing: str = "refuse",
) -> str:
    """Keep ``score (cell, gene)`` at ``runs/NAME/predictions``; returns the group's URL.

    ``source`` names the model (``model``, ``weights_sha256``, ``from``; ``run``: the run it
    belongs to). Into a run of trained models (only one of its own models' scores), or a
    run of predictions: scores of the same
    source join those there (their epigenomes replaced); another source's are refused
    (:class:`RunExists`, naming ``--overwrite`` and a free name) unless ``existing`` is
    ``"overwrite"``. A free name becomes a run holding only these predictions.
    """
    handle = Store.of(store, storage_options)
    source = dict(source or {"model": scores.attrs.get("model")})
    attrs = {**jsonable(dict(scores.attrs)), SOURCE: jsonable(source)}
    target = predictions_store(handle, name)
    kind = run_kind(handle, name)
    joins = check_predictions_target(handle, name, source, existing == "overwrite")
    old = _read(target) if joins else None
    if kind == "run":
        replace_child(handle, name, PREDICTIONS, _writer(_merged(old, scores), attrs))
        return target.url
    new = _merged(old, scores)
    run_attrs = {KIND: PREDICTIONS_ONLY, "model": source.get("model"), SOURCE: jsonable(source)}
    with RunWriter(handle, name, existing="refuse" if kind is None else "overwrite") as writer:
        writer.commit(xr.Dataset(attrs=run_attrs), children={PREDICTIONS: _writer(new, attrs)})
    return target.url


def check_predictions_target(
    store: StoreLike,
    name: str,
    source: Mapping[str, Any] | None,
    overwrite: bool,
    storage_options: Mapping | None = None,
) -> bool:
    """Whether scores of ``source`` may be kept under run ``name`` (see
    :func:`write_predictions`): True when they join the same model's scores there, False when
    they start (or, with ``overwrite``, replace) them; :class:`RunExists` (one line naming
    ``--overwrite`` and a free name) when another model's are there."""
    handle = Store.of(store, storage_options)
    kind = run_kind(handle, name)
    if kind is None:
        return False
    if kind == "run" and (source or {}).get("run") != name:
        raise RunExists(
            f"run {name!r} holds trained models; scores of a model that is not one of them are "
            f"not kept in it: choose a free name such as {free_name(handle, name)!r} (--name)"
        )
    old = _read(predictions_store(handle, name))
    ours = old is not None and same_source(old.attrs.get(SOURCE), source)
    if ours:
        return True
    if kind == "run" and old is None:
        return False  # a run of trained models gets its first predictions
    if overwrite:
        return False
    if kind == "run":
        raise RunExists(
            f"run {name!r} already holds predictions of {_describe(old.attrs.get(SOURCE))}; "
            f"pass --overwrite to replace them, or keep these under a free name such as "
            f"{free_name(handle, name)!r} (--name)"
        )
    raise RunExists(taken_message(handle, name))


def open_predictions(
    store: StoreLike, name: str, storage_options: Mapping | None = None
) -> xr.DataArray:
    """The ``score (cell, gene)`` kept at ``runs/NAME/predictions``."""
    target = predictions_store(store, name, storage_options)
    if not target.exists():
        if not run_store(store, name, storage_options).exists():
            raise RunError(f"no run {name!r} in {Store.of(store).url}")
        raise RunError(f"no predictions at {target.url} (run chromestore predict first)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds = xr.open_zarr(
            target.url, consolidated=False, zarr_format=3, storage_options=target.storage_options
        )
    ds = ds.assign_coords({c: ds[c].values.astype(object) for c in (V.CELL, V.GENE)})
    out = ds[V.score.name]
    out.attrs = decode_attrs(ds.attrs)
    return out


def predictions_summary(
    store: StoreLike, name: str, storage_options: Mapping | None = None
) -> dict | None:
    """``{"model", "cells"}`` of run ``name``'s predictions, or None when it has none."""
    target = predictions_store(store, name, storage_options)
    if not target.exists():
        return None
    scores = open_predictions(store, name, storage_options)
    source = scores.attrs.get(SOURCE) or {}
    return {
        "model": source.get("model") or scores.attrs.get("model"),
        "cells": [str(c) for c in scores[V.CELL].values],
    }
