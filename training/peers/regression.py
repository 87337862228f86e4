"""``deepchrome-regression``: the DeepChrome network predicting log(RPKM + 1) with MSE.

Extra input channels, each optional:

``cell_stats``
    Each epigenome's per-mark, per-bin mean and standard deviation over genes
    (of the signal in the model's input transform), appended to every gene's input:
    5 → 15 channels. They tell one model trained on several epigenomes how deep and
    how noisy each one is, so it can generalise to epigenomes it never saw (the seed
    report's trick). On ``chromestore.simulate`` they pay off with raw counts (the
    input where an epigenome's depth scales every feature) and not after ``log1p``,
    where depth becomes an additive shift that the convolution can cancel within a
    gene's own window (see ``tests/test_peers_regression.py``).
``kmers``
    Counts of each of the 4**k k-mers (k = 3 → 64 channels) in every bin of the
    gene's window, read 5'→3' on the gene's strand from a FASTA file with pysam
    (:func:`kmer_channels`), divided by the bin size.

Kernels work on numpy arrays; :func:`fit_regression` trains on any set of
(epigenome, gene) samples, so cross-epigenome prediction is: train on the
samples of some epigenomes, predict those of others (:func:`cross_epigenome`).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from chromestore import variables as V
from chromestore.training.config import torch_threads
from chromestore.training.fitting import EpochLoop, minibatch_epoch
from chromestore.training.models import DeepChrome

DEFAULTS = {"dropout": 0.5, "lr": 1e-3, "epochs": 30, "batch_size": 64, "patience": 8}
BASES = "ACGT"


def kmer_names(k: int = 3) -> list[str]:
    return ["".join(p) for p in itertools.product(BASES, repeat=k)]


def cell_stats(x: np.ndarray) -> np.ndarray:
    """Per-mark, per-bin mean and std over genes of one epigenome's ``x (gene, mark, bin)``.

    Returns ``(2 * mark, bin)``: the means then the standard deviations.
    """
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([np.nanmean(x, axis=0), np.nanstd(x, axis=0)]).astype(np.float32)


def with_cell_stats(x: np.ndarray) -> np.ndarray:
    """Append :func:`cell_stats` of ``x`` to every gene: ``(gene, mark, bin)`` → ``(gene, 3 mark, bin)``."""
    s = cell_stats(x)
    return np.concatenate([x, np.broadcast_to(s, (x.shape[0], *s.shape))], axis=1)


_COMPLEMENT = str.maketrans("ACGTacgtNn", "TGCAtgcaNn")


def kmer_channels(
    fasta: str,
    chroms: Sequence[str],
    tss: Sequence[int],
    strands: Sequence[str],
    bin_offsets: Sequence[int],
    bin_size: int,
    k: int = 3,
) -> np.ndarray:
    """k-mer counts per bin of each gene's window: ``(gene, 4**k, bin)`` float32.

    Bin ``b`` of a ``+`` gene covers ``[tss + offset_b, tss + offset_b + bin_size)``;
    a ``-`` gene's bins mirror it around the TSS and its sequence is reverse-
    complemented, so bins and k-mers both read 5'→3' along the gene. A k-mer is
    counted in the bin where it starts; k-mers with ``N`` and bins past a
    chromosome's end count nothing. Counts are divided by ``bin_size``.
    """
    import pysam

    index = {name: i for i, name in enumerate(kmer_names(k))}
    offsets = np.asarray(bin_offsets, dtype=np.int64)
    n_bins = len(offsets)
    out = np.zeros((len(tss), len(index), n_bins), dtype=np.float32)
    with pysam.FastaFile(fasta) as fa:
        lengths = dict(zip(fa.references, fa.lengths, strict=True))
        for g, (chrom, t, strand) in enumerate(zip(chroms, tss, strands, strict=True)):
            t = int(t)
            lo = t + int(offsets.min()) if strand != "-" else t - int(offsets.max()) - bin_size
            hi = lo + n_bins * bin_size
            start, end = max(lo, 0), min(hi, lengths.get(chrom, 0))
            if end <= start:
                continue
            seq = "N" * (start - lo) + fa.fetch(chrom, start, end).upper() + "N" * (hi - end)
            if strand == "-":
                seq = seq.translate(_COMPLEMENT)[::-1]
            for i in range(len(seq) - k + 1):
                j = index.get(seq[i : i + k])
                if j is not None:
                    out[g, j, i // bin_size] += 1
    return out / bin_size


class DeepChromeRegressor(nn.Module):
    """DeepChrome's CNN with one linear output: ``(B, channels, bins)`` → ``(B,)``."""

    def __init__(self, n_channels: int, n_bins: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = DeepChrome(n_marks=n_channels, n_bins=n_bins, dropout=dropout)
        self.net.fc3 = nn.Linear(self.net.fc3.in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass
class RegressionFit:
    model: DeepChromeRegressor
    best_epoch: int
    history_loss: np.ndarray
    history_valid_mse: np.ndarray
    mean: np.ndarray = field(repr=False)  # input standardisation per channel (train samples)
    scale: np.ndarray = field(repr=False)

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        self.model.eval()
        xs = torch.from_numpy(((x - self.mean) / self.scale).astype(np.float32))
        return torch.cat(
            [self.model(xs[i : i + batch_size]) for i in range(0, len(xs), batch_size)]
        ).numpy()


def fit_regression(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    *,
    seed: int = 0,
    threads: int | None = 1,
    **hyper,
) -> RegressionFit:
    """Train on samples ``train`` (indices or mask) of ``x (sample, channel, bin)``, MSE on ``y``.

    Inputs are standardised per channel with the training samples' mean and std; the
    epoch with the lowest validation MSE is kept (``patience`` epochs of no gain stop it).
    """
    hp = {**DEFAULTS, **hyper}
    if set(hp) - set(DEFAULTS):
        raise ValueError(f"unknown hyper-parameters {sorted(set(hp) - set(DEFAULTS))}")
    # a patience of 0 stopped at the first epoch without gain, as 1 does
    patience = None if hp["patience"] is None else max(1, int(hp["patience"]))
    with torch_threads(threads):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        tr, va = _indices(train), _indices(valid)
        mean = x[tr].mean(axis=(0, 2), keepdims=True)[0]
        scale = x[tr].std(axis=(0, 2), keepdims=True)[0]
        scale[scale == 0] = 1.0
        model = DeepChromeRegressor(x.shape[1], x.shape[2], hp["dropout"])
        fit = RegressionFit(model, 0, np.array([]), np.array([]), mean, scale)
        hooks = _Regression(fit, x, y, tr, va, gen, hp)
        loop = EpochLoop(1, int(hp["epochs"]), patience=patience, better="lower").fit(hooks)
        n = int(loop.model_epochs[0])
        fit.best_epoch = int(loop.best_epoch[0])
        fit.history_loss = loop.history_loss[0, :n]
        fit.history_valid_mse = loop.history_score[0, :n]
        return fit


class _Regression:
    """The loop's hooks (:mod:`chromestore.training.fitting`): MSE steps on the training
    samples in the order of ``gen``, validation MSE."""

    def __init__(self, fit: RegressionFit, x, y, tr, va, gen: torch.Generator, hp: dict) -> None:
        self.fit, self.x, self.y, self.tr, self.va, self.gen, self.hp = fit, x, y, tr, va, gen, hp
        self.xs = torch.from_numpy((x - fit.mean) / fit.scale)
        self.yt = torch.from_numpy(y)
        self.opt = torch.optim.Adam(fit.model.parameters(), lr=hp["lr"])
        self.best: dict | None = None

    def train_epoch(self, epoch: int, running: np.ndarray) -> np.ndarray:
        model = self.fit.model
        model.train()
        order = torch.from_numpy(self.tr)[torch.randperm(len(self.tr), generator=self.gen)]
        loss = minibatch_epoch(
            self.opt,
            lambda idx: nn.functional.mse_loss(model(self.xs[idx]), self.yt[idx]),
            order,
            self.hp["batch_size"],
        )
        return np.array([loss])

    def validate(self, epoch: int, running: np.ndarray) -> tuple[np.ndarray, None]:
        va = self.va
        return np.array([float(np.mean((self.fit.predict(self.x[va]) - self.y[va]) ** 2))]), None

    def keep_best(self, better: np.ndarray) -> None:
        self.best = copy.deepcopy(self.fit.model.state_dict())

    def restore_best(self) -> None:
        if self.best is not None:
            self.fit.model.load_state_dict(self.best)


def _indices(sel) -> np.ndarray:
    sel = np.asarray(sel)
    return np.flatnonzero(sel) if sel.dtype == bool else sel.astype(np.int64)


def regression_scores(pred: np.ndarray, target: np.ndarray) -> dict:
    """MSE, Pearson r and Spearman r of ``pred`` against ``target`` (finite pairs)."""
    ok = np.isfinite(pred) & np.isfinite(target)
    p, t = pred[ok], target[ok]
    from scipy import stats

    return {
        "mse": float(np.mean((p - t) ** 2)),
        "pearson": float(stats.pearsonr(p, t)[0]),
        "spearman": float(stats.spearmanr(p, t)[0]),
        "n": int(ok.sum()),
    }


@dataclass
class CrossResult:
    fit: RegressionFit
    prediction: np.ndarray  # (test cell, gene), NaN outside the test genes
    scores: dict  # per test cell, and "all"


def cross_epigenome(
    signal: np.ndarray,
    expression: np.ndarray,
    split: np.ndarray,
    train_cells: Sequence[int],
    test_cells: Sequence[int],
    *,
    use_cell_stats: bool = False,
    extra: np.ndarray | None = None,
    seed: int = 0,
    transform: str = "log1p",
    **hyper,
) -> CrossResult:
    """One model on the epigenomes ``train_cells``, evaluated on the unseen ``test_cells``.

    ``signal`` is ``(cell, gene, mark, bin)`` counts, ``expression`` ``(cell, gene)``
    RPKM, ``split`` ``(gene,)``. It trains on the training genes of the training
    epigenomes, stops on their validation genes and predicts the test genes of the
    test epigenomes, so neither the gene nor the epigenome was seen. ``extra``
    ``(gene, channel, bin)`` (k-mers) is appended for every epigenome. ``transform``
    (``log1p`` or ``raw`` counts) applies to the signal before the cell statistics.
    """
    x = np.clip(np.nan_to_num(np.asarray(signal, np.float32)), 0, None)
    if transform == "log1p":
        x = np.log1p(x)
    elif transform != "raw":
        raise ValueError(f"transform must be 'log1p' or 'raw', not {transform!r}")
    if use_cell_stats:
        x = np.stack([with_cell_stats(xc) for xc in x])
    if extra is not None:
        x = np.concatenate([x, np.broadcast_to(extra, (x.shape[0], *extra.shape))], axis=2)
    y = np.log1p(np.asarray(expression, np.float32))
    n_genes = x.shape[1]
    ok = np.isfinite(y)

    def samples(cells, code):
        return np.concatenate(
            [ci * n_genes + np.flatnonzero((split == code) & ok[ci]) for ci in cells]
        )

    flat_x = x.reshape(-1, *x.shape[2:])
    flat_y = y.reshape(-1)
    fit = fit_regression(
        flat_x,
        flat_y,
        samples(train_cells, V.TRAIN),
        samples(train_cells, V.VALID),
        seed=seed,
        **hyper,
    )
    pred = np.full((len(test_cells), n_genes), np.nan, np.float32)
    test = split == V.TEST
    for i, ci in enumerate(test_cells):
        pred[i, test] = fit.predict(x[ci][test])
    scores = {
        int(ci): regression_scores(pred[i], np.where(test, y[ci], np.nan))
        for i, ci in enumerate(test_cells)
    }
    scores["all"] = regression_scores(
        pred.ravel(), np.where(test, y[list(test_cells)], np.nan).ravel()
    )
    return CrossResult(fit, pred, scores)


# --- on a store: a ``task="regression"`` run --------------------------------------
def store_kmers(ds, fasta: str, k: int = 3) -> np.ndarray:
    """:func:`kmer_channels` for every gene of a store Dataset (its TSS, strand and bins)."""
    return kmer_channels(
        fasta,
        ds[V.gene_chrom.name].values.astype(object),
        ds[V.gene_tss.name].values,
        ds[V.gene_strand.name].values.astype(object),
        ds[V.bin_offset.name].values,
        int(ds.attrs.get("bin_size", 100)),
        k,
    )
