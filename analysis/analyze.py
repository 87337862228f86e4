"""Analyse a run end to end: metrics, bin influence, attention and CNN interpretation maps.

:func:`analyze_run` reads ``runs/NAME`` (one or several runs, joined along
``model``), computes the metrics (:mod:`chromestore.analysis.metrics`), the svm-bin per-bin
AUC curve, AttentiveChrome's attention per class and, for every CNN whose weights
are stored, the class-optimisation maps, saliency, integrated gradients and first
layer feature map (:mod:`chromestore.analysis.interpret`, one Dask task per epigenome), and
writes the result to ``runs/NAME/metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.analysis import metrics as M

#: Peer extras this module reads (prefix = model name with '-' → '_').
SVMBIN_TEST_AUC = "svm_bin_test_auc_bin"
ATTENTION_BIN = "attentivechrome_attention_bin"


def run_group(name: str) -> str:
    return f"runs/{name}"


def open_run(store: str | os.PathLike, name: str, storage_options: dict | None = None):
    """Run ``name`` of ``store`` (:func:`chromestore.open_run`), lazily."""
    import chromestore

    return chromestore.open_run(store, name, storage_options)


def open_runs(
    store: str | os.PathLike, names: Sequence[str], storage_options: dict | None = None
) -> xr.Dataset:
    """Several runs of the same cells, genes and splits joined along ``model``.

    Model extras (``<model>_*``) and ``attrs["models"]`` are merged; the runs must
    share ``target`` and ``split``.
    """
    runs = [open_run(store, n, storage_options) for n in names]
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    genes = first[V.GENE]
    aligned = [first]
    for n, r in zip(names[1:], runs[1:], strict=True):
        # compare on the genes this run has (a run may keep a subset, e.g. genes with signal)
        common = r[V.GENE].values[np.isin(r[V.GENE].values, genes.values)]
        for var in ("split", "target"):
            a = first[var].sel({V.GENE: common}).values
            b = r[var].sel({V.GENE: common}).values
            if not np.array_equal(a, b, equal_nan=True):
                raise ValueError(f"run {n!r} has a different {var!r} from run {names[0]!r}; "
                                 "runs analysed together need the same labels and splits")
        excl = r["excluded"].reindex({V.GENE: genes}, fill_value=True)
        r = r.drop_vars(["excluded", "split", "target"]).reindex({V.GENE: genes})
        aligned.append(r.assign(excluded=excl, split=first["split"], target=first["target"]))
    runs = aligned
    per_model = ["prediction", "history_loss", "history_valid_auc", "best_epoch"]
    n_epoch = max(r.sizes.get("epoch", 1) for r in runs)
    parts = []
    for r in runs:  # histories padded with NaN to the longest run's epochs
        p = r[per_model].drop_vars("epoch", errors="ignore")
        if "epoch" in p.dims and p.sizes["epoch"] < n_epoch:
            p = p.pad(epoch=(0, n_epoch - p.sizes["epoch"]))
        parts.append(p)
    joined = xr.concat(parts, dim=V.MODEL, join="outer")
    extras = xr.merge(
        [r.drop_vars([v for v in per_model if v in r] + ["split", "target", "excluded"])
         .drop_vars("epoch", errors="ignore") for r in runs],
        compat="override", join="outer",
    )
    excluded = np.logical_or.reduce([r["excluded"].values for r in runs])
    out = extras.assign(joined).assign(split=first["split"], target=first["target"])
    out["excluded"] = (first["excluded"].dims, excluded)
    attrs = dict(first.attrs)
    attrs["models"] = {k: v for r in runs for k, v in (r.attrs.get("models") or {}).items()}
    attrs["runs"] = list(names)
    attrs["wall_seconds"] = {n: r.attrs.get("wall_seconds") for n, r in zip(names, runs,
                                                                             strict=True)}
    out.attrs = attrs
    return out


# --- peer extras -----------------------------------------------------------------------
def svmbin_curve(run: xr.Dataset) -> xr.DataArray | None:
    """svm-bin's per-bin test AUC averaged over epigenomes and repeats (DeepChrome Fig. 4a)."""
    if SVMBIN_TEST_AUC not in run:
        return None
    auc = run[SVMBIN_TEST_AUC]
    return auc.mean([d for d in auc.dims if d != V.BIN]).astype(np.float64)


def attention_per_class(run: xr.Dataset) -> xr.DataArray | None:
    """AttentiveChrome's bin attention averaged over test genes of each class and repeats."""
    if ATTENTION_BIN not in run:
        return None
    att = run[ATTENTION_BIN].transpose(V.CELL, V.REPEAT, V.GENE, V.MARK, V.BIN)
    split = run["split"].transpose(V.REPEAT, V.GENE).values
    out = np.full((run.sizes[V.CELL], 2, att.sizes[V.MARK], att.sizes[V.BIN]), np.nan, np.float32)
    for ci in range(run.sizes[V.CELL]):
        a = att.isel({V.CELL: ci}).values  # (repeat, gene, mark, bin)
        y = run["target"].isel({V.CELL: ci}).values
        for k in (0, 1):
            sel = (split == V.TEST) & (y == k)[None, :] & np.isfinite(a).all((2, 3))
            if sel.any():
                out[ci, k] = a[sel].mean(0)
    return xr.DataArray(
        out, dims=(V.CELL, V.CLASS, V.MARK, V.BIN),
        coords={V.CELL: run[V.CELL].values, V.CLASS: list(V.CLASS_NAMES),
                V.MARK: att[V.MARK].values, V.BIN: att[V.BIN].values},
    )


def signal_is_simulated(store, cells, storage_options: dict | None = None) -> bool:
    """True when every completed (cell, mark) of ``cells`` came from ``chromestore.simulate``."""
    from chromestore import store as S

    prov = S.read_attrs(store, storage_options).get("provenance", {})
    cells = {str(c) for c in cells}
    sources = [v.get("format") for k, v in prov.items() if k.split("/", 1)[0] in cells]
    return bool(sources) and all(f == "simulated" for f in sources)


def analyze_run(
    store: str | os.PathLike,
    names: str | Sequence[str],
    *,
    client=None,
    interpret: bool = True,
    interpret_options: dict | None = None,
    storage_options: dict | None = None,
    write: bool = True,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Reduce run(s) ``names`` of ``store``; return ``(run, analysis)``.

    ``analysis`` holds the metrics and every interpretation result available for
    the run's models; with ``write`` it is stored at ``runs/<first name>/metrics``.
    """
    names = [names] if isinstance(names, str) else list(names)
    run = open_runs(store, names, storage_options).load()
    simulated = signal_is_simulated(store, run[V.CELL].values, storage_options)
    # Accuracy on simulated signal is never compared with DeepChrome's published accuracy.
    out = M.compute_metrics(run, client=client, published=None if simulated else M.PUBLISHED)
    out.attrs["signal"] = "simulated" if simulated else "ingested"
    curve = svmbin_curve(run)
    if curve is not None:
        out["svmbin_auc_curve"] = curve
    att = attention_per_class(run)
    if att is not None:
        out["attention_class"] = att
    if interpret:
        from chromestore.analysis import cnn

        maps = cnn.interpret_run(store, names, run, client=client,
                                 storage_options=storage_options, **(interpret_options or {}))
        if maps is not None:
            out = out.merge(maps)
    if "bin" in out.coords and "bin_offset" not in out.coords:
        offsets = _bin_offsets(store, storage_options, out.sizes[V.BIN])
        out = out.assign_coords(bin_offset=(V.BIN, offsets))
    for name, var in out.variables.items():
        if name in V.ALL:
            var.attrs["description"] = V.ALL[name].doc
    out.attrs["runs"] = names
    if write:
        M.write_metrics(out, store, names[0], storage_options)
    return run, out


def _bin_offsets(store, storage_options, n_bins: int) -> np.ndarray:
    import chromestore

    ds = chromestore.open_store(store, storage_options)
    offsets = ds["bin_offset"].values
    if len(offsets) != n_bins:
        raise ValueError(f"run has {n_bins} bins, store has {len(offsets)}")
    return offsets
