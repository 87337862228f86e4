"""BAM alignments → reads per bin via pysam, with ``bedtools multicov``'s default filters."""

from __future__ import annotations

import os
import time

import numpy as np

from chromestore.counting import BinLayout, CountStats, ReadCounter
from chromestore.errors import InputError
from chromestore.formats.extras import existing_file, need_extra
from chromestore.genomes import contradiction

#: unmapped, secondary, QC-fail, duplicate: skipped as ``bedtools multicov`` does by default
SKIP_FLAGS = 0x4 | 0x100 | 0x200 | 0x400
FLUSH = 1 << 20


def count_bam(path: str | os.PathLike, layout: BinLayout) -> tuple[np.ndarray, CountStats]:
    """(gene, bin) float32 read counts (a read counts in every bin it overlaps), stats.

    Reads are taken in file order (no index needed); a read spans
    ``[reference_start, reference_end)``. ``reads`` counts the reads kept. A file whose
    header's chromosome sizes are not those of the layout's genome is refused.
    """
    pysam = need_extra("pysam", "BAM")
    path = existing_file(path)
    t0 = time.perf_counter()
    counter = ReadCounter(layout)
    try:
        bam = pysam.AlignmentFile(path, "rb")
    except (ValueError, OSError) as e:
        raise InputError(path, None, f"not a readable BAM file ({e})") from None
    names = bam.references
    wrong = contradiction(
        layout.translated(dict(zip(names, bam.lengths, strict=True))), layout.genome
    )
    if wrong:
        bam.close()
        raise InputError(
            path,
            None,
            f"its header's chromosome sizes are not those of the store's genome "
            f"{layout.genome} ({wrong}); use a file of {layout.genome}, or a store of the "
            "file's genome",
        )
    buf: dict[int, tuple[list[int], list[int]]] = {}
    n = 0

    def flush():
        for tid, (s, e) in buf.items():
            counter.add(names[tid], np.array(s, dtype=np.int64), np.array(e, dtype=np.int64))
        buf.clear()

    try:
        with bam:
            for read in bam.fetch(until_eof=True):
                if read.flag & SKIP_FLAGS or read.reference_id < 0:
                    continue
                s, e = buf.setdefault(read.reference_id, ([], []))
                s.append(read.reference_start)
                e.append(read.reference_end)
                n += 1
                if n % FLUSH == 0:
                    flush()
            flush()
    except OSError as e:
        raise InputError(path, None, f"truncated or corrupt BAM ({e})") from None
    counter.stats.seconds = time.perf_counter() - t0
    return counter.counts(), counter.stats
