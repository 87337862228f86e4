"""The compiled draw's samplers: keyed streams, binomials, gammas, the read split."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from chromestore.simulation import kernels as SK


@numba.njit
def _uniforms(seed, cell, gene, n):
    state = np.empty(1, dtype=np.uint64)
    state[0] = SK.stream_key(seed, cell, gene)
    out = np.empty(n)
    for i in range(n):
        out[i] = SK._uniform(state)
    return out


@numba.njit
def _normals(draws):
    state = np.empty(1, dtype=np.uint64)
    state[0] = SK.stream_key(3, 2, 1)
    spare = np.zeros(2)
    out = np.empty(draws)
    for i in range(draws):
        out[i] = SK._normal(state, spare)
    return out


@numba.njit
def _binomials(n, p, draws):
    state = np.empty(1, dtype=np.uint64)
    state[0] = SK.stream_key(1, 2, 3)
    out = np.empty(draws)
    for i in range(draws):
        out[i] = SK._binomial(state, n, p)
    return out


@numba.njit
def _gammas(shape, draws):
    state = np.empty(1, dtype=np.uint64)
    state[0] = SK.stream_key(4, 5, 6)
    spare = np.zeros(2)
    out = np.empty(draws)
    for i in range(draws):
        out[i] = SK._gamma(state, spare, shape)
    return out


@numba.njit
def _splits(n, alpha, shares, draws):
    state = np.empty(1, dtype=np.uint64)
    state[0] = SK.stream_key(7, 8, 9)
    spare = np.zeros(2)
    g = np.empty(len(shares))
    picked = np.empty(SK.URN_BELOW, dtype=np.int64)
    out = np.empty((draws, len(shares)))
    for i in range(draws):
        SK._split(state, spare, n, alpha, shares, 0, len(shares), g, picked, out[i])
    return out


def test_streams__uniform_and_independent_per_key():
    a = _uniforms(0, 11, 5, 200_000)
    assert 0 < a.min() and a.max() < 1
    assert a.mean() == pytest.approx(0.5, abs=0.003)
    assert a.var() == pytest.approx(1 / 12, rel=0.01)
    np.testing.assert_array_equal(a, _uniforms(0, 11, 5, 200_000))  # a key is its stream
    for other in (_uniforms(1, 11, 5, 200_000), _uniforms(0, 12, 5, 200_000)):
        assert abs(np.corrcoef(a, other)[0, 1]) < 0.01
    b = _uniforms(0, 11, 6, 200_000)  # the neighbouring gene
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.01  # no serial correlation


def test_normal__moments_and_pairs_independent():
    x = _normals(400_000)
    assert x.mean() == pytest.approx(0, abs=0.005)
    assert x.var() == pytest.approx(1, rel=0.01)
    assert (x**4).mean() == pytest.approx(3, rel=0.03)  # normal tails
    assert abs(np.corrcoef(x[0::2], x[1::2])[0, 1]) < 0.01  # the polar method's two


@pytest.mark.parametrize("n,p", [(5, 0.3), (30, 0.2), (200, 0.3), (5000, 0.05), (1000, 0.9)])
def test_binomial__mean_and_variance_by_inversion_and_btrs(n, p):
    x = _binomials(n, p, 200_000)
    assert ((x >= 0) & (x <= n) & (x == np.round(x))).all()
    sd = np.sqrt(n * p * (1 - p))
    assert x.mean() == pytest.approx(n * p, abs=5 * sd / np.sqrt(len(x)))
    assert x.var() == pytest.approx(sd**2, rel=0.02)


@pytest.mark.parametrize("shape", [0.3, 1.0, 4.0, 40.0])
def test_gamma__mean_and_variance(shape):
    x = _gammas(shape, 200_000)
    assert (x >= 0).all()
    assert x.mean() == pytest.approx(shape, rel=0.01)
    assert x.var() == pytest.approx(shape, rel=0.03)


@pytest.mark.parametrize("n", [7, 40, 300])  # the urn below URN_BELOW reads, gammas above
def test_split__dirichlet_multinomial_moments_on_both_paths(n):
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    alpha = 20.0
    x = _splits(n, alpha, shares, 100_000)
    np.testing.assert_array_equal(x.sum(axis=1), n)  # every read lands in one bin
    var = n * shares * (1 - shares) * (n + alpha) / (1 + alpha)  # Dirichlet-multinomial
    np.testing.assert_allclose(x.mean(axis=0), n * shares, rtol=0.01)
    np.testing.assert_allclose(x.var(axis=0), var, rtol=0.03)
    assert (n < SK.URN_BELOW) == (n in (7, 40))
