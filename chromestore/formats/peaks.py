"""MACS2 peak files (narrowPeak, broadPeak, gappedPeak) → max signalValue per gene window."""

from __future__ import annotations

import os
import time

import numpy as np

from chromestore.counting import BinLayout, CountStats
from chromestore.errors import InputError
from chromestore.textio import open_text

#: (minimum columns, 0-based column of signalValue) per format
PEAK_LAYOUTS = {"narrowpeak": (10, 6), "broadpeak": (9, 6), "gappedpeak": (15, 12)}


def sniff_bed(path: str | os.PathLike) -> str:
    """What a ``.bed``/``.bed.gz`` file holds, from its first data line: ``narrowpeak`` (10
    columns), ``broadpeak`` (9) or ``gappedpeak`` (15) when the peak columns (signalValue,
    pValue, qValue) are numbers, as in ENCODE's downloads (``ENCFF….bed.gz`` of file
    format "bed narrowPeak"); else ``bed`` (reads). A file that cannot be read is ``bed``:
    the ingest names its problem."""
    try:
        with open_text(path) as fh:
            for line in fh:
                if line.strip() and not line.startswith(("#", "track", "browser")):
                    break
            else:
                return "bed"
    except (OSError, EOFError, UnicodeDecodeError):
        return "bed"
    f = line.rstrip("\r\n").split("\t")
    for fmt, (n_cols, col) in PEAK_LAYOUTS.items():
        if len(f) == n_cols:
            try:
                [float(v) for v in f[col : col + 3]]
            except ValueError:
                continue
            return fmt
    return "bed"


def read_peaks(path: str | os.PathLike, fmt: str) -> dict[str, tuple[np.ndarray, ...]]:
    """Parse a peak file: ``{chrom: (starts, ends, signalValue)}``, every line validated."""
    n_cols, col = PEAK_LAYOUTS[fmt]
    rows: dict[str, list[tuple[int, int, float]]] = {}
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            f = line.rstrip("\r\n").split("\t")
            if len(f) < n_cols:
                raise InputError(path, lineno, f"expected {n_cols} columns ({fmt}), found {len(f)}")
            try:
                start, end = int(f[1]), int(f[2])
            except ValueError:
                raise InputError(path, lineno, "start/end are not integers") from None
            if start < 0 or end < start:
                raise InputError(
                    path,
                    lineno,
                    f"end {end} < start {start}" if end < start else f"negative start {start}",
                )
            try:
                value = float(f[col])
            except ValueError:
                raise InputError(
                    path, lineno, f"signalValue (column {col + 1}) {f[col]!r} is not a number"
                ) from None
            rows.setdefault(f[0], []).append((start, end, value))
    out = {}
    for chrom, r in rows.items():
        arr = np.array(r, dtype=np.float64)
        order = np.argsort(arr[:, 0], kind="stable")
        arr = arr[order]
        out[chrom] = (arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2])
    return out


def peak_max(path: str | os.PathLike, fmt: str, layout: BinLayout) -> tuple[np.ndarray, CountStats]:
    """(gene,) float32: max signalValue of the peaks overlapping each gene's window by ≥ 1 bp;
    0 where none."""
    t0 = time.perf_counter()
    peaks = read_peaks(path, fmt)
    stats = CountStats()
    out = np.zeros(layout.n_genes, dtype=np.float32)
    width = layout.n_bins * layout.bin_size
    for chrom, (starts, ends, values) in peaks.items():
        stats.reads += len(starts)
        key = layout.key(chrom)
        if key is None:
            stats.skipped[chrom] = len(starts)
            continue
        bins = layout.chroms[key]
        longest = int((ends - starts).max())
        lo = np.searchsorted(starts, bins.first - longest, side="left")
        hi = np.searchsorted(starts, bins.first + width, side="left")
        used = np.zeros(len(starts), dtype=bool)
        for g, ws, a, b in zip(bins.genes, bins.first, lo, hi, strict=True):
            hit = np.flatnonzero(ends[a:b] > ws) + a
            if hit.size:
                out[g] = max(out[g], values[hit].max())
                used[hit] = True
        stats.in_windows += int(used.sum())
    stats.seconds = time.perf_counter() - t0
    return out, stats
