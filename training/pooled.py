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

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from chromestore import runs as R
from chromestore import variables as V
from chromestore.bins import WindowLayout
from chromestore.labels import compute_labels
from chromestore.splits import assign_splits
from chromestore.store import Store, StoreLike, open_store
from chromestore.training import predict as P
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.entry import ArraysModel, ModelOption, PooledModel, TorchModel
from chromestore.training.fitting import EpochLoop, minibatch_epoch
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


def _fit_torch(entry, fold: Fold, hp: dict, *, epochs: int, seed: int, lr: float, batch_size: int):
    """The network on the pooled training samples; the epoch best on pooled validation AUROC.
    Returns (weights, best epoch, [(loss, valid AUROC) per epoch])."""
    torch.manual_seed(seed)
    tr = fold.split == V.TRAIN
    x = fold.x[tr]
    own = {k: v for k, v in hp.items() if k in entry.defaults}
    net = entry.build(n_marks=x.shape[1], n_bins=x.shape[2], **own)
    hooks = _Pooled(net, fold, lr=lr, batch_size=batch_size, rng=np.random.default_rng(seed))
    loop = EpochLoop(1, epochs).fit(hooks)
    weights = {
        "model": entry.name,
        "hparams": R.jsonable(hp),
        "n_marks": x.shape[1],
        "n_bins": x.shape[2],
        "state_dict": hooks.best,
    }
    history = list(zip(loop.history_loss[0], loop.history_score[0], strict=True))
    return weights, int(loop.best_epoch[0]), history


class _Pooled:
    """The loop's hooks (:mod:`chromestore.training.fitting`): cross-entropy steps on the
    pooled training samples in ``rng``'s order, the pooled validation AUROC."""

    def __init__(self, net, fold: Fold, *, lr: float, batch_size: int, rng) -> None:
        tr, va = fold.split == V.TRAIN, fold.split == V.VALID
        self.x, self.y = fold.x[tr], fold.y[tr].astype(np.int64)
        self.vx, self.vy = fold.x[va], fold.y[va]
        self.net, self.batch_size, self.rng = net, batch_size, rng
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)
        self.best: dict | None = None

    def train_epoch(self, epoch: int, running: np.ndarray) -> np.ndarray:
        self.net.train()
        loss = minibatch_epoch(
            self.opt,
            lambda idx: torch.nn.functional.cross_entropy(
                self.net(torch.from_numpy(self.x[idx])), torch.from_numpy(self.y[idx])
            ),
            self.rng.permutation(len(self.x)),
            self.batch_size,
        )
        return np.array([loss])

    def validate(self, epoch: int, running: np.ndarray) -> tuple[np.ndarray, None]:
        self.net.eval()
        with torch.no_grad():
            p = torch.softmax(self.net(torch.from_numpy(self.vx)), -1)[:, 1].numpy()
        return np.array([auc(self.vy, p)]), None

    def keep_best(self, better: np.ndarray) -> None:
        self.best = {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def restore_best(self) -> None:
        if self.best is not None:
            self.net.load_state_dict(self.best)


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
    lr: float = 1e-3,
    batch_size: int = 128,
    transform: str = "raw",
    label_rule: str = "median",
    hyper: Mapping | None = None,
    storage_options: Mapping | None = None,
):
    """Leave-one-epigenome-out ``model`` over ``cells`` and the pooled model on all of them,
    which also scores ``test_cells``; writes run ``name`` (model ``<model>-pooled``) and
    returns it. ``model``: a classifier of kind ``torch`` or ``arrays``; ``hyper`` overrides
    its defaults."""
    base = registry.get(model)
    if not isinstance(base, TorchModel | ArraysModel) or base.task != "classification":
        raise ValueError(
            f"model {model!r} ({base.kind}, {base.task}) cannot be pooled; "
            "pool a torch or arrays classifier"
        )
    pooled_name = f"{model}-pooled"
    normalisation = normalisation_of(base)
    hp = {**base.defaults, **(hyper or {})}
    fit = _fit_torch if isinstance(base, TorchModel) else _fit_arrays
    train_cells = list(cells)
    if len(train_cells) < 2:
        raise ValueError("leave-one-epigenome-out needs at least two epigenomes to train on")
    cells = list(dict.fromkeys([*train_cells, *test_cells]))
    n_train = len(train_cells)
    t0 = time.time()
    store = Store.of(store, storage_options)
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
    for h in range(n_train):
        weights, best_epoch[h], history = fit(
            base, fold([c for c in range(n_train) if c != h]), hp, **opts
        )
        hist[h, : len(history)] = history
        score(weights, h)
    pooled, _, _ = fit(base, fold(range(n_train)), hp, **opts)
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
            packages=("torch", "scikit-learn"),
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
    R.write_run(store, name, run)
    if base.kind == "torch":
        pooled = {**pooled, "transform": transform}
    W.save_weights(store, name, pooled_name, key, 0, pooled, base.codec)
    return R.open_run(store, name)


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
    opts = request.options
    train = opts.get("train_cells") or request.cells
    test = [c for c in (opts.get("test_cells") or []) if c not in train]
    base = opts.get("pool") or registry.DEFAULT_MODEL
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
        lr=float(request.setting("lr")),
        batch_size=int(request.setting("batch_size")),
        transform=str(request.setting("transform")),
        hyper=hyper,
        storage_options=request.storage_options,
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
