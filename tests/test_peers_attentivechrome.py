from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from training.peers.attentivechrome import AttentiveChrome, fit_attentivechrome


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
    fit = fit_attentivechrome(signal, y, split, epochs=12, patience=12, seed=0)
    te = split == 2
    assert roc_auc_score(y[te], fit.score[te]) > 0.9
    assert fit.best_epoch == int(np.nanargmax(fit.history_valid_auc))
    assert len(fit.history_loss) == 12 and fit.history_loss[-1] < fit.history_loss[0]
    assert fit.bin_attention.shape == (180, 5, 20) and fit.mark_attention.shape == (180, 5)
    again = fit_attentivechrome(signal, y, split, epochs=2, seed=0)
    first = fit_attentivechrome(signal, y, split, epochs=2, seed=0)
    np.testing.assert_array_equal(again.score, first.score)
