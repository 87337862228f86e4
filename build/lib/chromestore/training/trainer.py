"""Fit DeepChrome-style models for many epigenomes at once and write ``runs/NAME``.

:func:`fit_group` trains the (cell, repeat) models of some cells as one stacked
ensemble on one device (:class:`chromestore.training.models.StackedDeepChrome`: im2col + batched
matmuls, a masked per-model Adam), streaming batches from a
:class:`chromestore.training.loader.ChunkLoader`. Each model keeps the weights of its
best-validation-AUC epoch and stops after ``patience`` epochs without improvement. A
checkpoint is written after every epoch beside the run, so an interrupted group
resumes from its last finished epoch.

:func:`train` runs the groups: ``stacked`` (all cells in one group, here), or
``distributed`` (one Dask task per ``group_size`` cells, by default one stacked group per
worker, on the
cluster's workers; GPU workers are picked through the ``GPU`` resource), then writes
the run with :func:`chromestore.runs.write_run`. Initial weights, batches and dropout
masks are drawn from per-model seeds, so a model trains the same whatever group it
is in.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import numpy as np
import torch
import xarray as xr
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

import chromestore
from chromestore import runs as R
from chromestore import variables as V
from chromestore.training import registry
from chromestore.training.loader import ChunkLoader, cell_key

MODES = ("auto", "stacked", "distributed")
DEVICES = ("auto", "cpu", "cuda")
BETAS, EPS = (0.9, 0.999), 1e-8


@dataclass
class TrainConfig:
    """Hyper-parameters and data choices of a training run (recorded in the run)."""

    model: str = "deepchrome"
    split: str = "deepchrome"
    seed: int = 0
    epochs: int = 100
    patience: int | None = 10
    batch_size: int = 128
    lr: float = 1e-3
    transform: str = "raw"
    label_rule: str | float = "median"
    hparams: dict[str, Any] = field(default_factory=dict)
    split_over: str = "all"
    memory_budget: int = 1 << 30

    def key(self) -> str:
        """Fingerprint of everything that changes the result (checkpoints must match it)."""
        d = asdict(self)
        d.pop("memory_budget")
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- devices ------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present else CPU; ``cuda`` without a GPU is an error."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; use one of {DEVICES}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"--device {device} was asked for but no CUDA GPU is available to torch "
            f"{torch.__version__} (torch.cuda.is_available() is False); use --device cpu or auto"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --- the stacked optimiser ---------------------------------------------------------------
class MaskedAdam:
    """Adam (as ``torch.optim.Adam``) over stacked parameters, one step count per model.

    Models not ``active`` in a step keep their parameters and moments unchanged, so a
    model in an ensemble follows exactly the trajectory it would follow alone.
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float, n_models: int) -> None:
        self.params, self.lr = list(params), lr
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = torch.zeros(n_models, dtype=torch.float64)

    def step(self, active: torch.Tensor) -> None:
        b1, b2 = BETAS
        self.t += active.double().cpu()
        t = self.t.clamp(min=1)
        step_size = (self.lr / (1 - b1**t)).float().to(self.params[0].device)
        bc2_sqrt = torch.sqrt(1 - b2**t).float().to(self.params[0].device)
        all_active = bool(active.all())
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                g = p.grad
                shape = (-1,) + (1,) * (p.dim() - 1)
                if all_active:
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(EPS)
                    p.addcdiv_(m * step_size.view(shape), denom, value=-1)
                else:
                    a = active.to(p.device).view(shape)
                    m.copy_(torch.where(a, m * b1 + g * (1 - b1), m))
                    v.copy_(torch.where(a, v * b2 + g * g * (1 - b2), v))
                    denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(EPS)
                    p.copy_(torch.where(a, p - m * step_size.view(shape) / denom, p))
                p.grad = None

    def state(self) -> dict:
        return {"m": self.m, "v": self.v, "t": self.t}

    def load(self, state: dict) -> None:
        for dst, src in zip(self.m + self.v, state["m"] + state["v"], strict=True):
            dst.copy_(src)
        self.t = state["t"].clone()


# --- one group of cells --------------------------------------------------------------------
def init_models(entry: registry.ModelEntry, models: Sequence[tuple[str, int]], seed: int,
                n_marks: int, n_bins: int, hparams: dict) -> list[torch.nn.Module]:
    """One freshly initialised model per (cell, repeat), each from its own seed."""
    out = []
    for cell, repeat in models:
        torch.manual_seed(int(np.random.default_rng([seed, cell_key(cell), repeat]).integers(2**62)))
        out.append(entry.build(n_marks=n_marks, n_bins=n_bins, **hparams))
    return out


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _to(x: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(x)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def _predict(net, loader: ChunkLoader, codes, batch_size: int, device, labelled=True) -> np.ndarray:
    """Class-1 probabilities (M, genes), NaN outside ``codes``."""
    out = np.full((len(loader.models), loader.n_genes), np.nan, np.float32)
    net.eval()
    with torch.no_grad():
        for b in loader.eval_batches(codes, batch_size, labelled):
            prob = torch.softmax(net(_to(b.x, device)), -1)[..., 1].float().cpu().numpy()
            m, j = np.nonzero(b.gene >= 0)
            out[m, b.gene[m, j]] = prob[m, j]
    return out


def _valid_aucs(loader: ChunkLoader, prob: np.ndarray) -> np.ndarray:
    aucs = np.full(len(loader.models), np.nan)
    for m, (c, _) in enumerate(loader.models):
        idx = loader.indices(m, V.VALID)
        aucs[m] = _auc(loader.target[loader.cells.index(c), idx], prob[m, idx])
    return aucs


def _path(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


def _save(obj: Any, url: str, storage_options: dict | None) -> None:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path + ".tmp"
    with fs.open(tmp, "wb") as f:
        f.write(buf.getvalue())
    fs.mv(tmp, path)


def _load(url: str, storage_options: dict | None) -> Any | None:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=False)


def checkpoint_url(store: str, run: str, model: str, cells: Sequence[str]) -> str:
    tag = hashlib.sha1(",".join(cells).encode()).hexdigest()[:12]
    return _path(R.run_path(store, run), "checkpoints", model, f"{tag}.pt")


def weights_url(store: str, run: str, model: str, cell: str, repeat: int) -> str:
    return _path(R.run_path(store, run), "weights", model, cell, f"{repeat}.pt")


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
    previous_threads = torch.get_num_threads()
    try:
        return _fit_group(store, cells, config, run, dev, storage_options, progress, stop_after,
                          threads, zarr_store)
    finally:
        torch.set_num_threads(previous_threads)


#: Below this many samples per step (models × batch) one intra-op thread is faster on
#: CPU: OpenMP's barriers cost more than the small matmuls gain (measured here, 2 cores:
#: 1 model × batch 16, 29 ms/step on 1 thread vs 970 ms on 2 when the cores are shared).
SMALL_STEP = 2048


def _fit_group(store, cells, config, run, dev, storage_options, progress, stop_after, threads,
               zarr_store) -> dict:
    n_cells = len(cells)
    if threads:
        torch.set_num_threads(threads)
    elif dev.type == "cpu" and n_cells * config.batch_size < SMALL_STEP:
        torch.set_num_threads(1)
    entry = registry.get(config.model)
    if entry.kind != "torch" or entry.stacked is None:
        raise ValueError(f"model {config.model!r} has no stacked torch implementation")
    t0 = time.perf_counter()
    loader = ChunkLoader(store, cells, split=config.split, seed=config.seed,
                         label_rule=config.label_rule, transform=config.transform,
                         storage_options=storage_options, memory_budget=config.memory_budget,
                         zarr_store=zarr_store, split_over=config.split_over)
    n_models = len(loader.models)
    if (loader.n_train() == 0).any():
        empty = sorted({loader.models[m][0] for m in np.flatnonzero(loader.n_train() == 0)})
        raise ValueError(f"cells {empty} have no training genes with signal and a label")
    hp = {**entry.defaults, **config.hparams}
    net = entry.stacked(init_models(entry, loader.models, config.seed, loader.n_marks,
                                    loader.n_bins, config.hparams)).to(dev)
    params = list(net.parameters())
    opt = MaskedAdam(params, config.lr, n_models)
    best = [p.detach().clone() for p in params]
    best_auc = np.full(n_models, -np.inf)
    best_epoch = np.full(n_models, -1, np.int16)
    since_best = np.zeros(n_models, np.int64)
    hist_loss = np.full((n_models, config.epochs), np.nan, np.float32)
    hist_auc = np.full((n_models, config.epochs), np.nan, np.float32)
    start = 0
    ckpt = checkpoint_url(store, run, config.model, cells) if run else None
    if run:
        R.ensure_runs_group(store, storage_options)
    if ckpt and (state := _load(ckpt, storage_options)) is not None:
        if state["config"] != config.key():
            raise ValueError(f"checkpoint {ckpt} was written with other settings; "
                             "remove it or use another run name")
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
    for epoch in range(start, config.epochs):
        running = since_best < (config.patience or 10**9)
        if not running.any():
            break
        gens = []
        for c, r in loader.models:
            g = torch.Generator(device=dev)
            g.manual_seed(int(np.random.default_rng([config.seed, cell_key(c), r, epoch, 1])
                              .integers(2**62)))
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
            logits = net(x, masks)
            per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                  reduction="none").view_as(w)
            per_model = (per * w * active.to(dev).view(-1, 1)).sum(1)
            per_model.sum().backward()
            opt.step(active.to(dev))
            act = active.numpy()
            loss_sum[act] += per_model.detach().cpu().numpy()[act]
            n_steps[act] += 1
        prob = _predict(net, loader, (V.VALID,), config.batch_size * 4, dev)
        aucs = _valid_aucs(loader, prob)
        hist_loss[running, epoch] = (loss_sum / np.maximum(n_steps, 1))[running]
        hist_auc[running, epoch] = aucs[running]
        better = running & (np.nan_to_num(aucs, nan=-1.0) > best_auc)
        since_best[running & ~better] += 1
        since_best[better] = 0
        best_auc[better] = aucs[better]
        best_epoch[better] = epoch
        if better.any():
            sel = torch.from_numpy(better).to(dev)
            with torch.no_grad():
                for p, bp in zip(params, best, strict=True):
                    bp.copy_(torch.where(sel.view((-1,) + (1,) * (p.dim() - 1)), p, bp))
        done = epoch + 1
        if ckpt:
            _save({"config": config.key(), "epoch": epoch, "params": [p.detach().cpu() for p in params],
                   "best": [b.cpu() for b in best], "opt": {k: ([t.cpu() for t in v] if isinstance(v, list) else v)
                                                          for k, v in opt.state().items()},
                   "best_auc": best_auc, "best_epoch": best_epoch, "since": since_best,
                   "hist_loss": hist_loss, "hist_auc": hist_auc}, ckpt, storage_options)
        if progress:
            progress(epoch, aucs)
        if stop_after is not None and done - start >= stop_after:
            break
    with torch.no_grad():
        for p, bp in zip(params, best, strict=True):
            p.copy_(bp)
    prediction = _predict(net, loader, (V.VALID, V.TEST), config.batch_size * 4, dev,
                          labelled=False)
    finished = done >= config.epochs or not (since_best < (config.patience or 10**9)).any()
    if run and finished:
        for m, (c, r) in enumerate(loader.models):
            _save({"model": config.model, "hparams": hp, "n_marks": loader.n_marks,
                   "n_bins": loader.n_bins, "transform": config.transform,
                   "best_epoch": int(best_epoch[m]), "state_dict": net.state_dict_of(m)},
                  weights_url(store, run, config.model, c, r), storage_options)
    return {
        "models": loader.models, "cells": loader.cells, "prediction": prediction,
        "history_loss": hist_loss, "history_valid_auc": hist_auc, "best_epoch": best_epoch,
        "target": loader.target, "excluded": loader.excluded, "split": loader.split,
        "split_attrs": loader.split_attrs, "genes": loader.genes, "epochs_run": done,
        "finished": finished, "seconds": time.perf_counter() - t0,
        "excluded_report": loader.exclusion_report(), "device": str(dev),
        "n_repeats": loader.n_repeats,
    }


# --- the whole run ----------------------------------------------------------------------------
def pick_mode(mode: str, device: str, cluster: bool = False) -> tuple[str, str]:
    """Resolve ``auto``: a stacked ensemble on a GPU; on CPU, Dask workers when a
    scheduler was given, else one stacked ensemble (faster than a loop on this CPU,
    see benchmarks/train.py). Returns (mode, reason)."""
    if mode != "auto":
        return mode, "asked for"
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return "stacked", "a CUDA GPU is present: one stacked ensemble on it"
    if cluster:
        return "distributed", "a Dask cluster was given: one task per epigenome group"
    return "stacked", "CPU only, no scheduler: one stacked ensemble (im2col + bmm) in-process"


def _fit_task(store, cells, config, run, device, storage_options, threads):
    dev = device
    if device == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return fit_group(store, cells, config, run, dev, storage_options, threads=threads)


def fit_distributed(client, store: str, cells: Sequence[str], config: TrainConfig, run: str | None,
                    device: str = "auto", storage_options: dict | None = None,
                    group_size: int = 0, threads: int | None = None,
                    on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """One Dask task per ``group_size`` cells (0: as many groups as workers); tasks go to
    ``GPU`` workers when any exist."""
    from distributed import as_completed

    info = client.scheduler_info()
    gpu_workers = [w for w in info.get("workers", {}).values()
                   if w.get("resources", {}).get("GPU", 0) >= 1]
    resources = {"GPU": 1} if gpu_workers else None
    if device == "cuda" and not gpu_workers:
        raise ValueError("--device cuda with --mode distributed needs workers started with "
                         "--resources GPU=1; the cluster has none")
    if group_size <= 0:
        n_workers = len(gpu_workers) or len(info.get("workers", {})) or 1
        group_size = -(-len(cells) // n_workers)
    groups = [list(cells[i : i + group_size]) for i in range(0, len(cells), group_size)]
    futures = [
        client.submit(_fit_task, store, g, config, run, device if gpu_workers else "cpu",
                      storage_options, threads, resources=resources, pure=False,
                      key=f"fit-{config.model}-{'-'.join(g)}-{config.key()}")
        for g in groups
    ]
    results = []
    for fut in as_completed(futures):
        res = fut.result()
        results.append(res)
        if on_done:
            on_done(res)
    order = {c: i for i, c in enumerate(cells)}
    return sorted(results, key=lambda r: order[r["cells"][0]])


def assemble(results: Sequence[dict], config: TrainConfig, mode: str, wall: float) -> xr.Dataset:
    """The run Dataset (one model) from the groups' results."""
    cells = [c for r in results for c in r["cells"]]
    n_rep = results[0]["n_repeats"]
    genes = results[0]["genes"]
    pred = np.concatenate([r["prediction"].reshape(len(r["cells"]), n_rep, -1) for r in results])
    def per_model(key):
        return np.concatenate([r[key].reshape(len(r["cells"]), n_rep, *r[key].shape[1:])
                               for r in results])
    entry = registry.get(config.model)
    hp = {**entry.defaults, **config.hparams, "transform": config.transform, "lr": config.lr,
          "batch_size": config.batch_size, "epochs": config.epochs, "patience": config.patience,
          "optimizer": "Adam", "paper": entry.paper}
    cm, cr = (V.MODEL, V.CELL, V.REPEAT), (V.MODEL, V.CELL, V.REPEAT, V.EPOCH)
    ds = xr.Dataset(
        {
            "prediction": (cm + (V.GENE,), pred[None].astype(np.float32)),
            "target": ((V.CELL, V.GENE), np.concatenate([r["target"] for r in results])),
            "split": (V.split.dims, results[0]["split"]),
            "history_loss": (cr, per_model("history_loss")[None]),
            "history_valid_auc": (cr, per_model("history_valid_auc")[None]),
            "best_epoch": (cm, per_model("best_epoch")[None].astype(np.int16)),
            "excluded": ((V.CELL, V.GENE), np.concatenate([r["excluded"] for r in results])),
        },
        coords={V.MODEL: [config.model], V.CELL: cells, V.REPEAT: np.arange(n_rep),
                V.GENE: genes, V.EPOCH: np.arange(config.epochs)},
    )
    for name in ds.data_vars:
        ds[name].attrs["description"] = V.ALL[name].doc
    ds["split"].attrs.update({k: v for k, v in results[0]["split_attrs"].items()
                              if k != "description"})
    ds.attrs = {
        "task": entry.task, "models": {config.model: hp}, "split_scheme": config.split,
        "seed": config.seed, "label_rule": str(config.label_rule),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "chromestore": _version()},
        "wall_seconds": {config.model: round(wall, 3)}, "mode": mode,
        "device": results[0]["device"],
        "excluded_genes": {c: n for r in results for c, n in r["excluded_report"].items()},
    }
    return ds


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chromestore")
    except PackageNotFoundError:
        return "unknown"


def resolve_cells(store: str, cells: str | Sequence[str],
                  storage_options: dict | None = None) -> list[str]:
    ds = chromestore.open_store(store, storage_options)
    have = [str(c) for c in ds[V.CELL].values.astype(object)]
    if isinstance(cells, str):
        if cells == "all":
            return have
        cells = [c.strip() for c in cells.split(",") if c.strip()]
    missing = [c for c in cells if c not in have]
    if missing:
        raise KeyError(f"cells {missing} are not in {store} (cells: {', '.join(have)})")
    return list(cells)


def train(
    store: str | os.PathLike,
    run: str,
    cells: str | Sequence[str] = "all",
    config: TrainConfig | None = None,
    mode: str = "auto",
    device: str = "auto",
    storage_options: dict | None = None,
    progress: bool = True,
    group_size: int = 0,
    client=None,
) -> xr.Dataset:
    """Train ``config.model`` for ``cells`` of ``store`` and write run ``run``.

    ``client`` (a ``distributed.Client``) runs the distributed mode's tasks; the
    stacked mode runs in this process. ``mode="distributed"`` needs a client.

    Examples
    --------
    >>> ds = train("sim.zarr", "dc", "E003,E004", TrainConfig(split="random", epochs=20))  # doctest: +SKIP
    >>> ds.prediction.sizes  # doctest: +SKIP
    """
    store = os.fspath(store)
    config = config or TrainConfig()
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    if device.startswith("cuda") and mode != "distributed":
        resolve_device(device)  # a clear error before anything starts
    cells = resolve_cells(store, cells, storage_options)
    mode, why = pick_mode(mode, device, client is not None)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    t0 = time.perf_counter()
    if mode == "stacked":
        dev = resolve_device(device)
        say(f"mode: stacked ({why}); {len(cells)} epigenome(s) on {dev}")
        bar = _bar(config.epochs, progress)
        def report(epoch, aucs):
            bar.update(1)
            bar.set_postfix_str(_auc_text(cells, aucs))
        results = [fit_group(store, cells, config, run, str(dev), storage_options, report)]
        bar.close()
    else:
        per = f"{group_size} per task" if group_size > 0 else "one group per worker"
        say(f"mode: distributed ({why}); {len(cells)} epigenome(s), {per}")
        bar = _bar(len(cells), progress, unit="cell")
        def done(res):
            bar.update(len(res["cells"]))
            best = [np.nanmax(h) if np.isfinite(h).any() else np.nan
                    for h in res["history_valid_auc"]]
            bar.set_postfix_str(_auc_text(res["cells"], np.array(best)))
        if client is None:
            raise ValueError("mode 'distributed' needs a Dask cluster: give --scheduler "
                             "ADDRESS or --workers N")
        results = fit_distributed(client, store, cells, config, run, device,
                                  storage_options, group_size, on_done=done)
        bar.close()
    excluded = {c: n for r in results for c, n in r["excluded_report"].items() if n}
    if excluded:
        say("excluded for missing signal: " + ", ".join(f"{c} {n} genes" for c, n in excluded.items()))
    ds = assemble(results, config, mode, time.perf_counter() - t0)
    return R.write_run(store, run, ds, storage_options)


def _bar(total: int, enabled: bool, unit: str = "epoch"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _auc_text(cells: Sequence[str], aucs: np.ndarray) -> str:
    a = np.asarray(aucs, float)
    text = f"valid AUC mean {np.nanmean(a):.3f}" if np.isfinite(a).any() else "valid AUC -"
    if len(cells) <= 4 and len(a) == len(cells):
        text += " (" + ", ".join(f"{c} {v:.3f}" for c, v in zip(cells, a, strict=True)) + ")"
    return text
