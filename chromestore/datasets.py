"""The data shipped inside the package (real REMC files), by name.

The files live in the source tree's ``data/`` folder and install as package data
(``chromestore._data``), so a wheel install finds them as an editable one does. Every
module that needs an embedded file asks this one (scanpy's ``datasets`` in spirit).

Examples
--------
>>> from chromestore import datasets
>>> datasets.gene_windows().name
'gene_windows.hg19.bed.gz'
>>> datasets.gene_windows("hg38").name
'gene_windows.GRCh38.bed.gz'
>>> sorted(p.name for p in datasets.e003_sample().iterdir() if p.suffix == ".csv")[:2]
['E003.expr.csv', 'E003.test.csv']
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_PACKAGE = "chromestore._data"

#: name → file (or folder) inside the data package, with what it holds
FILES = {
    "gene_windows": (
        "gene_windows.hg19.bed.gz",
        "the 19,802 REMC gene windows with their strands (hg19, BED6)",
    ),
    "gene_windows_GRCh38": (
        "gene_windows.GRCh38.bed.gz",
        "18,950 of the 19,802 REMC genes in GRCh38 (GENCODE, BED6; scripts/derive_grch38.py)",
    ),
    "gene_map_GRCh38": (
        "gene_map.GRCh38.tsv.gz",
        "how each of the 19,802 genes was placed in GRCh38, or why it was left out",
    ),
    "rpkm": ("rpkm.56epigenomes.tsv.gz", "RPKM of the 19,802 genes in the 56 epigenomes"),
    "epigenomes": ("epigenomes.tsv", "the 56 REMC epigenomes and DeepChrome's published AUC"),
    "e003_sample": ("samples/deepdiff_E003", "real binned reads of 600 genes in E003"),
    "deepchrome_toy": ("samples/deepchrome_toy", "the DeepChrome toy data set"),
    "chrom_sizes_hg19": ("chrom_sizes.hg19.tsv", "hg19's chromosome sizes (UCSC)"),
    "chrom_sizes_GRCh38": ("chrom_sizes.GRCh38.tsv", "GRCh38's chromosome sizes (UCSC hg38)"),
}


#: the assemblies chromestore knows: name → the names it also goes by (the one list of
#: them: :data:`chromestore.genomes.GENOMES` is built from it)
ASSEMBLIES = {"hg19": ("hg19", "GRCh37"), "GRCh38": ("GRCh38", "hg38")}
#: the shipped annotation (a :data:`FILES` name) of each assembly
ANNOTATIONS = {"hg19": "gene_windows", "GRCh38": "gene_windows_GRCh38"}
#: the shipped chromosome sizes (a :data:`FILES` name) of each assembly
CHROM_SIZES = {"hg19": "chrom_sizes_hg19", "GRCh38": "chrom_sizes_GRCh38"}


#: The assembly of the shipped annotation when none is named (the store layout's
#: ``DEFAULT_GENOME``).
DEFAULT_ASSEMBLY = "hg19"


def assembly(name: str) -> str:
    """The name chromestore records for the assembly ``name`` (any of its names, any case:
    ``GRCh37`` → ``hg19``, ``hg38`` → ``GRCh38``); a name it does not know, unchanged.

    >>> assembly("grch37"), assembly("hg38"), assembly("mm10")
    ('hg19', 'GRCh38', 'mm10')
    """
    lowered = str(name).lower()
    for canonical, names in ASSEMBLIES.items():
        if lowered in (n.lower() for n in names):
            return canonical
    return str(name)


def root() -> Path:
    """The folder holding the embedded files."""
    return Path(str(resources.files(_PACKAGE)))


def path(name: str) -> Path:
    """The embedded file or folder ``name`` (one of :data:`FILES`)."""
    if name not in FILES:
        raise KeyError(f"no embedded data set {name!r} (there are: {', '.join(FILES)})")
    p = root() / FILES[name][0]
    if not p.exists():
        raise FileNotFoundError(f"{p}: embedded data file missing; reinstall chromestore")
    return p


def gene_windows(genome: str = DEFAULT_ASSEMBLY) -> Path:
    """The shipped gene annotation (BED6, TSS ± 10 kb windows) of the assembly ``genome``
    (``hg19``/``GRCh37`` or ``GRCh38``/``hg38``)."""
    name = assembly(genome)
    if name not in ANNOTATIONS:
        known = ", ".join(f"{c} ({'/'.join(ASSEMBLIES[c])})" for c in ANNOTATIONS)
        raise KeyError(f"no shipped gene annotation for genome {genome!r} (there are: {known})")
    return path(ANNOTATIONS[name])


def rpkm() -> Path:
    return path("rpkm")


def epigenomes() -> Path:
    return path("epigenomes")


def e003_sample() -> Path:
    return path("e003_sample")


def deepchrome_toy() -> Path:
    return path("deepchrome_toy")
