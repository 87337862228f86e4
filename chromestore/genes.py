"""Gene annotations: TSS-centred BED windows and GENCODE/Ensembl GTF files.

Both readers return the same table, one row per gene in file order, with columns
``gene`` (unique key ``ENSGID_SYMBOL``), ``gene_id``, ``gene_name``, ``chrom``,
``tss`` (0-based) and ``strand`` (``+``, ``-``, or ``.`` where unknown). The bins of a
``-`` gene are stored 5'→3', i.e. reversed against the genome; those of a ``.`` gene
stay in genome order (:mod:`chromestore.bins`).
"""

from __future__ import annotations

import functools
import os
import re
import warnings

import numpy as np
import pandas as pd

from chromestore.errors import InputError
from chromestore.textio import open_text

GENE_COLUMNS = ["gene", "gene_id", "gene_name", "chrom", "tss", "strand"]
#: The strands a gene may have; ``.`` = unknown (bins kept in genome order).
STRANDS = ("+", "-", ".")


class StrandWarning(UserWarning):
    """Genes of an annotation have no strand, so their bins stay in genome order."""


def read_genes(path: str | os.PathLike) -> pd.DataFrame:
    """Read a gene annotation, choosing the reader from the file name (``.gtf`` or BED)."""
    name = os.fspath(path).lower()
    if name.endswith((".gtf", ".gtf.gz", ".gff", ".gff.gz")):
        return read_gtf(path)
    return read_gene_bed(path)


def _split_key(key: str) -> tuple[str, str]:
    gene_id, _, symbol = key.partition("_")
    return gene_id, symbol


def read_gene_bed(path: str | os.PathLike) -> pd.DataFrame:
    """Read TSS-centred gene windows: BED6 ``chrom start end ENSGID_SYMBOL score strand``.

    The TSS is the window midpoint and the strand column 6 (``+``, ``-`` or ``.``). A
    BED4/BED5 file has no strand: every gene gets ``.`` (bins in genome order) and one
    :class:`StrandWarning` says how many genes lack a strand.

    Examples
    --------
    >>> genes = read_gene_bed("data/gene_windows.hg19.bed.gz")  # doctest: +SKIP
    >>> genes.iloc[0].gene, genes.iloc[0].strand
    ('ENSG00000000003_TSPAN6', '-')
    """
    rows = []
    no_strand_column = 0
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            f = line.rstrip("\r\n").split("\t")
            if len(f) < 4:
                raise InputError(path, lineno, f"expected at least 4 columns, found {len(f)}")
            try:
                start, end = int(f[1]), int(f[2])
            except ValueError:
                raise InputError(path, lineno, "start/end are not integers") from None
            if end < start:
                raise InputError(path, lineno, f"end {end} < start {start}")
            if len(f) >= 6:
                strand = f[5]
                if strand not in STRANDS:
                    raise InputError(
                        path, lineno, f"strand (column 6) must be +, - or ., found {strand!r}"
                    )
            else:
                strand = "."
                no_strand_column += 1
            gene_id, symbol = _split_key(f[3])
            rows.append((f[3], gene_id, symbol, f[0], (start + end) // 2, strand))
    if no_strand_column:
        warnings.warn(
            f"{os.fspath(path)}: {no_strand_column} of {len(rows)} genes have no strand "
            "column (BED4); their bins stay in genome order, not 5'→3' (give a BED6 or GTF)",
            StrandWarning,
            stacklevel=2,
        )
    return _table(rows, path)


def strand_counts(strand) -> dict[str, int]:
    """How many genes are on ``+``, ``-`` and of unknown strand ``.`` (all three keys)."""
    values = pd.Series(np.asarray(strand).astype(object))
    return {s: int((values == s).sum()) for s in STRANDS}


@functools.lru_cache(maxsize=2)
def reference_strands(by: str = "gene") -> pd.Series:
    """The strand of each gene of the shipped REMC annotation, indexed by ``by``.

    ``by`` is ``"gene"`` (``ENSGID_SYMBOL``) or ``"gene_id"`` (the 7 repeated Ensembl
    ids share one window, hence one strand). Used to orient the published CSV datasets,
    which are keyed by these genes and hold their bins in genome order.
    """
    from chromestore import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StrandWarning)
        genes = read_gene_bed(datasets.gene_windows())
    table = genes.drop_duplicates(by) if by == "gene_id" else genes
    return pd.Series(
        table["strand"].to_numpy(object), index=table[by].to_numpy(object), name="strand"
    )


_ATTR = re.compile(r'(\S+) "([^"]*)"')


def read_gtf(path: str | os.PathLike) -> pd.DataFrame:
    """Read the ``gene`` records of a GENCODE/Ensembl GTF.

    TSS = gene start on ``+``, gene end on ``-`` (converted to 0-based). The key is
    ``gene_id_gene_name`` with the version suffix of the id dropped.
    """
    rows = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith("#") or not line.strip():
                continue
            f = line.rstrip("\n").split("\t")
            if len(f) < 9:
                raise InputError(path, lineno, f"expected 9 GTF columns, found {len(f)}")
            if f[2] != "gene":
                continue
            try:
                start, end = int(f[3]), int(f[4])
            except ValueError:
                raise InputError(path, lineno, "start/end are not integers") from None
            if end < start:
                raise InputError(path, lineno, f"end {end} < start {start}")
            if f[6] not in ("+", "-"):
                raise InputError(path, lineno, f"strand must be + or -, found {f[6]!r}")
            attrs = dict(_ATTR.findall(f[8]))
            if "gene_id" not in attrs:
                raise InputError(path, lineno, "gene record without gene_id attribute")
            gene_id = attrs["gene_id"].split(".")[0]
            symbol = attrs.get("gene_name", gene_id)
            tss = start - 1 if f[6] == "+" else end - 1
            rows.append((f"{gene_id}_{symbol}", gene_id, symbol, f[0], tss, f[6]))
    return _table(rows, path)


def _table(rows: list[tuple], path) -> pd.DataFrame:
    if not rows:
        raise InputError(path, None, "no genes found")
    table = pd.DataFrame(rows, columns=GENE_COLUMNS)
    table["tss"] = table["tss"].astype(np.int64)
    dup = table["gene"].duplicated()
    if dup.any():
        first = table.loc[dup, "gene"].iloc[0]
        raise InputError(path, None, f"{int(dup.sum())} duplicate gene keys, first {first!r}")
    return table
