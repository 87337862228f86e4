"""Binary expression labels, computed lazily from ``expression``.

DeepChrome labels a gene highly expressed (1) when its RPKM is above the median
RPKM of all genes of that epigenome; ShallowChrome uses ``>=``. The rule is the same
whatever quantity the store's ``expression`` holds (RPKM from a REMC matrix, TPM or FPKM
from RSEM files: ``ds.attrs["expression"][cell]["quantity"]``): the median split is per
epigenome, so the quantity's scale does not matter. Genes with no expression value have
``label_valid`` False (their ``label`` is False too).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from chromestore import variables as V

RULES = ("median", "median-ge")


def require_expression(ds: xr.Dataset, cells, store: str = "the store") -> None:
    """Raise :class:`~chromestore.errors.StoreError` unless each of ``cells`` has
    expression values (labels, and so training, need them); the message says how to add
    them. Reads the ``expression`` of those cells."""
    from chromestore.errors import StoreError

    ingest = f"`chromestore ingest {store} --expression RPKM.tsv`"
    if not len(cells):
        raise StoreError(
            f"{store}: no epigenomes in the store yet; add them with {ingest} "
            "(and --samples SHEET for their signal)"
        )
    has = ds[V.expression.name].sel({V.CELL: list(cells)}).notnull().any(V.GENE).values
    missing = [str(c) for c, ok in zip(cells, has, strict=True) if not ok]
    if missing:
        shown = ", ".join(missing[:6]) + (f", … ({len(missing)})" if len(missing) > 6 else "")
        raise StoreError(
            f"{store}: no expression for {shown}; labels come from it, so "
            f"training needs it: add it with {ingest}"
        )


def warn_overwrite(ds: xr.Dataset, names: tuple[str, ...]) -> None:
    present = [n for n in names if n in ds.variables]
    if present:
        warnings.warn(f"overwriting existing variable(s) {present}", UserWarning, stacklevel=3)


def _median_or_nan(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN; NaN (no warning) for a cell without expression."""
    has = ~np.isnan(values).all(axis=-1)
    out = np.full(values.shape[:-1], np.nan, dtype=np.float32)
    if has.any():
        out[has] = np.nanmedian(values[has], axis=-1)
    return out


def compute_labels(ds: xr.Dataset, rule: str | float = "median") -> xr.Dataset:
    """Add ``label``, ``label_valid`` (cell, gene) and ``label_threshold`` (cell), lazily.

    Parameters
    ----------
    rule
        ``"median"``: expression > the cell's median over genes with expression
        (DeepChrome); ``"median-ge"``: ``>=`` (ShallowChrome); a number: expression >
        that RPKM threshold in every cell.

    Examples
    --------
    >>> ds = chromestore.simulate(n_cells=2, n_genes=100)  # doctest: +SKIP
    >>> compute_labels(ds).label.mean("gene").values  # doctest: +SKIP
    array([0.5, 0.5])
    """
    V.expression.check(ds)
    warn_overwrite(ds, ("label", "label_valid", "label_threshold"))
    expr = ds[V.expression.name]
    if isinstance(rule, str):
        if rule not in RULES:
            raise ValueError(f"unknown label rule {rule!r}; use one of {RULES} or a number")
        data = expr.chunk({V.GENE: -1}) if expr.chunks is not None else expr
        threshold = xr.apply_ufunc(
            _median_or_nan,
            data,
            input_core_dims=[[V.GENE]],
            dask="parallelized",
            output_dtypes=[np.float32],
        )
        label = expr >= threshold if rule == "median-ge" else expr > threshold
    else:
        value = float(rule)
        threshold = xr.full_like(expr.isel({V.GENE: 0}, drop=True), value, dtype=np.float32)
        label = expr > value
    threshold = threshold.astype(np.float32)
    threshold.attrs = {"description": V.label_threshold.doc, "rule": str(rule)}
    label = label.astype(bool)
    label.attrs = {"description": V.label.doc, "rule": str(rule)}
    valid = expr.notnull()
    valid.attrs = {"description": V.label_valid.doc}
    return ds.assign(label=label, label_valid=valid, label_threshold=threshold)


def label_summary(ds: xr.Dataset) -> xr.Dataset:
    """Per cell: genes with expression, positives, positive fraction and threshold (lazy)."""
    if "label" not in ds:
        ds = compute_labels(ds)
    n_valid = ds["label_valid"].sum(V.GENE)
    n_pos = (ds["label"] & ds["label_valid"]).sum(V.GENE)
    return xr.Dataset(
        {
            "genes": n_valid,
            "positives": n_pos,
            "positive_fraction": n_pos / n_valid.where(n_valid > 0),
            "threshold": ds["label_threshold"],
        }
    )
