from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from chromestore.training.peers.shallowchrome import (
    fit_logistic,
    max_signal_features,
    regulative_patterns,
)


def _data(rng, n=400, scale=(1.0, 50.0, 0.01, 3.0, 10.0)):
    X = rng.gamma(2.0, size=(n, 5)) * np.asarray(scale)
    logit = 0.8 * X[:, 0] - 0.02 * X[:, 1] + 30 * X[:, 2] - 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def test_fit_logistic__pvalues_match_statsmodels_logit(rng):
    X, y = _data(rng)
    fit = fit_logistic(X, y)
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0, method="newton", tol=1e-12)
    np.testing.assert_allclose(fit.coef, ref.params[1:], rtol=1e-5)
    assert fit.intercept == pytest.approx(ref.params[0], rel=1e-5)
    np.testing.assert_allclose(fit.stderr, ref.bse[1:], rtol=1e-5)
    assert np.max(np.abs(fit.pvalue - ref.pvalues[1:])) < 1e-6
    assert abs(fit.intercept_pvalue - ref.pvalues[0]) < 1e-6
    # the informative features are significant, the noise ones are not
    assert fit.pvalue[0] < 1e-3 and fit.pvalue[3] > 1e-3


def test_fit_logistic__predict_proba_is_sigmoid_of_linear_term(rng):
    X, y = _data(rng, n=200)
    fit = fit_logistic(X, y)
    p = fit.predict_proba(X)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(X @ fit.coef + fit.intercept))), rtol=1e-12)


def test_regulative_patterns__sum_to_log_odds(rng):
    X, y = _data(rng, n=100)
    fit = fit_logistic(X, y)
    patterns, bias = regulative_patterns(fit, X)
    assert patterns.shape == (100, 5)
    np.testing.assert_allclose(patterns[:, 2], fit.coef[2] * X[:, 2])
    np.testing.assert_allclose(patterns.sum(1) + bias, fit.decision_function(X), rtol=1e-12)


def test_max_signal_features__ignores_nan_bins():
    signal = np.array([[[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]]])
    np.testing.assert_array_equal(max_signal_features(signal), [[3.0, np.nan]])


def test_fit_logistic__rejects_one_class():
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(np.ones((5, 2)), np.zeros(5))


def test_registry__lists_the_peers_and_shallowchrome_scores_with_its_kernel(rng):
    from chromestore.bins import WindowLayout
    from chromestore.training import registry
    from chromestore.training.entry import ArraysModel
    from chromestore.training.peers.shallowchrome import ShallowChrome

    for name in ("shallowchrome", "svm-bin", "rf-bestbin", "attentivechrome"):
        assert isinstance(registry.get(name), ArraysModel) and registry.get(name).paper
    entry = registry.get("shallowchrome")
    assert entry.reads == "signal_max" and entry.export is not None
    signal = rng.poisson(3.0, size=(120, 5, 10)).astype(float)
    y = (signal[:, 3].max(1) + rng.normal(size=120) > 6).astype(int)
    X = max_signal_features(signal)
    est = ShallowChrome().fit(X, y)
    np.testing.assert_allclose(est.predict_proba(X)[:, 1], fit_logistic(X, y).predict_proba(X))
    layout = WindowLayout.from_offsets(range(-500, 500, 100))
    score = entry.scorer(est.result_, {}, layout)
    np.testing.assert_allclose(score(signal), fit_logistic(X, y).predict_proba(X), rtol=1e-6)


def test_choose_peak_formats__takes_each_marks_informative_format_on_validation(rng):
    from chromestore.training.peers.shallowchrome import choose_peak_formats

    n = 600
    y = rng.integers(0, 2, n)
    split = np.arange(n) % 3
    noise = lambda: rng.gamma(2.0, size=(n, 3))  # noqa: E731
    narrow, broad = noise(), noise()
    narrow[:, 0] += 3 * y  # mark 0 is informative in narrow peaks only
    broad[:, 1] += 3 * y  # mark 1 in broad peaks only
    # the test genes' broad mark-0 feature is made perfect: choices must not look at it
    broad[split == 2, 0] = 10 * y[split == 2]
    formats, X = choose_peak_formats({"narrow": narrow, "broad": broad}, y, split)
    assert formats[:2] == ["narrow", "broad"]
    np.testing.assert_array_equal(X[:, 0], narrow[:, 0])
    np.testing.assert_array_equal(X[:, 1], broad[:, 1])
    chosen = {"narrow": narrow, "broad": broad}[formats[2]]
    np.testing.assert_array_equal(X[:, 2], chosen[:, 2])
