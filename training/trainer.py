"""Train a ``torch`` model for many epigenomes and write ``runs/NAME`` (the runner of that kind).

:func:`train` runs the groups of :func:`chromestore.training.ensemble.fit_group`:
``stacked`` (all cells in one group, here, stepped as one batched ensemble), ``loop``
(all cells in one group, here, each model stepped in turn), ``percore`` (groups of cells
handed to one forked single-threaded process per core: :mod:`chromestore.training.pool`),
or ``distributed`` (one Dask task per ``group_size`` cells, by default groups that shrink
as the work runs out, one per GPU worker on GPUs, on the cluster's workers;
per-model steps on CPU workers, stacked on GPU workers, which are picked through the
``GPU`` resource), then builds the run with
:func:`chromestore.runs.create_run_dataset` and writes it with
:func:`chromestore.runs.write_run`. :func:`plan` and :func:`run` serve ``chromestore
train`` (:mod:`chromestore.training.request`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
import xarray as xr

from chromestore import runs as R
from chromestore import variables as V
from chromestore.store import open_store, select_cells
from chromestore.training import registry
from chromestore.training.config import (
    DEFAULT_DEVICE,
    DEFAULT_GROUP_SIZE,
    DEFAULT_MODE,
    MODES,
    TrainConfig,
    pick_mode,
    resolve_device,
)
from chromestore.training.ensemble import fit_group
from chromestore.training.optim import MaskedAdam
from chromestore.training.request import TrainRequest, validation_summary

__all__ = [
    "MaskedAdam",
    "TrainConfig",
    "assemble",
    "fit_distributed",
    "fit_group",
    "pick_mode",
    "plan",
    "resolve_device",
    "run",
    "train",
]


def _fit_task(store, cells, config, run, device, storage_options, threads, weights_to=None):
    from chromestore.executors import local_dask

    dev = device
    if device == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    # The loader's reads (labels, splits) run here, synchronously: left to Dask, inside a
    # task they would go to the cluster as new tasks and wait for a free worker thread,
    # which the other groups hold (measured: 48 s per group of the demo, 10× its training)
    with local_dask(threads=False):
        return fit_group(
            store, cells, config, run, dev, storage_options, threads=threads, weights_to=weights_to
        )


def fit_distributed(
    client,
    store: str,
    cells: Sequence[str],
    config: TrainConfig,
    run: str | None,
    device: str = DEFAULT_DEVICE,
    storage_options: dict | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
    threads: int | None = None,
    on_done: Callable[[dict], None] | None = None,
    weights_to=None,
) -> list[dict]:
    """One Dask task per ``group_size`` cells; tasks go to ``GPU`` workers when any exist.

    ``group_size`` 0: one group per GPU worker, or on CPU workers groups that shrink as
    the work runs out (:func:`chromestore.training.pool.guided_groups`: the scheduler hands
    them to workers as they free up, so early-stopping models or a slow worker do not
    leave the others idle at the end)."""
    from distributed import as_completed

    from chromestore.training.pool import gather, guided_groups

    info = client.scheduler_info()
    gpu_workers = [
        w for w in info.get("workers", {}).values() if w.get("resources", {}).get("GPU", 0) >= 1
    ]
    resources = {"GPU": 1} if gpu_workers else None
    if device == "cuda" and not gpu_workers:
        raise ValueError(
            "--device cuda with --mode distributed needs workers started with "
            "--resources GPU=1; the cluster has none"
        )
    if group_size <= 0 and not gpu_workers:
        groups = guided_groups(cells, len(info.get("workers", {})) or 1)
    else:
        if group_size <= 0:
            group_size = -(-len(cells) // len(gpu_workers))
        groups = [list(cells[i : i + group_size]) for i in range(0, len(cells), group_size)]
    futures = [
        client.submit(
            _fit_task,
            store,
            g,
            config,
            run,
            device if gpu_workers else "cpu",
            storage_options,
            threads,
            weights_to,
            resources=resources,
            pure=False,
            key=f"fit-{config.model}-{'-'.join(g)}-{config.key()}",
        )
        for g in groups
    ]
    return gather(futures, as_completed, cells, on_done)


def assemble(results: Sequence[dict], config: TrainConfig, mode: str, wall: float) -> xr.Dataset:
    """The run Dataset (one model) from the groups' results."""
    cells = [c for r in results for c in r["cells"]]
    n_rep = results[0]["n_repeats"]

    def per_model(key):
        return np.concatenate(
            [r[key].reshape(len(r["cells"]), n_rep, *r[key].shape[1:]) for r in results]
        )[None]

    entry = registry.get(config.model)
    hp = {
        **entry.defaults,
        **config.hparams,
        "transform": config.transform,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "patience": config.patience,
        "optimizer": "Adam",
        "paper": entry.paper,
    }
    ds = R.create_run_dataset(
        models=[config.model],
        cells=cells,
        genes=results[0]["genes"],
        prediction=per_model("prediction"),
        target=np.concatenate([r["target"] for r in results]),
        split=results[0]["split"],
        history_loss=per_model("history_loss"),
        history_valid_auc=per_model("history_valid_auc"),
        best_epoch=per_model("best_epoch"),
        excluded=np.concatenate([r["excluded"] for r in results]),
        attrs=R.run_attrs(
            task=entry.task,
            models={config.model: hp},
            split_scheme=config.split,
            seed=config.seed,
            label_rule=config.label_rule,
            packages=("torch", *registry.plugin_packages([config.model])),
            wall_seconds={config.model: round(wall, 3)},
            mode=mode,
            device=results[0]["device"],
            excluded_genes={c: n for r in results for c, n in r["excluded_report"].items()},
        ),
    )
    ds["split"].attrs.update(
        {k: v for k, v in results[0]["split_attrs"].items() if k != "description"}
    )
    return ds


def resolve_cells(
    store: str, cells: str | int | Sequence[str], storage_options: dict | None = None
) -> list[str]:
    """The store's epigenomes that ``cells`` picks (:func:`chromestore.store.select_cells`)."""
    ds = open_store(store, storage_options)
    return select_cells(cells, [str(c) for c in ds[V.CELL].values.astype(object)])


def train(
    store: str | os.PathLike,
    run: str,
    cells: str | Sequence[str] = "all",
    config: TrainConfig | None = None,
    mode: str = DEFAULT_MODE,
    device: str = DEFAULT_DEVICE,
    storage_options: dict | None = None,
    progress: bool = True,
    group_size: int = DEFAULT_GROUP_SIZE,
    client=None,
    existing: str = "refuse",
) -> xr.Dataset:
    """Train ``config.model`` for ``cells`` of ``store`` and write run ``run``.

    ``client`` (a ``distributed.Client``) runs the distributed mode's tasks; ``stacked``
    and ``loop`` run in this process, ``percore`` in forked processes of this one (one per
    core). ``mode="distributed"`` needs a client; ``auto`` is :func:`pick_mode`'s rule
    (here without a local pool: ``loop`` on CPU unless a client is given). ``existing``:
    what to do when run ``run`` exists (``refuse``, ``overwrite`` or ``add``, see
    :class:`chromestore.runs.RunWriter`), decided before training starts.

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
    with R.RunWriter(
        store, run, existing=existing, storage_options=storage_options, normalise=config.normalise
    ) as writer:
        writer.expect(
            [config.model],
            split_scheme=config.split,
            seed=config.seed,
            label_rule=config.label_rule,
        )
        return _train(
            store, run, cells, config, mode, device, storage_options, progress, group_size,
            client, writer,
        )  # fmt: skip


def _train(
    store, run, cells, config, mode, device, storage_options, progress, group_size, client, writer
) -> xr.Dataset:
    to = writer.staging
    mode, why = pick_mode(mode, device, client is not None)
    if config.steps == "auto" and mode in ("stacked", "loop"):
        config = replace(config, steps="stacked" if mode == "stacked" else "per-model")
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    t0 = time.perf_counter()
    if mode in ("stacked", "loop"):
        dev = resolve_device(device)
        say(f"mode: {mode} ({why}); {len(cells)} epigenome(s) on {dev}")
        bar = _bar(config.epochs, progress)

        def report(epoch, aucs):
            bar.update(1)
            bar.set_postfix_str(_auc_text(cells, aucs))

        results = [
            fit_group(store, cells, config, run, str(dev), storage_options, report, weights_to=to)
        ]
        bar.close()
    elif mode == "percore":
        from chromestore.training.config import usable_cores
        from chromestore.training.pool import fit_per_core, groups

        if device.startswith("cuda"):
            raise ValueError(
                "--mode percore trains on the CPU cores; use --mode stacked "
                "(or auto) for --device cuda"
            )
        n = len(groups(cells, usable_cores()))
        say(f"mode: percore ({why}); {len(cells)} epigenome(s) in {n} process(es)")
        bar = _bar(len(cells), progress, unit="cell")

        def done(res):
            bar.update(len(res["cells"]))

        results = fit_per_core(
            store, cells, config, run, storage_options, on_done=done, weights_to=to
        )
        bar.close()
    else:
        per = (
            f"{group_size} per task" if group_size > 0 else "groups shrinking as the work runs out"
        )
        say(f"mode: distributed ({why}); {len(cells)} epigenome(s), {per}")
        bar = _bar(len(cells), progress, unit="cell")

        def done(res):
            bar.update(len(res["cells"]))
            best = [
                np.nanmax(h) if np.isfinite(h).any() else np.nan for h in res["history_valid_auc"]
            ]
            bar.set_postfix_str(_auc_text(res["cells"], np.array(best)))

        if client is None:
            raise ValueError(
                "mode 'distributed' needs a Dask cluster: give --scheduler ADDRESS or --workers N"
            )
        results = fit_distributed(
            client,
            store,
            cells,
            config,
            run,
            device,
            storage_options,
            group_size,
            on_done=done,
            weights_to=to,
        )
        bar.close()
    say(timing_text(results))
    excluded = {c: n for r in results for c, n in r["excluded_report"].items() if n}
    if excluded:
        say(
            "excluded for missing signal: "
            + ", ".join(f"{c} {n} genes" for c, n in excluded.items())
        )
    ds = assemble(results, config, mode, time.perf_counter() - t0)
    return writer.commit(ds)


def timing_text(results: Sequence[dict]) -> str:
    """``time in groups (summed over N): load 1.2 s, train steps …``: where the groups'
    seconds went (to profile a run; benchmarks/train.py prints it)."""
    total: dict[str, float] = {}
    for r in results:
        for k, v in r.get("timings", {}).items():
            total[k] = total.get(k, 0.0) + v
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in total.items())
    return f"time in groups (summed over {len(results)}): {parts}"


def _bar(total: int, enabled: bool, unit: str = "epoch"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _auc_text(cells: Sequence[str], aucs: np.ndarray) -> str:
    a = np.asarray(aucs, float)
    text = f"valid AUC mean {np.nanmean(a):.3f}" if np.isfinite(a).any() else "valid AUC -"
    if len(cells) <= 4 and len(a) == len(cells):
        shown = (
            f"{c} {v:.3f}" if np.isfinite(v) else f"{c} -" for c, v in zip(cells, a, strict=True)
        )
        text += " (" + ", ".join(shown) + ")"
    return text


# --- the runner of kind "torch" (chromestore.training.request) -----------------------------
def plan(request: TrainRequest, cluster: bool) -> tuple[TrainRequest, bool]:
    """Resolve ``--mode auto``; a cluster is heavy work only for the distributed mode.

    ``cluster``: the user gave one (a scheduler or ``--workers N``); the setting
    ``local_pool`` (set by the app): a local pool of workers may be started (not
    ``--workers 0``), which ``auto`` uses on a CPU with several cores.
    """
    mode, why = pick_mode(
        request.setting("mode"),
        request.setting("device"),
        cluster,
        local_pool=bool(request.setting("local_pool")),
    )
    return request.with_settings(mode=mode, mode_reason=why), mode == "distributed"


def run(request: TrainRequest, client=None) -> str:
    """Train as ``request`` says; the summary."""
    s = request.setting
    config = TrainConfig(
        model=request.model,
        split=request.split,
        seed=request.seed,
        epochs=s("epochs"),
        patience=s("patience") or None,
        batch_size=s("batch_size"),
        lr=s("lr"),
        transform=s("transform"),
        precision=s("precision") or "fp32",
        normalise=s("normalise") or "none",
        hparams={k: v for k, v in request.options.items() if v is not None},
    )
    ds = train(
        request.store,
        request.run,
        request.cells,
        config,
        mode=s("mode"),
        device=s("device"),
        storage_options=request.storage_options,
        group_size=s("group_size"),
        client=client,
        progress=request.progress,
        existing=request.existing,
    )
    head = f"{ds.sizes['cell']} epigenome(s), mode {ds.attrs['mode']} on {ds.attrs['device']}"
    return f"mode: {s('mode')} ({s('mode_reason')})\n" + validation_summary(ds, request, head)
