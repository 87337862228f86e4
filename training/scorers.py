"""Scorers and array codecs of the peer models, for prediction and export.

Each scorer is ``scorer(entry, weights, hparams)`` → a function of ``(genes, marks, bins)``
float32 signal returning P(high expression) per gene (see
:mod:`chromestore.training.predict`); the entries name theirs in the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def rf_bestbin_scorer(entry, weights: Any, hp: Mapping) -> Callable[[np.ndarray], np.ndarray]:
    """``rf-bestbin``: each mark's chosen bin → the fitted random forest."""
    return lambda x: np.asarray(weights.predict_proba(x), np.float32)


def svm_bin_scorer(entry, weights: Mapping, hp: Mapping) -> Callable[[np.ndarray], np.ndarray]:
    """``svm-bin``: the chosen bin's log1p, standardised as on its training genes → the SVM's
    decision function, squashed by a logistic (a ranking score, not a calibrated probability)."""
    b, model = int(weights["best_bin"]), weights["model"]
    mean = np.asarray(weights["log1p_mean"], np.float64)
    scale = np.asarray(weights["log1p_scale"], np.float64)

    def score(x: np.ndarray) -> np.ndarray:
        z = (np.log1p(np.clip(np.asarray(x[:, :, b], np.float64), 0, None)) - mean) / scale
        return (0.5 * (1.0 + np.tanh(0.5 * model.decision_function(z)))).astype(np.float32)

    return score


def attentivechrome_scorer(entry, weights: Any, hp: Mapping
                           ) -> Callable[[np.ndarray], np.ndarray]:
    """``attentivechrome``: the mean P(class 1) of the member's ensemble of networks."""
    import torch

    from chromestore.training.peers import attentivechrome as A

    states = weights if isinstance(weights, list) else [weights]
    nets = []
    for state in states:
        bin_hidden = int(state["bin_rnn.0.weight_hh_l0"].shape[1])
        mark_hidden = int(state["mark_rnn.weight_hh_l0"].shape[1])
        n_marks = sum(1 for k in state if k.startswith("bin_rnn.") and k.endswith("weight_hh_l0"))
        net = A.AttentiveChrome(n_marks=n_marks, bin_hidden=bin_hidden, mark_hidden=mark_hidden)
        net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        nets.append(net)
    log1p = bool(hp.get("log1p", A.DEFAULTS.get("log1p", False)))

    def score(x: np.ndarray) -> np.ndarray:
        t = A._prepare(x, log1p)
        return np.mean([A.predict(n, t)[0] for n in nets], axis=0).astype(np.float32)

    return score


def logistic_to_arrays(fit: Any) -> tuple[dict[str, np.ndarray], dict]:
    """ShallowChrome's logistic fit as arrays (coefficients, intercept) and its statistics."""
    return ({"coef": np.asarray(fit.coef, np.float64),
             "intercept": np.asarray([fit.intercept], np.float64),
             "stderr": np.asarray(fit.stderr, np.float64), "z": np.asarray(fit.z, np.float64),
             "pvalue": np.asarray(fit.pvalue, np.float64)},
            {"intercept_stderr": float(fit.intercept_stderr),
             "intercept_pvalue": float(fit.intercept_pvalue), "n_iter": int(fit.n_iter)})


def logistic_from_arrays(arrays: Mapping[str, np.ndarray], rest: Mapping) -> Any:
    """The inverse of :func:`logistic_to_arrays`."""
    from chromestore.training.peers.shallowchrome import LogisticFit

    return LogisticFit(coef=arrays["coef"], intercept=float(arrays["intercept"][0]),
                       stderr=arrays["stderr"], z=arrays["z"], pvalue=arrays["pvalue"],
                       intercept_stderr=rest["intercept_stderr"],
                       intercept_pvalue=rest["intercept_pvalue"], n_iter=rest["n_iter"])


def regression_scorer(entry, weights: Mapping, hp: Mapping) -> Callable[[np.ndarray], np.ndarray]:
    """``deepchrome-regression``: predicted log(RPKM + 1); the epigenome's cell statistics
    appended when it was trained with them; a model trained with k-mers (``--fasta``) refuses."""
    import torch

    from chromestore.training.peers import regression as G

    if hp.get("fasta"):
        raise ValueError("this deepchrome-regression model reads k-mers of a genome FASTA "
                         "(--fasta); predict supports models of histone marks only")
    state = weights["state_dict"]
    n_channels = int(state["net.conv.weight"].shape[1])
    n_bins = int(weights.get("n_bins") or hp.get("n_bins") or 100)
    net = G.DeepChromeRegressor(n_channels, n_bins, float(hp.get("dropout", 0.5)))
    net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    net.eval()
    mean = np.asarray(weights["mean"], np.float32)
    scale = np.asarray(weights["scale"], np.float32)

    def score(x: np.ndarray) -> np.ndarray:
        if hp.get("cell_stats"):
            x = G.with_cell_stats(x)
        xs = torch.from_numpy(((x - mean) / scale).astype(np.float32))
        with torch.no_grad():
            return torch.cat([net(xs[i:i + 1024]) for i in range(0, len(xs), 1024)]).numpy()

    return score
