"""Fit the (cell, repeat) models of some epigenomes as one stacked ensemble on one device.

:func:`fit_group` stacks the models (the entry's ``stacked``, e.g.
:class:`chromestore.training.models.StackedDeepChrome`: im2col + batched matmuls; else
:class:`chromestore.training.stacking.StackedModules`), steps them with a masked
per-model Adam and streams batches from a :class:`chromestore.training.loader.ChunkLoader`.
``config.steps`` says how the forward/backward runs: batched over the models (``stacked``,
a GPU's way) or one model after another on the same stacked tensors (``per-model``, a CPU
core's way; ``auto`` picks by device). The epochs run in
:class:`chromestore.training.fitting.EpochLoop` (these models' hooks: :class:`_Stacked`):
each model keeps the weights of its best-validation-AUC epoch and stops after
``patience`` epochs without improvement, and a checkpoint is written beside the run
every ``config.checkpoint_every`` seconds (at most once an epoch), so an interrupted
group resumes from its last saved epoch. Initial weights, batches and dropout masks come
from per-model seeds, so a model trains the same whatever group it is in.
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
from chromestore.store import Store
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.config import TrainConfig, resolve_device, resolve_steps, torch_threads
from chromestore.training.fitting import Checkpoint, EpochLoop, StackedBest
from chromestore.training.loader import ChunkLoader, cell_key
from chromestore.training.optim import MaskedAdam
from chromestore.training.scoring import auc

#: Below this many samples per matmul (models × batch stacked, batch per model) one intra-op thread is faster on
#: CPU: OpenMP's barriers cost more than the small matmuls gain (measured here, 2 cores:
#: 1 model × batch 16, 29 ms/step on 1 thread vs 970 ms on 2 when the cores are shared).
SMALL_STEP = 2048


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
    net,
    loader: ChunkLoader,
    codes,
    batch_size: int,
    device,
    labelled=True,
    precision: str = "fp32",
    models: np.ndarray | None = None,
) -> np.ndarray:
    """Class-1 probabilities (M, genes), NaN outside ``codes`` and for the models not in
    ``models`` ((M,) bool; all by default): those are not evaluated where the network
    steps its models one at a time."""
    out = np.full((len(loader.models), loader.n_genes), np.nan, np.float32)
    active = None
    if models is not None and getattr(net, "per_model", False):
        active = torch.from_numpy(np.asarray(models, bool)).to(device)
    net.eval()
    with torch.no_grad(), _autocast(precision, device):
        for b in loader.eval_batches(codes, batch_size, labelled, models=models):
            x = _to(b.x, device)
            logits = (net(x) if active is None else net(x, None, active)).float()
            prob = torch.softmax(logits, -1)[..., 1].cpu().numpy()
            m, j = np.nonzero(b.gene >= 0)
            out[m, b.gene[m, j]] = prob[m, j]
    return out


def _valid_aucs(
    loader: ChunkLoader, prob: np.ndarray, models: np.ndarray | None = None
) -> np.ndarray:
    """(M,) validation AUROC of each model in ``models`` (all by default), NaN elsewhere."""
    aucs = np.full(len(loader.models), np.nan)
    for m, (c, _) in enumerate(loader.models):
        if models is not None and not models[m]:
            continue
        idx = loader.indices(m, V.VALID)
        aucs[m] = auc(loader.target[loader.cells.index(c), idx], prob[m, idx])
    return aucs


def checkpoint_tag(cells: Sequence[str]) -> str:
    """The name of a group's checkpoint: a hash of its cells."""
    return hashlib.sha1(",".join(cells).encode()).hexdigest()[:12]


class _Clock:
    """Seconds spent per stage, summed over the laps of each name."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._t
        self._t = now


class _Stacked(StackedBest):
    """The loop's hooks (:mod:`chromestore.training.fitting`) for a stacked ensemble.

    Every epoch each model draws its dropout masks from its own generator, seeded by
    (seed, cell, repeat, epoch), and steps on the loader's batches under a masked
    per-model Adam; a model stopped early is masked out of every step.
    """

    def __init__(self, entry, loader: ChunkLoader, config: TrainConfig, dev, clock) -> None:
        self.loader, self.config, self.dev, self.clock = loader, config, dev, clock
        self.hparams = {**entry.defaults, **config.hparams}
        models = init_models(
            entry, loader.models, config.seed, loader.n_marks, loader.n_bins, config.hparams
        )
        self.net = stack(entry, models).to(dev)
        # per-model steps where the stacked module offers them (DeepChrome's does)
        self.net.per_model = resolve_steps(config.steps, dev) == "per-model" and hasattr(
            self.net, "per_model"
        )
        self.params = list(self.net.parameters())
        self.opt = MaskedAdam(self.params, config.lr, len(loader.models))
        self.best = [p.detach().clone() for p in self.params]
        # evaluation batches: large on a GPU; on a CPU core 256 genes at a time is the
        # fastest (6,601 genes: 0.29 s at 256, 0.37 s at 1,024; the same probabilities)
        self.eval_batch = max(config.batch_size * 4, 1024) if dev.type == "cuda" else 256

    def predict(self, codes, models: np.ndarray | None = None) -> np.ndarray:
        """Class-1 probabilities (M, genes) of the genes of split ``codes``, NaN elsewhere
        (and for the models not in ``models``, when given)."""
        return _predict(
            self.net,
            self.loader,
            codes,
            self.eval_batch,
            self.dev,
            labelled=False,
            precision=self.config.precision,
            models=models,
        )

    def _generators(self, epoch: int) -> list[torch.Generator]:
        gens = []
        for c, r in self.loader.models:
            g = torch.Generator(device=self.dev)
            seed = [self.config.seed, cell_key(c), r, epoch, 1]
            g.manual_seed(int(np.random.default_rng(seed).integers(2**62)))
            gens.append(g)
        return gens

    def train_epoch(self, epoch: int, running: np.ndarray) -> np.ndarray:
        net, dev, batch_size = self.net, self.dev, self.config.batch_size
        n_models = len(self.loader.models)
        p_drop = float(self.hparams.get("dropout", 0.0))
        n_flat = getattr(net, "n_flat", None)
        gens = self._generators(epoch)
        net.train()
        loss_sum, n_steps = np.zeros(n_models), np.zeros(n_models)
        # the models stopped early get no batches (a model's batches do not depend on
        # which others are served)
        for b in self.loader.train_batches(epoch, batch_size, models=running):
            active = torch.from_numpy(b.active & running)
            if not active.any():
                continue
            x, y, w = (_to(a, dev) for a in (b.x, b.y, b.weight))
            masks = None
            if p_drop > 0 and n_flat:
                # one model at a time reads only its own active rows; the batched pass
                # reads every row, so there the inactive ones must be defined (zeros)
                alloc = torch.empty if net.per_model else torch.zeros
                masks = alloc(n_models, batch_size, n_flat, device=dev)
                for m in np.flatnonzero(active.numpy()):
                    keep = torch.rand(batch_size, n_flat, generator=gens[m], device=dev)
                    masks[m] = (keep >= p_drop).float() / (1 - p_drop)
            with _autocast(self.config.precision, dev):
                logits = net(x, masks, active.to(dev)) if net.per_model else net(x, masks)
            per = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none"
            ).view_as(w)
            per_model = (per * w * active.to(dev).view(-1, 1)).sum(1)
            per_model.sum().backward()
            self.opt.step(active.to(dev))
            act = active.numpy()
            loss_sum[act] += per_model.detach().cpu().numpy()[act]
            n_steps[act] += 1
        self.clock.lap("train steps")
        return loss_sum / np.maximum(n_steps, 1)

    def validate(self, epoch: int, running: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the models stopped early are neither evaluated nor scored (NaN)
        prob = self.predict((V.VALID,), models=running)
        aucs = _valid_aucs(self.loader, prob, running)
        self.clock.lap("validation")
        return aucs, prob

    def state(self) -> dict:
        opt = {
            k: ([t.cpu() for t in v] if isinstance(v, list) else v)
            for k, v in self.opt.state().items()
        }
        return {
            "params": [p.detach().cpu() for p in self.params],
            "best": [b.cpu() for b in self.best],
            "opt": opt,
        }

    def load_state(self, state: dict) -> None:
        with torch.no_grad():
            for p, s, b, sb in zip(
                self.params, state["params"], self.best, state["best"], strict=True
            ):
                p.copy_(s)
                b.copy_(sb)
        self.opt.load(state["opt"])


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
    weights_to: Store | None = None,
) -> dict:
    """Train the (cell, repeat) models of ``cells`` as one stacked ensemble.

    Returns plain numpy results (picklable, for Dask): ``prediction`` (M, genes) on the
    valid and test genes with the best epoch's weights, ``history_loss`` and
    ``history_valid_auc`` (M, epochs), ``best_epoch`` (M,), ``target``/``excluded``
    (cells, genes), ``split`` (repeat, genes), ``models`` [(cell, repeat)], and
    ``epochs_run``. With ``run`` it checkpoints (``STORE.weights/RUN/.checkpoints``);
    with ``weights_to`` (a :class:`chromestore.runs.RunWriter`'s private folder) it writes
    the best weights of each model there, ``<model>/<cell>/<repeat>.safetensors``, once
    the training finished. ``stop_after`` stops after that many epochs of this call (to
    test resuming).
    """
    dev = resolve_device(device)
    steps = resolve_steps(config.steps, dev)
    per_step = config.batch_size * (len(cells) if steps == "stacked" else 1)
    if not threads and dev.type == "cpu" and per_step < SMALL_STEP:
        threads = 1
    with torch_threads(threads):
        return _fit_group(
            store,
            cells,
            config,
            run=run,
            dev=dev,
            storage_options=storage_options,
            progress=progress,
            stop_after=stop_after,
            zarr_store=zarr_store,
            weights_to=weights_to,
        )


def _fit_group(
    store, cells, config, *, run, dev, storage_options, progress, stop_after, zarr_store, weights_to
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
    clock.lap("load")
    if (loader.n_train() == 0).any():
        empty = sorted({loader.models[m][0] for m in np.flatnonzero(loader.n_train() == 0)})
        raise ValueError(f"cells {empty} have no training genes with signal and a label")
    hooks = _Stacked(entry, loader, config, dev, clock)
    loop = EpochLoop(len(loader.models), config.epochs, patience=config.patience or None)
    checkpoint = None
    if run:
        R.ensure_runs_group(store, storage_options)
        tag = checkpoint_tag(cells)
        target = R.checkpoint_store(store, run, config.model, tag, storage_options)
        checkpoint = Checkpoint(target, config.key(), config.checkpoint_every)
    clock.lap("init")

    def report(epoch: int, aucs: np.ndarray) -> None:
        clock.lap("checkpoints")
        if progress:
            progress(epoch, aucs)

    loop.fit(hooks, checkpoint=checkpoint, stop_after=stop_after, progress=report)
    clock.lap("other")
    if loop.start > 0 or (loop.best_epoch < 0).any():
        # resumed (earlier epochs' validation predictions are not kept) or a model never
        # scored: predict the validation genes again with the best weights
        prediction = hooks.predict((V.VALID, V.TEST))
    else:
        # the validation genes' predictions of the best epoch are those weights' own
        prediction = hooks.predict((V.TEST,))
        valid = np.isnan(prediction) & ~np.isnan(loop.best_prediction)
        prediction[valid] = loop.best_prediction[valid]
    clock.lap("prediction")
    if weights_to is not None and loop.finished:
        for m, (c, r) in enumerate(loader.models):
            weights = {
                "model": config.model,
                "hparams": hooks.hparams,
                "n_marks": loader.n_marks,
                "n_bins": loader.n_bins,
                "transform": config.transform,
                "best_epoch": int(loop.best_epoch[m]),
                "state_dict": hooks.net.state_dict_of(m),
            }
            W.save(weights_to.child(R.weights_key(config.model, c, r)), weights, entry)
    clock.lap("weights")
    return {
        "models": loader.models,
        "cells": loader.cells,
        "prediction": prediction,
        "history_loss": loop.history_loss,
        "history_valid_auc": loop.history_score,
        "best_epoch": loop.best_epoch,
        "target": loader.target,
        "excluded": loader.excluded,
        "split": loader.split,
        "split_attrs": loader.split_attrs,
        "genes": loader.genes,
        "epochs_run": loop.done,
        "finished": loop.finished,
        "seconds": time.perf_counter() - t0,
        "timings": clock.laps,
        "excluded_report": loader.exclusion_report(),
        "device": str(dev),
        "n_repeats": loader.n_repeats,
    }
