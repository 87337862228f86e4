"""bigWig signal tracks → exact mean signal per bin (pyBigWig, full-resolution values)."""

from __future__ import annotations

import os
import time

import numpy as np

from chromestore.counting import BinLayout, CountStats
from chromestore.errors import InputError
from chromestore.formats.extras import existing_file, need_extra
from chromestore.genomes import contradiction, describe_names


def _open(path):
    pyBigWig = need_extra("pyBigWig", "bigWig")
    path = existing_file(path)
    try:
        bw = pyBigWig.open(path)
    except RuntimeError:
        bw = None
    if bw is None or not bw.isBigWig():
        raise InputError(path, None, "not a readable bigWig file")
    return bw


def mean_bigwig(path: str | os.PathLike, layout: BinLayout) -> tuple[np.ndarray, CountStats]:
    """(gene, bin) float32 mean signal per bin, bins 5'→3'.

    Each bin's mean is over all its bases, bases without data counting as 0 (like
    ``bigWigAverageOverBed``'s ``mean0``), from the full-resolution values rather
    than zoom levels. Genes on chromosomes absent from the file get 0; the file's
    chromosomes that hold no gene are reported as skipped (``reads`` counts bases).

    Refused (:class:`InputError`): a file whose chromosome sizes are not those of the
    layout's genome (another assembly), or one with no value in any window.
    """
    t0 = time.perf_counter()
    bw = _open(path)
    stats = CountStats()
    out = np.zeros((layout.n_genes, layout.n_bins), dtype=np.float32)
    width = layout.n_bins * layout.bin_size
    try:
        chroms = bw.chroms()
        wrong = contradiction(layout.translated(chroms), layout.genome)
        if wrong:
            raise InputError(
                path,
                None,
                f"its chromosome sizes are not those of the store's genome {layout.genome} "
                f"({wrong}); use a file of {layout.genome}, or a store of the file's genome",
            )
        names = {}
        for c in chroms:
            key = layout.key(c)
            if key is None:
                stats.skipped[c] = stats.skipped.get(c, 0) + 1
            else:
                names.setdefault(key, c)
        for key, bins in layout.chroms.items():
            name = names.get(key)
            if name is None:
                continue
            size = chroms[name]
            for g, lo, minus in zip(bins.genes, bins.first, bins.minus, strict=True):
                a, b = max(int(lo), 0), min(int(lo) + width, size)
                vals = np.zeros(width, dtype=np.float64)
                if b > a:
                    got = np.asarray(bw.values(name, a, b, numpy=True), dtype=np.float64)
                    vals[a - lo : b - lo] = np.nan_to_num(got, nan=0.0)
                    stats.in_windows += int(np.count_nonzero(got == got))
                means = vals.reshape(layout.n_bins, layout.bin_size).mean(axis=1)
                out[g] = means[::-1] if minus else means
    finally:
        bw.close()
    if not stats.in_windows:
        if not names:
            raise InputError(
                path,
                None,
                f"none of its {len(chroms)} chromosomes is a chromosome of the annotation: it "
                f"names {describe_names(list(chroms))} where the annotation names "
                f"{layout.annotation_names()}; pass --chrom-alias FILE (lines "
                "FILE_NAME<TAB>ANNOTATION_NAME) or fix the file",
            )
        raise InputError(path, None, "has no value in any window around a TSS")
    stats.reads = stats.in_windows
    stats.seconds = time.perf_counter() - t0
    return out, stats
