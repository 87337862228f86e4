"""The simulator's draw: one epigenome's counts from its fitted model, block by block.

Randomness is drawn per fixed block of :data:`DRAW_BLOCK` genes of the full gene list,
from a generator seeded by ``(seed, cell id, block)``: any subset of cells or genes, and
any chunking, gives the same values as one full draw. Counts come out in the 5'→3'
frame of the store (:mod:`chromestore.simulation.model`); the emitters map them back to
genome coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chromestore.simulation.model import (
    _regions,
    calibration,
    cell_depth,
    cell_key,
    cell_parameters,
    snr_weight,
)

#: Genes per random draw (fixed: independent of the store's chunking).
DRAW_BLOCK = 256


def draw_block(
    levels: np.ndarray,
    profiles: np.ndarray,
    quantiles: np.ndarray,
    chol: np.ndarray,
    dispersion: np.ndarray,
    depth: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Counts (gene, mark, bin) float32 for genes of the given levels (pure numpy)."""
    from scipy.special import ndtr

    n_genes = len(levels)
    n_marks, n_q = quantiles.shape[1], quantiles.shape[-1]
    n_reg = chol.shape[-1]
    lv = levels[:, None]
    marks = np.arange(n_marks)[None, :]
    z = rng.standard_normal((n_genes, n_marks, n_reg))
    z = np.einsum("gmij,gmj->gmi", chol[lv, marks], z)  # correlated normal scores
    mult = np.empty((n_genes, n_marks, n_reg))
    for region in range(n_reg):
        u = ndtr(z[:, :, region]) * (n_q - 1)
        idx = np.minimum(u.astype(np.int64), n_q - 2)
        frac = u - idx
        qk = quantiles[lv, marks, region]  # gene, mark, knot
        lo = np.take_along_axis(qk, idx[:, :, None], axis=2)[:, :, 0]
        hi = np.take_along_axis(qk, idx[:, :, None] + 1, axis=2)[:, :, 0]
        mult[:, :, region] = lo * (1 - frac) + hi * frac
    mu = depth * mult[:, :, _regions(profiles.shape[-1])] * profiles[levels]
    inv_r = np.empty_like(mu)
    log_mu = np.log(np.maximum(mu, 1e-9))
    for j in range(n_marks):
        inv_r[:, j] = np.interp(log_mu[:, j], dispersion[j, 0], dispersion[j, 1])
    size = 1.0 / inv_r
    lam = mu * rng.gamma(size, inv_r)
    return rng.poisson(lam).astype(np.float32)


@dataclass(frozen=True)
class CellModel:
    """Everything needed to draw one epigenome's signal (small; shipped to Dask workers)."""

    cell: str
    profiles: np.ndarray
    quantiles: np.ndarray
    chol: np.ndarray
    dispersion: np.ndarray
    depth: float


def cell_model(cell: str, seed: int = 0) -> CellModel:
    """The generative model of ``cell``: calibration moved by its SNR weight, its depth."""
    cal = calibration()
    profiles, quantiles, chol = cell_parameters(cal, snr_weight(cell))
    return CellModel(cell, profiles, quantiles, chol, cal.dispersion, cell_depth(cell, seed))


def draw_cell(
    model: CellModel,
    genes_idx: np.ndarray,
    levels: np.ndarray,
    base: int,
    n_total: int,
    seed: int,
) -> np.ndarray:
    """Signal (gene, mark, bin) float32 of one cell at positions ``genes_idx`` of the full list.

    ``levels[i]`` is the expression level of gene ``base + i`` of the full list of
    ``n_total`` genes (``base`` a multiple of DRAW_BLOCK, covering ``genes_idx``). Whole
    blocks of DRAW_BLOCK genes are drawn, each from a generator seeded by
    ``(seed, cell, block)``, so values do not depend on which genes are asked for.
    """
    n_marks, n_bins = model.profiles.shape[1], model.profiles.shape[2]
    out = np.empty((len(genes_idx), n_marks, n_bins), dtype=np.float32)
    blocks = genes_idx // DRAW_BLOCK
    for b in np.unique(blocks):
        lo = int(b) * DRAW_BLOCK
        hi = min(lo + DRAW_BLOCK, n_total)
        rng = np.random.default_rng([seed, cell_key(model.cell), int(b)])
        counts = draw_block(
            levels[lo - base : hi - base],
            model.profiles,
            model.quantiles,
            model.chol,
            model.dispersion,
            model.depth,
            rng,
        )
        sel = blocks == b
        out[sel] = counts[genes_idx[sel] - lo]
    return out
