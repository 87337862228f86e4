from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from chromestore.training.peers.attentivechrome import AttentiveChrome, fit_attentivechrome


def _simulated(rng, n_genes=180, n_bins=20):
    y = rng.integers(0, 2, n_genes)
    signal = rng.poisson(2.0, size=(n_genes, 5, n_bins)).astype(np.float32)
    signal[:, 3, 8:12] += rng.poisson(1 + 15 * y[:, None], size=(n_genes, 4))
    return signal, y, np.arange(n_genes) % 3


def test_attentivechrome__attention_maps_are_distributions():
    torch.manual_seed(0)
    logit, bin_w, mark_w = AttentiveChrome(n_marks=5, n_bins=30)(torch.rand(4, 5, 30))
    assert logit.shape == (4,) and bin_w.shape == (4, 5, 30) and mark_w.shape == (4, 5)
    torch.testing.assert_close(bin_w.sum(-1), torch.ones(4, 5))
    torch.testing.assert_close(mark_w.sum(-1), torch.ones(4))
    assert (bin_w >= 0).all() and (mark_w >= 0).all()


def test_fit_attentivechrome__learns_and_keeps_best_validation_epoch(rng):
    signal, y, split = _simulated(rng)
    fit = fit_attentivechrome(signal, y, split, epochs=12, patience=12, seed=0, ensemble=1)
    te = split == 2
    assert roc_auc_score(y[te], fit.score[te]) > 0.9
    assert fit.best_epoch == int(np.nanargmax(fit.history_valid_auc))
    assert len(fit.history_loss) == 12 and fit.history_loss[-1] < fit.history_loss[0]
    assert fit.bin_attention.shape == (180, 5, 20) and fit.mark_attention.shape == (180, 5)
    again = fit_attentivechrome(signal, y, split, epochs=2, seed=0, ensemble=1)
    first = fit_attentivechrome(signal, y, split, epochs=2, seed=0, ensemble=1)
    np.testing.assert_array_equal(again.score, first.score)


def test_fit_attentivechrome__ensemble_averages_members_from_distinct_seeds(rng):
    from chromestore.training.peers.attentivechrome import MEMBER_SEED_STEP

    signal, y, split = _simulated(rng, n_genes=90, n_bins=12)
    kw = {"epochs": 2, "patience": 2}
    ens = fit_attentivechrome(signal, y, split, seed=3, ensemble=2, **kw)
    members = [
        fit_attentivechrome(signal, y, split, seed=3 + k * MEMBER_SEED_STEP, ensemble=1, **kw)
        for k in range(2)
    ]
    assert len(ens.models) == 2
    assert not np.allclose(members[0].score, members[1].score)
    np.testing.assert_allclose(ens.score, (members[0].score + members[1].score) / 2, rtol=1e-6)
    np.testing.assert_allclose(ens.mark_attention.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(ens.bin_attention.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(ens.history_valid_auc, members[0].history_valid_auc)
    va = split == 1
    assert ens.valid_auc == pytest.approx(roc_auc_score(y[va], ens.score[va]), abs=1e-12)
    np.testing.assert_allclose(
        ens.members_valid_auc, [m.history_valid_auc[m.best_epoch] for m in members]
    )


def test_run_peers__attentivechrome_fitted_twice_in_threads_gives_identical_aurocs(tmp_path):
    """Three epigenomes fitted at once on Dask's threads: each member draws its weights,
    batch orders and dropout masks from its own generators, so nothing depends on which
    thread ran first (with torch's global RNG, the AUROCs differed in the 3rd decimal)."""
    import dask

    import chromestore
    from chromestore.training.peers.execute import run_peers

    store = tmp_path / "sim.zarr"
    # epigenomes whose simulated marks carry the most signal (2 epochs learn little): test
    # AUROCs measured 0.61, 0.59, 0.65
    chromestore.simulate(store, cells=["E003", "E116", "E117"], genes=400, seed=0)
    hyper = {"attentivechrome": {"epochs": 2, "ensemble": 2, "bin_hidden": 8, "mark_hidden": 4}}
    runs = []
    for _ in range(2):
        with dask.config.set(scheduler="threads", num_workers=3):
            runs.append(run_peers(store, "att", ["attentivechrome"], hyper=hyper, write=False))
    test = runs[0].split.values[0] == 2
    aurocs = []
    for run in runs:
        y, p = run.target.values, run.prediction.values[0, :, 0]
        aurocs.append([roc_auc_score(y[c, test], p[c, test]) for c in range(3)])
    assert aurocs[0] == aurocs[1] and min(aurocs[0]) > 0.5
    np.testing.assert_array_equal(runs[0].prediction.values, runs[1].prediction.values)
    np.testing.assert_array_equal(runs[0].history_loss.values, runs[1].history_loss.values)
