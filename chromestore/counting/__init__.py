"""Reads counted into the bins around every TSS, exactly as ``bedtools multicov``.

- :mod:`~chromestore.counting.counter`: the bin layout of a gene set and the read counter
  (blocks of decompressed text, a reader thread ahead of the kernels);
- :mod:`~chromestore.counting.kernels`: the numba passes (parse, screen, sort, rank).
"""

from chromestore._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "BLOCK_BYTES": ".counter",
        "BinLayout": ".counter",
        "ChromBins": ".counter",
        "CountStats": ".counter",
        "ReadCounter": ".counter",
        "chrom_key": ".counter",
        "count_bed": ".counter",
        "warm_up": ".counter",
    },
)
