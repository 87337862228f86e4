"""``pooled``: one classifier over many epigenomes, evaluated leave-one-epigenome-out.

Each epigenome's input is normalised by its own statistics after the input transform
(:func:`chromestore.training.predict.normalise`): networks get every mark × bin
standardised over the epigenome's genes, ``arrays`` models every mark × bin divided by
its mean (their features assume non-negative signal), so depth differences between
epigenomes do not reach the model. :func:`leave_one_out` fits, for each epigenome ``h``,
the model on the training genes of all the others (stopping on their validation genes)
and scores ``h``'s test genes: the cross-epigenome prediction. It then fits the pooled
model on every epigenome, keeps its weights as
``weights/<model>-pooled/<E003+E004+…>/0.<ext>`` and names it in the run's
``pooled_models`` attribute, so ``chromestore predict --run NAME`` needs no
``--from-cell``. Epigenomes in ``test_cells`` are never trained on: the pooled model
scores their test genes.

The run (model ``<model>-pooled``, e.g. ``deepchrome-pooled``) holds these held-out
predictions in ``prediction``: analysed like any run (alone, or merged with a run of the
per-epigenome model), its AUROC per epigenome is the cross-epigenome AUROC.

``chromestore train STORE --model pooled [--pool shallowchrome] --cells E003,E004,E005
[--test-cells E116] --run NAME``.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from chromestore import runs as R
from chromestore import variables as V
from chromestore.bins import WindowLayout
from chromestore.labels import compute_labels
from chromestore.splits import assign_splits
from chromestore.store import StoreLike, open_store
from chromestore.training import predict as P
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.config import pick_mode, torch_threads, usable_cores
from chromestore.training.entry import ArraysModel, ModelOption, PooledModel, TorchModel
from chromestore.training.fitting import EpochLoop, StackedBest
from chromestore.training.scoring import auc

#: The registered entry (``chromestore train --model pooled --pool MODEL``).
MODEL = "pooled"
NORMALISATION = {
    "kind": "per-epigenome",
    "doc": "each mark x bin standardised by the epigenome's own mean and std "
    "over its genes with signal, after the input transform",
}
SCALE_NORMALISATION = {
    "kind": "per-epigenome-scale",
    "doc": "each mark x bin divided by the epigenome's own mean over its "
    "genes with signal, after the input transform",
}


def _inputs(signal: np.ndarray, transform: str, normalisation: dict) -> np.ndarray:
    x = np.log1p(np.clip(signal, 0, None)) if transform == "log1p" else signal
    return P.normalise(x.astype(np.float32), normalisation)


def normalisation_of(entry) -> dict:
    """Networks get each epigenome standardised; ``arrays`` models (whose features assume
    non-negative signal, e.g. svm-bin's log1p) each epigenome divided by its own mean."""
    return NORMALISATION if isinstance(entry, TorchModel) else SCALE_NORMALISATION


@dataclass
class Fold:
    """The pooled samples of some epigenomes: inputs, labels, split codes, expression, and
    the store's bins around the TSS."""

    x: np.ndarray
    y: np.ndarray
    split: np.ndarray
    expression: np.ndarray
    layout: WindowLayout | None = None
    #: each sample's epigenome (its index among the pooled ones)
    cell: np.ndarray | None = None


def _fit_torch(
    entry,
    every: Fold,
    left_out: Sequence[int],
    hp: dict,
    *,
    epochs: int,
    patience: int | None,
    seed: int,
    lr: float,
    batch_size: int,
    processes: int = 1,
) -> list[tuple[dict, int, list]]:
    """One network per fold: fold ``i`` trains on the samples of ``every`` (the pooled
    training epigenomes) but those of epigenome ``left_out[i]`` (-1: none), kept at the epoch best
    on its own pooled validation AUROC and stopped after ``patience`` epochs without one
    (as per-epigenome models are). The folds train at once, stacked: in this process, or
    with ``processes`` > 1 in that many forked single-threaded processes (as the
    ``percore`` mode, :mod:`chromestore.training.pool`), each stepping its share of the
    networks one at a time. Returns per fold (weights, best epoch, [(loss, valid AUROC) per
    epoch])."""
    global _FOLDS
    from chromestore.training import pool

    jobs = [(entry, every, list(left_out), hp, epochs, patience, seed, lr, batch_size)]
    n = min(len(left_out), processes) if pool.available() else 1
    parts = [list(p) for p in np.array_split(np.arange(len(left_out)), n) if len(p)]
    if n == 1:
        return _fit_folds(jobs[0], parts[0])
    _FOLDS = jobs[0]  # forked workers inherit it: the samples are never copied
    try:
        with ProcessPoolExecutor(n, mp_context=mp.get_context("fork")) as ex:
            futures = [ex.submit(_fit_forked, part) for part in parts]
            return [out for fut in futures for out in fut.result()]
    finally:
        _FOLDS = None


_FOLDS = None


def _fit_forked(members: list[int]) -> list[tuple[dict, int, list]]:
    from chromestore.executors import local_dask

    with local_dask(threads=False), torch_threads(1):
        return _fit_folds(_FOLDS, members)


def _fit_folds(job, members: list[int]) -> list[tuple[dict, int, list]]:
    entry, every, left_out, hp, epochs, patience, seed, lr, batch_size = job
    n_marks, n_bins = every.x.shape[1:]
    own = {k: v for k, v in hp.items() if k in entry.defaults}
    nets = []
    for m in members:
        torch.manual_seed(int(np.random.default_rng([seed, 7, m]).integers(2**62)))
        nets.append(entry.build(n_marks=n_marks, n_bins=n_bins, **own))
    hooks = _Folds(
        entry,
        nets,
        every,
        [left_out[m] for m in members],
        own,
        members,
        seed=seed,
        lr=lr,
        batch_size=batch_size,
    )
    loop = EpochLoop(len(members), epochs, patience=patience).fit(hooks)
    out = []
    for i in range(len(members)):
        weights = {
            "model": entry.name,
            "hparams": R.jsonable(hp),
            "n_marks": n_marks,
            "n_bins": n_bins,
            "state_dict": hooks.net.state_dict_of(i),
        }
        ran = np.isfinite(loop.history_score[i])
        history = list(zip(loop.history_loss[i][ran], loop.history_score[i][ran], strict=True))
        out.append((weights, int(loop.best_epoch[i]), history))
    return out


class _Folds(StackedBest):
    """The loop's hooks (:mod:`chromestore.training.fitting`) for the networks of some folds,
    stacked: each steps on batches of its own training samples (in its own order, seeded by
    (seed, fold, epoch)) under a masked per-model Adam, so each follows the trajectory it
    would follow alone; a fold whose epoch has run out of samples, or that stopped early,
    is masked out of a step. Validation: each fold's AUROC on its own validation samples."""

    def __init__(self, entry, nets, every: Fold, left_out, hp, members, *, seed, lr, batch_size):
        from chromestore.training.config import resolve_steps
        from chromestore.training.ensemble import stack
        from chromestore.training.optim import MaskedAdam

        self.net = stack(entry, nets)
        if hasattr(self.net, "per_model"):
            self.net.per_model = resolve_steps("auto", torch.device("cpu")) == "per-model"
        self.plain = entry.build(n_marks=every.x.shape[1], n_bins=every.x.shape[2], **hp)
        self.every, self.members, self.seed, self.batch_size = every, members, seed, batch_size
        self.y = every.y.astype(np.int64)
        self.train = [
            np.flatnonzero((every.split == V.TRAIN) & (every.cell != h)) for h in left_out
        ]
        self.valid = [
            np.flatnonzero((every.split == V.VALID) & (every.cell != h)) for h in left_out
        ]
        self.params = list(self.net.parameters())
        self.opt = MaskedAdam(self.params, lr, len(members))
        self.best = [p.detach().clone() for p in self.params]
        self.p_drop = float(hp.get("dropout", 0.0))

    def train_epoch(self, epoch: int, running: np.ndarray) -> np.ndarray:
        n, b = len(self.members), self.batch_size
        orders = [
            np.random.default_rng([self.seed, m, epoch]).permutation(idx)
            for m, idx in zip(self.members, self.train, strict=True)
        ]
        gens = [
            torch.Generator().manual_seed(
                int(np.random.default_rng([self.seed, m, epoch, 1]).integers(2**62))
            )
            for m in self.members
        ]
        n_flat = getattr(self.net, "n_flat", None)
        shape = self.every.x.shape[1:]
        loss_sum, seen = np.zeros(n), np.zeros(n)
        self.net.train()
        for start in range(0, max(len(o) for o in orders), b):
            batches = [o[start : start + b] if running[i] else o[:0] for i, o in enumerate(orders)]
            sizes = np.array([len(i) for i in batches])
            active = torch.from_numpy(sizes > 0)
            if not active.any():  # only stopped folds have samples left
                break
            x = torch.zeros(n, b, *shape)
            y = torch.zeros(n, b, dtype=torch.int64)
            w = torch.zeros(n, b)
            for i, idx in enumerate(batches):
                if len(idx):
                    x[i, : len(idx)] = torch.from_numpy(self.every.x[idx])
                    y[i, : len(idx)] = torch.from_numpy(self.y[idx])
                    w[i, : len(idx)] = 1.0 / len(idx)
            masks = None
            if self.p_drop > 0 and n_flat:
                masks = torch.zeros(n, b, n_flat)
                for i in np.flatnonzero(sizes):
                    keep = torch.rand(b, n_flat, generator=gens[i])
                    masks[i] = (keep >= self.p_drop).float() / (1 - self.p_drop)
            if getattr(self.net, "per_model", False):
                logits = self.net(x, masks, active)
            else:
                logits = self.net(x, masks)
            per = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none"
            ).view(n, b)
            per_model = (per * w).sum(1)
            per_model.sum().backward()
            self.opt.step(active)
            loss_sum += per_model.detach().numpy() * sizes
            seen += sizes
        return loss_sum / np.maximum(seen, 1)

    def validate(self, epoch: int, running: np.ndarray) -> tuple[np.ndarray, None]:
        scores = np.full(len(self.members), np.nan)
        self.plain.eval()
        for i in np.flatnonzero(running):
            self.plain.load_state_dict(self.net.state_dict_of(i))
            x, idx = self.every.x, self.valid[i]
            with torch.no_grad():
                logits = torch.cat(
                    [
                        self.plain(torch.from_numpy(x[idx[j : j + 4096]]))
                        for j in range(0, len(idx), 4096)
                    ]
                )
            scores[i] = auc(self.every.y[idx], torch.softmax(logits, -1)[:, 1].numpy())
        return scores, None


def _fit_arrays(entry: ArraysModel, fold: Fold, hp: dict, *, seed: int, **_):
    """The ``arrays`` model's own fit on the pooled samples, as if they were one epigenome."""
    from chromestore.training.peers.cells import CellData, max_over_bins

    data = CellData(
        cell="pooled",
        y=fold.y.astype(int),
        split=fold.split[None],
        keep=np.ones(len(fold.y), bool),
        signal=fold.x if entry.reads == "signal" else None,
        signal_max=max_over_bins(fold.x) if entry.reads == "signal_max" else None,
        expression=fold.expression,
        layout=fold.layout,
    )
    res = entry.fit_cell(data, hp, seed)
    if not res.get("weights"):
        raise ValueError(f"model {entry.name!r} keeps no weights, so it cannot be pooled")
    history = [(float(np.nan), float(res.get("valid_auc", [np.nan])[0]))]
    return res["weights"][0], 0, history


def leave_one_out(
    store: StoreLike,
    name: str,
    cells: Sequence[str],
    test_cells: Sequence[str] = (),
    *,
    model: str = registry.DEFAULT_MODEL,
    split: str = "random",
    seed: int = 0,
    epochs: int = 20,
    patience: int | None = 10,
    processes: int = 1,
    lr: float = 1e-3,
    batch_size: int = 128,
    transform: str = "raw",
    label_rule: str = "median",
    hyper: Mapping | None = None,
    storage_options: Mapping | None = None,
    existing: str = "refuse",
):
    """Leave-one-epigenome-out ``model`` over ``cells`` and the pooled model on all of them,
    which also scores ``test_cells``; writes run ``name`` (model ``<model>-pooled``) and
    returns it. ``model``: a classifier of kind ``torch`` or ``arrays``; ``hyper`` overrides
    its defaults; ``existing``: what to do when run ``name`` exists
    (:class:`chromestore.runs.RunWriter`)."""
    with R.RunWriter(store, name, existing=existing, storage_options=storage_options) as writer:
        writer.expect([f"{model}-pooled"], split_scheme=split, seed=seed, label_rule=label_rule)
        return _leave_one_out(
            writer, cells, test_cells, model=model, split=split, seed=seed, epochs=epochs,
            patience=patience, processes=processes, lr=lr, batch_size=batch_size,
            transform=transform, label_rule=label_rule, hyper=hyper,
        )  # fmt: skip


def _leave_one_out(
    writer, cells, test_cells, *, model, split, seed, epochs, patience, processes, lr,
    batch_size, transform, label_rule, hyper,
):  # fmt: skip
    store = writer.store
    base = registry.get(model)
    if not isinstance(base, TorchModel | ArraysModel) or base.task != "classification":
        raise ValueError(
            f"model {model!r} ({base.kind}, {base.task}) cannot be pooled; "
            "pool a torch or arrays classifier"
        )
    pooled_name = f"{model}-pooled"
    normalisation = normalisation_of(base)
    hp = {**base.defaults, **(hyper or {})}
    train_cells = list(cells)
    if len(train_cells) < 2:
        raise ValueError("leave-one-epigenome-out needs at least two epigenomes to train on")
    cells = list(dict.fromkeys([*train_cells, *test_cells]))
    n_train = len(train_cells)
    t0 = time.time()
    ds = compute_labels(open_store(store).sel({V.CELL: cells}), label_rule)
    ds = assign_splits(ds, split, seed=seed)
    signal = ds[V.signal.name].values.astype(np.float32)
    expr = ds[V.expression.name].values.astype(np.float32)
    label, valid = ds["label"].values, ds["label_valid"].values
    part = ds["split"].values[0].astype(np.int8)
    keep = np.isfinite(signal).all(axis=(2, 3)) & valid  # (cell, gene)
    x = [_inputs(signal[c], transform, normalisation) for c in range(len(cells))]
    layout = WindowLayout.of(ds)

    def fold(of: Sequence[int]) -> Fold:
        idx = [np.flatnonzero(keep[c] & ((part == V.TRAIN) | (part == V.VALID))) for c in of]
        return Fold(
            np.concatenate([x[c][i] for c, i in zip(of, idx, strict=True)]),
            np.concatenate([label[c][i] for c, i in zip(of, idx, strict=True)]),
            np.concatenate([part[i] for i in idx]),
            np.concatenate([expr[c][i] for c, i in zip(of, idx, strict=True)]),
            layout,
            np.concatenate([np.full(len(i), c) for c, i in zip(of, idx, strict=True)]),
        )

    def score(weights, c: int) -> None:
        test = np.flatnonzero(keep[c] & (part == V.TEST))
        scorer = P.make_scorer(base, weights, hp, layout)
        pred[c, test] = scorer(x[c][test])

    opts = {"epochs": epochs, "seed": seed, "lr": lr, "batch_size": batch_size}
    pred = np.full((len(cells), ds.sizes[V.GENE]), np.nan, np.float32)
    best_epoch = np.zeros(len(cells), np.int16)
    n_epochs = epochs if base.kind == "torch" else 1
    hist = np.full((len(cells), n_epochs, 2), np.nan, np.float32)
    if isinstance(base, TorchModel):  # every fold at once; -1: the pooled model, on all
        every, left_out = fold(range(n_train)), [*range(n_train), -1]
        fits = iter(
            _fit_torch(base, every, left_out, hp, patience=patience, processes=processes, **opts)
        )
    else:
        folds = ([c for c in range(n_train) if c != h] for h in [*range(n_train), -1])
        fits = (_fit_arrays(base, fold(of), hp, seed=seed) for of in folds)
    for h in range(n_train):
        weights, best_epoch[h], history = next(fits)
        hist[h, : len(history)] = history
        score(weights, h)
    pooled, _, _ = next(fits)
    for h in range(n_train, len(cells)):
        score(pooled, h)
    key = "+".join(train_cells)
    info = {
        **R.jsonable(hp, nonfinite_as_str=True),
        "transform": transform,
        "pooled": "leave-one-epigenome-out",
        "base_model": model,
        "paper": base.paper,
    }
    if base.kind == "torch":
        info.update(lr=lr, batch_size=batch_size, epochs=epochs, optimizer="Adam")
    run = R.create_run_dataset(
        models=[pooled_name],
        cells=cells,
        genes=ds[V.GENE].values.astype(object),
        prediction=pred[None, :, None],
        target=np.where(valid, label, np.nan),
        split=part[None],
        history_loss=hist[None, :, None, :, 0],
        history_valid_auc=hist[None, :, None, :, 1],
        best_epoch=best_epoch[None, :, None],
        excluded=~np.isfinite(signal).all(axis=(2, 3)),
        attrs=R.run_attrs(
            task="classification",
            models={pooled_name: info},
            split_scheme=split,
            seed=seed,
            label_rule=label_rule,
            packages=("torch", "scikit-learn", *registry.plugin_packages([model])),
            wall_seconds={pooled_name: time.time() - t0},
            mode="pooled",
            device="cpu",
            evaluation="leave-one-epigenome-out",
            train_cells=train_cells,
            test_cells=list(test_cells),
            pooled_models={
                pooled_name: {"key": key, "base": model, "normalisation": normalisation}
            },
        ),
    )
    if base.kind == "torch":
        pooled = {**pooled, "transform": transform}
    W.save(writer.weights_target(pooled_name, key, 0), pooled, base)
    return writer.commit(run)


def test_auroc(run, model: str | None = None) -> dict[str, float]:
    """Test-split AUROC per epigenome of ``model`` (default: the run's only one), repeat 0."""
    model = model or str(run[V.MODEL].values[0])
    test = run.split.values[0] == V.TEST
    out = {}
    for c in run[V.CELL].values:
        p = run.prediction.sel({V.MODEL: model, V.CELL: c}).values[0]
        t = run.target.sel({V.CELL: c}).values
        ok = test & np.isfinite(p) & np.isfinite(t)
        out[str(c)] = float(auc(t[ok], p[ok]))
    return out


# --- the runner of this "pooled" entry (chromestore.training.request) ----------------------
def plan(request, cluster: bool):
    """One process (the folds are small): no cluster."""
    return request, None


def run(request, client=None) -> str:
    """``--model pooled [--pool MODEL] [--train-cells …] [--test-cells …]``: the summary."""
    if (request.setting("normalise") or "none") != "none":
        raise ValueError(
            "--normalise: the pooled model normalises each epigenome by its own statistics "
            "already (it predicts epigenomes of any signal units); leave --normalise out"
        )
    opts = request.options
    train = opts.get("train_cells") or request.cells
    test = [c for c in (opts.get("test_cells") or []) if c not in train]
    base = opts.get("pool") or registry.DEFAULT_MODEL
    # the folds in one forked process per core where the per-epigenome models would be
    mode, _ = pick_mode(
        str(request.setting("mode")), "cpu", local_pool=bool(request.setting("local_pool"))
    )
    processes = usable_cores() if mode == "percore" else 1
    # the pooled classifier's own options (``--pool hgb-sums --max-iter 50``)
    own = {o.dest for o in registry.get(base).options}
    hyper = {k: v for k, v in opts.items() if k in own and v is not None}
    out = leave_one_out(
        request.store,
        request.run,
        train,
        test,
        model=base,
        split=request.split,
        seed=request.seed,
        epochs=int(request.setting("epochs")),
        patience=request.setting("patience") or None,
        processes=processes,
        lr=float(request.setting("lr")),
        batch_size=int(request.setting("batch_size")),
        transform=str(request.setting("transform")),
        hyper=hyper,
        storage_options=request.storage_options,
        existing=request.existing,
    )
    scores = test_auroc(out)
    pooled_name = f"{base}-pooled"
    lines = [
        f"run {request.run}: {pooled_name} over {len(train)} epigenome(s), "
        f"{out.attrs['wall_seconds'][pooled_name]:.1f} s; test AUROC of each epigenome "
        "held out:"
    ]
    lines += [
        f"  {c} ({'unseen' if c in test else 'left out'}): {a:.4f}" for c, a in scores.items()
    ]
    lines.append(
        f"predict with: chromestore predict {request.store} --run {request.run} --cells CELLS"
    )
    return "\n".join(lines)


ENTRY = PooledModel(
    MODEL,
    __name__,
    paper="one classifier pooled over epigenomes, per-epigenome normalisation, "
    "leave-one-epigenome-out",
    options=(
        ModelOption(
            "--pool",
            "The classifier to pool; its own options are taken too (train --model pooled "
            "--pool NAME --help lists them).",
            type="model",
            kinds=(TorchModel.kind, ArraysModel.kind),
            default=registry.DEFAULT_MODEL,
        ),
        ModelOption(
            "--train-cells", "Epigenomes to train one model on (E003,E004,…).", type="cells"
        ),
        ModelOption("--test-cells", "Unseen epigenomes to evaluate it on.", type="cells"),
    ),
)
