"""Queries: find a gene by key, Ensembl id or symbol; the mark × bin matrix of a gene."""

from __future__ import annotations

import numpy as np
import xarray as xr

from chromestore import variables as V


def find_gene(ds: xr.Dataset, query: str) -> str:
    """Resolve ``query`` (``ENSGID_SYMBOL`` key, Ensembl id or symbol) to one gene key."""
    keys = ds[V.GENE].values.astype(object)
    if query in set(keys):
        return query
    for coord in (V.gene_id.name, V.gene_name.name):
        values = np.asarray(ds[coord].values).astype(object)
        hits = keys[values == query]
        if len(hits) == 1:
            return str(hits[0])
        if len(hits) > 1:
            raise KeyError(
                f"{query!r} matches {len(hits)} genes ({', '.join(hits)}); use the full key"
            )
    raise KeyError(f"gene {query!r} not found (by key, Ensembl id or symbol)")


def pick(ds: xr.Dataset, dim: str, names) -> list[str]:
    """``names`` if they are all labels of ``dim``; else a KeyError listing the ones there are."""
    names = [str(n) for n in names]
    have = [str(v) for v in ds[dim].values]
    missing = [n for n in names if n not in set(have)]
    if missing:
        raise KeyError(
            f"{dim} {', '.join(missing)} not in the store "
            f"({dim}s there: {', '.join(have) or 'none'})"
        )
    return names


def gene_matrix(ds: xr.Dataset, gene: str, cell: str | None = None) -> xr.DataArray:
    """The (cell, mark, bin) signal of one gene, loaded (a small read: one chunk per cell)."""
    key = find_gene(ds, gene)
    sig = ds[V.signal.name].sel({V.GENE: key})
    if cell is not None:
        sig = sig.sel({V.CELL: pick(ds, V.CELL, [cell])})
    return sig.load()
