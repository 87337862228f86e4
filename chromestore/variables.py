"""The store's schema: every dimension and variable named once, with dims, dtype and meaning.

Every function in chromestore refers to variables through these specs, and
:func:`validate` checks a Dataset against them. Add a variable here first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

# --- dimensions ------------------------------------------------------------
CELL = "cell"
GENE = "gene"
MARK = "mark"
BIN = "bin"
REPEAT = "repeat"

#: The five core histone marks of REMC, in DeepChrome's CSV order.
DEFAULT_MARKS = ("H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")

#: On-disk format name and version written into every store's attrs.
FORMAT_NAME = "chromestore"
FORMAT_VERSION = 1
#: Versions this code can read.
READABLE_VERSIONS = (1,)

#: Split codes used by ``split``.
TRAIN, VALID, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Spec:
    """A variable of the store: its name, dims, dtype kind and meaning."""

    name: str
    dims: tuple[str, ...]
    kind: str  # numpy dtype kind(s) accepted: "f", "b", "i", "U", "O", ...
    dtype: str | None  # the dtype written at creation (None: derived from input)
    doc: str
    required: bool = True

    def check(self, ds: xr.Dataset) -> None:
        if self.name not in ds.variables:
            if self.required:
                raise SchemaError(f"store is missing variable {self.name!r} ({self.doc})")
            return
        var = ds.variables[self.name]
        if tuple(var.dims) != self.dims:
            raise SchemaError(
                f"variable {self.name!r} has dims {tuple(var.dims)}, expected {self.dims}"
            )
        if var.dtype.kind not in self.kind:
            raise SchemaError(
                f"variable {self.name!r} has dtype {var.dtype}, expected kind {self.kind!r}"
                + (f" ({self.dtype})" if self.dtype else "")
            )


class SchemaError(ValueError):
    """A Dataset or store does not follow the chromestore schema."""


# --- coordinates -----------------------------------------------------------
cell = Spec("cell", (CELL,), "UOT", None, "Epigenome id, e.g. E003 (REMC).")
gene = Spec(
    "gene",
    (GENE,),
    "UOT",
    None,
    "Unique gene key ENSGID_SYMBOL (an Ensembl id alone is not unique in the REMC gene list).",
)
gene_id = Spec("gene_id", (GENE,), "UOT", None, "Ensembl gene id, e.g. ENSG00000000003.")
gene_name = Spec("gene_name", (GENE,), "UOT", None, "Gene symbol, e.g. TSPAN6.")
gene_chrom = Spec("gene_chrom", (GENE,), "UOT", None, "Chromosome of the TSS, e.g. chrX.")
gene_tss = Spec("gene_tss", (GENE,), "i", "int64", "TSS position, 0-based genome coordinate.")
gene_strand = Spec("gene_strand", (GENE,), "UOT", None, "Strand of the gene, '+' or '-'.")
mark = Spec("mark", (MARK,), "UOT", None, "Histone mark name, e.g. H3K4me3.")
bin_ = Spec("bin", (BIN,), "i", "int64", "Bin index 0..n-1, ordered 5'->3' along the gene.")
bin_offset = Spec(
    "bin_offset",
    (BIN,),
    "i",
    "int64",
    "Start of each bin relative to the TSS in bp, 5'->3' (negative = upstream).",
)

# --- data variables --------------------------------------------------------
signal = Spec(
    "signal",
    (CELL, GENE, MARK, BIN),
    "f",
    "float32",
    "Binned signal of each mark around each TSS: read counts (tagAlign/BAM/CSV) or mean "
    "signal (bigWig). NaN where no source covered that cell and mark.",
)
expression = Spec(
    "expression", (CELL, GENE), "f", "float32", "Expression in RPKM; NaN where not measured."
)
peak_max = Spec(
    "peak_max",
    (CELL, GENE, MARK),
    "f",
    "float32",
    "Max peak signalValue overlapping the gene's window (ShallowChrome feature); 0 where no "
    "peak, NaN where no peak file was ingested.",
)

# --- derived variables (computed lazily, never required in a store) ---------
label = Spec(
    "label",
    (CELL, GENE),
    "b",
    "bool",
    "Gene is highly expressed: expression above the cell's threshold (see label_threshold).",
    required=False,
)
label_threshold = Spec(
    "label_threshold", (CELL,), "f", "float32", "Expression threshold per cell.", required=False
)
label_valid = Spec(
    "label_valid",
    (CELL, GENE),
    "b",
    "bool",
    "The gene has an expression value in that cell, so its label is defined.",
    required=False,
)
split = Spec(
    "split",
    (REPEAT, GENE),
    "i",
    "int8",
    "Split of each gene per repeat: 0 train, 1 valid, 2 test.",
    required=False,
)

COORDS = (cell, gene, gene_id, gene_name, gene_chrom, gene_tss, gene_strand, mark, bin_, bin_offset)
DATA = (signal, expression, peak_max)
DERIVED = (label, label_threshold, label_valid, split)
ALL = {s.name: s for s in COORDS + DATA + DERIVED}


def validate(ds: xr.Dataset, *, check_version: bool = True) -> xr.Dataset:
    """Check that ``ds`` follows the chromestore schema and return it unchanged.

    Raises :class:`SchemaError` naming the first problem found.
    """
    if check_version:
        fmt = ds.attrs.get("format")
        if fmt != FORMAT_NAME:
            raise SchemaError(
                f"not a chromestore store (format attribute is {fmt!r}, expected {FORMAT_NAME!r})"
            )
        version = ds.attrs.get("format_version")
        if version not in READABLE_VERSIONS:
            raise SchemaError(
                f"store format version {version!r} is not supported by this chromestore "
                f"(reads {', '.join(map(str, READABLE_VERSIONS))}); "
                "upgrade chromestore or re-ingest the store with this version"
            )
    for spec in COORDS + DATA:
        spec.check(ds)
    for spec in DERIVED:
        if spec.name in ds.variables:
            spec.check(ds)
    return ds


def dtype_of(spec: Spec) -> np.dtype:
    return np.dtype(spec.dtype)
