"""DeepChrome's baselines: ``svm-bin`` (Cheng et al. 2011) and ``rf-bestbin`` (Dong et al. 2012).

Kernels on numpy arrays ``signal (gene, mark, bin)`` with labels ``y (gene,)`` and
split codes ``split (gene,)`` (0 train, 1 valid, 2 test), independent of the store.

``svm-bin``
    One RBF support-vector machine per bin position, on the 5 marks of that bin
    (``log1p`` counts, standardised on the training genes). ``C`` and ``gamma`` are
    tuned on the validation genes over :data:`SVM_GRID`. DeepChrome reported each
    bin's AUC, the best bin and the average over bins; :func:`svm_bin` returns all
    three, and predicts with the bin that is best on *validation*.
``rf-bestbin``
    Per mark, the bin whose signal is most correlated (|Pearson r|) with expression
    on the training genes; a random forest on those 5 features, its number of trees
    tuned on validation over :data:`RF_TREES`.

Both fit one small model per task, so a wrapper can run them as Dask tasks (one per
bin for ``svm-bin``: :func:`svm_fit_bin`; one per epigenome for ``rf-bestbin``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chromestore import variables as V
from chromestore.training.entry import ArraysModel, FanOut, ModelMetric
from chromestore.training.scoring import auc as _auc

#: ``C`` and ``gamma`` searched for each bin's SVM (log-spaced, as in the LIBSVM guide).
SVM_GRID = {"C": (0.01, 0.1, 1.0, 10.0, 100.0), "gamma": (0.001, 0.01, 0.1, 1.0)}
#: Numbers of trees searched for ``rf-bestbin``.
RF_TREES = (10, 50, 100, 150, 200)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu = train.mean(axis=0)
    sd = train.std(axis=0)
    sd[sd == 0] = 1.0
    return [(a - mu) / sd for a in (train, *others)]


# --- svm-bin ---------------------------------------------------------------
@dataclass
class SvmBinFit:
    """One bin's tuned SVM: chosen hyper-parameters, validation AUC, scores for all genes."""

    C: float
    gamma: float
    valid_auc: float
    score: np.ndarray = field(repr=False)  # decision function for every gene (gene,)
    #: the fitted ``sklearn.svm.SVC`` (sklearn is imported where it is used)
    model: object | None = field(default=None, repr=False)
    mean: np.ndarray | None = field(default=None, repr=False)  # standardisation of log1p
    scale: np.ndarray | None = field(default=None, repr=False)


def svm_fit_bin(
    features: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    grid: dict = SVM_GRID,
) -> SvmBinFit:
    """Tune and fit one RBF SVM on one bin's ``features (gene, mark)``; score every gene."""
    from sklearn.svm import SVC

    x = np.log1p(np.clip(np.asarray(features, dtype=np.float64), 0, None))
    tr, va = split == V.TRAIN, split == V.VALID
    xtr, xall = _standardise(x[tr], x)
    mu, sd = x[tr].mean(axis=0), x[tr].std(axis=0)
    sd[sd == 0] = 1.0
    best = None
    for C in grid["C"]:
        for gamma in grid["gamma"]:
            model = SVC(C=C, gamma=gamma, kernel="rbf").fit(xtr, y[tr])
            score = model.decision_function(xall)
            auc = _auc(y[va], score[va])
            if best is None or auc > best.valid_auc:
                best = SvmBinFit(float(C), float(gamma), auc, score, model, mu, sd)
    return best


@dataclass
class SvmBinResult:
    """Per-bin AUCs and the validation-chosen bin's prediction."""

    fits: list[SvmBinFit]
    valid_auc: np.ndarray  # (bin,)
    test_auc: np.ndarray  # (bin,)
    best_bin: int  # chosen on validation
    score: np.ndarray = field(repr=False)  # (gene,) score of best_bin

    @property
    def best_test_auc(self) -> float:
        """The highest per-bin test AUC (what DeepChrome's table calls "best bin")."""
        return float(np.nanmax(self.test_auc))

    @property
    def mean_test_auc(self) -> float:
        return float(np.nanmean(self.test_auc))


def svm_collect(fits: list[SvmBinFit], y: np.ndarray, split: np.ndarray) -> SvmBinResult:
    """Combine the per-bin fits (in bin order) into per-bin AUCs and the best bin."""
    te = split == V.TEST
    valid = np.array([f.valid_auc for f in fits])
    test = np.array([_auc(y[te], f.score[te]) for f in fits])
    best = int(np.nanargmax(valid))
    return SvmBinResult(fits, valid, test, best, fits[best].score)


def svm_bin(signal: np.ndarray, y: np.ndarray, split: np.ndarray, grid: dict = SVM_GRID):
    """``svm-bin`` on ``signal (gene, mark, bin)``, serially (see :func:`svm_fit_bin`)."""
    y, split = np.asarray(y).astype(int), np.asarray(split)
    fits = [svm_fit_bin(signal[:, :, b], y, split, grid) for b in range(signal.shape[2])]
    return svm_collect(fits, y, split)


# --- rf-bestbin ------------------------------------------------------------
def best_bins(signal: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per mark, the bin whose signal has the largest |Pearson r| with ``target`` (gene,)."""
    x = np.asarray(signal, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    xc = x - x.mean(axis=0)
    tc = t - t.mean()
    den = np.sqrt((xc**2).sum(axis=0)) * np.sqrt((tc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("gmb,g->mb", xc, tc) / den
    return np.nanargmax(np.abs(np.nan_to_num(r, nan=0.0)), axis=1)


@dataclass
class RfBestBinResult:
    bins: np.ndarray  # (mark,) chosen bin per mark
    n_trees: int
    valid_auc: float
    score: np.ndarray = field(repr=False)  # P(class 1) for every gene
    importance: np.ndarray = field(repr=False)  # (mark,)
    #: the fitted ``sklearn.ensemble.RandomForestClassifier``
    model: object | None = field(default=None, repr=False)

    def predict_proba(self, signal: np.ndarray) -> np.ndarray:
        """P(class 1) for ``signal (gene, mark, bin)`` from each mark's chosen bin."""
        x = signal[:, np.arange(signal.shape[1]), self.bins]
        return self.model.predict_proba(x)[:, 1]


def rf_bestbin(
    signal: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    expression: np.ndarray | None = None,
    trees: tuple[int, ...] = RF_TREES,
    seed: int = 0,
) -> RfBestBinResult:
    """``rf-bestbin``: each mark's best bin on training genes → random forest.

    Correlation is with ``log(expression + 1)`` when given, else with the label.
    """
    y, split = np.asarray(y).astype(int), np.asarray(split)
    tr, va = split == V.TRAIN, split == V.VALID
    target = np.log1p(expression[tr]) if expression is not None else y[tr]
    bins = best_bins(signal[tr], target)
    x = signal[:, np.arange(signal.shape[1]), bins]
    best = None
    for n in trees:
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=n, random_state=seed, n_jobs=1)
        model.fit(x[tr], y[tr])
        score = model.predict_proba(x)[:, 1]
        auc = _auc(y[va], score[va])
        if best is None or auc > best.valid_auc:
            best = RfBestBinResult(bins, int(n), auc, score, model.feature_importances_, model)
    return best


# --- in the run layout (the peer executor's kernels) -------------------------------------
def svm_fit_bins(data, bins, hp: dict) -> list[list[SvmBinFit]]:
    """``svm-bin``'s part of one epigenome: each of ``bins``, every split repeat."""
    return [
        [svm_fit_bin(data.signal[:, :, b], data.y, split, hp["grid"]) for split in data.split]
        for b in bins
    ]


def svm_collect_cell(parts: list[list[list[SvmBinFit]]], data, hp: dict) -> dict:
    """The parts of one epigenome (in bin order) → per-bin AUCs and the best bin's scores."""
    per_bin = [fit for part in parts for fit in part]
    out: dict = {
        k: []
        for k in (
            "prediction",
            "valid_auc_bin",
            "test_auc_bin",
            "best_bin",
            "C",
            "gamma",
            "valid_auc",
            "loss",
            "weights",
        )
    }
    for r, split in enumerate(data.split):
        fits = [b[r] for b in per_bin]
        res = svm_collect(fits, data.y, split)
        best = fits[res.best_bin]
        values = {
            "prediction": res.score,
            "valid_auc_bin": res.valid_auc,
            "test_auc_bin": res.test_auc,
            "best_bin": res.best_bin,
            "C": [f.C for f in fits],
            "gamma": [f.gamma for f in fits],
            "valid_auc": res.valid_auc[res.best_bin],
            "loss": np.nan,
            "weights": {
                "best_bin": res.best_bin,
                "model": best.model,
                "log1p_mean": best.mean,
                "log1p_scale": best.scale,
            },
        }
        for k, v in values.items():
            out[k].append(v)
    return out


def rf_fit_cell(data, hp: dict, seed: int) -> dict:
    """``rf-bestbin`` on one epigenome, every split repeat."""
    out: dict = {
        k: []
        for k in ("prediction", "bin", "n_trees", "importance", "valid_auc", "loss", "weights")
    }
    for r, split in enumerate(data.split):
        res = rf_bestbin(
            data.signal, data.y, split, data.expression, trees=tuple(hp["trees"]), seed=seed + r
        )
        values = {
            "prediction": res.score,
            "bin": res.bins,
            "n_trees": res.n_trees,
            "importance": res.importance,
            "valid_auc": res.valid_auc,
            "loss": np.nan,
            "weights": res,
        }
        for k, v in values.items():
            out[k].append(v)
    return out


def svm_auc_curve(run):
    """svm-bin's per-bin test AUC averaged over epigenomes and repeats (DeepChrome Fig. 4a)."""
    if "svm_bin_test_auc_bin" not in run:
        return None
    auc = run["svm_bin_test_auc_bin"]
    return auc.mean([d for d in auc.dims if d != V.BIN]).astype(np.float64)


_CR = (V.CELL, V.REPEAT)


def rf_bestbin_scorer(weights: Any, hp: Mapping, layout) -> Callable[[np.ndarray], np.ndarray]:
    """``rf-bestbin``: each mark's chosen bin → the fitted random forest."""
    return lambda x: np.asarray(weights.predict_proba(x), np.float32)


def svm_bin_scorer(weights: Mapping, hp: Mapping, layout) -> Callable[[np.ndarray], np.ndarray]:
    """``svm-bin``: the chosen bin's log1p, standardised as on its training genes → the SVM's
    decision function, squashed by a logistic (a ranking score, not a calibrated probability)."""
    b, model = int(weights["best_bin"]), weights["model"]
    mean = np.asarray(weights["log1p_mean"], np.float64)
    scale = np.asarray(weights["log1p_scale"], np.float64)

    def score(x: np.ndarray) -> np.ndarray:
        z = (np.log1p(np.clip(np.asarray(x[:, :, b], np.float64), 0, None)) - mean) / scale
        return (0.5 * (1.0 + np.tanh(0.5 * model.decision_function(z)))).astype(np.float32)

    return score


SVM_BIN = ArraysModel(
    "svm-bin",
    FanOut(svm_fit_bins, svm_collect_cell, size=10),
    scorer=svm_bin_scorer,
    defaults={"grid": {k: list(v) for k, v in SVM_GRID.items()}, "features": "log1p, standardised"},
    paper="Cheng et al. 2011 (Genome Biology), as DeepChrome ran it",
    extras=(
        V.Spec(
            "svm_bin_valid_auc_bin",
            (*_CR, V.BIN),
            "f",
            "float32",
            "Validation AUC of each bin's tuned SVM.",
            required=False,
        ),
        V.Spec(
            "svm_bin_test_auc_bin",
            (*_CR, V.BIN),
            "f",
            "float32",
            "Test AUC of each bin's tuned SVM.",
            required=False,
        ),
        V.Spec(
            "svm_bin_C", (*_CR, V.BIN), "f", "float32", "C chosen for each bin.", required=False
        ),
        V.Spec(
            "svm_bin_gamma",
            (*_CR, V.BIN),
            "f",
            "float32",
            "gamma chosen for each bin.",
            required=False,
        ),
        V.Spec(
            "svm_bin_best_bin",
            _CR,
            "i",
            "int16",
            "The bin best on validation, whose SVM predicts.",
            required=False,
        ),
    ),
    metrics=(
        ModelMetric(
            "svmbin_auc_curve",
            svm_auc_curve,
            "svm-bin per-bin test AUC averaged over epigenomes and repeats (DeepChrome Fig. 4a).",
            plot="profile",
            title="svm-bin: AUROC of each bin alone",
            label="test AUROC of one bin",
        ),
    ),
)
RF_BESTBIN = ArraysModel(
    "rf-bestbin",
    rf_fit_cell,
    scorer=rf_bestbin_scorer,
    defaults={"trees": list(RF_TREES), "correlation": "pearson with log(RPKM+1)"},
    paper="Dong et al. 2012 (Genome Biology), as DeepChrome ran it",
    extras=(
        V.Spec(
            "rf_bestbin_bin",
            (*_CR, V.MARK),
            "i",
            "int16",
            "Each mark's bin most correlated with expression on the training genes.",
            required=False,
        ),
        V.Spec(
            "rf_bestbin_importance",
            (*_CR, V.MARK),
            "f",
            "float32",
            "Random-forest importance of each mark's feature.",
            required=False,
        ),
        V.Spec(
            "rf_bestbin_n_trees", _CR, "i", "int16", "Trees chosen on validation.", required=False
        ),
    ),
)
