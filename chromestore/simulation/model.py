"""The simulator's generative model, fitted on the real E003 sample (5'→3').

The real inputs (the 19,802 gene windows, the RPKM of the 56 epigenomes, DeepChrome's
published AUC per epigenome, the binned read counts of 600 E003 genes) and what is
fitted on them. A gene's expression enters as its *score*, the normal score of its RPKM
percentile in the cell (the median gene scores 0); every distribution below is a
function of the score, smooth in it (kernel-weighted over the real genes of nearby
scores, tabulated on :data:`GRID`), so genes just above and just below the median look
alike, as they do in real data:

* a **promoter state** per gene, from the modes of the real ±1 kb counts of H3K4me3 and
  H3K27me3 (:data:`STATES`: inactive, polycomb, active, bivalent), with its probability
  given the score: most highly expressed genes are active, but some are inactive, and
  many lowly expressed genes are active or bivalent: genes whose marks contradict their
  label are part of the model, in the real proportions;
* per state and score, the read totals of each mark in seven stretches of the window
  (:data:`REGIONS`: the ±500 bp around the TSS, its flanks, and the rest), drawn from
  the real genes' empirical distribution (kernel-weighted quantile functions) and tied by
  a Gaussian copula across all marks and stretches fitted within the state: the marks of
  a gene are correlated (they report one chromatin state, not independent evidence), as
  in the real genes;
* per state, mark and bin, each bin's share of its stretch (the real shape: H3K36me3's
  rise into the gene body, H3K4me3's peak just downstream of the TSS, H3K4me1's flanks);
* per mark, negative-binomial bin counts around ``mu = total × share``, with a
  dispersion trend (dispersion by class of the mean) fitted by the method of moments;
* per cell, a sequencing depth (log-normal, E003 = 1, the calibration depth) and a
  signal-to-noise weight ``w`` (:func:`snr_weight`): the marks follow the score ``w × s``
  instead of ``s``. ``w = 1`` is E003 as measured; ``w = 0`` makes every gene look like a
  median gene (no expression information); other epigenomes take the ``w`` at which
  DeepChrome's test AUROC on the simulated store is their published AUC
  (:data:`SNR_CURVE`, measured), so the epigenomes the paper found hard (E112, E084) carry
  less expression information and easy ones (E117, E123) more.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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

#: The simulator draws the store's default layout, DeepChrome's 100 bins of 100 bp (the
#: bin ranges below are of those 100 bins).
WINDOW, BIN_SIZE = DEFAULT_WINDOW, DEFAULT_BIN_SIZE
#: Bins of the ±500 bp around the TSS in the store's 100 bins (the sample's bins 96-105).
TSS_BINS = slice(45, 55)
#: Bins of the ±1 kb around the TSS: the counts that define a gene's promoter state.
CORE_BINS = slice(40, 60)
#: Stretches whose read totals a gene draws, as bin ranges of the 100 bins (5'→3'): -5 to
#: -3.5 kb, -3.5 to -2 kb, -2 to -1 kb, -1 to -0.5 kb, the ±500 bp around the TSS, 0.5 to
#: 1 kb, 1 to 2 kb, 2 to 3.5 kb, 3.5 to 5 kb (the ±1 kb and the ±500 bp are unions of them).
REGIONS = (
    (0, 15),
    (15, 30),
    (30, 40),
    (40, 45),
    (45, 55),
    (55, 60),
    (60, 70),
    (70, 85),
    (85, 100),
)
#: Promoter states: (H3K4me3 in its high mode, H3K27me3 in its high mode) at ±1 kb.
#: ``uncovered``: no reads in any mark (every window total under :data:`UNCOVERED` of the
#: mark's median), as over duplicated or unmappable windows (RHOXF2, MAGEA6, CCL4L2 ...).
STATES = ("inactive", "polycomb", "active", "bivalent", "uncovered")
STATE_MARKS = ("H3K4me3", "H3K27me3")
UNCOVERED = 0.1
#: Scores (normal scores of the RPKM percentile) at which the conditional distributions are
#: tabulated: linear in between, held beyond the ends.
GRID = np.linspace(-2.5, 2.5, 41)
#: Gaussian kernel width, in score units, of the read totals' distributions given the score
#: (narrow: the states' mix of marks changes fast around the median).
BANDWIDTH = 0.1
#: Weight, in genes, of the pooled within-state correlation in each state's copula.
COPULA_PRIOR = 50
#: Knots of the read totals' quantile functions.
N_QUANTILES = 101
#: Spread (sd of log) of the per-cell sequencing depth around the calibration depth.
DEPTH_SD = 0.25
#: DeepChrome's test AUROC on a simulated epigenome against its signal-to-noise weight ``w``
#: (paper protocol: ``--split deepchrome``, up to 100 epochs, patience 10), measured on a
#: store of 8 epigenomes × 19,802 genes drawn at these weights (README, "Simulated data"):
#: :func:`snr_weight` reads an epigenome's ``w`` off it at its published AUC.
SNR_CURVE = (
    (0.0, 0.5),
    (0.1, 0.642),
    (0.2, 0.723),
    (0.3, 0.784),
    (0.45, 0.829),
    (0.6, 0.869),
    (0.8, 0.898),
    (1.0, 0.912),
    (1.25, 0.935),
)


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


def expression_scores(percentiles: np.ndarray) -> np.ndarray:
    """Percentile → score, its standard normal quantile (the median gene scores 0); NaN
    stays NaN (the draw gives such a gene a random score)."""
    from scipy.special import ndtri

    return ndtri(np.asarray(percentiles, dtype=np.float64))


# --- calibration ---------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Generative parameters fitted on the real E003 sample.

    With ``K`` grid scores, ``S`` states, ``M`` marks, ``R`` regions and ``B`` bins:
    ``state_p`` (K, S) is P(state | score); ``quantiles`` (K, S, M·R, N_QUANTILES) the
    quantile functions of the read totals per mark and region (index ``m·R + r``);
    ``chol`` (S, M·R, M·R) the Cholesky factor of each state's copula correlation;
    ``shares`` (S, M, B) each bin's mean share of its region's reads and
    ``concentration`` (M,) the Dirichlet concentration of a gene's shares around them;
    ``states`` holds each real gene's state and ``cuts`` the ±1 kb log-count cut of each
    state mark's modes (and each mark's median window total, for ``uncovered``).
    """

    marks: tuple[str, ...]
    grid: np.ndarray
    state_p: np.ndarray
    quantiles: np.ndarray
    chol: np.ndarray
    shares: np.ndarray
    concentration: np.ndarray
    states: np.ndarray
    cuts: dict
    n_genes: int

    @property
    def regions(self) -> np.ndarray:
        """(R, 2) first and last + 1 bin of each region."""
        return np.asarray(REGIONS, dtype=np.int64)


def _regions(n_bins: int) -> np.ndarray:
    """Region index (into :data:`REGIONS`) of each bin."""
    region = np.empty(n_bins, dtype=np.int64)
    for r, (lo, hi) in enumerate(REGIONS):
        region[lo:hi] = r
    return region


def mode_cut(values: np.ndarray, iterations: int = 300) -> float:
    """Where a two-component Gaussian mixture of ``values`` (fitted by EM) turns to its
    upper component, going up from the lower mean: values at or above it are in the high
    mode (a wide upper component that also covers the lowest values is cut only once)."""
    v = np.asarray(values, dtype=np.float64)
    mean = np.quantile(v, [0.2, 0.8])
    sd = np.full(2, v.std() / 2)
    weight = np.full(2, 0.5)
    for _ in range(iterations):
        dens = weight * np.exp(-0.5 * ((v[:, None] - mean) / sd) ** 2) / sd
        post = dens / dens.sum(axis=1, keepdims=True)
        weight = post.mean(axis=0)
        before = mean
        mean = (post * v[:, None]).sum(axis=0) / post.sum(axis=0)
        sd = np.sqrt((post * (v[:, None] - mean) ** 2).sum(axis=0) / post.sum(axis=0))
        if np.abs(mean - before).max() < 1e-9:
            break
    lo, hi = np.argsort(mean)
    grid = np.linspace(mean[lo], v.max(), 2001)
    dens = weight * np.exp(-0.5 * ((grid[:, None] - mean) / sd) ** 2) / sd
    upper = np.flatnonzero(dens[:, hi] >= dens[:, lo])
    return float(grid[upper[0]]) if len(upper) else float(v.max())


def promoter_states(counts: np.ndarray, marks: Sequence[str], cuts: dict) -> np.ndarray:
    """State index (into :data:`STATES`) of genes (gene, mark, bin): ``uncovered`` where
    every mark's window total is under :data:`UNCOVERED` of that mark's median in the
    sample (duplicated or unmappable windows: no reads in any mark), else from the modes
    of their ±1 kb counts of H3K4me3 and H3K27me3."""
    marks = list(marks)
    high = [
        np.log1p(counts[:, marks.index(m), CORE_BINS].sum(axis=1)) >= cuts[m] for m in STATE_MARKS
    ]
    state = 2 * high[0].astype(np.int64) + high[1].astype(np.int64)
    median = np.array([cuts["median_total"][m] for m in marks])
    uncovered = (counts.sum(axis=2) < UNCOVERED * median).all(axis=1)
    return np.where(uncovered, STATES.index("uncovered"), state)


def _kernel(scores: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(len(at), len(scores)) Gaussian kernel weights of :data:`BANDWIDTH`."""
    return np.exp(-0.5 * ((scores[None, :] - at[:, None]) / BANDWIDTH) ** 2)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """(n, d) values, (k, n) weights → (k, d, knots) quantile functions (midpoint rule)."""
    order = np.argsort(values, axis=0, kind="stable")
    out = np.empty((len(weights), values.shape[1], len(knots)))
    for d in range(values.shape[1]):
        v = values[order[:, d], d]
        w = weights[:, order[:, d]]
        cum = np.cumsum(w, axis=1)
        pos = (cum - w / 2) / cum[:, -1:]
        for k in range(len(weights)):
            out[k, d] = np.interp(knots, pos[k], v)
    return out


def _state_logit(scores: np.ndarray, states: np.ndarray, n_states: int) -> np.ndarray:
    """Coefficients (n_states, 3) of a multinomial logistic regression of the state on
    ``(1, s, s²)`` (Newton's method, a small ridge; the first state is the reference)."""
    x = np.stack([np.ones_like(scores), scores, scores**2], axis=1)
    y = np.eye(n_states)[states]
    n_feat = x.shape[1]
    beta = np.zeros((n_states, n_feat))
    ridge = 1e-2
    for _ in range(100):
        p = _softmax(x @ beta.T)
        grad = ((y - p).T @ x)[1:].ravel() - ridge * beta[1:].ravel()
        hess = np.zeros((len(grad), len(grad)))
        for i in range(1, n_states):
            for j in range(1, n_states):
                w = p[:, i] * ((i == j) - p[:, j])
                hess[(i - 1) * n_feat : i * n_feat, (j - 1) * n_feat : j * n_feat] = (x.T * w) @ x
        step = np.linalg.solve(hess + ridge * np.eye(len(grad)), grad)
        beta[1:] += step.reshape(n_states - 1, n_feat)
        if np.abs(step).max() < 1e-10:
            break
    return beta


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _normal_scores(values: np.ndarray) -> np.ndarray:
    """Mid-rank normal scores of each column (ties share their mean rank)."""
    from scipy.special import ndtri

    ranks = pd.DataFrame(values).rank(method="average").to_numpy()
    return ndtri((ranks - 0.5) / len(values))


def _attenuation(values: np.ndarray) -> float:
    """Correlation between a standard normal and the mid-rank normal score of its
    discretisation into ``values``' ties: how much ties shrink the correlations of normal
    scores (a copula fitted on them is corrected by it, since the draw discretises again)."""
    from scipy.special import ndtri

    _, counts = np.unique(values, return_counts=True)
    n = len(values)
    upper = np.cumsum(counts) / n
    lower = upper - counts / n
    a, b = ndtri(np.clip(lower, 0, 1)), ndtri(np.clip(upper, 0, 1))
    score = ndtri(np.clip((lower + upper) / 2, 0.5 / n, 1 - 0.5 / n))
    p = counts / n
    sd = np.sqrt((p * (score - (p * score).sum()) ** 2).sum())
    if sd == 0:
        return 1.0
    pdf = np.exp(-0.5 * np.nan_to_num(a, neginf=-40) ** 2) - np.exp(
        -0.5 * np.nan_to_num(b, posinf=40) ** 2
    )
    return float((score * pdf).sum() / np.sqrt(2 * np.pi) / sd)


def _copula(totals: np.ndarray) -> np.ndarray:
    """Correlation of one state's genes' totals (gene, dim): of their normal scores,
    corrected for ties; constant dims are uncorrelated."""
    z = _normal_scores(totals)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(z.T))
    att = np.array([_attenuation(totals[:, d]) for d in range(totals.shape[1])])
    corr = np.clip(corr / np.outer(att, att), -0.99, 0.99)
    np.fill_diagonal(corr, 1.0)
    return corr


def _cholesky(corr: np.ndarray) -> np.ndarray:
    """Cholesky factors of (…, n, n) correlation-like matrices, made positive definite."""
    w, v = np.linalg.eigh(corr)
    fixed = (v * np.maximum(w, 1e-3)[..., None, :]) @ np.swapaxes(v, -1, -2)
    d = np.sqrt(np.diagonal(fixed, axis1=-2, axis2=-1))
    fixed = fixed / d[..., :, None] / d[..., None, :]
    return np.linalg.cholesky(fixed)


def _concentration(
    counts: np.ndarray, totals: np.ndarray, which: np.ndarray, shares: np.ndarray
) -> float:
    """Dirichlet concentration at which the expected number of bins with at most one read,
    given each region's total and the state's shares, is the real one (bisection in log
    scale): the overdispersion of a Dirichlet-multinomial split of each region's reads.
    ``counts``, ``totals`` (the bin's region total) and ``which`` (index of the bin's mean
    share in ``shares``) are (gene, bin)."""
    from scipy.special import gammaln

    some = totals >= 2  # bins of regions with 0 or 1 read hold at most one whatever alpha
    target = (counts[some] <= 1).sum()
    key = totals[some].astype(np.int64) * len(shares) + which[some]
    key, weight = np.unique(key, return_counts=True)
    n, share = (key // len(shares)).astype(np.float64), shares[key % len(shares)]

    def expected(alpha: float) -> float:
        a = np.maximum(alpha * share, 1e-12)
        b = np.maximum(alpha - a, 1e-12)
        p0 = np.exp(gammaln(b + n) + gammaln(alpha) - gammaln(b) - gammaln(alpha + n))
        p1 = p0 * n * a / (b + n - 1)  # P(1) / P(0) of the beta-binomial
        return float((weight * (p0 + p1)).sum())

    lo, hi = np.log(0.1), np.log(1e5)
    for _ in range(40):
        mid = (lo + hi) / 2
        if expected(np.exp(mid)) > target:
            lo = mid  # too many low bins: less overdispersion
        else:
            hi = mid
    return float(np.exp((lo + hi) / 2))


def sample_scores() -> np.ndarray:
    """The real E003 sample's genes' scores in E003 (their RPKM among all 19,802 genes)."""
    sample = real_e003_sample()
    keys = [str(k) for k in sample[V.GENE].values]
    genes = real_genes()
    pos = pd.Index(genes["gene"]).get_indexer(keys)
    if (pos < 0).any():
        raise InputError(E003_SAMPLE, None, "sample genes missing from the gene list")
    pct = expression_percentiles(
        aligned_rpkm(genes["gene_id"].to_numpy(object), [CALIBRATION_CELL])
    )[0]
    return expression_scores(pct[pos])


@functools.lru_cache(maxsize=1)
def calibration() -> Calibration:
    """The generative model fitted on the real E003 sample: :func:`fit_calibration`, kept
    once fitted in the user's cache (:func:`cache_dir`) under a digest of its inputs (the
    real files, this module's source, numpy's and scipy's versions), so a command reads
    it back instead of parsing the sample and fitting again. The cache holds plain arrays
    and JSON (read with ``allow_pickle=False``); an unreadable one is fitted afresh."""
    path = _calibration_cache()
    if path is not None and path.exists():
        try:
            return _read_calibration(path)
        except Exception:  # noqa: BLE001 - damaged (bad zip, truncated, other keys): refit
            pass
    cal = fit_calibration()
    if path is not None:
        _write_calibration(cal, path)
    return cal


def cache_dir() -> Path:
    """Where chromestore keeps what it can recompute: ``$CHROMESTORE_CACHE``, else
    ``$XDG_CACHE_HOME/chromestore``, else ``~/.cache/chromestore``."""
    if os.environ.get("CHROMESTORE_CACHE"):
        return Path(os.environ["CHROMESTORE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chromestore"


def _calibration_cache() -> Path | None:
    """The cache file of the calibration fitted on today's inputs (None: no inputs)."""
    import hashlib

    import scipy

    digest = hashlib.sha256()
    digest.update(f"numpy {np.__version__} scipy {scipy.__version__}".encode())
    try:
        sources = [Path(__file__), GENES_BED, RPKM, *sorted(E003_SAMPLE.glob("*.csv"))]
        for source in sources:
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    except OSError:
        return None
    return cache_dir() / f"calibration-{digest.hexdigest()[:32]}.npz"


_ARRAYS = ("grid", "state_p", "quantiles", "chol", "shares", "concentration", "states")


def _write_calibration(cal: Calibration, path: Path) -> None:
    """Keep ``cal`` at ``path`` (written whole under a private name, then renamed); a
    cache that cannot be written is skipped."""
    import json
    import tempfile

    meta = json.dumps({"marks": list(cal.marks), "cuts": cal.cuts, "n_genes": cal.n_genes})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".calibration-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, meta=np.array(meta), **{k: getattr(cal, k) for k in _ARRAYS})
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def _read_calibration(path: Path) -> Calibration:
    import json

    with np.load(path, allow_pickle=False) as saved:
        arrays = {k: saved[k] for k in _ARRAYS}
        meta = json.loads(str(saved["meta"]))
    return Calibration(
        tuple(meta["marks"]), cuts=meta["cuts"], n_genes=int(meta["n_genes"]), **arrays
    )


def fit_calibration() -> Calibration:
    """Fit the generative model on the real E003 sample (about a second)."""
    sample = real_e003_sample()
    x = sample.values  # gene, mark, bin
    marks = tuple(str(m) for m in sample[V.MARK].values)
    scores = sample_scores()
    n_genes, n_marks, n_bins = x.shape
    region = _regions(n_bins)
    n_reg, n_states = len(REGIONS), len(STATES)
    totals = np.stack([x[:, :, region == r].sum(axis=2) for r in range(n_reg)], axis=2)
    flat = totals.reshape(n_genes, n_marks * n_reg)
    cuts: dict = {
        m: mode_cut(np.log1p(x[:, marks.index(m), CORE_BINS].sum(axis=1))) for m in STATE_MARKS
    }
    cuts["median_total"] = dict(zip(marks, np.median(x.sum(axis=2), axis=0).tolist(), strict=True))
    states = promoter_states(x, marks, cuts)
    beta = _state_logit(scores, states, n_states)
    state_p = _softmax(np.stack([np.ones_like(GRID), GRID, GRID**2], axis=1) @ beta.T)
    kernel = _kernel(scores, GRID)  # grid, gene
    knots = np.linspace(0, 1, N_QUANTILES)
    quantiles = np.empty((len(GRID), n_states, flat.shape[1], N_QUANTILES))
    corr = np.empty((n_states, flat.shape[1], flat.shape[1]))
    shares = np.empty((n_states, n_marks, n_bins))
    width = np.diff(np.asarray(REGIONS), axis=1)[:, 0][region]
    size = np.bincount(states, minlength=n_states)
    for s in range(n_states):
        sel = states == s
        quantiles[:, s] = _weighted_quantiles(flat[sel], kernel[:, sel], knots)
        corr[s] = _copula(flat[sel])
        per_region = totals[sel].sum(axis=0)[:, region]  # mark, bin
        shares[s] = np.where(
            per_region > 0, x[sel].sum(axis=0) / np.maximum(per_region, 1e-12), 1 / width
        )
    pooled = np.tensordot(size, corr, axes=1) / size.sum()
    shrunk = (size[:, None, None] * corr + COPULA_PRIOR * pooled) / (
        size[:, None, None] + COPULA_PRIOR
    )
    which = states[:, None] * n_bins + np.arange(n_bins)[None, :]  # gene, bin → share
    concentration = np.array(
        [
            _concentration(x[:, j], totals[:, j][:, region], which, shares[:, j].ravel())
            for j in range(n_marks)
        ]
    )
    return Calibration(
        marks,
        GRID.copy(),
        state_p,
        quantiles.astype(np.float32),
        _cholesky(shrunk),
        shares,
        concentration,
        states,
        cuts,
        n_genes,
    )


def snr_weight(cell: str) -> float:
    """Signal-to-noise weight of an epigenome: 1 for E003 (the calibration), else the
    weight at which :data:`SNR_CURVE` reaches the epigenome's published AUC (1 for an
    epigenome without one)."""
    auc = published_auc()
    if cell == CALIBRATION_CELL or cell not in auc.index:
        return 1.0
    w, target = np.asarray(SNR_CURVE).T
    return float(np.interp(auc[cell], target, w))


def cell_key(cell: str) -> int:
    return zlib.crc32(str(cell).encode())


def cell_depth(cell: str, seed: int = 0) -> float:
    """Sequencing depth of a simulated epigenome relative to the E003 sample (E003 = 1)."""
    if cell == CALIBRATION_CELL:
        return 1.0
    rng = np.random.default_rng([seed, cell_key(cell), 2**31])
    return float(np.exp(rng.normal(0.0, DEPTH_SD)))
