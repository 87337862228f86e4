"""Interpretation of the trained CNNs of a run, one Dask task per epigenome.

For each epigenome, the CNN (a registered ``torch`` classifier) of the first split repeat
is loaded from ``<store>/runs/NAME/weights/<model>/<cell>/<repeat>.pt`` and :func:`interpret_cell`
computes its class-optimisation maps, gradient saliency and integrated gradients
averaged over the test genes of each class, and its first-layer feature map per bin.
:func:`interpret_run` reduces them into the ``classopt_*``, ``saliency``,
``integrated_gradients`` and ``feature_map_bin`` variables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import dask
import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.store import open_store
from chromestore.training import registry
from chromestore.training import weights as W


def cnn_models(run: xr.Dataset) -> list[str]:
    """The run's models that are registered ``torch`` classifiers, in registry order."""
    have = {str(m) for m in run[V.MODEL].values}
    return [
        e.name
        for e in registry.entries()
        if e.name in have and e.kind == "torch" and e.task == "classification"
    ]


def load_cnn(
    store, name: str, model: str, cell: str, repeat: int, storage_options: dict | None = None
):
    """The trained network of (model, cell, repeat) in eval mode, and its input transform.

    The weights file is the trainer's: ``state_dict``, ``hparams``, ``n_marks``,
    ``n_bins`` and ``transform`` (``raw`` or ``log1p``).
    """
    entry = registry.get(model)
    saved = W.load_weights(store, name, model, cell, repeat, entry.codec, storage_options)
    hp = {k: v for k, v in (saved.get("hparams") or {}).items() if k in entry.defaults}
    net = entry.factory(n_marks=int(saved["n_marks"]), n_bins=int(saved["n_bins"]), **hp)
    net.load_state_dict(saved["state_dict"])
    return net.eval(), str(saved.get("transform", "raw"))


def prepare_input(signal: np.ndarray, transform: str = "raw") -> np.ndarray:
    """The network's input from raw signal (gene, mark, bin), as the trainer's loader makes it."""
    x = np.asarray(signal, dtype=np.float32)
    if transform == "log1p":
        x = np.log1p(np.clip(x, 0, None))
    elif transform != "raw":
        raise ValueError(f"unknown input transform {transform!r}")
    return x.astype(np.float32, copy=False)


def interpret_cell(
    net,
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int = 300,
    lam: float = 0.01,
    ig_steps: int = 32,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """All maps of one epigenome's CNN; ``x`` (gene, mark, bin) prepared, ``y`` 0/1 labels."""
    import torch

    from chromestore.analysis import interpret

    torch.set_num_threads(1)  # one task per core
    n_marks, n_bins = x.shape[1:]
    raw = interpret.class_optimisation(
        net, n_marks, n_bins, classes=(0, 1), lam=lam, steps=steps, seed=seed
    )
    norm, counts, flagged = interpret.activity(raw)
    return {
        "classopt_map": norm,
        "classopt_active_bins": counts,
        "classopt_flagged": flagged,
        "saliency": interpret.per_class_mean(interpret.saliency(net, x), y),
        "integrated_gradients": interpret.per_class_mean(
            interpret.integrated_gradients(net, x, n_steps=ig_steps), y
        ),
        "feature_map_bin": _feature_map(net, x),
    }


def _feature_map(net, x: np.ndarray) -> np.ndarray:
    """The first-layer feature map per bin; NaN for a network without a convolution."""
    from chromestore.analysis import interpret

    try:
        interpret.first_conv(net)
    except ValueError:
        return np.full(x.shape[-1], np.nan, np.float32)
    return interpret.feature_map_per_bin(net, x)


def _cell_task(store, name, model, cell, repeat, genes, y, options, so):

    ds = open_store(store, so)
    signal = ds[V.signal.name].sel({V.CELL: cell}).isel({V.GENE: genes}).values
    net, transform = load_cnn(store, name, model, cell, repeat, so)
    return interpret_cell(net, prepare_input(signal, transform), y, **options)


def interpret_run(
    store,
    names: Sequence[str],
    run: xr.Dataset,
    *,
    client=None,
    model: str | None = None,
    max_genes: int = 300,
    storage_options: dict | None = None,
    **options,
) -> xr.Dataset | None:
    """Maps of every epigenome's CNN (the first of :func:`cnn_models`), or None.

    Test genes of repeat 0, at most ``max_genes`` per epigenome (a seeded sample
    balanced as the test split is), are attributed.
    """

    model = model or next(iter(cnn_models(run)), None)
    if model is None:
        return None
    name = next((n for n in names if W.has_weights(store, n, model, storage_options)), None)
    if name is None:
        return None
    store_genes = _store_gene_index(store, storage_options)
    rng = np.random.default_rng(0)
    split0 = run["split"].isel({V.REPEAT: 0}).values
    cells = [str(c) for c in run[V.CELL].values]
    tasks = []
    for c in cells:
        pred = run["prediction"].sel({V.MODEL: model, V.CELL: c}).isel({V.REPEAT: 0}).values
        y = run["target"].sel({V.CELL: c}).values
        idx = np.flatnonzero((split0 == V.TEST) & np.isfinite(pred) & np.isfinite(y))
        if len(idx) > max_genes:
            idx = np.sort(rng.choice(idx, max_genes, replace=False))
        genes = store_genes.get_indexer(run[V.GENE].values[idx])
        tasks.append(
            dask.delayed(_cell_task, pure=True)(
                os.fspath(store),
                name,
                model,
                c,
                0,
                genes,
                y[idx].astype(int),
                options,
                storage_options,
            )
        )
    results = client.compute(tasks, sync=True) if client is not None else dask.compute(*tasks)
    marks = run[V.MARK].values if V.MARK in run.coords else np.array(V.DEFAULT_MARKS)
    n_bins = results[0]["feature_map_bin"].shape[0]
    coords = {V.CELL: cells, V.CLASS: list(V.CLASS_NAMES), V.MARK: marks, V.BIN: np.arange(n_bins)}
    cm = (V.CELL, V.CLASS, V.MARK)
    out = xr.Dataset(
        {
            k: (dims, np.stack([r[k] for r in results]))
            for k, dims in (
                ("classopt_map", cm + (V.BIN,)),
                ("classopt_active_bins", cm),
                ("classopt_flagged", cm),
                ("saliency", cm + (V.BIN,)),
                ("integrated_gradients", cm + (V.BIN,)),
                ("feature_map_bin", (V.CELL, V.BIN)),
            )
        },
        coords=coords,
    )
    from chromestore.analysis.interpret import pair_counts

    out["classopt_pair_count"] = pair_counts(out["classopt_flagged"])
    out.attrs["interpreted_model"] = model
    return out


def _store_gene_index(store, storage_options):

    return open_store(store, storage_options).indexes[V.GENE]
