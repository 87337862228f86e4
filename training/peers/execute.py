"""Run ``arrays`` models on a store: one Dask task per (model, epigenome), or per part of one.

Every task opens the store itself and reads only its epigenome's block (streaming
reads, as the trainer does), calls the entry's ``fit_cell`` for every split repeat and
returns plain numpy results (:mod:`chromestore.training.peers.cells`); an entry with a
``fan_out`` reads the block once and fits it in parts (``svm-bin``: bins). :func:`run_peers`
builds the run from the results and the entries' extra specs
(:func:`chromestore.runs.create_run_dataset`), writes it into the store and the fitted
models with it as one unit (:class:`chromestore.runs.RunWriter`: safetensors files, no
pickle). Nothing here names a model: what differs between models is in their registry
entries.

Examples
--------
>>> run = run_peers("sim.zarr", "peers", ["shallowchrome", "rf-bestbin"])  # doctest: +SKIP
>>> run.prediction.sizes  # doctest: +SKIP
Frozen({'model': 2, 'cell': 56, 'repeat': 1, 'gene': 19802})
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import dask
import numpy as np
import xarray as xr

from chromestore import runs as R
from chromestore import variables as V
from chromestore.bins import WindowLayout
from chromestore.labels import compute_labels
from chromestore.splits import assign_splits
from chromestore.store import select_cells
from chromestore.store.dataset import open_store
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.entry import ArraysModel
from chromestore.training.peers.cells import cell_data, scatter, stack_cells
from chromestore.training.request import TrainRequest, validation_summary


def _gene_outputs(entry: ArraysModel) -> dict[str, bool]:
    """Outputs with a gene axis (to put back among all genes) → whether per repeat."""
    out = {"prediction": True}
    for spec in entry.extras:
        if V.GENE in spec.dims:
            out[spec.name.removeprefix(entry.prefix)] = V.REPEAT in spec.dims
    return out


def _cell_task(
    fit,
    reads,
    gene_outputs,
    store,
    cell,
    genes,
    label,
    valid,
    split,
    hp,
    seed,
    expression,
    storage_options,
    layout,
):
    """One (model, cell) task: read, keep genes with signal and a label, fit, put back."""
    data = cell_data(
        store, cell, genes, label, valid, split, expression, reads, storage_options, layout
    )
    return scatter(fit(data, hp, seed), data.keep, gene_outputs)


def _collect_task(collect, gene_outputs, parts, data, hp):
    return scatter(collect(parts, data, hp), data.keep, gene_outputs)


def _tasks(entry, store, cells, gidx, label, valid, expr, split, layout, hp, seed, so) -> list:
    """The delayed result of each epigenome."""
    outputs = _gene_outputs(entry)
    n_bins = layout.n_bins
    out = []
    for ci, c in enumerate(cells):
        args = (store, c, gidx, label[ci], valid[ci], split)
        if entry.fan_out is None:
            out.append(
                dask.delayed(_cell_task)(
                    entry.fit_cell, entry.reads, outputs, *args, hp, seed, expr[ci], so, layout
                )
            )
            continue
        data = dask.delayed(cell_data)(*args, expr[ci], entry.reads, so, layout)
        size = entry.fan_out.size
        parts = [
            dask.delayed(entry.fan_out.fit)(data, range(b, min(b + size, n_bins)), hp)
            for b in range(0, n_bins, size)
        ]
        out.append(dask.delayed(_collect_task)(entry.fan_out.collect, outputs, parts, data, hp))
    return out


def run_peers(
    store: str | os.PathLike,
    name: str,
    models: Sequence[str],
    cells: Sequence[str] | str = "all",
    *,
    genes: Sequence[str] | None = None,
    split_scheme: str = "random",
    seed: int = 0,
    label_rule: str | float = "median",
    hyper: dict | None = None,
    storage_options: dict | None = None,
    write: bool = True,
    existing: str = "refuse",
    normalise: str = "none",
) -> xr.Dataset:
    """Fit ``arrays`` ``models`` on ``cells`` of ``store`` as Dask tasks and write ``runs/NAME``.

    Labels (``label_rule``) are computed on all the store's genes; the run then keeps
    ``genes`` (all by default), split with ``split_scheme`` and ``seed`` among them.
    A gene whose signal is missing in an epigenome is ``excluded`` there (never fitted,
    prediction NaN). ``hyper`` overrides a model's registered defaults. Tasks go to the
    active ``distributed`` client if there is one (see
    :func:`chromestore.app.cluster.connect`), else to Dask's local scheduler. Returns the
    run as built (loaded). ``existing``: what to do when run ``name`` exists (``refuse``,
    ``overwrite`` or ``add``: :class:`chromestore.runs.RunWriter`), decided before the
    models are fitted; run and weights are then written as one unit.
    """
    if not write:
        return _run_peers(store, name, models, cells, genes, split_scheme, seed, label_rule,
                          hyper, storage_options, None)  # fmt: skip
    with R.RunWriter(
        store, name, existing=existing, storage_options=storage_options, normalise=normalise
    ) as writer:
        writer.expect(models, split_scheme=split_scheme, seed=seed, label_rule=label_rule)
        run = _run_peers(store, name, models, cells, genes, split_scheme, seed, label_rule,
                         hyper, storage_options, writer)  # fmt: skip
        writer.commit(run)
    return run


def _run_peers(
    store, name, models, cells, genes, split_scheme, seed, label_rule, hyper, storage_options,
    writer,
) -> xr.Dataset:  # fmt: skip
    t0 = time.time()
    store = os.fspath(store)
    entries = [registry.find(m) for m in models]
    if not all(isinstance(e, ArraysModel) for e in entries):
        unknown = [
            m for m, e in zip(models, entries, strict=True) if not isinstance(e, ArraysModel)
        ]
        have = sorted(e.name for e in registry.entries() if isinstance(e, ArraysModel))
        raise ValueError(f"unknown peer model(s) {unknown}; choose from {have}")
    if any(e.task != "classification" for e in entries):
        raise ValueError(
            "the peer executor fits classifiers; "
            f"{[e.name for e in entries if e.task != 'classification']} are not"
        )
    hyper = hyper or {}
    hp = {e.name: {**e.defaults, **hyper.get(e.name, {})} for e in entries}
    ds = open_store(store, storage_options)
    cells = select_cells(cells, ds[V.CELL].values.astype(object).tolist())
    ds = compute_labels(ds.sel({V.CELL: list(cells)}), label_rule)
    gene_names = ds[V.GENE].values.astype(object)
    gidx = slice(None)  # all genes: contiguous reads, no fancy indexing
    if genes is not None:
        pos = {g: i for i, g in enumerate(gene_names)}
        absent = [g for g in genes if g not in pos]
        if absent:
            raise ValueError(f"{len(absent)} genes not in the store, e.g. {absent[:3]}")
        picked = np.array([pos[g] for g in genes], dtype=np.int64)
        if not np.array_equal(picked, np.arange(len(gene_names))):
            gidx = picked
        ds = ds.isel({V.GENE: gidx})
    ds = assign_splits(ds, split_scheme, seed=seed)
    layout = WindowLayout.of(ds)
    label, valid, expr, split = dask.compute(
        ds["label"], ds["label_valid"], ds[V.expression.name], ds["split"]
    )
    label, valid, expr = label.values, valid.values, expr.values
    split = split.values.astype(np.int8)
    tasks = {
        e.name: _tasks(
            e,
            store,
            list(cells),
            gidx,
            label,
            valid,
            expr,
            split,
            layout,
            hp[e.name],
            seed,
            storage_options,
        )
        for e in entries
    }
    flat = dask.compute(*[t for m in tasks.values() for t in m])
    results = {m: list(flat[i * len(cells) : (i + 1) * len(cells)]) for i, m in enumerate(tasks)}
    run = assemble(entries, results, list(cells), ds, label, valid, split)
    run.attrs.update(
        R.run_attrs(
            task="classification",
            models={e.name: {"paper": e.paper, **hp[e.name]} for e in entries},
            split_scheme=split_scheme,
            seed=seed,
            label_rule=label_rule,
            packages=("scikit-learn", "numpy", "xarray", *registry.plugin_packages(models)),
            wall_seconds={e.name: time.time() - t0 for e in entries},
            mode="peers",
            device="cpu",
        )
    )
    for e in entries:
        for what in dict.fromkeys(k for res in results[e.name] for k in res.get("attrs", {})):
            run.attrs[e.prefix + what] = sorted({res["attrs"][what] for res in results[e.name]})
    if writer is not None:
        save_weights(entries, results, list(cells), writer)
    return run


def _history(res: dict, n_repeats: int, n_epochs: int) -> tuple[np.ndarray, ...]:
    """``history_loss``, ``history_valid_auc`` (repeat, epoch) and ``best_epoch`` (repeat,)."""
    loss = np.full((n_repeats, n_epochs), np.nan, np.float32)
    valid = np.full((n_repeats, n_epochs), np.nan, np.float32)
    best = np.zeros(n_repeats, np.int16)
    if "history_loss" in res:
        for r in range(n_repeats):
            n = len(res["history_loss"][r])
            loss[r, :n] = res["history_loss"][r]
            valid[r, :n] = res["history_valid_auc"][r]
            best[r] = res["best_epoch"][r]
    else:
        loss[:, 0] = res.get("loss", np.nan)
        valid[:, 0] = res["valid_auc"]
    return loss, valid, best


def assemble(
    entries, results: dict, cells: list[str], ds: xr.Dataset, label, valid, split
) -> xr.Dataset:
    """The run Dataset of the per-(model, cell) results, extras laid out by the entries' specs."""
    n_repeats = split.shape[0]
    n_epochs = max(
        [1] + [len(h) for m in results for res in results[m] for h in res.get("history_loss", [])]
    )
    histories = [[_history(res, n_repeats, n_epochs) for res in results[e.name]] for e in entries]
    excluded = np.ones(label.shape, bool)
    # each model's own genes: the split where it kept the gene (signal and a label)
    model_split = np.full((len(entries), len(cells), *split.shape), -1, np.int8)
    for m, e in enumerate(entries):
        for ci, res in enumerate(results[e.name]):
            excluded[ci] &= ~res["keep"]
            model_split[m, ci][:, res["keep"]] = split[:, res["keep"]]
    extras = {}
    for e in entries:
        for spec in e.extras:
            extras[spec] = stack_cells(
                results[e.name], spec.name.removeprefix(e.prefix), spec.dtype
            )
    return R.create_run_dataset(
        models=[e.name for e in entries],
        cells=cells,
        genes=ds[V.GENE].values.astype(object),
        prediction=np.stack(
            [stack_cells(results[e.name], "prediction", np.float32) for e in entries]
        ),
        target=np.where(valid, label.astype(np.float32), np.nan),
        split=split,
        history_loss=[[h[0] for h in hs] for hs in histories],
        history_valid_auc=[[h[1] for h in hs] for hs in histories],
        best_epoch=[[h[2] for h in hs] for hs in histories],
        excluded=excluded,
        model_split=model_split,
        extras=extras,
        coords={V.MARK: ds[V.MARK].values.astype(object), V.BIN: np.arange(ds.sizes[V.BIN])},
    )


def save_weights(entries, results: dict, cells: list[str], writer: R.RunWriter) -> list[str]:
    """The fitted models, into the run writer's folder: ``<model>/<cell>/<repeat>.safetensors``
    (safetensors; objects through the entry's ArrayCodec, never a pickle)."""
    written = []
    for e in entries:
        for c, res in zip(cells, results[e.name], strict=True):
            for r, w in enumerate(res.get("weights", [])):
                written.append(W.save(writer.weights_target(e.name, c, r), w, e))
    return written


# --- the runner of kind "arrays" (chromestore.training.request) ---------------------------
def plan(request: TrainRequest, cluster: bool) -> tuple[TrainRequest, bool]:
    """Dask tasks on the given cluster, if any, else in this process."""
    return request, False


def run(request: TrainRequest, client=None) -> str:
    """Fit the model as ``request`` says (:meth:`TrainRequest.hyperparameters`); the summary."""
    ds = run_peers(
        request.store,
        request.run,
        [request.model],
        request.cells,
        split_scheme=request.split,
        seed=request.seed,
        hyper={request.model: request.hyperparameters()},
        storage_options=request.storage_options,
        existing=request.existing,
        normalise=request.setting("normalise") or "none",
    )
    return validation_summary(ds, request, f"{request.model} on {ds.sizes['cell']} epigenome(s)")
