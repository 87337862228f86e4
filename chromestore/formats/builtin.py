"""The formats chromestore ships, as registry entries.

The readers import their modules when called, so listing the formats (``--help``, the
samplesheet check) loads neither numba nor pysam nor pyBigWig.
"""

from __future__ import annotations

import functools

from chromestore.formats.entry import FormatEntry, ReadRequest


def count_reads(path: str, request: ReadRequest):
    """BED3+/tagAlign reads per bin (:func:`chromestore.counting.count_bed`); a file none of
    whose reads falls in a window is refused, naming the likely cause."""
    from chromestore.counting import counter as counting

    values, stats = counting.count_bed(path, request.layout, counting.BLOCK_BYTES, request.progress)
    stats.refuse_empty(path, request.layout)
    return values, stats.as_dict()


def count_bam_reads(path: str, request: ReadRequest):
    """BAM reads per bin (:func:`chromestore.formats.bam.count_bam`), its header checked
    against the store's genome; a file none of whose reads falls in a window is refused."""
    from chromestore.formats.bam import count_bam

    values, stats = count_bam(path, request.layout)
    stats.refuse_empty(path, request.layout)
    return values, stats.as_dict()


def mean_signal(path: str, request: ReadRequest):
    """Mean bigWig signal per bin (:func:`chromestore.formats.bigwig.mean_bigwig`): a file of
    another assembly, or with no value in any window, is refused."""
    from chromestore.formats.bigwig import mean_bigwig

    values, stats = mean_bigwig(path, request.layout)
    return values, stats.as_dict()


def max_peak(fmt: str, path: str, request: ReadRequest):
    """Max peak signalValue per window (:func:`chromestore.formats.peaks.peak_max`); a file
    none of whose peaks overlaps a window is refused."""
    from chromestore.formats.peaks import peak_max

    values, stats = peak_max(path, fmt, request.layout)
    stats.refuse_empty(path, request.layout, "peaks")
    return values, stats.as_dict()


def deepchrome_signal(path: str, request: ReadRequest):
    """The counts of a DeepChrome CSV or epigenome folder, keyed by Ensembl id, in the
    published genome order (ingestion reverses the store's ``-`` genes)."""
    from chromestore.formats.csv import GENOME, read_deepchrome_csv

    return read_deepchrome_csv(path, GENOME)[0], {}


def deepdiff_signal(path: str, request: ReadRequest):
    """The counts of a DeepDiff CSV, keyed by ``ENSGID_SYMBOL``, in the published genome
    order (ingestion reverses the store's ``-`` genes)."""
    from chromestore.formats.csv import GENOME, read_deepdiff_csv

    return read_deepdiff_csv(path, GENOME), {}


def rsem_expression(path: str, request: ReadRequest):
    """One epigenome's TPM or FPKM (``request.quantity``) from an RSEM gene file
    (:func:`chromestore.formats.rsem.read_rsem_genes`)."""
    from chromestore.formats.rsem import read_rsem_genes

    return read_rsem_genes(path, request.quantity)


_MULTICOV = (
    "reads per bin, exactly `bedtools multicov` (a read counts in every bin it "
    "overlaps by ≥ 1 bp), bins 5'→3'"
)
_PEAKS = "max `signalValue` of the {} peaks overlapping the window; 0 where none"
_CSV = (
    "the dataset's binned counts of all marks (mark column empty, or one mark); wider "
    "windows are centre-cropped"
)

BUILTIN: tuple[FormatEntry, ...] = (
    FormatEntry(
        "tagalign",
        (".tagalign",),
        "signal",
        count_reads,
        f"tagAlign (BED6) reads, gz or plain: {_MULTICOV}",
    ),
    FormatEntry(
        "bed",
        (".bed",),
        "signal",
        count_reads,
        "BED3+ reads, gz or plain, counted as `tagalign` (with the format left empty, a `.bed` "
        "file laid out as narrowPeak, broadPeak or gappedPeak, as ENCODE names them, is read "
        "as that)",
    ),
    FormatEntry(
        "bam",
        (".bam",),
        "signal",
        count_bam_reads,
        "BAM reads via pysam, counted as `tagalign`, skipping unmapped, secondary, "
        "QC-fail and duplicate reads",
    ),
    FormatEntry(
        "bigwig",
        (".bw", ".bigwig"),
        "signal",
        mean_signal,
        "exact mean per bin from full-resolution values (bases without data count 0); its "
        "units: the samplesheet's `units` column (`mean value` where empty)",
        units="mean value",
    ),
    FormatEntry(
        "narrowpeak",
        (".narrowpeak",),
        "peak_max",
        functools.partial(max_peak, "narrowpeak"),
        _PEAKS.format("MACS2 narrowPeak"),
    ),
    FormatEntry(
        "broadpeak",
        (".broadpeak",),
        "peak_max",
        functools.partial(max_peak, "broadpeak"),
        _PEAKS.format("MACS2 broadPeak"),
    ),
    FormatEntry(
        "gappedpeak",
        (".gappedpeak",),
        "peak_max",
        functools.partial(max_peak, "gappedpeak"),
        _PEAKS.format("MACS2 gappedPeak"),
    ),
    FormatEntry(
        "deepchrome-csv",
        (),
        "signal",
        deepchrome_signal,
        f"DeepChrome CSV, or an epigenome folder of them (Zenodo layout): {_CSV}",
        needs_mark=False,
    ),
    FormatEntry(
        "deepdiff-csv",
        (),
        "signal",
        deepdiff_signal,
        f"DeepDiff CSV, or a sample folder of {{E003.}}{{train,valid,test}}.csv: {_CSV}",
        needs_mark=False,
    ),
    FormatEntry(
        "rsem-genes",
        (".genes.results",),
        "expression",
        rsem_expression,
        "RSEM gene quantifications (ENCODE's gene quantifications TSV), one epigenome, "
        "mark empty: its TPM (or FPKM: `ingest --quantity`), joined on Ensembl ids "
        "without their version",
        needs_mark=False,
    ),
)
