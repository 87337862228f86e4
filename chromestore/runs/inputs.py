"""What a model's input was: the units of its training epigenomes' signal, and, for a model
trained with per-epigenome quantile normalisation (``train --normalise quantile``), each
training epigenome's signal quantiles per mark.

Quantile normalisation maps each mark of an epigenome onto a reference distribution: a
value's level in the epigenome's own quantiles of that mark (over its genes with signal,
all bins; tied values take the middle of their levels) is looked up in the reference's
quantiles at that level. The reference of a model is the mean of its training epigenomes'
quantiles (one epigenome: its own, so its training input is unchanged). It is applied to
the signal as stored, before the model's input transform, at training and prediction alike
(:meth:`chromestore.training.predict.Predictor.score_array`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.store.records import signal_units

#: quantile levels 0, 1/100, …, 1 of each mark's values
QUANTILE_LEVELS = 101
#: the per-epigenome normalisations ``train --normalise`` offers ("none": the signal as is)
NORMALISE = V.NORMALISE


def signal_quantiles(x: np.ndarray, levels: int = QUANTILE_LEVELS) -> np.ndarray:
    """``(marks, levels)`` quantiles of ``x (genes, marks, bins)`` per mark, over the genes
    whose signal is finite in every bin and mark (all NaN: NaN)."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x).all(axis=(1, 2))
    grid = np.linspace(0.0, 1.0, levels)
    if not ok.any():
        return np.full((x.shape[1], levels), np.nan)
    per_mark = x[ok].transpose(1, 0, 2).reshape(x.shape[1], -1)
    return np.quantile(per_mark, grid, axis=1).T


def _levels(values: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Each value's level (0..1) in the sorted quantiles ``own``: linear between two
    quantiles, the middle of the levels where quantiles tie."""
    n = len(own)
    lo = np.searchsorted(own, values, "left")
    hi = np.searchsorted(own, values, "right")
    i = np.clip(lo, 1, n - 1)
    a, b = own[i - 1], own[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(b > a, (values - a) / np.where(b > a, b - a, 1.0), 0.5)
    between = (i - 1) + np.clip(frac, 0.0, 1.0)
    level = np.where(hi > lo, (lo + hi - 1) / 2.0, between)
    return level / (n - 1)


def quantile_map(x: np.ndarray, reference: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    """``x (genes, marks, bins)`` of one epigenome, each mark mapped onto ``reference``
    ``(marks, levels)`` through its own quantiles (``own``: computed from ``x`` when not
    given). NaN stays NaN."""
    x = np.asarray(x, np.float32)
    reference = np.asarray(reference, np.float64)
    own = signal_quantiles(x, reference.shape[1]) if own is None else np.asarray(own)
    grid = np.linspace(0.0, 1.0, reference.shape[1])
    out = np.array(x, np.float32, copy=True)
    for j in range(x.shape[1]):
        if not np.isfinite(own[j]).all():
            continue
        values = x[:, j].astype(np.float64)
        ok = np.isfinite(values)
        out[:, j][ok] = np.interp(_levels(values[ok], own[j]), grid, reference[j])
    return out


def reference_of(quantiles: Mapping[str, Sequence], cells: Sequence[str]) -> np.ndarray:
    """The reference ``(marks, levels)`` of a model trained on ``cells``: the mean of their
    quantiles (``quantiles``: cell → (marks, levels), a run's ``signal_quantiles``)."""
    return np.mean([np.asarray(quantiles[c], np.float64) for c in cells], axis=0)


def store_quantiles(ds: xr.Dataset, cells: Sequence[str]) -> dict[str, list[list[float]]]:
    """Each cell's :func:`signal_quantiles` (the run attr ``signal_quantiles``), read from the
    store one epigenome at a time."""
    out = {}
    for c in cells:
        x = ds[V.signal.name].sel({V.CELL: c}).transpose(V.GENE, V.MARK, V.BIN).values
        out[str(c)] = signal_quantiles(x).tolist()
    return out


def store_units(ds: xr.Dataset, cells: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{cell: {mark: units}}`` of the marks written for ``cells`` (the run attr
    ``signal_units``: what the model's training epigenomes were)."""
    units = signal_units(ds)
    marks = [str(m) for m in ds[V.MARK].values]
    have = {str(c) for c in ds[V.CELL].values}
    return {
        str(c): {
            m: str(units.sel({V.CELL: c, V.MARK: m}).values)
            for m in marks
            if str(units.sel({V.CELL: c, V.MARK: m}).values)
        }
        for c in cells
        if str(c) in have
    }


def dataset_units(ds: xr.Dataset) -> dict[tuple[str, str], str]:
    """``{(cell, mark): units}`` of a Dataset's written signal (a store's, or one built in
    memory: its ``signal_units`` variable where it has one; none: no units known)."""
    if V.signal_completed.name not in ds.variables and V.signal_units.name not in ds.variables:
        return {}
    units = signal_units(ds)
    cells = [str(c) for c in units[V.CELL].values]
    marks = [str(m) for m in units[V.MARK].values]
    values = units.values
    return {
        (c, m): str(values[i, j])
        for i, c in enumerate(cells)
        for j, m in enumerate(marks)
        if str(values[i, j])
    }


def model_units(units: Mapping[str, Mapping[str, str]], cells: Sequence[str]) -> dict[str, str]:
    """``{mark: units}`` of a model trained on ``cells``: each mark's units where its training
    epigenomes agree, their ``a / b`` list where they do not."""
    out: dict[str, str] = {}
    for mark in dict.fromkeys(m for c in cells for m in units.get(c, {})):
        kinds = sorted({units[c][mark] for c in cells if mark in units.get(c, {})})
        out[mark] = " / ".join(kinds)
    return out
