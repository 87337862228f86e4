"""Genome assemblies: their names and aliases, their chromosomes' names and sizes.

The one place chromestore knows about assemblies. A store names its genome (``genome``
attr, ``ingest --genome``); files are checked against it: a bigWig or BAM header whose
chromosome sizes contradict it is refused (:func:`contradiction`), and a file whose reads
land on no chromosome of the annotation is explained (:func:`describe_names`).

Chromosome names match the annotation's with or without ``chr`` and with ``MT`` for
``chrM`` (:func:`chrom_key`); other names need an alias file (``ingest --chrom-alias
FILE``: lines ``FILE_NAME<TAB>ANNOTATION_NAME``, e.g. ``NC_000001.11<TAB>chr1``; UCSC's
``chromAlias.txt`` has this layout; :func:`read_aliases`).

The sizes shipped (package data, ``data/chrom_sizes.*.tsv``) are those of the primary
assembly (chr1–22, X, Y, M) from UCSC's ``hg19.chrom.sizes`` and ``hg38.chrom.sizes``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from chromestore import datasets
from chromestore.errors import InputError

__all__ = [
    "GENOMES",
    "PRIMARY",
    "Genome",
    "chrom_key",
    "contradiction",
    "describe_names",
    "find",
    "identify",
    "read_aliases",
]
#: the chromosomes compared between a file and a genome (M differs between hg19 and GRCh37)
PRIMARY = (*(str(i) for i in range(1, 23)), "X", "Y")


def chrom_key(name: str) -> str:
    """A chromosome name as chromestore matches it: without a leading ``chr``
    (case-insensitive), and ``MT`` as ``M`` (Ensembl's and UCSC's names of one chromosome).

    Examples
    --------
    >>> chrom_key("chr1"), chrom_key("1"), chrom_key("MT"), chrom_key("chrM")
    ('1', '1', 'M', 'M')
    """
    key = name[3:] if name[:3].lower() == "chr" else name
    return "M" if key == "MT" else key


@dataclass(frozen=True)
class Genome:
    """A known assembly: its name, the other names it goes by, its chromosome sizes file."""

    name: str
    aliases: tuple[str, ...]
    sizes_data: str  # the embedded file (:mod:`chromestore.datasets`) of its sizes

    @functools.cached_property
    def sizes(self) -> dict[str, int]:
        """Chromosome sizes in bp, by :func:`chrom_key`."""
        out = {}
        with open(datasets.path(self.sizes_data)) as fh:
            for line in fh:
                name, size = line.split()
                out[chrom_key(name)] = int(size)
        return out


#: the known assemblies (their names: :data:`chromestore.datasets.ASSEMBLIES`)
GENOMES = tuple(
    Genome(name, aliases, datasets.CHROM_SIZES[name])
    for name, aliases in datasets.ASSEMBLIES.items()
)


def find(name: str | None) -> Genome | None:
    """The known assembly called ``name`` (any of its names, any case), or None.

    Examples
    --------
    >>> find("hg38").name, find("GRCh37").sizes["1"], find("mm10")
    ('GRCh38', 249250621, None)
    """
    if not name:
        return None
    lowered = str(name).lower()
    return next((g for g in GENOMES if lowered in (a.lower() for a in g.aliases)), None)


def identify(sizes: Mapping[str, int]) -> Genome | None:
    """The known assembly whose primary chromosomes all have the ``sizes`` given (by
    :func:`chrom_key`), where at least one is given; None if none."""
    for genome in GENOMES:
        shared = [c for c in PRIMARY if c in sizes and c in genome.sizes]
        if shared and all(sizes[c] == genome.sizes[c] for c in shared):
            return genome
    return None


def contradiction(sizes: Mapping[str, int], genome: str | None) -> str | None:
    """Why chromosome ``sizes`` (a file's, by its own names) cannot be of ``genome`` (a
    phrase), or None when they may be (or ``genome`` is not one chromestore knows).

    They cannot be where they are exactly those of another known assembly, or where a
    primary chromosome is longer than the genome's. A chromosome shorter than the genome's
    is accepted: some writers size the header by the data's extent (``simulate --emit``).

    Examples
    --------
    >>> contradiction({"chr1": 248956422, "chr3": 198295559}, "hg19")
    'chr1 is 248,956,422 bp there and 249,250,621 bp in hg19: the file is of GRCh38'
    >>> contradiction({"chr1": 300000000}, "hg19")
    'chr1 is 300,000,000 bp there, longer than its 249,250,621 bp in hg19'
    >>> contradiction({"chr1": 1000}, "hg19") is None  # a header sized by the data
    True
    """
    known = find(genome)
    if known is None:
        return None
    keyed = {chrom_key(str(n)): int(s) for n, s in sizes.items()}
    names = {chrom_key(str(n)): str(n) for n in sizes}
    shared = [c for c in PRIMARY if c in keyed and c in known.sizes]
    other = identify(keyed)
    if other is not None and other is not known:
        c = next((c for c in shared if keyed[c] != known.sizes[c]), shared[0])
        return (
            f"{names[c]} is {keyed[c]:,} bp there and {known.sizes[c]:,} bp in {known.name}: "
            f"the file is of {other.name}"
        )
    for c in shared:
        if keyed[c] > known.sizes[c]:
            return (
                f"{names[c]} is {keyed[c]:,} bp there, longer than its {known.sizes[c]:,} bp "
                f"in {known.name}"
            )
    return None


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def describe_names(names: list[str], n: int = 3) -> str:
    """The first ``n`` names in natural order (chr2 before chr10), and an ellipsis."""
    ordered = sorted(dict.fromkeys(names), key=_natural)
    return ", ".join(ordered[:n]) + (", …" if len(ordered) > n else "")


def read_aliases(path: str | os.PathLike) -> dict[str, str]:
    """An alias file: ``{file name: annotation name}``, by :func:`chrom_key` of both.

    Each line is ``FILE_NAME<TAB>ANNOTATION_NAME`` (more columns are ignored, as in UCSC's
    ``chromAlias.txt``); ``#`` starts a comment. A name given two targets is an error.
    """
    from chromestore.textio import open_text

    out: dict[str, str] = {}
    first: dict[str, int] = {}
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 2 or not fields[0] or not fields[1]:
                raise InputError(
                    path,
                    lineno,
                    "expected FILE_NAME<TAB>ANNOTATION_NAME (e.g. NC_000001.11<TAB>chr1)",
                )
            key, target = chrom_key(fields[0]), chrom_key(fields[1])
            if out.get(key, target) != target:
                raise InputError(
                    path, lineno, f"{fields[0]} already names {out[key]} (line {first[key]})"
                )
            out[key] = target
            first.setdefault(key, lineno)
    if not out:
        raise InputError(path, None, "no aliases in the file")
    return out
