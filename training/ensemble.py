"""Fit the (cell, repeat) models of some epigenomes as one stacked ensemble on one device.

:func:`fit_group` stacks the models (the entry's ``stacked``, e.g.
:class:`chromestore.training.models.StackedDeepChrome`: im2col + batched matmuls; else
:class:`chromestore.training.stacking.StackedModules`), steps them with a masked
per-model Adam and streams batches from a :class:`chromestore.training.loader.ChunkLoader`.
``config.steps`` says how the forward/backward runs: batched over the models (``stacked``,
a GPU's way) or one model after another on the same stacked tensors (``per-model``, a CPU
core's way; ``auto`` picks by device). Each model keeps the weights of its
best-validation-AUC epoch and stops after ``patience`` epochs without improvement. A
checkpoint is written beside the run every ``config.checkpoint_every`` seconds (at most once an epoch), so an
interrupted group resumes from its last saved epoch. Initial
weights, batches and dropout masks come from per-model seeds, so a model trains the same
whatever group it is in.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from chromestore import runs as R
from chromestore import variables as V
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.config import TrainConfig, resolve_device, resolve_steps, torch_threads
from chromestore.training.loader import ChunkLoader, cell_key
from chromestore.training.optim import MaskedAdam
from chromestore.training.scoring import auc

#: Below this many samples per matmul (models × batch stacked, batch per model) one intra-op thread is faster on
#: CPU: OpenMP's barriers cost more than the small matmuls gain (measured here, 2 cores:
#: 1 model × batch 16, 29 ms/step on 1 thread vs 970 ms on 2 when the cores are shared).
SMALL_STEP = 2048
#: Checkpoint entries kept as numpy arrays (stored as tensors: no pickles in the file).
_ARRAYS = ("best_auc", "best_epoch", "since", "hist_loss", "hist_auc")


def init_models(
    entry: registry.ModelEntry,
    models: Sequence[tuple[str, int]],
    seed: int,
    n_marks: int,
    n_bins: int,
    hparams: dict,
) -> list[torch.nn.Module]:
    """One freshly initialised model per (cell, repeat), each from its own seed."""
    out = []
    for cell, repeat in models:
        torch.manual_seed(
            int(np.random.default_rng([seed, cell_key(cell), repeat]).integers(2**62))
        )
        out.append(entry.build(n_marks=n_marks, n_bins=n_bins, **hparams))
    return out


def stack(entry: registry.ModelEntry, models: list[torch.nn.Module]) -> torch.nn.Module:
    """The entry's stacked module of ``models``, or the generic one."""
    if entry.stacked is not None:
        return entry.stacked(models)
    from chromestore.training.stacking import StackedModules

    return StackedModules(models)


def _to(x: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(x)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def _autocast(precision: str, device: torch.device):
    """bfloat16 autocast for ``bf16``, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _predict(
    net, loader: ChunkLoader, codes, batch_size: int, device, labelled=True, precision: str = "fp32"
) -> np.ndarray:
    """Class-1 probabilities (M, genes), NaN outside ``codes``."""
    out = np.full((len(loader.models), loader.n_genes), np.nan, np.float32)
    net.eval()
    with torch.no_grad(), _autocast(precision, device):
        for b in loader.eval_batches(codes, batch_size, labelled):
            logits = net(_to(b.x, device)).float()
            prob = torch.softmax(logits, -1)[..., 1].cpu().numpy()
            m, j = np.nonzero(b.gene >= 0)
            out[m, b.gene[m, j]] = prob[m, j]
    return out


def _valid_aucs(loader: ChunkLoader, prob: np.ndarray) -> np.ndarray:
    aucs = np.full(len(loader.models), np.nan)
    for m, (c, _) in enumerate(loader.models):
        idx = loader.indices(m, V.VALID)
        aucs[m] = auc(loader.target[loader.cells.index(c), idx], prob[m, idx])
    return aucs


def checkpoint_tag(cells: Sequence[str]) -> str:
    """The name of a group's checkpoint: a hash of its cells."""
    return hashlib.sha1(",".join(cells).encode()).hexdigest()[:12]


def _save_checkpoint(target, state: dict) -> None:
    state = {
        k: torch.from_numpy(np.ascontiguousarray(v)) if k in _ARRAYS else v
        for k, v in state.items()
    }
    W.write_bytes(target, W.TORCH.dump(state))


def _load_checkpoint(target) -> dict | None:
    data = W.read_bytes(target)
    if data is None:
        return None
    state = W.TORCH.load(data)
    return {k: v.numpy() if k in _ARRAYS else v for k, v in state.items()}


class _Clock:
    """Seconds spent per stage, summed over the laps of each name."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._t
        self._t = now


def fit_group(
    store: str,
    cells: Sequence[str],
    config: TrainConfig,
    run: str | None = None,
    device: str = "cpu",
    storage_options: dict | None = None,
    progress: Callable[[int, np.ndarray], None] | None = None,
    stop_after: int | None = None,
    threads: int | None = None,
    zarr_store=None,
) -> dict:
    """Train the (cell, repeat) models of ``cells`` as one stacked ensemble.

    Returns plain numpy results (picklable, for Dask): ``prediction`` (M, genes) on the
    valid and test genes with the best epoch's weights, ``history_loss`` and
    ``history_valid_auc`` (M, epochs), ``best_epoch`` (M,), ``target``/``excluded``
    (cells, genes), ``split`` (repeat, genes), ``models`` [(cell, repeat)], and
    ``epochs_run``. With ``run`` it checkpoints every epoch and saves the best
    weights under ``runs/RUN/weights/<model>/<cell>/<repeat>.pt``. ``stop_after``
    stops after that many epochs of this call (to test resuming).
    """
    dev = resolve_device(device)
    steps = resolve_steps(config.steps, dev)
    per_step = config.batch_size * (len(cells) if steps == "stacked" else 1)
    if not threads and dev.type == "cpu" and per_step < SMALL_STEP:
        threads = 1
    with torch_threads(threads):
        return _fit_group(
            store, cells, config, run, dev, storage_options, progress, stop_after, zarr_store
        )


def _fit_group(
    store, cells, config, run, dev, storage_options, progress, stop_after, zarr_store
) -> dict:
    entry = registry.get(config.model)
    if entry.kind != "torch":
        raise ValueError(f"model {config.model!r} is of kind {entry.kind!r}, not a torch network")
    t0 = time.perf_counter()
    clock = _Clock()
    loader = ChunkLoader(
        store,
        cells,
        split=config.split,
        seed=config.seed,
        label_rule=config.label_rule,
        transform=config.transform,
        storage_options=storage_options,
        memory_budget=config.memory_budget,
        zarr_store=zarr_store,
        split_over=config.split_over,
    )
    n_models = len(loader.models)
    clock.lap("load")
    if (loader.n_train() == 0).any():
        empty = sorted({loader.models[m][0] for m in np.flatnonzero(loader.n_train() == 0)})
        raise ValueError(f"cells {empty} have no training genes with signal and a label")
    hp = {**entry.defaults, **config.hparams}
    net = stack(
        entry,
        init_models(
            entry, loader.models, config.seed, loader.n_marks, loader.n_bins, config.hparams
        ),
    ).to(dev)
    # per-model steps where the stacked module offers them (DeepChrome's does)
    net.per_model = resolve_steps(config.steps, dev) == "per-model" and hasattr(net, "per_model")
    params = list(net.parameters())
    opt = MaskedAdam(params, config.lr, n_models)
    best = [p.detach().clone() for p in params]
    best_auc = np.full(n_models, -np.inf)
    best_epoch = np.full(n_models, -1, np.int16)
    since_best = np.zeros(n_models, np.int64)
    hist_loss = np.full((n_models, config.epochs), np.nan, np.float32)
    hist_auc = np.full((n_models, config.epochs), np.nan, np.float32)
    # each model's validation predictions at its best epoch (reused for the result)
    best_valid = np.full((n_models, loader.n_genes), np.nan, np.float32)
    start = 0
    ckpt = (
        R.checkpoint_store(store, run, config.model, checkpoint_tag(cells), storage_options)
        if run
        else None
    )
    if run:
        R.ensure_runs_group(store, storage_options)
    have_ckpt = False
    if ckpt and (state := _load_checkpoint(ckpt)) is not None:
        have_ckpt = True
        if state["config"] != config.key():
            raise ValueError(
                f"checkpoint {ckpt.url} was written with other settings; "
                "remove it or use another run name"
            )
        with torch.no_grad():
            for p, s, b, sb in zip(params, state["params"], best, state["best"], strict=True):
                p.copy_(s)
                b.copy_(sb)
        opt.load(state["opt"])
        best_auc, best_epoch, since_best = state["best_auc"], state["best_epoch"], state["since"]
        hist_loss, hist_auc, start = state["hist_loss"], state["hist_auc"], state["epoch"] + 1
    p_drop = float(hp.get("dropout", 0.0))
    n_flat = getattr(net, "n_flat", None)
    done = start
    clock.lap("init")
    saved_at = time.perf_counter()
    eval_batch = max(config.batch_size * 4, 1024)
    for epoch in range(start, config.epochs):
        running = since_best < (config.patience or 10**9)
        if not running.any():
            break
        gens = []
        for c, r in loader.models:
            g = torch.Generator(device=dev)
            g.manual_seed(
                int(np.random.default_rng([config.seed, cell_key(c), r, epoch, 1]).integers(2**62))
            )
            gens.append(g)
        net.train()
        loss_sum, n_steps = np.zeros(n_models), np.zeros(n_models)
        for b in loader.train_batches(epoch, config.batch_size):
            active = torch.from_numpy(b.active & running)
            if not active.any():
                continue
            x, y, w = (_to(a, dev) for a in (b.x, b.y, b.weight))
            masks = None
            if p_drop > 0 and n_flat:
                masks = torch.zeros(n_models, config.batch_size, n_flat, device=dev)
                for m in np.flatnonzero(active.numpy()):
                    keep = torch.rand(config.batch_size, n_flat, generator=gens[m], device=dev)
                    masks[m] = (keep >= p_drop).float() / (1 - p_drop)
            with _autocast(config.precision, dev):
                logits = net(x, masks, active.to(dev)) if net.per_model else net(x, masks)
            per = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none"
            ).view_as(w)
            per_model = (per * w * active.to(dev).view(-1, 1)).sum(1)
            per_model.sum().backward()
            opt.step(active.to(dev))
            act = active.numpy()
            loss_sum[act] += per_model.detach().cpu().numpy()[act]
            n_steps[act] += 1
        clock.lap("train steps")
        prob = _predict(
            net, loader, (V.VALID,), eval_batch, dev, labelled=False, precision=config.precision
        )
        aucs = _valid_aucs(loader, prob)
        clock.lap("validation")
        hist_loss[running, epoch] = (loss_sum / np.maximum(n_steps, 1))[running]
        hist_auc[running, epoch] = aucs[running]
        better = running & (np.nan_to_num(aucs, nan=-1.0) > best_auc)
        since_best[running & ~better] += 1
        since_best[better] = 0
        best_auc[better] = aucs[better]
        best_epoch[better] = epoch
        best_valid[better] = prob[better]
        if better.any():
            sel = torch.from_numpy(better).to(dev)
            with torch.no_grad():
                for p, bp in zip(params, best, strict=True):
                    bp.copy_(torch.where(sel.view((-1,) + (1,) * (p.dim() - 1)), p, bp))
        done = epoch + 1
        stopping = stop_after is not None and done - start >= stop_after
        last = done >= config.epochs or not (since_best < (config.patience or 10**9)).any()
        due = time.perf_counter() - saved_at >= config.checkpoint_every
        # the last epoch is saved only over an older checkpoint (no stale one is left)
        if ckpt and (stopping or (due and not last) or (last and have_ckpt)):
            saved_at, have_ckpt = time.perf_counter(), True
            _save_checkpoint(
                ckpt,
                {
                    "config": config.key(),
                    "epoch": epoch,
                    "params": [p.detach().cpu() for p in params],
                    "best": [b.cpu() for b in best],
                    "opt": {
                        k: ([t.cpu() for t in v] if isinstance(v, list) else v)
                        for k, v in opt.state().items()
                    },
                    "best_auc": best_auc,
                    "best_epoch": best_epoch,
                    "since": since_best,
                    "hist_loss": hist_loss,
                    "hist_auc": hist_auc,
                },
            )
        clock.lap("checkpoints")
        if progress:
            progress(epoch, aucs)
        if stopping:
            break
    with torch.no_grad():
        for p, bp in zip(params, best, strict=True):
            p.copy_(bp)
    clock.lap("other")
    if start > 0 or (best_epoch < 0).any():
        # resumed (earlier epochs' validation predictions are not kept) or a model never
        # scored: predict the validation genes again with the best weights
        prediction = _predict(
            net,
            loader,
            (V.VALID, V.TEST),
            eval_batch,
            dev,
            labelled=False,
            precision=config.precision,
        )
    else:
        # the validation genes' predictions of the best epoch are those weights' own
        prediction = _predict(
            net, loader, (V.TEST,), eval_batch, dev, labelled=False, precision=config.precision
        )
        valid = np.isnan(prediction) & ~np.isnan(best_valid)
        prediction[valid] = best_valid[valid]
    clock.lap("prediction")
    finished = done >= config.epochs or not (since_best < (config.patience or 10**9)).any()
    if run and finished:
        for m, (c, r) in enumerate(loader.models):
            W.save_weights(
                store,
                run,
                config.model,
                c,
                r,
                {
                    "model": config.model,
                    "hparams": hp,
                    "n_marks": loader.n_marks,
                    "n_bins": loader.n_bins,
                    "transform": config.transform,
                    "best_epoch": int(best_epoch[m]),
                    "state_dict": net.state_dict_of(m),
                },
                entry.codec,
                storage_options,
            )
    clock.lap("weights")
    return {
        "models": loader.models,
        "cells": loader.cells,
        "prediction": prediction,
        "history_loss": hist_loss,
        "history_valid_auc": hist_auc,
        "best_epoch": best_epoch,
        "target": loader.target,
        "excluded": loader.excluded,
        "split": loader.split,
        "split_attrs": loader.split_attrs,
        "genes": loader.genes,
        "epochs_run": done,
        "finished": finished,
        "seconds": time.perf_counter() - t0,
        "timings": clock.laps,
        "excluded_report": loader.exclusion_report(),
        "device": str(dev),
        "n_repeats": loader.n_repeats,
    }
