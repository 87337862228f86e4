"""A REMC-scale simulator calibrated on real data: real genes and RPKM, simulated signal.

What is real: the 19,802 gene windows (``data/gene_windows.hg19.bed.gz``) and the RPKM
of the 56 DeepChrome epigenomes (``data/rpkm.56epigenomes.tsv.gz``), so ``expression``
and the labels derived from it are the paper's. What is simulated: ``signal``, drawn
from a generative model fitted at run time on the real binned read counts of 600 E003
genes (``data/samples/deepdiff_E003``, central 100 bins):

* each gene's expression level in a cell is its RPKM percentile in that cell, cut into
  :data:`N_LEVELS` levels (the median, i.e. the label boundary, is a level edge);
* per level, mark and bin, the mean count profile of the real genes of that level;
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

Accuracy measured on simulated signal is never comparable with published accuracy.

Randomness is drawn per fixed block of :data:`DRAW_BLOCK` genes of the full gene list,
from a generator seeded by ``(seed, cell id, block)``: any subset of cells or genes, and
any chunking, gives the same values as one full draw. Genes that share a window
(:func:`window_owner`) share their signal.
"""

from __future__ import annotations

import functools
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from chromestore import datasets
from chromestore import store as S
from chromestore import variables as V
from chromestore.errors import InputError
from chromestore.expression import align_expression, read_rpkm
from chromestore.genes import read_gene_bed

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
#: Genes per random draw (fixed: independent of the store's chunking).
DRAW_BLOCK = 256
#: Spread (sd of log) of the per-cell sequencing depth around the calibration depth.
DEPTH_SD = 0.25
WINDOW, BIN_SIZE = 5000, 100
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
    """The real E003 counts, gene × mark × bin (store mark order, the central 100 bins)."""
    from chromestore.formats.csv import centre_crop, read_deepdiff_csv

    parts = [
        read_deepdiff_csv(E003_SAMPLE / f"E003.{split}.csv")
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


def _aligned_rpkm(gene_ids: np.ndarray, cells: Sequence[str]) -> np.ndarray:
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
    pct_all = expression_percentiles(_aligned_rpkm(genes["gene_id"].to_numpy(object),
                                                   [CALIBRATION_CELL]))[0]
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
    return Calibration(
        tuple(sample[V.MARK].values), profiles, quantiles, rho, dispersion, len(x)
    )


def snr_weight(cell: str) -> float:
    """Signal-to-noise weight of an epigenome from its published AUC (E003 = 1)."""
    auc = published_auc()
    if cell not in auc.index:
        return 1.0
    return float((auc[cell] - 0.5) / (auc[CALIBRATION_CELL] - 0.5))


def _cell_key(cell: str) -> int:
    return zlib.crc32(str(cell).encode())


def cell_depth(cell: str, seed: int = 0) -> float:
    """Sequencing depth of a simulated epigenome relative to the E003 sample (E003 = 1)."""
    if cell == CALIBRATION_CELL:
        return 1.0
    rng = np.random.default_rng([seed, _cell_key(cell), 2**31])
    return float(np.exp(rng.normal(0.0, DEPTH_SD)))


def cell_parameters(
    cal: Calibration, weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


# --- the kernel ------------------------------------------------------------------


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
    model: CellModel, genes_idx: np.ndarray, levels: np.ndarray, base: int, n_total: int,
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
        rng = np.random.default_rng([seed, _cell_key(model.cell), int(b)])
        counts = draw_block(
            levels[lo - base : hi - base], model.profiles, model.quantiles, model.chol,
            model.dispersion, model.depth, rng,
        )
        sel = blocks == b
        out[sel] = counts[genes_idx[sel] - lo]
    return out


# --- the public entry point ---------------------------------------------------------


def _resolve_cells(cells: str | int | Sequence[str]) -> list[str]:
    all_cells = list(real_rpkm().columns)
    if isinstance(cells, str) and cells == "all":
        return all_cells
    if isinstance(cells, str):
        cells = [c for c in cells.split(",") if c]
    if isinstance(cells, int | np.integer):
        if not 0 < cells <= len(all_cells):
            raise ValueError(f"cells must be between 1 and {len(all_cells)}, got {cells}")
        return all_cells[: int(cells)]
    cells = list(cells)
    unknown = [c for c in cells if c not in all_cells]
    if unknown:
        raise ValueError(f"unknown epigenome(s) {unknown}; the simulator knows {all_cells}")
    if len(set(cells)) != len(cells):
        raise ValueError(f"duplicate cells in {cells}")
    return cells


def _resolve_genes(genes: str | int | Sequence[str]) -> np.ndarray:
    table = real_genes()
    if isinstance(genes, str) and genes == "all":
        return np.arange(len(table))
    if isinstance(genes, int | np.integer):
        if not 0 < genes <= len(table):
            raise ValueError(f"genes must be between 1 and {len(table)}, got {genes}")
        return np.arange(int(genes))
    keys = [genes] if isinstance(genes, str) else list(genes)
    pos = pd.Index(table["gene"]).get_indexer(keys)
    if (pos < 0).any():
        missing = [k for k, p in zip(keys, pos, strict=True) if p < 0]
        raise ValueError(f"unknown gene key(s) {missing[:5]} (use ENSGID_SYMBOL)")
    return pos.astype(np.int64)


def _lazy_signal(
    cells: list[str], genes_idx: np.ndarray, pct: np.ndarray, seed: int, gene_chunk: int
) -> da.Array:
    """(cell, gene, mark, bin) dask array, one task per (cell, gene chunk)."""
    n_total = pct.shape[1]
    n_marks, n_bins = len(V.DEFAULT_MARKS), 2 * WINDOW // BIN_SIZE
    draw = dask.delayed(draw_cell, pure=True)
    rows = []
    for i, cell in enumerate(cells):
        model = dask.delayed(cell_model(cell, seed), pure=True)  # one graph literal per cell
        levels = expression_levels(pct[i])
        row = []
        for lo in range(0, len(genes_idx), gene_chunk):
            idx = genes_idx[lo : lo + gene_chunk]
            base = int(idx.min()) // DRAW_BLOCK * DRAW_BLOCK
            top = min((int(idx.max()) // DRAW_BLOCK + 1) * DRAW_BLOCK, n_total)
            part = draw(model, idx, levels[base:top], base, n_total, seed)
            row.append(da.from_delayed(part, (len(idx), n_marks, n_bins), dtype=np.float32))
        rows.append(da.concatenate(row, axis=0)[None])
    return da.concatenate(rows, axis=0)


def simulate(
    path: str | os.PathLike | None = None,
    cells: str | int | Sequence[str] = "all",
    genes: str | int | Sequence[str] = "all",
    seed: int = 0,
    gene_chunk: int = S.DEFAULT_GENE_CHUNK,
    storage_options: dict | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Simulate a chromestore Dataset: real genes and RPKM, signal drawn from the fitted model.

    Parameters
    ----------
    path
        None: return a lazy (dask-backed) in-memory Dataset. Otherwise create a store
        there, fill it one epigenome at a time with chunk-aligned region writes (Dask
        tasks, bounded memory), record each (cell, mark) as completed with provenance
        ``simulated``, and return it opened.
    cells
        ``"all"`` (the 56 epigenomes), the first N, or a list (or comma-separated
        string) of epigenome ids.
    genes
        ``"all"`` (19,802), the first N of the real gene list, or a list of gene keys.
    seed
        Same seed, same values, whatever the subset or chunking.

    Examples
    --------
    >>> import chromestore
    >>> ds = chromestore.simulate(cells=3, genes=500)
    >>> dict(ds.sizes)
    {'cell': 3, 'gene': 500, 'mark': 5, 'bin': 100}
    >>> bool((ds.signal >= 0).all())
    True
    """
    cell_list = _resolve_cells(cells)
    genes_idx = _resolve_genes(genes)
    table = real_genes()
    expr_all = _aligned_rpkm(table["gene_id"].to_numpy(object), cell_list)
    pct = expression_percentiles(expr_all)
    sub = table.iloc[genes_idx].reset_index(drop=True)
    gene_chunk = max(1, min(int(gene_chunk), len(sub)))
    provenance = {"format": "simulated", "seed": int(seed), "model": "chromestore.simulate"}
    if path is None:
        ds = S.template(sub, cell_list, gene_chunk=gene_chunk)
        signal = _lazy_signal(cell_list, window_owner()[genes_idx], pct, seed, gene_chunk)
        expr = da.from_array(expr_all[:, genes_idx], chunks=(1, gene_chunk))
        ds = ds.assign(
            signal=(V.signal.dims, signal, ds.signal.attrs),
            expression=(V.expression.dims, expr, ds.expression.attrs),
        )
        done, prov = V.RECORDS_OF[V.signal.name]
        marks = ds[V.MARK].values.tolist()
        records = [[json.dumps(dict(provenance, cell=c, completed=ds.attrs["created"]))
                    for _ in marks] for c in cell_list]
        ds = ds.assign({done: (ds[done].dims, np.ones((len(cell_list), len(marks)), bool)),
                        prov: (ds[prov].dims, np.array(records, dtype=S.STR).reshape(
                            len(cell_list), len(marks)))})
        ds.attrs.update(simulated=True)
        return ds
    return _simulate_store(
        os.fspath(path), sub, cell_list, genes_idx, pct, expr_all, seed, gene_chunk,
        storage_options, provenance, progress,
    )


def _simulate_store(
    path, sub, cells, genes_idx, pct, expr_all, seed, gene_chunk, storage_options,
    provenance, progress,
) -> xr.Dataset:
    S.create_store(path, sub, cells, chunks={V.GENE: gene_chunk},
                   storage_options=storage_options)
    S.update_attrs(path, storage_options, simulated=True, simulation_seed=int(seed))
    marks = list(V.DEFAULT_MARKS)
    iterator = range(len(cells))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="simulating epigenomes", unit="cell")
    for i in iterator:
        cell = cells[i]
        signal = _lazy_signal(
            [cell], window_owner()[genes_idx], pct[i : i + 1], seed, gene_chunk
        )
        expr = da.from_array(expr_all[i : i + 1, genes_idx], chunks=(1, gene_chunk))
        part = xr.Dataset(
            {
                V.signal.name: (V.signal.dims, signal),
                V.expression.name: (V.expression.dims, expr),
            }
        )
        S.write_region(
            path, part, {V.CELL: slice(i, i + 1), V.GENE: slice(None)}, storage_options
        )
        info = dict(provenance, depth=cell_depth(cell, seed), snr_weight=snr_weight(cell))
        S.record_completed(path, cell, V.signal.name, {m: info for m in marks},
                           storage_options)
    S.update_attrs(
        path, storage_options,
        expression={c: {"source": os.fspath(RPKM), "simulated": False} for c in cells},
    )
    return S.open_store(path, storage_options)


# --- calibration report ----------------------------------------------------------------


def _stats(counts: np.ndarray, high: np.ndarray, marks: Sequence[str]) -> pd.DataFrame:
    """Per mark: mean ±500 bp count of high and low genes, ratio, AUC, quantiles."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for j, m in enumerate(marks):
        tss = counts[:, j, TSS_BINS]
        hi, lo = tss[high].mean(), tss[~high].mean()
        q50, q90, q99 = np.percentile(counts[:, j, :], [50, 90, 99])
        rows.append(
            {
                "mark": m,
                "mean_high": hi,
                "mean_low": lo,
                "ratio": hi / lo if lo > 0 else np.nan,
                "auc": roc_auc_score(high, tss.sum(axis=1)),
                "q50": q50,
                "q90": q90,
                "q99": q99,
            }
        )
    return pd.DataFrame(rows).set_index("mark")


def calibration_report(seed: int = 0) -> pd.DataFrame:
    """Real vs simulated E003 on the sample's 600 genes, per mark and statistic.

    Columns ``real`` and ``simulated``; index (mark, statistic) with statistics
    ``mean_high``/``mean_low`` (mean count in the ±500 bp around the TSS of highly /
    lowly expressed genes, label = RPKM above E003's median), ``ratio``, ``auc`` (of the
    ±500 bp sum for separating high from low genes) and count quantiles ``q50``, ``q90``,
    ``q99`` over the central 100 bins.
    """
    sample = real_e003_sample()
    keys = [str(k) for k in sample[V.GENE].values]
    sim = simulate(cells=[CALIBRATION_CELL], genes=keys, seed=seed)
    expr = sim[V.expression.name].values[0]
    median = np.nanmedian(real_rpkm()[CALIBRATION_CELL].to_numpy())
    high = expr > median
    marks = list(sample[V.MARK].values)
    real = _stats(sample.values, high, marks)
    simulated = _stats(
        sim[V.signal.name].isel({V.CELL: 0}).sel({V.MARK: marks}).values, high, marks
    )
    out = pd.DataFrame({"real": real.stack(), "simulated": simulated.stack()})
    out.index.names = ["mark", "statistic"]
    return out


def format_report(report: pd.DataFrame) -> str:
    """The calibration report as a side-by-side text table."""
    lines = [
        f"calibration: real E003 sample vs simulated E003, same {calibration().n_genes} genes",
        f"{'mark':<9} {'statistic':<10} {'real':>10} {'simulated':>10} {'sim/real':>9}",
    ]
    for (mark, stat), row in report.iterrows():
        rel = row.simulated / row.real if row.real else np.nan
        lines.append(
            f"{mark:<9} {stat:<10} {row.real:>10.3f} {row.simulated:>10.3f} {rel:>9.3f}"
        )
    return "\n".join(lines)
