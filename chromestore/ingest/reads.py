"""The reading side of an ingest: what a counting task needs of a store (:class:`Bins`) and
the task itself (:func:`count_sample`: one file onto the store's genes, no store access).

Light to import (numpy and the format registry; a reader loads its own modules): forked
counting workers (:class:`chromestore.executors.Forked`) load it, and :func:`warm_up`
loads the compiled kernels, while the parent process creates the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chromestore import formats
from chromestore import variables as V
from chromestore.errors import InputError
from chromestore.ingest.align import GeneKeys, per_mark
from chromestore.ingest.samplesheet import Sample

if TYPE_CHECKING:
    from chromestore.counting import BinLayout


@dataclass
class SampleResult:
    sample: Sample
    target: str  # the store variable filled
    values: dict[str, np.ndarray]  # mark → (gene, bin) signal or (gene,) peak_max
    stats: dict


@dataclass
class Bins:
    """What a counting task needs of a store: where its bins lie on the genome, its gene
    labels, and a fingerprint of both, so that counts made before the store was ready
    (from the annotation that creates it) are checked against the store they go into."""

    layout: BinLayout
    keys: GeneKeys
    fingerprint: str

    @classmethod
    def of(
        cls,
        gene,
        gene_id,
        chrom,
        tss,
        strand,
        window: int,
        bin_size: int,
        genome: str | None = None,
    ) -> Bins:
        from chromestore.counting import BinLayout

        gene, gene_id, chrom, strand = (
            np.asarray(a).astype(object) for a in (gene, gene_id, chrom, strand)
        )
        tss = np.asarray(tss, dtype=np.int64)
        n_bins = 2 * int(window) // int(bin_size)
        return cls(
            BinLayout.from_genes(chrom, tss, strand, int(window), int(bin_size), genome),
            GeneKeys(gene, gene_id, n_bins, strand),
            fingerprint(gene, gene_id, chrom, tss, strand, window, bin_size),
        )

    @classmethod
    def from_store(cls, ds) -> Bins:
        return cls.of(*_gene_coords(ds), genome=str(ds.attrs.get("genome") or ""))

    @classmethod
    def from_genes(cls, table, window: int, bin_size: int, genome: str | None = None) -> Bins:
        """The bins of a store that :func:`chromestore.store.create_store` would make from
        the gene table (:func:`chromestore.genes.read_genes`)."""
        return cls.of(
            table["gene"],
            table["gene_id"],
            table["chrom"],
            table["tss"],
            table["strand"],
            window,
            bin_size,
            genome,
        )

    def with_aliases(self, aliases: dict[str, str] | None) -> Bins:
        """These bins, their files' chromosome names also matched through ``aliases``
        (:func:`chromestore.genomes.read_aliases`)."""
        if not aliases:
            return self
        return dataclasses.replace(self, layout=self.layout.with_aliases(aliases))


def _gene_coords(ds) -> tuple:
    return (
        ds[V.GENE].values,
        ds[V.gene_id.name].values,
        ds[V.gene_chrom.name].values,
        ds[V.gene_tss.name].values,
        ds[V.gene_strand.name].values,
        ds.attrs["window"],
        ds.attrs["bin_size"],
    )


def fingerprint(gene, gene_id, chrom, tss, strand, window: int, bin_size: int) -> str:
    """A digest of everything that decides where the bins of the genes lie and what they
    are called."""
    digest = hashlib.blake2b(f"{int(window)} {int(bin_size)}".encode(), digest_size=16)
    for labels in (gene, gene_id, chrom, strand):
        digest.update("\x1f".join(map(str, labels)).encode() + b"\x1e")
    digest.update(np.asarray(tss, dtype=np.int64).tobytes())
    return digest.hexdigest()


def store_fingerprint(ds) -> str:
    """The :class:`Bins` fingerprint of an opened store (without building its layout)."""
    return fingerprint(*_gene_coords(ds))


def count_sample(
    sample: Sample, entry: formats.FormatEntry, bins: Bins, progress=None
) -> SampleResult:
    """Read one file with its format's reader, onto the store's genes (no store access).

    ``progress(n_reads)`` is passed to the reader (BED/tagAlign report per block). A file
    that puts no value into any window (every value NaN or 0) is refused
    (:class:`InputError`); the built-in readers say why first (chromosome names, assembly).
    """
    t0 = time.perf_counter()
    values, stats = entry.read(sample.path, formats.ReadRequest(sample.mark, bins.layout, progress))
    out, aligned = per_mark(values, bins.keys, entry.target, sample.mark, sample.path, entry.name)
    refuse_empty(sample.path, out, aligned)
    stats = {**aligned, **stats}
    stats.setdefault("seconds", round(time.perf_counter() - t0, 3))
    return SampleResult(sample, entry.target, out, stats)


def refuse_empty(path: str, values: dict[str, np.ndarray], aligned: dict) -> None:
    """Raise :class:`InputError` where the values read put nothing into any window: no
    store gene matched, or every value is NaN or 0."""
    if aligned.get("genes_matched") == 0:
        unmatched = aligned.get("genes_unmatched", 0)
        raise InputError(
            path,
            None,
            f"none of its {unmatched:,} genes is a gene of the store (genes are matched by "
            "ENSGID_SYMBOL, or Ensembl id): is it of another annotation?",
        )
    if not any(np.any(np.nan_to_num(v, nan=0.0)) for v in values.values()):
        every_nan = all(np.isnan(v).all() for v in values.values())
        raise InputError(
            path,
            None,
            "puts no read or value into any window around a TSS (every value is "
            f"{'NaN' if every_nan else '0 or NaN'})",
        )


def warm_up() -> None:
    """What a forked counting worker loads before its first file (imports, compiled
    kernels): see :class:`chromestore.executors.Forked`."""
    from chromestore.counting import counter as counting
    from chromestore.formats import csv  # noqa: F401  (per_mark's centre_crop)

    counting.warm_up()
