"""RSEM gene quantifications (ENCODE's RNA-seq ``gene quantifications`` TSV): one
epigenome's expression.

A tab-separated file with a header naming at least ``gene_id`` and the quantity read
(``TPM`` or ``FPKM``; ENCODE's files have RSEM's 17 columns: ``gene_id``,
``transcript_id(s)``, ``length``, ``effective_length``, ``expected_count``, ``TPM``,
``FPKM``, ``posterior_mean_count``, …). ``gene_id`` is a versioned Ensembl id
(``ENSG00000000003.14``): the version is dropped, so the values join the store's genes on
unversioned ids. GENCODE's pseudoautosomal copies on chrY (``…_PAR_Y``) repeat the chrX
gene and are left out; ids that are not Ensembl gene ids (ERCC spike-ins such as
``gSpikein_ERCC-00002``, ENCODE's tRNA entries) are kept and simply match no store gene;
both are counted in the stats.
"""

from __future__ import annotations

import math
import os
import re

import pandas as pd

from chromestore.errors import InputError
from chromestore.textio import open_text

#: the quantities an RSEM gene file holds that the store's ``expression`` may take
QUANTITIES = ("TPM", "FPKM")
_VERSIONED = re.compile(r"^(ENS[A-Z]*G\d+)(\.\d+)?(_PAR_Y)?$")


def read_rsem_genes(path: str | os.PathLike, quantity: str = "TPM") -> tuple[pd.Series, dict]:
    """The ``quantity`` column of an RSEM gene file, indexed by unversioned Ensembl id,
    and its provenance (``quantity``, ``genes``, ``par_y_rows``, ``other_ids``).

    Every value must be a finite number ≥ 0 and each unversioned id must appear once;
    errors name the file and line.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"expression quantity {quantity!r}: use one of {', '.join(QUANTITIES)}")
    path = os.fspath(path)
    ids: list[str] = []
    values: list[float] = []
    first_line: dict[str, int] = {}
    par_y = other = 0
    with open_text(path) as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        missing = [c for c in ("gene_id", quantity) if c not in header]
        if missing:
            raise InputError(
                path,
                1,
                f"not an RSEM gene quantification: no column {', '.join(missing)} in the "
                f"header (found {', '.join(header[:6])}{', …' if len(header) > 6 else ''})",
            )
        at_id, at_value = header.index("gene_id"), header.index(quantity)
        for lineno, line in enumerate(fh, 2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != len(header):
                raise InputError(
                    path, lineno, f"expected {len(header)} columns, found {len(fields)}"
                )
            gene, text = fields[at_id], fields[at_value]
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value < 0:
                raise InputError(path, lineno, f"{quantity} {text!r} is not a number ≥ 0")
            m = _VERSIONED.match(gene)
            if m and m.group(3):
                par_y += 1
                continue
            if m:
                gene = m.group(1)
            else:
                other += 1
            if gene in first_line:
                raise InputError(
                    path, lineno, f"gene {gene} appears twice (first on line {first_line[gene]})"
                )
            first_line[gene] = lineno
            ids.append(gene)
            values.append(value)
    if not ids:
        raise InputError(path, None, "no genes found")
    series = pd.Series(values, index=pd.Index(ids, name="gene_id"), name=quantity, dtype="float32")
    stats = {"quantity": quantity, "genes": len(ids), "par_y_rows": par_y, "other_ids": other}
    return series, stats
