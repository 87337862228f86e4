"""Convert a store written by an older format version to the current one, in place.

Format v1 → v3: first v1 → v2 (bins 5'→3'), then v2 → v3 (completion and provenance
from group attrs to per-(cell, mark) variables, :func:`chromestore.store.records.upgrade_records`).
A v1 store built from the shipped gene list holds every
gene as ``+``, its bins in genome order. The conversion gives each gene its strand
(from the shipped annotation, or a given one) and reverses the bins of every
(cell, gene, mark) whose stored order differs from 5'→3' on that strand, so every value
stays at its genome position. A v1 store's bins followed its own ``gene_strand`` for
files counted at genome positions (reads, bigWig), but the published CSV datasets were
stored in genome order whatever the strand; the provenance of each (cell, mark) says
which it was.

The conversion is resumable: each cell is recorded once rewritten, and the format
version changes only after every cell and the ``gene_strand`` coordinate are written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import variables as V
from chromestore.store import records
from chromestore.store.dataset import open_store, update_attrs, write_region
from chromestore.store.handle import STR, Store, StoreLike, now_utc

#: formats whose v1 values were stored in genome order whatever the stored strand
GENOME_ORDER_FORMATS = ("deepdiff-csv", "deepchrome-csv")
_PROGRESS = "upgrade_cells_done"


@dataclass
class UpgradeReport:
    """What :func:`upgrade_store` did."""

    from_version: int
    genes_flipped: int  # genes whose bins were reversed in at least one (cell, mark)
    strands: dict[str, int]  # new strand counts
    cells: int

    def __str__(self) -> str:
        s = self.strands
        return (
            f"upgraded the store from format v{self.from_version} to v{V.FORMAT_VERSION} "
            f"(bins 5'→3'): {self.cells} epigenomes rewritten, bins of {self.genes_flipped} "
            f"genes reversed; strands + {s['+']}, - {s['-']}, unknown {s['.']}"
        )


def new_strands(ds: xr.Dataset, genes: str | os.PathLike | pd.DataFrame | None) -> np.ndarray:
    """The strand each gene of ``ds`` gets: from ``genes`` (an annotation path or table,
    matched by gene key) or the shipped annotation; genes absent there keep theirs."""
    from chromestore.genes import read_genes, reference_strands

    if genes is None:
        table = reference_strands(V.GENE)
    else:
        frame = genes if isinstance(genes, pd.DataFrame) else read_genes(genes)
        table = pd.Series(frame["strand"].to_numpy(object), index=frame["gene"].to_numpy(object))
    old = ds[V.gene_strand.name].values.astype(object)
    new = table.reindex(ds[V.GENE].values.astype(object)).to_numpy(object)
    return np.where(pd.isna(new), old, new).astype(object)


def flip_mask(ds: xr.Dataset, strand: np.ndarray) -> np.ndarray:
    """(cell, gene, mark) bool: the bins to reverse to turn ``ds`` (v1) into v2 order."""
    old_minus = ds[V.gene_strand.name].values.astype(object) == "-"
    new_minus = np.asarray(strand, dtype=object) == "-"
    cells = [str(c) for c in ds[V.CELL].values]
    marks = [str(m) for m in ds[V.MARK].values]
    prov = ds.attrs.get("provenance", {})
    mask = np.empty((len(cells), len(old_minus), len(marks)), dtype=bool)
    for i, c in enumerate(cells):
        for j, m in enumerate(marks):
            fmt = prov.get(f"{c}/{m}", {}).get("format")
            stored_minus = np.zeros_like(old_minus) if fmt in GENOME_ORDER_FORMATS else old_minus
            mask[i, :, j] = stored_minus != new_minus
    return mask


def upgrade_store(
    path: StoreLike,
    genes: str | os.PathLike | pd.DataFrame | None = None,
    storage_options: dict | None = None,
) -> UpgradeReport:
    """Convert the store at ``path`` from format v1 (or v2) to the current version, in place.

    Parameters
    ----------
    path
        The store (v1: strands and records converted; v2: records only; a current one is
        left untouched and reported as such).
    genes
        Annotation to take the strands from (BED6/GTF path or a gene table); default the
        shipped REMC annotation. Genes absent from it keep their stored strand.

    Raises
    ------
    chromestore.variables.SchemaError
        The store's version is neither current nor convertible.
    """
    from chromestore.genes import strand_counts

    handle = Store.of(path, storage_options)
    ds = open_store(handle, validate=False)
    version = ds.attrs.get("format_version")
    if version == V.FORMAT_VERSION:
        V.validate(ds)
        raise V.SchemaError(f"{handle}: already format v{V.FORMAT_VERSION}; nothing to upgrade")
    if version in V.READABLE_VERSIONS:  # v2: bins already 5'→3'; only the records move
        V.validate(ds)
        with handle.lock():
            records.upgrade_records(handle)
        strand = ds[V.gene_strand.name].values.astype(object)
        return UpgradeReport(int(version), 0, strand_counts(strand), 0)
    if version not in V.UPGRADABLE_VERSIONS:
        V.validate(ds)  # raises the usual message for unknown versions
    V.validate(ds, check_version=False)
    strand = new_strands(ds, genes)
    mask = flip_mask(ds, strand)
    done = set(ds.attrs.get(_PROGRESS, []))
    chunk = {V.CELL: 1, V.GENE: int(ds.attrs["gene_chunk"])}
    for ci, cell in enumerate(str(c) for c in ds[V.CELL].values):
        if cell in done or not mask[ci].any():
            continue
        cube = ds[V.signal.name].isel({V.CELL: ci}).values  # gene, mark, bin
        cube[mask[ci]] = cube[mask[ci]][:, ::-1]
        part = xr.Dataset({V.signal.name: (V.signal.dims, cube[None])}).chunk(chunk)
        write_region(handle, part, {V.CELL: slice(ci, ci + 1)})
        done.add(cell)
        update_attrs(handle, **{_PROGRESS: sorted(done)})
    group = handle.group("r+")
    group[V.gene_strand.name][:] = np.array(list(strand), dtype=STR)
    attrs = dict(group.attrs)
    attrs.pop(_PROGRESS, None)
    attrs.update(
        format_version=V.ORIENTATION_VERSION,
        orientation=V.ORIENTATION,
        upgraded_from=int(version),
        upgraded=now_utc(),
    )
    group.attrs.put(attrs)
    with handle.lock():  # v2 → v3: completion and provenance from attrs to variables
        records.upgrade_records(handle)
    return UpgradeReport(
        int(version), int(mask.any(axis=(0, 2)).sum()), strand_counts(strand), len(done)
    )
