"""Analyse a run end to end: metrics, what the models add, CNN interpretation maps.

:func:`analyze_run` reads ``runs/NAME`` (one or several runs, joined along ``model``),
computes the metrics (:mod:`chromestore.analysis.metrics`), what each model's registry
entry adds (:func:`model_metrics`: svm-bin's per-bin AUC curve, AttentiveChrome's
attention per class, a plugin's own) and, for a CNN whose weights are stored, the
class-optimisation maps, saliency, integrated gradients and first-layer feature map
(:mod:`chromestore.analysis.cnn`, one Dask task per epigenome), and writes the result to
``runs/NAME/metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from chromestore import runs as R
from chromestore import variables as V
from chromestore.analysis import metrics as M
from chromestore.store import open_store
from chromestore.training import registry


def open_run(store: str | os.PathLike, name: str, storage_options: dict | None = None):
    """Run ``name`` of ``store`` (:func:`chromestore.open_run`), lazily."""
    return R.open_run(store, name, storage_options)


def open_runs(
    store: str | os.PathLike, names: Sequence[str], storage_options: dict | None = None
) -> xr.Dataset:
    """Several runs of the same cells, genes and splits joined along ``model``, lazily.

    Each run is checked first: a model whose test genes overlap the genes it was trained
    or validated on is refused (:func:`chromestore.runs.check_test_genes`, one line).
    :func:`chromestore.runs.merge_runs` joins them; the runs must agree on ``target``
    and ``split`` where they overlap. ``attrs["runs"]`` lists ``names``.
    """
    names = list(names)
    runs = [R.check_test_genes(open_run(store, n, storage_options), n) for n in names]
    run = R.merge_runs(runs, names=names, check_labels=True)
    run.attrs.pop(R.RECORD, None)  # each run's weights are found through its own name
    run.attrs["runs"] = names
    return run


def model_metrics(run: xr.Dataset) -> dict[str, tuple[xr.DataArray, registry.ModelMetric]]:
    """What each registered model adds to the analysis of ``run`` (its entry's ``metrics``)."""
    out = {}
    for entry in registry.entries():
        for metric in entry.metrics:
            value = metric.compute(run)
            if value is not None:
                out[metric.name] = (value, metric)
    return out


def signal_is_simulated(store, cells, storage_options: dict | None = None) -> bool:
    """True when every completed (cell, mark) of ``cells`` came from ``chromestore.simulate``."""
    from chromestore import store as S
    from chromestore.store import records

    prov = records.provenance(S.open_store(store, storage_options))
    cells = {str(c) for c in cells}
    sources = [v.get("format") for (cell, _), v in prov.items() if cell in cells]
    return bool(sources) and all(f == "simulated" for f in sources)


def store_orientation(store, genes, storage_options: dict | None = None) -> dict:
    """The store's bin orientation and how many of ``genes`` have no strand (genome order)."""

    ds = open_store(store, storage_options)
    strand = ds["gene_strand"].sel({V.GENE: genes}).values.astype(object)
    return {
        "orientation": ds.attrs.get("orientation", "genomic"),
        "genes_strand_unknown": int((strand == ".").sum()),
    }


#: DeepChrome's published AUCs are for the 19,802 REMC genes, split by file order.
PUBLISHED_GENES = 19802
PUBLISHED_SPLIT = "deepchrome"


def published_mismatch(run: xr.Dataset, simulated: bool) -> str:
    """Why ``run``'s accuracy cannot be set beside DeepChrome's published AUC ("" if it can).

    The published figures hold for real signal over the 19,802 REMC genes with DeepChrome's
    file-order split; a sample of 600 genes or a random split is a different experiment.
    """
    if simulated:
        return (
            "The signal of this run is simulated (chromestore.simulate), so its accuracy "
            "is not compared with DeepChrome's published accuracy."
        )
    n_genes, scheme = run.sizes[V.GENE], str(run.attrs.get("split_scheme", "unknown"))
    if "excluded" in run:  # genes left out of training and scoring (e.g. without signal)
        n_genes = int((~run["excluded"].astype(bool)).any(V.CELL).sum())
    if n_genes != PUBLISHED_GENES or scheme.split(":")[0] != PUBLISHED_SPLIT:
        return (
            f"This run covers {n_genes:,} genes with the {scheme} split; DeepChrome's "
            f"published accuracy is for the {PUBLISHED_GENES:,} REMC genes with its "
            f"{PUBLISHED_SPLIT} (file-order) split, so it is not compared."
        )
    return ""


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
    the run's models; with ``write`` it is stored in every analysed run
    (``runs/NAME/metrics``, replaced whole; its attrs name the runs analysed together).
    Every model is scored only on its own test genes.
    """
    names = [names] if isinstance(names, str) else list(names)
    run = open_runs(store, names, storage_options).load()
    simulated = signal_is_simulated(store, run[V.CELL].values, storage_options)
    why_not = published_mismatch(run, simulated)
    out = M.compute_metrics(run, client=client, published=None if why_not else M.PUBLISHED)
    out.attrs["signal"] = "simulated" if simulated else "ingested"
    out.attrs.update(store_orientation(store, run[V.GENE].values, storage_options))
    if why_not:
        out.attrs["published_note"] = why_not
    for name, (value, metric) in model_metrics(run).items():
        out[name] = value
        out[name].attrs["description"] = metric.doc
    if interpret:
        from chromestore.analysis import cnn

        maps = cnn.interpret_run(
            store,
            names,
            run,
            client=client,
            storage_options=storage_options,
            **(interpret_options or {}),
        )
        if maps is not None:
            out = out.merge(maps)
            out.attrs["interpreted_model"] = maps.attrs["interpreted_model"]
    if "bin" in out.coords and "bin_offset" not in out.coords:
        offsets = _bin_offsets(store, storage_options, out.sizes[V.BIN])
        out = out.assign_coords(bin_offset=(V.BIN, offsets))
    for name, var in out.variables.items():
        if name in V.ALL:
            var.attrs["description"] = V.ALL[name].doc
    out.attrs["runs"] = names
    if write:
        for name in names:
            M.write_metrics(out, store, name, storage_options)
    return run, out


def _bin_offsets(store, storage_options, n_bins: int) -> np.ndarray:

    ds = open_store(store, storage_options)
    offsets = ds["bin_offset"].values
    if len(offsets) != n_bins:
        raise ValueError(f"run has {n_bins} bins, store has {len(offsets)}")
    return offsets
