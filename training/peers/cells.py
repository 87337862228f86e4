"""One epigenome's inputs to an ``arrays`` model, read from the store, and its outputs put back.

The peer executor (:mod:`chromestore.training.peers.execute`) reads an epigenome's block
once, keeps the genes with complete signal and a label, and hands a model's
``fit_cell(data, hp, seed)`` a :class:`CellData`. ``fit_cell`` returns a dict of lists
over split repeats:

``prediction``
    P(class 1) of every kept gene (required).
``history_loss``, ``history_valid_auc``, ``best_epoch``
    Per-epoch histories; or ``valid_auc`` (and ``loss``) for a fit without epochs.
``weights``
    What to keep beside the run, written with the entry's codec (optional).
``<what>``
    The value of each extra variable ``<model>_<what>`` the entry declares: a list
    over repeats when the spec's dims start ``(cell, repeat)``, else one value.
    Dims with ``gene`` hold the kept genes; they are put back among all genes here.
``attrs``
    Optional ``{what: value}``, recorded in the run's attrs as ``<model>_<what>`` (the
    sorted distinct values over epigenomes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dask
import numpy as np

from chromestore import variables as V
from chromestore.bins import WindowLayout
from chromestore.executors import local_dask
from chromestore.store.dataset import open_store
from chromestore.training.scoring import auc


@dataclass
class CellData:
    """The kept genes of one epigenome (finite signal in every bin, a defined label)."""

    cell: str
    y: np.ndarray  # (kept,) 0/1 labels
    split: np.ndarray  # (repeat, kept) split codes
    keep: np.ndarray  # (genes,) bool: which of the run's genes are kept
    signal: np.ndarray | None = None  # (kept, mark, bin), for entries reading "signal"
    signal_max: np.ndarray | None = None  # (kept, mark), for entries reading "signal_max"
    peak_max: np.ndarray | None = None  # (kept, mark), "signal_max" readers; None: no peaks
    expression: np.ndarray | None = None  # (kept,) RPKM
    layout: WindowLayout | None = None  # the store's bins around the TSS


def read_cell(
    store, cell: str, genes, storage_options: Mapping | None = None, peaks: bool = True
) -> dict:
    """One epigenome's ``signal`` (gene, mark, bin) and ``peak_max`` (gene, mark) for ``genes``."""
    ds = open_store(store, storage_options)
    sub = ds.isel({V.GENE: genes}).sel({V.CELL: cell})
    out = {"signal": sub[V.signal.name].values.astype(np.float32)}
    pk = sub[V.peak_max.name].values.astype(np.float32) if peaks else None
    out["peak_max"] = pk if pk is not None and np.isfinite(pk).any() else None
    return out


def read_cell_max(store, cell: str, genes, storage_options: Mapping | None = None) -> dict:
    """The inputs of a ``signal_max`` reader for one epigenome, reduced chunk by chunk as read.

    ``signal_max`` (gene, mark): the max over bins of ``signal`` (NaN bins ignored, NaN
    where a window has none); ``finite`` (gene,): every bin of every mark is finite;
    ``peak_max`` (gene, mark) or None when no peaks were ingested. The (gene, mark, bin)
    block is never held whole, only one chunk at a time.
    """
    ds = open_store(store, storage_options)
    sub = ds.isel({V.GENE: genes}).sel({V.CELL: cell})
    sig = sub[V.signal.name]
    with warnings.catch_warnings(), local_dask(threads=False):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows → NaN
        smax, finite, pk = dask.compute(
            sig.max(V.BIN, skipna=True).data,
            sig.notnull().all([V.MARK, V.BIN]).data,
            sub[V.peak_max.name].data,
        )
    pk = np.asarray(pk, dtype=np.float32)
    return {
        "signal_max": np.asarray(smax, dtype=np.float64),
        "finite": np.asarray(finite),
        "peak_max": pk if np.isfinite(pk).any() else None,
    }


def cell_data(
    store,
    cell: str,
    genes,
    label: np.ndarray,
    valid: np.ndarray,
    split: np.ndarray,
    expression: np.ndarray | None,
    reads: str,
    storage_options: Mapping | None = None,
    layout: WindowLayout | None = None,
) -> CellData:
    """Read one epigenome and keep its genes with complete signal and a label."""
    if reads == "signal_max":  # only the max over bins is needed: reduce while reading
        raw = read_cell_max(store, cell, genes, storage_options)
        keep = raw["finite"] & valid
        data = CellData(
            cell, label[keep].astype(int), split[:, keep], keep, signal_max=raw["signal_max"][keep]
        )
        data.peak_max = None if raw["peak_max"] is None else raw["peak_max"][keep]
    else:
        raw = read_cell(store, cell, genes, storage_options, peaks=False)
        keep = np.isfinite(raw["signal"]).all(axis=(1, 2)) & valid
        data = CellData(
            cell, label[keep].astype(int), split[:, keep], keep, signal=raw["signal"][keep]
        )
    data.expression = None if expression is None else expression[keep]
    data.layout = layout
    return data


def scatter(out: dict, keep: np.ndarray, gene_keys: Mapping[str, bool]) -> dict:
    """Put the kept genes' outputs back among all genes (NaN elsewhere).

    ``gene_keys`` maps each output with a gene axis to whether it is a list over repeats.
    """
    n = keep.size

    def spread(v):
        v = np.asarray(v, dtype=np.float32)
        full = np.full((n, *v.shape[1:]), np.nan, dtype=np.float32)
        full[keep] = v
        return full

    for key, per_repeat in gene_keys.items():
        if key in out:
            out[key] = [spread(v) for v in out[key]] if per_repeat else spread(out[key])
    out["keep"] = keep
    return out


def max_over_bins(signal: np.ndarray) -> np.ndarray:
    """The max over bins of ``signal (..., mark, bin)`` → ``(..., mark)`` (what ``signal_max``
    readers get): NaN bins are ignored, a window with no finite bin gives NaN."""
    signal = np.asarray(signal, dtype=np.float64)
    finite = np.isfinite(signal)
    out = np.where(finite, signal, -np.inf).max(axis=-1)
    return np.where(finite.any(axis=-1), out, np.nan)


def flatten(signal: np.ndarray, layout: WindowLayout | None = None) -> np.ndarray:
    """The default estimator features: (gene, mark, bin) → (gene, mark × bin)."""
    return np.asarray(signal, dtype=np.float64).reshape(len(signal), -1)


def fit_estimator(estimator, data: CellData, hp: dict, seed: int) -> dict:
    """The fit of an :class:`chromestore.training.entry.Estimator` on one epigenome.

    For each repeat: ``estimator.factory(**hp)`` fitted on the training genes'
    ``features(signal, layout)`` (or of ``signal_max``), every kept gene scored with
    ``predict_proba`` (``decision_function`` or ``predict`` where there is none), and the
    validation AUC recorded.
    """
    x = data.signal if data.signal is not None else data.signal_max
    X = (estimator.features or flatten)(x, data.layout)
    out: dict = {"prediction": [], "valid_auc": [], "weights": []}
    for r in range(data.split.shape[0]):
        tr, va = data.split[r] == V.TRAIN, data.split[r] == V.VALID
        est = estimator.factory(**hp)
        if "random_state" in getattr(est, "get_params", dict)():
            est.set_params(random_state=seed + r)
        est.fit(X[tr], data.y[tr])
        p = _score(est, X)
        out["prediction"].append(p)
        out["valid_auc"].append(auc(data.y[va], p[va]))
        out["weights"].append(est)
    return out


def _score(est, X: np.ndarray) -> np.ndarray:
    if hasattr(est, "predict_proba"):
        return np.asarray(est.predict_proba(X))[:, -1]
    if hasattr(est, "decision_function"):
        return np.asarray(est.decision_function(X))
    return np.asarray(est.predict(X), dtype=np.float64)


def stack_cells(results: Sequence[dict], key: str, dtype) -> np.ndarray:
    """One output of every epigenome, stacked along a leading ``cell`` axis."""
    return np.stack([np.asarray(res[key], dtype=dtype) for res in results])
