"""The simulator's generative model, fitted on the real E003 sample (5'→3').

The real inputs (the 19,802 gene windows, the RPKM of the 56 epigenomes, DeepChrome's
published AUC per epigenome, the binned read counts of 600 E003 genes) and what is
fitted on them:

* each gene's expression level in a cell is its RPKM percentile in that cell, cut into
  :data:`N_LEVELS` levels (the median, i.e. the label boundary, is a level edge);
* per level, mark and bin, the mean count profile of the real genes of that level, in
  the 5'→3' frame (the published sample is in genome order; its ``-`` genes are
  reversed on reading), so H3K36me3's rise into the gene body, H3K4me3's peak just
  downstream of the TSS and H3K4me1's flanks are the real ones;
* per level and mark, gene-level multipliers for the five 2 kb stretches of the window
  (:data:`REGIONS`), drawn from the empirical distribution of the real genes' stretch
  totals (their quantile functions) and tied by a Gaussian copula fitted on the same
  genes: this carries the real gene-to-gene spread (e.g. the few broad H3K27me3 domains
  of silent genes, sharp H3K4me3 peaks without high flanks);
* per mark, negative-binomial (gamma-Poisson) bin counts around that mean, with a
  dispersion trend (dispersion by class of the mean) fitted by the method of moments;
* per cell, a sequencing depth (log-normal, E003 = 1, the calibration depth) and a
  signal-to-noise weight ``w = (AUC - 0.5) / (AUC_E003 - 0.5)`` from DeepChrome's
  published test AUC of that epigenome (``data/epigenomes.tsv``): the level profiles are
  mixed geometrically with the expression-independent one, ``P0 * (Pk / P0) ** w``, so
  epigenomes the paper found hard (E112, E084) carry less expression information and
  easy ones (E117, E123) more.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import datasets
from chromestore import variables as V
from chromestore.errors import InputError
from chromestore.expression import align_expression, read_rpkm
from chromestore.genes import read_gene_bed, reference_strands
from chromestore.store import DEFAULT_BIN_SIZE, DEFAULT_WINDOW

GENES_BED = datasets.gene_windows()
RPKM = datasets.rpkm()
EPIGENOMES = datasets.epigenomes()
E003_SAMPLE = datasets.e003_sample()
CALIBRATION_CELL = "E003"

#: Expression levels (RPKM percentile bins within a cell); the median is an edge.
N_LEVELS = 4
#: Knots of the gene-level multiplier's quantile function.
N_QUANTILES = 101
#: Classes of the mean in the negative-binomial dispersion trend.
N_DISPERSION = 6
#: Spread (sd of log) of the per-cell sequencing depth around the calibration depth.
DEPTH_SD = 0.25
#: The simulator draws the store's default layout, DeepChrome's 100 bins of 100 bp (the
#: bin ranges below are of those 100 bins).
WINDOW, BIN_SIZE = DEFAULT_WINDOW, DEFAULT_BIN_SIZE
#: Bins of the ±500 bp around the TSS in the store's 100 bins (the sample's bins 96-105).
TSS_BINS = slice(45, 55)
#: Regions of the gene-level multipliers, as bin ranges of the 100 bins (5'→3'):
#: two 2 kb stretches upstream, the core ±1 kb around the TSS, two downstream.
REGIONS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100))


# --- real inputs -------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def real_genes() -> pd.DataFrame:
    """The 19,802 real REMC gene windows, in file order."""
    return read_gene_bed(GENES_BED)


@functools.lru_cache(maxsize=1)
def real_rpkm() -> pd.DataFrame:
    """The real RPKM matrix of the 56 epigenomes."""
    return read_rpkm(RPKM)


@functools.lru_cache(maxsize=1)
def published_auc() -> pd.Series:
    """DeepChrome's published test AUC per epigenome."""
    table = pd.read_csv(EPIGENOMES, sep="\t")
    return table.set_index("epigenome")["deepchrome_test_auc"].astype(float)


@functools.lru_cache(maxsize=1)
def real_e003_sample() -> xr.DataArray:
    """The real E003 counts, gene × mark × bin (store mark order, the central 100 bins),
    bins 5'→3': the file's genome order with the ``-`` genes reversed."""
    from chromestore.formats.csv import centre_crop, read_deepdiff_csv

    strand = reference_strands()
    parts = [
        read_deepdiff_csv(E003_SAMPLE / f"E003.{split}.csv", strand)
        for split in ("train", "valid", "test")
    ]
    sample = centre_crop(xr.concat(parts, dim=V.GENE), 2 * WINDOW // BIN_SIZE)
    sample = sample.transpose(V.GENE, V.MARK, V.BIN).sel({V.MARK: list(V.DEFAULT_MARKS)})
    return sample.astype(np.float64).rename("signal")


@functools.lru_cache(maxsize=1)
def window_owner() -> np.ndarray:
    """For each real gene, the first gene with the same window (chrom, TSS, strand).

    Genes that share a window (105 of the 19,802, e.g. the 7 Ensembl ids listed under two
    symbols) share their simulated signal: the same reads fall in the same window.
    """
    genes = real_genes()
    first = genes.groupby(["chrom", "tss", "strand"], sort=False).cumcount() == 0
    key = genes["chrom"].astype(str) + ":" + genes["tss"].astype(str) + genes["strand"]
    owner = pd.Series(np.flatnonzero(first.to_numpy()), index=key[first].to_numpy())
    return owner.loc[key.to_numpy()].to_numpy(np.int64)


def aligned_rpkm(gene_ids: np.ndarray, cells: Sequence[str]) -> np.ndarray:
    return align_expression(real_rpkm(), gene_ids, list(cells)).values


def expression_percentiles(values: np.ndarray) -> np.ndarray:
    """(cell, gene) RPKM → percentile in (0, 1) within each cell (average rank of ties).

    NaN stays NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    for i, row in enumerate(values):
        ok = ~np.isnan(row)
        if ok.any():
            ranks = pd.Series(row[ok]).rank(method="average").to_numpy()
            out[i, ok] = (ranks - 0.5) / ok.sum()
    return out


def expression_levels(percentiles: np.ndarray) -> np.ndarray:
    """Percentile → level 0..N_LEVELS-1; N_LEVELS for genes without expression."""
    p = np.asarray(percentiles, dtype=np.float64)
    level = np.minimum((np.nan_to_num(p, nan=0.0) * N_LEVELS).astype(np.int64), N_LEVELS - 1)
    return np.where(np.isnan(p), N_LEVELS, level)


# --- calibration ---------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Generative parameters fitted on the real E003 sample.

    ``profiles`` (level, mark, bin): mean count per bin, the last level being the
    expression-independent profile (all genes). Each gene has two multipliers per mark
    (mean 1) per region of :data:`REGIONS` (2 kb stretches; the middle one is ±1 kb);
    ``quantiles`` (level, mark, region, knot) holds their empirical quantile functions
    and ``rho`` (level, mark, region, region) the correlation matrix of their normal
    scores (a Gaussian copula). Bin counts are negative binomial around ``mu = multiplier × profile``
    with variance ``mu + mu**2 / r``; ``dispersion`` (mark, 2, class) holds the
    dispersion trend, ``log mu`` and ``1 / r`` of :data:`N_DISPERSION` classes of
    ``mu`` (moment estimates), interpolated in ``log mu``.
    """

    marks: tuple[str, ...]
    profiles: np.ndarray
    quantiles: np.ndarray
    rho: np.ndarray
    dispersion: np.ndarray
    n_genes: int


def _regions(n_bins: int) -> np.ndarray:
    """Region index (into :data:`REGIONS`) of each bin."""
    region = np.empty(n_bins, dtype=np.int64)
    for r, (lo, hi) in enumerate(REGIONS):
        region[lo:hi] = r
    return region


def _normal_scores(values: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    ranks = pd.DataFrame(values).rank(method="average").to_numpy()
    return ndtri((ranks - 0.5) / len(values))


@functools.lru_cache(maxsize=1)
def calibration() -> Calibration:
    """Fit the generative model on the real E003 sample (cached; well under a second)."""
    sample = real_e003_sample()
    x = sample.values  # gene, mark, bin
    keys = [str(k) for k in sample[V.GENE].values]
    genes = real_genes()
    pct_all = expression_percentiles(
        aligned_rpkm(genes["gene_id"].to_numpy(object), [CALIBRATION_CELL])
    )[0]
    pos = pd.Index(genes["gene"]).get_indexer(keys)
    if (pos < 0).any():
        raise InputError(E003_SAMPLE, None, "sample genes missing from the gene list")
    level = expression_levels(pct_all[pos])
    groups = [level == k for k in range(N_LEVELS)] + [np.ones(len(x), dtype=bool)]
    n_marks, n_bins = x.shape[1], x.shape[2]
    region = _regions(n_bins)
    profiles = np.empty((len(groups), n_marks, n_bins))
    n_reg = len(REGIONS)
    quantiles = np.empty((len(groups), n_marks, n_reg, N_QUANTILES))
    rho = np.empty((len(groups), n_marks, n_reg, n_reg))
    g = np.empty(x.shape[:2] + (n_reg,))  # multipliers of each real gene within its level
    knots = np.linspace(0, 1, N_QUANTILES)
    for k, sel in enumerate(groups):
        profiles[k] = x[sel].mean(axis=0)
        mult = np.empty((int(sel.sum()), n_marks, n_reg))
        for r in range(n_reg):
            totals = x[sel][:, :, region == r].sum(axis=2)  # gene, mark
            mult[:, :, r] = totals / np.maximum(totals.mean(axis=0), 1e-9)
            quantiles[k, :, r] = np.quantile(mult[:, :, r], knots, axis=0).T
        for j in range(n_marks):
            z = _normal_scores(mult[:, j, :])
            rho[k, j] = np.corrcoef(z.T)
        if k < N_LEVELS:
            g[sel] = mult
    profiles = np.maximum(profiles, 1e-3)
    mu = g[:, :, region] * profiles[np.minimum(level, N_LEVELS)]
    dispersion = np.empty((n_marks, 2, N_DISPERSION))
    for j in range(n_marks):
        m, c = mu[:, j].ravel(), x[:, j].ravel()
        edges = np.quantile(m, np.linspace(0, 1, N_DISPERSION + 1))
        cls = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, N_DISPERSION - 1)
        for i in range(N_DISPERSION):
            sel = cls == i
            inv_r = ((c[sel] - m[sel]) ** 2 - m[sel]).sum() / (m[sel] ** 2).sum()
            dispersion[j, :, i] = np.log(m[sel].mean()), max(inv_r, 1e-4)
    return Calibration(tuple(sample[V.MARK].values), profiles, quantiles, rho, dispersion, len(x))


def snr_weight(cell: str) -> float:
    """Signal-to-noise weight of an epigenome from its published AUC (E003 = 1)."""
    auc = published_auc()
    if cell not in auc.index:
        return 1.0
    return float((auc[cell] - 0.5) / (auc[CALIBRATION_CELL] - 0.5))


def cell_key(cell: str) -> int:
    return zlib.crc32(str(cell).encode())


def cell_depth(cell: str, seed: int = 0) -> float:
    """Sequencing depth of a simulated epigenome relative to the E003 sample (E003 = 1)."""
    if cell == CALIBRATION_CELL:
        return 1.0
    rng = np.random.default_rng([seed, cell_key(cell), 2**31])
    return float(np.exp(rng.normal(0.0, DEPTH_SD)))


def cell_parameters(cal: Calibration, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profiles, multiplier quantile functions and copula correlations of an epigenome.

    Level-specific parameters are moved away from the expression-independent ones
    (last level) by ``weight``: 1 keeps the calibration, 0 removes all expression
    information, above 1 exaggerates it.
    """
    p0 = cal.profiles[-1]
    profiles = np.concatenate([p0 * (cal.profiles[:-1] / p0) ** weight, p0[None]], axis=0)
    q0 = cal.quantiles[-1]
    q = q0 + weight * (cal.quantiles[:-1] - q0)
    q = np.maximum.accumulate(np.maximum(q, 0.0), axis=-1)
    r0 = cal.rho[-1]
    rho = np.concatenate([r0 + weight * (cal.rho[:-1] - r0), r0[None]], axis=0)
    return profiles, np.concatenate([q, q0[None]], axis=0), _cholesky(rho)


def _cholesky(corr: np.ndarray) -> np.ndarray:
    """Cholesky factors of (…, n, n) correlation-like matrices, made positive definite."""
    w, v = np.linalg.eigh(corr)
    fixed = (v * np.maximum(w, 1e-3)[..., None, :]) @ np.swapaxes(v, -1, -2)
    d = np.sqrt(np.diagonal(fixed, axis1=-2, axis2=-1))
    fixed = fixed / d[..., :, None] / d[..., None, :]
    return np.linalg.cholesky(fixed)
