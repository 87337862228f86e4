"""``ds.chromestore``: labels, splits and TSS profiles on any store Dataset.

Registered as soon as chromestore's store module is loaded (any store function, e.g.
:func:`chromestore.open_store`, or ``import chromestore.store.accessor``; a bare ``import
chromestore`` stays light and loads no xarray), after which every Dataset has it::

    ds = chromestore.open_store("store.zarr")
    ds = ds.chromestore.labels().chromestore.splits("random:3")
    ds.chromestore.profile("H3K4me3").sel(cell="E003").plot.line(x="bin_offset")
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from chromestore import variables as V

#: the classes of :meth:`ChromestoreAccessor.profile`, in label order (False, True)
CLASSES = ("low", "high")


@xr.register_dataset_accessor("chromestore")
class ChromestoreAccessor:
    """chromestore's operations as methods of a store Dataset (all lazy where the data is)."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def labels(self, rule: str | float = "median") -> xr.Dataset:
        """The Dataset with ``label``, ``label_valid`` and ``label_threshold``
        (:func:`chromestore.compute_labels`)."""
        from chromestore.labels import compute_labels

        return compute_labels(self._ds, rule)

    def splits(self, scheme: str = "deepchrome", *, seed: int = 0, repeats: int = 1) -> xr.Dataset:
        """The Dataset with ``split`` (repeat, gene): 0 train, 1 valid, 2 test
        (:func:`chromestore.assign_splits`)."""
        from chromestore.splits import assign_splits

        return assign_splits(self._ds, scheme, seed=seed, repeats=repeats)

    def eager_coords(self) -> xr.Dataset:
        """The Dataset with its coordinates in memory (plain ``xr.open_zarr`` leaves the
        gene coordinates as Dask arrays, which ``groupby`` and ``where(drop=True)`` refuse)."""
        ds = self._ds
        lazy = [n for n, c in ds.coords.items() if c.chunks is not None]
        return ds.assign_coords({n: ds.coords[n].compute() for n in lazy}) if lazy else ds

    def profile(self, mark: str, rule: str | float = "median") -> xr.DataArray:
        """Mean ``signal`` of ``mark`` around the TSS per expression class: (cell, class, bin).

        Genes are split into ``low`` and ``high`` by their label (``rule``, as in
        :meth:`labels`; an existing ``label`` is used as it is); genes without expression
        or without signal are left out. ``bin_offset`` (bp from the TSS) rides along.
        """
        ds = self._ds
        marks = [str(m) for m in ds[V.MARK].values]
        if mark not in marks:
            raise KeyError(f"mark {mark!r} is not in the store (marks: {', '.join(marks)})")
        if "label" not in ds:
            ds = self.labels(rule)
        signal = ds[V.signal.name].sel({V.MARK: mark}, drop=True)
        valid = ds["label_valid"]
        parts = [
            signal.where(valid & (ds["label"] == high)).mean(V.GENE, skipna=True)
            for high in (False, True)
        ]
        out = xr.concat(parts, dim=xr.Variable(V.CLASS, list(CLASSES)))
        out = out.transpose(V.CELL, V.CLASS, V.BIN)
        out.name = f"{mark}_profile"
        out.attrs = {
            "description": f"mean {mark} signal per bin over the genes of each class",
            "units": ds[V.signal.name].attrs.get("units", ""),
        }
        return out.assign_coords({V.CLASS: np.array(CLASSES, dtype=object)})
