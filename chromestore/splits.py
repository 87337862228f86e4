"""Train/validation/test splits of the genes, as a lazy ``split`` (repeat, gene) variable.

Schemes
-------
``deepchrome``
    File order: the first third trains, the next validates, the last tests
    (6601/6601/6600 for the 19,802 REMC genes), as published.
``random``
    ``repeats`` random permutations with the same sizes (ShallowChrome reports 10).
``chromosome``
    Whole chromosomes held out for test and validation, so neighbouring genes
    (which share chromatin domains) never straddle train and test.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from chromestore import variables as V
from chromestore.labels import warn_overwrite

SCHEMES = ("deepchrome", "random", "chromosome")


def split_sizes(n: int) -> tuple[int, int, int]:
    """Train/valid/test sizes in DeepChrome's proportions: 19,802 → (6601, 6601, 6600)."""
    n_test = n // 3
    n_valid = (n - n_test) // 2
    return n - n_test - n_valid, n_valid, n_test


def _ordered(n: int) -> np.ndarray:
    n_train, n_valid, _ = split_sizes(n)
    out = np.full(n, V.TEST, dtype=np.int8)
    out[:n_train] = V.TRAIN
    out[n_train : n_train + n_valid] = V.VALID
    return out


def _random(n: int, seed: int, repeat: int) -> np.ndarray:
    rng = np.random.default_rng([seed, repeat])
    return _ordered(n)[rng.permutation(n)]


def _by_chromosome(
    chroms: np.ndarray,
    seed: int,
    repeat: int,
    test_chroms: Sequence[str] | None,
    valid_chroms: Sequence[str] | None,
) -> np.ndarray:
    chroms = np.asarray(chroms).astype(object)
    out = np.full(chroms.shape, V.TRAIN, dtype=np.int8)
    if test_chroms is not None or valid_chroms is not None:
        out[np.isin(chroms, list(valid_chroms or ()))] = V.VALID
        out[np.isin(chroms, list(test_chroms or ()))] = V.TEST
        return out
    names, counts = np.unique(chroms, return_counts=True)
    order = np.random.default_rng([seed, repeat]).permutation(len(names))
    _, n_valid, n_test = split_sizes(len(chroms))
    filled = {V.TEST: 0, V.VALID: 0}
    for i in order:
        for code, target in ((V.TEST, n_test), (V.VALID, n_valid)):
            if filled[code] < target:
                out[chroms == names[i]] = code
                filled[code] += counts[i]
                break
    return out


def assign_splits(
    ds: xr.Dataset,
    scheme: str = "deepchrome",
    *,
    seed: int = 0,
    repeats: int = 1,
    test_chroms: Sequence[str] | None = None,
    valid_chroms: Sequence[str] | None = None,
) -> xr.Dataset:
    """Add ``split`` (repeat, gene) int8: 0 train, 1 valid, 2 test. Stays lazy.

    ``scheme`` may carry the repeat count, e.g. ``"random:10"``.

    Examples
    --------
    >>> ds = assign_splits(ds, "random:10", seed=0)  # doctest: +SKIP
    >>> ds.split.sizes  # doctest: +SKIP
    Frozen({'repeat': 10, 'gene': 19802})
    """
    name, _, k = scheme.partition(":")
    if name not in SCHEMES:
        raise ValueError(f"unknown split scheme {scheme!r}; use one of {SCHEMES}")
    if k:
        repeats = int(k)
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if name == "deepchrome" and repeats != 1:
        raise ValueError("the deepchrome split is fixed by file order: it has one repeat")
    warn_overwrite(ds, ("split",))
    n = ds.sizes[V.GENE]
    ref = ds.get(V.expression.name)
    chunks = ref.variable.chunksizes[V.GENE] if ref is not None and ref.chunks is not None else (n,)
    if name == "chromosome":
        chrom = ds[V.gene_chrom.name]
        if chrom.chunks is not None or (ref is not None and ref.chunks is not None):
            chrom = chrom.chunk({V.GENE: -1})  # lazy like the store (coordinates are eager)
        parts = [
            xr.apply_ufunc(
                _by_chromosome,
                chrom,
                kwargs=dict(
                    seed=seed, repeat=r, test_chroms=test_chroms, valid_chroms=valid_chroms
                ),
                dask="parallelized",
                output_dtypes=[np.int8],
            )
            for r in range(repeats)
        ]
        split = xr.concat(parts, dim=V.REPEAT).drop_vars(
            [
                c
                for c in ("gene_id", "gene_name", "gene_chrom", "gene_tss", "gene_strand")
                if c in ds.coords
            ]
        )
        if split.chunks is not None:
            split = split.chunk({V.GENE: chunks})
    else:
        codes = np.stack(
            [_ordered(n) if name == "deepchrome" else _random(n, seed, r) for r in range(repeats)]
        )
        split = xr.DataArray(
            da.from_array(codes, chunks=(1, chunks)), dims=V.split.dims, coords={V.GENE: ds[V.GENE]}
        )
    split.attrs = {
        "description": V.split.doc,
        "scheme": name,
        "seed": int(seed),
        "flag_values": [V.TRAIN, V.VALID, V.TEST],
        "flag_meanings": " ".join(V.SPLIT_NAMES),
    }
    return ds.drop_vars("split", errors="ignore").assign(split=split.transpose(*V.split.dims))
