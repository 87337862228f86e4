"""A model's scores for epigenomes, kept at ``runs/NAME/predictions`` (``chromestore predict``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.runs.paths import RunError, ensure_runs_group, predictions_store
from chromestore.store.attrs import jsonable
from chromestore.store.handle import StoreLike
from chromestore.store.integrity import checksummed


def write_predictions(
    store: StoreLike, name: str, scores: xr.DataArray, storage_options: Mapping | None = None
) -> str:
    """Write ``score (cell, gene)`` at ``runs/NAME/predictions``, replacing cells already
    there; returns the group's URL."""
    ensure_runs_group(store, storage_options)  # readers of the store see a group, not a folder
    target = predictions_store(store, name, storage_options)
    new = scores.to_dataset(name=V.score.name)
    if target.exists():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not recognized as a component")
            old = xr.open_zarr(
                target.url,
                consolidated=False,
                zarr_format=3,
                storage_options=target.storage_options,
            ).load()
        old = old.assign_coords({c: old[c].values.astype(object) for c in (V.CELL, V.GENE)})
        if np.array_equal(old[V.GENE].values, new[V.GENE].values.astype(object)):
            keep = [c for c in old[V.CELL].values if c not in set(new[V.CELL].values)]
            new = xr.concat([old.sel({V.CELL: keep}), new], dim=V.CELL) if keep else new
    V.score.check(new)
    new = new.assign_coords(
        {
            c: np.array([str(v) for v in new[c].values], dtype=np.dtypes.StringDType())
            for c in (V.CELL, V.GENE)
        }
    )
    attrs = jsonable(dict(scores.attrs))
    new[V.score.name].attrs = {}
    new.attrs = {}
    for var in new.variables.values():
        var.encoding = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        new.to_zarr(
            target.url,
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=checksummed(new),
            storage_options=target.storage_options,
        )
    target.group(mode="r+").attrs.put(attrs)
    return target.url


def open_predictions(
    store: StoreLike, name: str, storage_options: Mapping | None = None
) -> xr.DataArray:
    """The ``score (cell, gene)`` kept at ``runs/NAME/predictions``."""
    target = predictions_store(store, name, storage_options)
    if not target.exists():
        raise RunError(f"no predictions at {target.url} (run chromestore predict first)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        ds = xr.open_zarr(
            target.url, consolidated=False, zarr_format=3, storage_options=target.storage_options
        )
    ds = ds.assign_coords({c: ds[c].values.astype(object) for c in (V.CELL, V.GENE)})
    out = ds[V.score.name]
    out.attrs = dict(ds.attrs)
    return out
