"""Expression matrices: REMC's ``57epigenomes.RPKM.pc`` layout.

Tab-separated, a header ``gene_id`` followed by epigenome ids, one row per
Ensembl gene. Joining onto the store's genes is explicit: :func:`align_expression`
returns what matched and what was missing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from chromestore.errors import InputError
from chromestore.store import names
from chromestore.textio import open_text


def read_rpkm(path: str | os.PathLike) -> pd.DataFrame:
    """Read an RPKM matrix into a DataFrame (index: Ensembl gene id, columns: epigenomes).

    Every value must be a number, finite and ≥ 0 (``nan`` means not measured and stays
    NaN); the error names the file, line and column otherwise.
    """
    with open_text(path) as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        if len(header) < 2 or header[0] != "gene_id":
            raise InputError(
                path, 1, f"expected a header 'gene_id<TAB>E003<TAB>...', found {header[:3]!r}"
            )
        cells = header[1:]
        bad = next((names.problem(c) for c in cells if names.problem(c)), None)
        if bad:
            raise InputError(path, 1, bad)
        if len(set(cells)) != len(cells):
            raise InputError(path, 1, "duplicate epigenome ids in the header")
        ids: list[str] = []
        rows: list[str] = []  # each line's values, as text
        linenos: list[int] = []
        for lineno, line in enumerate(fh, 2):
            if not line.strip():
                continue
            line = line.rstrip("\r\n")
            if line.count("\t") != len(cells):
                n = line.count("\t") + 1
                raise InputError(path, lineno, f"expected {len(header)} columns, found {n}")
            gene, _, rest = line.partition("\t")
            ids.append(gene)
            rows.append(rest)
            linenos.append(lineno)
    if not ids:
        raise InputError(path, None, "no genes found")
    try:
        matrix = _parse_numbers(rows, len(cells))
    except ValueError:  # find the value, or read what the fast parser would not
        values = [row.split("\t") for row in rows]
        for r, row in enumerate(values):
            for c, v in enumerate(row):
                try:
                    np.float32(v)
                except ValueError:
                    raise InputError(
                        path, linenos[r], f"column {cells[c]}: {v!r} is not a number"
                    ) from None
        matrix = np.array(values, dtype=np.float32)
    bad = ~np.isnan(matrix) & ~(np.isfinite(matrix) & (matrix >= 0))
    if bad.any():
        r, c = (int(i[0]) for i in np.nonzero(bad))
        value = rows[r].split("\t")[c]
        raise InputError(
            path,
            linenos[r],
            f"column {cells[c]}: {value!r} is not an RPKM (finite and ≥ 0; nan means not measured)",
        )
    frame = pd.DataFrame(matrix, index=pd.Index(ids, name="gene_id"), columns=cells)
    frame.attrs["source"] = os.fspath(path)
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        # REMC's gene list repeats 7 Ensembl ids (two symbols, one row each): identical
        # rows are merged; conflicting ones are an error.
        groups = frame[dup].groupby(level=0)
        for gid, rows in groups:
            if not (rows.nunique(dropna=False) <= 1).all():
                first = ids.index(gid)
                line = ids.index(gid, first + 1) + 2
                raise InputError(path, line, f"gene id {gid!r} appears twice with different values")
        frame = frame[~frame.index.duplicated(keep="first")]
    frame.attrs["source"] = os.fspath(path)
    return frame


@dataclass
class Alignment:
    """The result of joining an expression matrix onto the store's genes."""

    values: np.ndarray  # (cell, gene) float32, NaN for genes absent from the matrix
    cells: list[str]
    missing_genes: list[str] = field(default_factory=list)  # store genes not in the matrix
    unused_rows: int = 0  # matrix rows that match no store gene
    quantity: str = ""  # what the values are (RPKM, TPM, FPKM), where the matrix says
    notes: list[str] = field(default_factory=list)  # lines about the matrix's files

    def summary(self) -> str:
        n = self.values.shape[1]
        what = f" ({self.quantity})" if self.quantity else ""
        return "\n".join(
            [
                f"expression{what} for {len(self.cells)} epigenomes: "
                f"{n - len(self.missing_genes)}/{n} genes matched, {len(self.missing_genes)} "
                f"absent from the matrix (left NaN), {self.unused_rows} matrix rows unused",
                *self.notes,
            ]
        )


def align_expression(
    matrix: pd.DataFrame, gene_ids: np.ndarray, cells: list[str] | None = None
) -> Alignment:
    """Reindex ``matrix`` onto the store's ``gene_id`` order (ids may repeat) and ``cells``."""
    cells = list(matrix.columns if cells is None else cells)
    gene_ids = np.asarray(gene_ids).astype(object)
    pos = matrix.index.get_indexer(gene_ids)
    values = np.full((len(cells), len(gene_ids)), np.nan, dtype=np.float32)
    have = pos >= 0
    sub = matrix[cells].to_numpy(dtype=np.float32)
    values[:, have] = sub[pos[have]].T
    missing = [str(g) for g in gene_ids[~have]]
    unused = int((~matrix.index.isin(gene_ids)).sum())
    attrs = matrix.attrs
    return Alignment(
        values, cells, missing, unused, attrs.get("quantity", ""), list(attrs.get("report", []))
    )


#: a character no number here has (pandas would read some of them where numpy would not)
_ODD = re.compile(r"[^0-9eE+\-.\t\nnaNAifIF]")


def _parse_numbers(rows: list[str], n_cols: int) -> np.ndarray:
    """The rows' tab-separated values as float32, as ``np.float32(text)`` reads each one
    (``nan`` is NaN; anything else that is not a number raises ValueError), with pandas'
    C parser: ~6x faster than converting each string (0.33 s for REMC's 19,795 × 56)."""
    import io

    text = "\n".join(rows)
    empty = "\t\t" in text or any(not r or r[0] == "\t" or r[-1] == "\t" for r in rows)
    if empty or _ODD.search(text):  # pandas would read "" as NaN, or trim spaces
        raise ValueError("not a number")
    frame = pd.read_csv(
        io.StringIO(text),
        sep="\t",
        header=None,
        dtype=np.float64,
        na_values=["nan", "NaN"],
        keep_default_na=False,
        engine="c",
    )
    if frame.shape != (len(rows), n_cols):
        raise ValueError("not a number")
    return frame.to_numpy(np.float32)
