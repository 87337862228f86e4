from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from chromestore.training.peers.baselines import best_bins, rf_bestbin, svm_bin


def _simulated(rng, n_genes=150, n_bins=6, bin_=3):
    """Counts where only bin ``bin_`` of marks 0 and 3 follows the label."""
    y = rng.integers(0, 2, n_genes)
    signal = rng.poisson(3.0, size=(n_genes, 5, n_bins)).astype(np.float32)
    signal[:, 3, bin_] += rng.poisson(1 + 12 * y)
    signal[:, 0, bin_] += rng.poisson(1 + 6 * (1 - y))
    split = np.arange(n_genes) % 3
    expression = np.where(y == 1, 20.0, 0.5) * rng.gamma(2.0, size=n_genes)
    return signal, y, split, expression


def test_svm_bin__finds_the_informative_bin(rng):
    signal, y, split, _ = _simulated(rng)
    res = svm_bin(signal, y, split)
    assert res.best_bin == 3
    assert res.test_auc[3] > 0.9
    others = np.delete(res.test_auc, 3)
    assert np.all(others < 0.75)
    assert res.best_test_auc == res.test_auc[3]
    np.testing.assert_allclose(res.mean_test_auc, res.test_auc.mean())
    te = split == 2
    assert roc_auc_score(y[te], res.score[te]) == res.test_auc[3]


def test_best_bins__match_numpy_corrcoef(rng):
    signal, _, _, expression = _simulated(rng)
    target = np.log1p(expression)
    got = best_bins(signal, target)
    for m in range(5):
        r = [abs(np.corrcoef(signal[:, m, b], target)[0, 1]) for b in range(signal.shape[2])]
        assert got[m] == int(np.argmax(r))
    assert got[0] == 3 and got[3] == 3


def test_rf_bestbin__tunes_trees_on_validation_and_predicts(rng):
    signal, y, split, expression = _simulated(rng)
    res = rf_bestbin(signal, y, split, expression, trees=(10, 50))
    assert res.bins[3] == 3 and res.bins[0] == 3
    assert res.n_trees in (10, 50)
    te = split == 2
    assert roc_auc_score(y[te], res.score[te]) > 0.9
    assert res.importance.argmax() == 3
