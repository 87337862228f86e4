"""The peer for chromestore's training: a plain PyTorch script, as a user would write it.

It reads the whole store into memory, then for each epigenome in turn fits one
DeepChrome (``torch.optim.Adam``, batch 128, shuffled training genes), computes the
validation AUROC after every epoch, keeps the best epoch's weights and reports that
epoch's test AUROC. Labels are DeepChrome's (expression > the epigenome's median) and
the split is DeepChrome's file-order thirds: the same protocol as
``chromestore train --split deepchrome``. Nothing of chromestore's trainer is used:
only the store (through xarray) and the network definition.

    python benchmarks/plain_deepchrome.py STORE --epochs 5
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import xarray as xr
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from chromestore.training.models import DeepChrome


def load(store: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Cells, signal (cell, gene, mark, bin) float32 and median labels (cell, gene; -1
    where the gene has no expression)."""
    ds = xr.open_zarr(store, consolidated=False)
    cells = [str(c) for c in ds.cell.values]
    x = ds.signal.values.astype(np.float32)
    expr = ds.expression.values
    y = (expr > np.nanmedian(expr, axis=1, keepdims=True)).astype(np.int64)
    y[~np.isfinite(expr)] = -1
    return cells, x, y


def thirds(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeepChrome's split: the genes in file order, in thirds (train, valid, test)."""
    n_test = n // 3
    n_valid = (n - n_test) // 2
    a = n - n_test - n_valid
    return np.arange(a), np.arange(a, a + n_valid), np.arange(a + n_valid, n)


def scores(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        p = torch.softmax(net(x), dim=1)[:, 1].numpy()
    net.train()
    return p


def fit_one(
    x: np.ndarray, y: np.ndarray, epochs: int, batch: int, seed: int
) -> tuple[float, float]:
    """Best validation AUROC and the test AUROC at that epoch, for one epigenome."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ok = np.isfinite(x).all(axis=(1, 2)) & (y >= 0)
    tr, va, te = (idx[ok[idx]] for idx in thirds(len(y)))
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    net = DeepChrome()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    best, best_state = -1.0, None
    for _ in range(epochs):
        order = rng.permutation(tr)
        for s in range(0, len(order), batch):
            b = torch.from_numpy(order[s : s + batch])
            opt.zero_grad()
            F.cross_entropy(net(xt[b]), yt[b]).backward()
            opt.step()
        auc = roc_auc_score(y[va], scores(net, xt[va]))
        if auc > best:
            best, best_state = auc, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return best, roc_auc_score(y[te], scores(net, xt[te]))


def run(store: str, epochs: int = 5, batch: int = 128, seed: int = 0) -> dict:
    """The whole script; returns wall seconds and the per-epigenome AUROCs."""
    t0 = time.perf_counter()
    cells, x, y = load(store)
    valid, test = [], []
    for i in range(len(cells)):
        v, t = fit_one(x[i], y[i], epochs, batch, seed)
        valid.append(v)
        test.append(t)
    return {
        "seconds": time.perf_counter() - t0,
        "cells": cells,
        "valid_auroc": np.array(valid),
        "test_auroc": np.array(test),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = p.parse_args()
    res = run(a.store, a.epochs, a.batch)
    if a.json:
        import json

        with open(a.json, "w") as f:
            json.dump(
                {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}, f
            )
    print(
        f"plain script: {len(res['cells'])} epigenomes, {a.epochs} epochs, "
        f"{res['seconds']:.1f} s; mean test AUROC {res['test_auroc'].mean():.4f}"
    )


if __name__ == "__main__":
    main()
