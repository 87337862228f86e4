"""The compiled draw: one gene's counts from its own random stream, gene after gene.

Every gene draws from a counter-based stream keyed by ``(seed, cell, gene)``: SplitMix64
(Steele, Lea & Flood 2014) over a key that mixes the three, so a gene's values never
depend on which other genes or cells are drawn, nor on the order or the chunking, and
drawing ``n`` genes costs ``n`` genes. On that stream: normals (Marsaglia's polar
method), the promoter state, the copula's correlated normals and the read totals, then
per region the Dirichlet-multinomial split of its reads among its bins: a Pólya urn for
few reads, else gamma shares (Marsaglia & Tsang 2000) and binomials (inversion below a
mean of 10, else Hörmann's BTRS 1993). Pure numba on
arrays; no GIL held, so Dask's threads draw cells side by side.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(z):
    """SplitMix64's finaliser: a bijection of uint64 that scatters every input bit."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(cache=True, nogil=True)
def stream_key(seed, cell, gene):
    """The starting state of the stream of ``(seed, cell, gene)`` (non-negative ints)."""
    z = _mix(np.uint64(seed) + _GOLDEN)
    z = _mix(z ^ (np.uint64(cell) + _GOLDEN))
    return _mix(z ^ (np.uint64(gene) + _GOLDEN))


@numba.njit(cache=True, nogil=True, inline="always")
def _uniform(state):
    """Next uniform in (0, 1) of the stream whose state is ``state[0]``."""
    state[0] += _GOLDEN
    return ((_mix(state[0]) >> _S11) + 0.5) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def _normal(state, spare):
    """A standard normal: the polar method's second of each pair is kept in ``spare``
    (``spare[1]`` = 1 while it holds one) for the next call."""
    if spare[1] == 1.0:
        spare[1] = 0.0
        return spare[0]
    while True:
        a = 2.0 * _uniform(state) - 1.0
        b = 2.0 * _uniform(state) - 1.0
        q = a * a + b * b
        if 0.0 < q < 1.0:
            f = math.sqrt(-2.0 * math.log(q) / q)
            spare[0] = b * f
            spare[1] = 1.0
            return a * f


@numba.njit(cache=True, nogil=True)
def _gamma(state, spare, shape):
    """Gamma(shape, 1): Marsaglia & Tsang, boosted by ``U ** (1 / shape)`` below 1."""
    boost = 1.0
    if shape < 1.0:
        boost = _uniform(state) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = _normal(state, spare)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = _uniform(state)
        if u < 1.0 - 0.0331 * x * x * x * x:
            return d * v * boost
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v * boost


#: Region totals below which reads are split among the bins one by one (a Pólya urn: as
#: exact as, and cheaper than, gamma shares and binomials for few reads).
URN_BELOW = 64
#: 1 / (k + 1) for the inversion's recurrence (a product chain runs faster than a quotient).
_RECIPROCALS = 1.0 / np.arange(1.0, 4097.0)


@numba.njit(cache=True, nogil=True)
def _binomial(state, n, p):
    """Binomial(n, p): inversion below a mean of 10, else Hörmann's BTRS (1993)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - _binomial(state, n, 1.0 - p)
    if n * p < 10.0:
        ratio = p / (1.0 - p)
        prob = math.exp(n * math.log1p(-p))
        cdf = prob
        u = _uniform(state)
        k = 0
        while u > cdf and k < n:
            step = _RECIPROCALS[k] if k < 4096 else 1.0 / (k + 1.0)
            prob *= (n - k) * ratio * step
            k += 1
            cdf += prob
        return k
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    h = -1.0  # the slow test's constants, computed once it is first needed
    while True:
        u = _uniform(state) - 0.5
        v = _uniform(state)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        if us >= 0.07 and v <= vr:
            return int(k)
        if h < 0.0:
            alpha = (2.83 + 5.1 / b) * spq
            lpq = math.log(p / (1.0 - p))
            m = math.floor((n + 1) * p)
            h = math.lgamma(m + 1.0) + math.lgamma(n - m + 1.0)
        v = math.log(v * alpha / (a / (us * us) + b))
        if v <= h - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0) + (k - m) * lpq:
            return int(k)


@numba.njit(cache=True, nogil=True, inline="always")
def _split(state, spare, n, alpha, shares, first, stop, g, picked, out):
    """Split ``n`` reads among bins ``first:stop`` of ``out`` by a Dirichlet-multinomial of
    concentration ``alpha`` around ``shares`` (they sum to 1 over those bins): a Pólya urn
    read by read below :data:`URN_BELOW` reads, else gamma shares then binomials. ``g``
    (bins) and ``picked`` (:data:`URN_BELOW` ints) are scratch space."""
    for b in range(first, stop):
        out[b] = 0.0
    if n <= 0:
        return
    if n < URN_BELOW:  # Pólya urn: a read joins bin b w.p. (alpha·share_b + reads in b) / …
        acc = 0.0
        for b in range(first, stop):  # cumulative shares, for the reads drawn afresh
            acc += shares[b]
            g[b] = acc
        for read in range(n):
            u = _uniform(state) * (alpha + read)
            if u < alpha:  # afresh from the shares (u / alpha is uniform)
                t = u / alpha * acc
                b = first
                for j in range(first, stop - 1):  # no early exit: no mispredicted branch
                    b += g[j] < t
            else:  # the bin of an earlier read, each as likely (u - alpha is uniform)
                b = picked[min(int(u - alpha), read - 1)]
            picked[read] = b
            out[b] += 1.0
        return
    rest = 0.0
    for b in range(first, stop):
        a = alpha * shares[b]
        g[b] = _gamma(state, spare, a) if a > 0.0 else 0.0
        rest += g[b]
    if rest <= 0.0:  # every share underflowed: split by the mean shares
        for b in range(first, stop):
            g[b] = shares[b]
            rest += g[b]
    left = n
    for b in range(first, stop - 1):
        if left == 0 or rest <= 0.0:
            break
        k = _binomial(state, left, min(g[b] / rest, 1.0))
        out[b] = k
        left -= k
        rest -= g[b]
    out[stop - 1] += left


@numba.njit(cache=True, nogil=True)
def draw_genes(
    scores,
    genes,
    seed,
    cell,
    weight,
    depth,
    grid,
    state_p,
    quantiles,
    chol,
    shares,
    regions,
    concentration,
    out,
):
    """Fill ``out`` (gene, mark, bin) float32 with the counts of ``genes`` in one cell.

    ``scores[i]`` is gene ``genes[i]``'s expression score in the cell (NaN: unknown, a
    standard normal is drawn); the marks follow ``weight × score``. The other arrays are
    :class:`chromestore.simulation.model.Calibration`'s (``regions`` (R, 2) bin ranges),
    ``depth`` the cell's depth: each region's total (``depth ×`` the drawn one, rounded)
    is split among its bins by a Dirichlet-multinomial around the state's shares.
    """
    n_grid, n_states = state_p.shape
    n_dims, n_knots = quantiles.shape[2], quantiles.shape[3]
    n_marks = shares.shape[1]
    n_reg = regions.shape[0]
    state = np.empty(1, dtype=np.uint64)
    spare = np.empty(2)
    z = np.empty(n_dims)
    totals = np.empty(n_dims, dtype=np.int64)
    g = np.empty(shares.shape[2])
    picked = np.empty(URN_BELOW, dtype=np.int64)
    for i in range(len(genes)):
        state[0] = stream_key(seed, cell, genes[i])
        spare[1] = 0.0
        s = scores[i]
        fill = _normal(state, spare)  # always drawn: the stream's layout ignores NaN
        if math.isnan(s):
            s = fill
        s *= weight
        if s <= grid[0]:  # where the score falls on the grid (held beyond the ends)
            k, t = 0, 0.0
        elif s >= grid[n_grid - 1]:
            k, t = n_grid - 2, 1.0
        else:
            k = 0
            while s > grid[k + 1]:
                k += 1
            t = (s - grid[k]) / (grid[k + 1] - grid[k])
        u = _uniform(state)
        st = n_states - 1
        cum = 0.0
        for c in range(n_states):
            cum += state_p[k, c] * (1.0 - t) + state_p[k + 1, c] * t
            if u < cum:
                st = c
                break
        for d in range(n_dims):
            z[d] = _normal(state, spare)
        for d in range(n_dims):
            y = 0.0
            for e in range(d + 1):
                y += chol[st, d, e] * z[e]
            q = 0.5 * math.erfc(-y / math.sqrt(2.0)) * (n_knots - 1)
            j = min(int(q), n_knots - 2)
            f = q - j
            lo = quantiles[k, st, d, j] * (1.0 - f) + quantiles[k, st, d, j + 1] * f
            hi = quantiles[k + 1, st, d, j] * (1.0 - f) + quantiles[k + 1, st, d, j + 1] * f
            totals[d] = int(math.floor(depth * (lo * (1.0 - t) + hi * t) + 0.5))
        for m in range(n_marks):
            alpha = concentration[m]
            for r in range(n_reg):
                first, stop = regions[r, 0], regions[r, 1]
                left = totals[m * n_reg + r]
                _split(state, spare, left, alpha, shares[st, m], first, stop, g, picked, out[i, m])
