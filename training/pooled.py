"""``deepchrome-pooled``: one DeepChrome over many epigenomes, evaluated leave-one-epigenome-out.

Each epigenome's input is normalised by its own statistics (every mark × bin standardised
over that epigenome's genes, after the input transform; see
:func:`chromestore.training.predict.normalise`), so depth differences between
epigenomes do not reach the network. :func:`leave_one_out` fits, for each epigenome
``h``, a model on the training genes of all the others (best epoch on their validation
genes) and scores ``h``'s test genes: the cross-epigenome prediction. It then fits the
pooled model on every epigenome, keeps its weights as
``weights/deepchrome/<E003+E004+…>/0.pt`` and names it in the run's ``pooled_models``
attribute, so ``chromestore predict --run NAME`` needs no ``--from-cell``.

Epigenomes in ``test_cells`` (``--test-cells``) are never trained on: the pooled model
scores their test genes. The run (model ``deepchrome-pooled``) holds these held-out
predictions in ``prediction``: analysed like any run (alone, or merged with a run of
per-epigenome ``deepchrome``), its AUROC per epigenome is the cross-epigenome AUROC.

``chromestore train STORE --model deepchrome-pooled --cells E003,E004,E005
[--test-cells E116] --run NAME``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch

import chromestore
from chromestore import runs as R
from chromestore import variables as V
from chromestore.store import Store, StoreLike
from chromestore.training import predict as P
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.scoring import auc

MODEL = "deepchrome-pooled"
#: The network it pools (its factory and its weights' layout).
NETWORK = "deepchrome"
NORMALISATION = {"kind": "per-epigenome",
                 "doc": "each mark x bin standardised by the epigenome's own mean and std "
                        "over its genes with signal, after the input transform"}


def _inputs(signal: np.ndarray, transform: str) -> np.ndarray:
    x = np.log1p(np.clip(signal, 0, None)) if transform == "log1p" else signal
    return P.normalise(x.astype(np.float32), NORMALISATION)


def _fit(xs: list[np.ndarray], ys: list[np.ndarray], xv: list[np.ndarray],
         yv: list[np.ndarray], *, epochs: int, seed: int, lr: float, batch_size: int):
    """DeepChrome on the pooled training genes; the epoch best on pooled validation AUROC."""
    torch.manual_seed(seed)
    entry = registry.get(NETWORK)
    x, y = np.concatenate(xs), np.concatenate(ys).astype(np.int64)
    vx, vy = np.concatenate(xv), np.concatenate(yv)
    net = entry.build(n_marks=x.shape[1], n_bins=x.shape[2])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    best, best_auc, best_epoch, history = None, -np.inf, 0, []
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x[idx])),
                                                     torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        with torch.no_grad():
            p = torch.softmax(net(torch.from_numpy(vx)), -1)[:, 1].numpy()
        a = auc(vy, p)
        history.append((total / len(x), a))
        if a > best_auc:
            best_auc, best_epoch = a, epoch
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best)
    net.eval()
    return net, best_epoch, history


def _scores(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(x)), -1)[:, 1].numpy()


def leave_one_out(store: StoreLike, name: str, cells: Sequence[str],
                  test_cells: Sequence[str] = (), *, split: str = "random",
                  seed: int = 0, epochs: int = 20, lr: float = 1e-3, batch_size: int = 128,
                  transform: str = "raw", label_rule: str = "median",
                  storage_options: Mapping | None = None):
    """Leave-one-epigenome-out DeepChrome over ``cells`` and the pooled model on all of them,
    which also scores ``test_cells``; writes run ``name`` and returns it."""
    train_cells = list(cells)
    if len(train_cells) < 2:
        raise ValueError("leave-one-epigenome-out needs at least two epigenomes to train on")
    cells = list(dict.fromkeys([*train_cells, *test_cells]))
    n_train = len(train_cells)
    t0 = time.time()
    store = Store.of(store, storage_options)
    ds = chromestore.compute_labels(store.open().sel({V.CELL: cells}), label_rule)
    ds = chromestore.assign_splits(ds, split, seed=seed)
    signal = ds[V.signal.name].values.astype(np.float32)
    label, valid = ds["label"].values, ds["label_valid"].values
    part = ds["split"].values[0].astype(np.int8)
    keep = np.isfinite(signal).all(axis=(2, 3)) & valid  # (cell, gene)
    x = [_inputs(signal[c], transform) for c in range(len(cells))]

    def genes(c, code):
        return np.flatnonzero(keep[c] & (part == code))

    pred = np.full((len(cells), ds.sizes[V.GENE]), np.nan, np.float32)
    best_epoch = np.zeros(len(cells), np.int16)
    hist = np.full((len(cells), epochs, 2), np.nan, np.float32)
    for h in range(n_train):
        rest = [c for c in range(n_train) if c != h]
        net, best_epoch[h], history = _fit(
            [x[c][genes(c, V.TRAIN)] for c in rest], [label[c][genes(c, V.TRAIN)] for c in rest],
            [x[c][genes(c, V.VALID)] for c in rest], [label[c][genes(c, V.VALID)] for c in rest],
            epochs=epochs, seed=seed, lr=lr, batch_size=batch_size)
        hist[h, :len(history)] = history
        test = genes(h, V.TEST)
        pred[h, test] = _scores(net, x[h][test])
    pooled, _, _ = _fit([x[c][genes(c, V.TRAIN)] for c in range(n_train)],
                        [label[c][genes(c, V.TRAIN)] for c in range(n_train)],
                        [x[c][genes(c, V.VALID)] for c in range(n_train)],
                        [label[c][genes(c, V.VALID)] for c in range(n_train)],
                        epochs=epochs, seed=seed, lr=lr, batch_size=batch_size)
    for h in range(n_train, len(cells)):
        test = genes(h, V.TEST)
        pred[h, test] = _scores(pooled, x[h][test])
    key = "+".join(train_cells)
    hp = {**registry.get(NETWORK).defaults, "transform": transform, "lr": lr,
          "batch_size": batch_size, "epochs": epochs, "optimizer": "Adam",
          "pooled": "leave-one-epigenome-out"}
    run = R.create_run_dataset(
        models=[MODEL], cells=cells, genes=ds[V.GENE].values.astype(object),
        prediction=pred[None, :, None], target=np.where(valid, label, np.nan), split=part[None],
        history_loss=hist[None, :, None, :, 0], history_valid_auc=hist[None, :, None, :, 1],
        best_epoch=best_epoch[None, :, None], excluded=~np.isfinite(signal).all(axis=(2, 3)),
        attrs={"task": "classification", "models": {MODEL: hp}, "split_scheme": split,
               "seed": int(seed), "label_rule": str(label_rule),
               "versions": R.versions("torch"), "wall_seconds": {MODEL: time.time() - t0},
               "mode": "pooled", "device": "cpu", "evaluation": "leave-one-epigenome-out",
               "train_cells": train_cells, "test_cells": list(test_cells),
               "pooled_models": {MODEL: {"key": key, "normalisation": NORMALISATION}}})
    R.write_run(store, name, run)
    W.save_weights(store, name, MODEL, key, 0, {
        "model": MODEL, "hparams": hp, "n_marks": signal.shape[2], "n_bins": signal.shape[3],
        "transform": transform, "state_dict": pooled.state_dict()},
        registry.get(NETWORK).codec)
    return R.open_run(store, name)


def test_auroc(run, model: str = MODEL) -> dict[str, float]:
    """Test-split AUROC per epigenome of ``model`` in a run (repeat 0)."""
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
    """``--model deepchrome-pooled [--train-cells …] [--test-cells …]``: the run's summary."""
    opts = request.options
    train = opts.get("train_cells") or request.cells
    test = [c for c in (opts.get("test_cells") or []) if c not in train]
    out = leave_one_out(request.store, request.run, train, test, split=request.split,
                        seed=request.seed, epochs=int(request.setting("epochs")),
                        lr=float(request.setting("lr")),
                        batch_size=int(request.setting("batch_size")),
                        transform=str(request.setting("transform")),
                        storage_options=request.storage_options)
    scores = test_auroc(out)
    lines = [f"run {request.run}: {MODEL} over {len(train)} epigenome(s), "
             f"{out.attrs['wall_seconds'][MODEL]:.1f} s; test AUROC of each epigenome held out:"]
    lines += [f"  {c} ({'unseen' if c in test else 'left out'}): {a:.4f}"
              for c, a in scores.items()]
    lines.append(f"predict with: chromestore predict {request.store} --run {request.run} "
                 "--cells CELLS")
    return "\n".join(lines)


def _entry():
    from chromestore.training.models import DeepChrome
    from chromestore.training.registry import ModelEntry, ModelOption

    return ModelEntry(
        MODEL, DeepChrome, kind="pooled", runner=__name__, defaults={"dropout": 0.5},
        scorer=P.torch_scorer,
        paper="DeepChrome pooled over epigenomes, per-epigenome normalisation, "
              "leave-one-epigenome-out",
        options=(
            ModelOption("--train-cells", "Epigenomes to train one model on (E003,E004,…).",
                        type="cells"),
            ModelOption("--test-cells", "Unseen epigenomes to evaluate it on.", type="cells"),
        ),
    )


ENTRY = _entry()
