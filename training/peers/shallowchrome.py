"""ShallowChrome (Frasca et al. 2022): max peak signal per mark → unpenalised logistic regression.

Kernels on plain numpy arrays. The feature of a gene and mark is the maximum peak
``signalValue`` in the gene's window (the store's ``peak_max``) or, when no peaks were
ingested, the maximum of the binned ``signal`` over the window
(:func:`max_signal_features`). The model is scikit-learn's ``LogisticRegression``
with no penalty (``C=inf``, as the paper) and the lbfgs solver; standard errors come
from the inverse Fisher information at the optimum and p-values from two-sided
z-tests (Wald), as statsmodels' ``Logit`` reports them.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 5)); y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
>>> fit = fit_logistic(X, y)
>>> fit.pvalue[0] < 1e-6
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from chromestore import variables as V
from chromestore.training.entry import ArrayCodec, ArraysModel
from chromestore.training.peers.cells import max_over_bins
from chromestore.training.scoring import auc

#: Hyper-parameters recorded in a run's ``models`` attribute.
DEFAULTS = {"C": float("inf"), "solver": "lbfgs", "tol": 1e-10, "max_iter": 10_000}


@dataclass(frozen=True)
class LogisticFit:
    """An unpenalised logistic regression with Wald statistics.

    ``coef``, ``stderr``, ``z`` and ``pvalue`` have one entry per feature;
    the intercept's statistics are kept apart (``intercept_*``).
    """

    coef: np.ndarray
    intercept: float
    stderr: np.ndarray
    intercept_stderr: float
    z: np.ndarray
    pvalue: np.ndarray
    intercept_pvalue: float
    n_iter: int

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row of ``X``."""
        return _sigmoid(self.decision_function(X))


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))  # stable for large |t|


#: ShallowChrome's feature without peaks: max over bins of (..., mark, bin) → (..., mark), NaN
#: bins ignored, NaN where a window has no finite bin (the executor's ``signal_max``).
max_signal_features = max_over_bins


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    *,
    tol: float = DEFAULTS["tol"],
    max_iter: int = DEFAULTS["max_iter"],
) -> LogisticFit:
    """Fit ``P(y=1 | x) = sigmoid(x·coef + intercept)`` by maximum likelihood.

    The features are standardised for the solver and the coefficients mapped back
    exactly (an unpenalised fit is invariant to affine rescaling), so the result is
    on the scale of ``X``. Standard errors are the square roots of the diagonal of
    ``(Xᵀ W X)⁻¹`` with ``X`` carrying a column of ones and ``W = p(1 - p)``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (samples, features) matching y, got {X.shape} and {y.shape}")
    if np.unique(y).size != 2:
        raise ValueError("y must contain both classes")
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, solver="lbfgs", tol=tol, max_iter=max_iter)
    model.fit((X - mu) / sd, y)
    coef = model.coef_[0] / sd
    intercept = float(model.intercept_[0] - np.dot(coef, mu))
    design = np.column_stack([np.ones(len(X)), X])
    p = _sigmoid(design[:, 1:] @ coef + intercept)
    fisher = design.T @ (design * (p * (1.0 - p))[:, None])
    cov = np.linalg.pinv(fisher)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    z = np.concatenate([[intercept], coef]) / se
    from scipy import stats

    pval = 2.0 * stats.norm.sf(np.abs(z))
    return LogisticFit(
        coef=coef,
        intercept=intercept,
        stderr=se[1:],
        intercept_stderr=float(se[0]),
        z=z[1:],
        pvalue=pval[1:],
        intercept_pvalue=float(pval[0]),
        n_iter=int(np.max(model.n_iter_)),
    )


def regulative_patterns(fit: LogisticFit, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gene-wise regulative patterns: ``coef × feature`` per (gene, mark), and the bias.

    Their sum over marks plus the bias is the gene's log-odds of high expression.
    Returns ``(patterns (genes, marks), bias (genes,))``.
    """
    X = np.asarray(X, dtype=np.float64)
    return X * fit.coef, np.full(len(X), fit.intercept)


class ShallowChrome:
    """A scikit-learn-style estimator over :func:`fit_logistic`.

    ``fit(X, y)`` on the (gene, mark) max-signal features; ``predict_proba`` returns
    ``(n, 2)`` like scikit-learn; ``result_`` holds the :class:`LogisticFit`.
    """

    def __init__(
        self, tol: float = DEFAULTS["tol"], max_iter: int = DEFAULTS["max_iter"], **_ignored
    ) -> None:
        self.tol, self.max_iter = tol, max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> ShallowChrome:
        self.result_ = fit_logistic(X, y, tol=self.tol, max_iter=self.max_iter)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.result_.predict_proba(X)
        return np.column_stack([1 - p, p])


def choose_peak_formats(
    features: dict[str, np.ndarray],
    y: np.ndarray,
    split: np.ndarray,
    *,
    tol: float = DEFAULTS["tol"],
    max_iter: int = DEFAULTS["max_iter"],
) -> tuple[list[str], np.ndarray]:
    """The peak format (narrow/broad/gapped) of each mark, chosen on validation (as the paper).

    ``features`` maps a format to its ``(gene, mark)`` max-``signalValue`` features.
    Starting from the first format for every mark, each mark in turn takes the format
    whose features give the highest validation AUC of the model fitted on the training
    genes (``split == 0``; validation ``split == 1``), the other marks held at their
    current choice; test genes are never read. Returns ``(format per mark, X)``.
    """
    names = list(features)
    stack = np.stack([np.asarray(features[n], dtype=np.float64) for n in names])  # fmt, gene, mark
    y = np.asarray(y).astype(int)
    tr, va = np.asarray(split) == V.TRAIN, np.asarray(split) == V.VALID
    choice = np.zeros(stack.shape[2], dtype=int)

    def valid_auc(ch):
        X = stack[ch, :, np.arange(len(ch))].T
        fit = fit_logistic(X[tr], y[tr], tol=tol, max_iter=max_iter)
        return auc(y[va], fit.decision_function(X[va]))

    for m in range(stack.shape[2]):
        scores = []
        for f in range(len(names)):
            trial = choice.copy()
            trial[m] = f
            scores.append(valid_auc(trial))
        choice[m] = int(np.argmax(scores))  # ties keep the earlier format
    return [names[f] for f in choice], stack[choice, :, np.arange(len(choice))].T


# --- in the run layout (the peer executor's ``fit_cell``) -------------------------------
def fit_cell(data, hp: dict, seed: int) -> dict:
    """One epigenome, every split repeat: the fit, its Wald statistics and patterns.

    Features are the peaks' max ``signalValue`` when peaks were ingested, else the max
    over bins of the signal.
    """
    if data.peak_max is not None:
        X, source = data.peak_max.astype(np.float64), "peak_max"
    else:
        X, source = data.signal_max, "max over bins of signal"
    y, eps = data.y, 1e-12
    out: dict = {
        k: []
        for k in (
            "prediction",
            "coef",
            "stderr",
            "pvalue",
            "intercept",
            "intercept_stderr",
            "intercept_pvalue",
            "pattern",
            "valid_auc",
            "loss",
            "weights",
        )
    }
    for split in data.split:
        tr, va = split == V.TRAIN, split == V.VALID
        fit = fit_logistic(X[tr], y[tr], tol=hp["tol"], max_iter=hp["max_iter"])
        p = fit.predict_proba(X)
        loss = -np.mean(y[tr] * np.log(p[tr] + eps) + (1 - y[tr]) * np.log(1 - p[tr] + eps))
        values = {
            "prediction": p,
            "coef": fit.coef,
            "stderr": fit.stderr,
            "pvalue": fit.pvalue,
            "intercept": fit.intercept,
            "intercept_stderr": fit.intercept_stderr,
            "intercept_pvalue": fit.intercept_pvalue,
            "pattern": regulative_patterns(fit, X)[0],
            "valid_auc": auc(y[va], p[va]),
            "loss": loss,
            "weights": fit,
        }
        for k, v in values.items():
            out[k].append(v)
    out["feature"] = X
    out["attrs"] = {"feature": source}
    return out


def _extra(what: str, dims: tuple, dtype: str, doc: str) -> V.Spec:
    return V.Spec(f"shallowchrome_{what}", dims, "f", dtype, doc, required=False)


_CR = (V.CELL, V.REPEAT)


def logistic_to_arrays(fit: Any) -> tuple[dict[str, np.ndarray], dict]:
    """ShallowChrome's logistic fit as arrays (coefficients, intercept) and its statistics."""
    return (
        {
            "coef": np.asarray(fit.coef, np.float64),
            "intercept": np.asarray([fit.intercept], np.float64),
            "stderr": np.asarray(fit.stderr, np.float64),
            "z": np.asarray(fit.z, np.float64),
            "pvalue": np.asarray(fit.pvalue, np.float64),
        },
        {
            "intercept_stderr": float(fit.intercept_stderr),
            "intercept_pvalue": float(fit.intercept_pvalue),
            "n_iter": int(fit.n_iter),
        },
    )


def logistic_from_arrays(arrays: Mapping[str, np.ndarray], rest: Mapping) -> Any:
    """The inverse of :func:`logistic_to_arrays`."""
    return LogisticFit(
        coef=arrays["coef"],
        intercept=float(arrays["intercept"][0]),
        stderr=arrays["stderr"],
        z=arrays["z"],
        pvalue=arrays["pvalue"],
        intercept_stderr=rest["intercept_stderr"],
        intercept_pvalue=rest["intercept_pvalue"],
        n_iter=rest["n_iter"],
    )


def shallowchrome_scorer(weights: Any, hp: Mapping, layout) -> Callable[[np.ndarray], np.ndarray]:
    """P(class 1) of the fitted logistic regression on each mark's max over bins."""
    return lambda x: np.asarray(weights.predict_proba(max_signal_features(x)), np.float32)


ENTRY = ArraysModel(
    "shallowchrome",
    fit_cell,
    reads="signal_max",
    defaults=dict(DEFAULTS),
    scorer=shallowchrome_scorer,
    export=ArrayCodec(logistic_to_arrays, logistic_from_arrays),
    paper="Frasca et al. 2022, ShallowChrome (Comput. Struct. Biotechnol. J.)",
    extras=(
        _extra("coef", (*_CR, V.MARK), "float64", "Logistic coefficient of each mark's feature."),
        _extra("stderr", (*_CR, V.MARK), "float64", "Standard error of each coefficient."),
        _extra("pvalue", (*_CR, V.MARK), "float64", "Two-sided Wald p-value of each coefficient."),
        _extra("intercept", _CR, "float64", "Intercept (bias) of the logistic regression."),
        _extra("intercept_stderr", _CR, "float64", "Standard error of the intercept."),
        _extra("intercept_pvalue", _CR, "float64", "Two-sided Wald p-value of the intercept."),
        _extra(
            "pattern",
            (*_CR, V.GENE, V.MARK),
            "float32",
            "Regulative pattern: coefficient x feature per gene and mark.",
        ),
        _extra(
            "feature",
            (V.CELL, V.GENE, V.MARK),
            "float32",
            "The feature of each gene and mark: max peak signalValue or max signal.",
        ),
    ),
)
