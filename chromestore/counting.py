"""Vectorised read counting: BED/tagAlign text → reads per bin around each TSS.

Semantics are those of ``bedtools multicov`` with one BED interval per bin: a read
``[start, end)`` counts in every bin it overlaps by at least 1 bp. Pure numpy, no
store access: :class:`BinLayout` describes the bins, :class:`ReadCounter`
accumulates reads block by block (memory is bounded by the block size), and
:func:`count_bed` streams a plain or gzipped BED3+ file through it.

How it counts: per chromosome, the sorted unique bin boundaries ``E``. A read
overlaps bin ``[a, b)`` iff ``start < b`` and ``end > a``, so the bin's count is
``#(start < b) - #(end <= a)`` (every read with ``end <= a`` also has ``start < b``).
Both terms are prefix sums of histograms of ``searchsorted(E, start)`` and
``searchsorted(E, end)``; histograms add across blocks. Reads overlapping no window
are dropped first (one search in the merged windows), which leaves both terms exact.
"""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numba
import numpy as np

from chromestore.bins import genome_bin_starts
from chromestore.errors import InputError

try:  # ISA-L's gzip is 2-3x faster than zlib's; optional
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - depends on the environment
    _gzip = gzip

BLOCK_BYTES = 32 << 20


def chrom_key(name: str) -> str:
    """Chromosome name without a leading ``chr`` (case-insensitive): matches hg19 and GRCh37."""
    return name[3:] if name[:3].lower() == "chr" else name


@dataclass
class ChromBins:
    genes: np.ndarray  # store gene indices on this chromosome
    first: np.ndarray  # (k,) genome start of the lowest bin of each gene
    minus: np.ndarray  # (k,) bool: bins reversed (5'→3' on the minus strand)
    edges: np.ndarray  # sorted unique bin boundaries
    merged_start: np.ndarray  # merged windows (disjoint, sorted)
    merged_end: np.ndarray


@dataclass
class BinLayout:
    """Where the bins of every gene lie on the genome, grouped by chromosome."""

    n_genes: int
    n_bins: int
    bin_size: int
    chroms: dict[str, ChromBins]  # by chrom_key

    @classmethod
    def from_genes(cls, chrom, tss, strand, window: int, bin_size: int) -> BinLayout:
        chrom = np.asarray(chrom).astype(object)
        tss = np.asarray(tss, dtype=np.int64)
        strand = np.asarray(strand).astype(object)
        n_bins = 2 * window // bin_size
        starts = genome_bin_starts(tss, strand, window, bin_size)
        lowest = starts.min(axis=1)
        out: dict[str, ChromBins] = {}
        keys = np.array([chrom_key(str(c)) for c in chrom], dtype=object)
        for key in dict.fromkeys(keys):
            genes = np.flatnonzero(keys == key)
            first = lowest[genes]
            edges = np.unique(first[:, None] + np.arange(n_bins + 1, dtype=np.int64) * bin_size)
            order = np.argsort(first, kind="stable")
            ws, we = first[order], first[order] + n_bins * bin_size
            # merge overlapping windows
            run_end = np.maximum.accumulate(we)
            new = np.ones(len(ws), dtype=bool)
            new[1:] = ws[1:] > run_end[:-1]
            idx = np.flatnonzero(new)
            m_start = ws[idx]
            m_end = np.append(run_end[idx[1:] - 1], run_end[-1])
            out[key] = ChromBins(genes, first, strand[genes] == "-", edges, m_start, m_end)
        return cls(len(chrom), n_bins, bin_size, out)

    @classmethod
    def from_store(cls, ds) -> BinLayout:
        return cls.from_genes(
            ds["gene_chrom"].values, ds["gene_tss"].values, ds["gene_strand"].values,
            int(ds.attrs["window"]), int(ds.attrs["bin_size"]),
        )


@dataclass
class CountStats:
    reads: int = 0  # reads seen
    in_windows: int = 0  # reads overlapping at least one gene window
    skipped: dict[str, int] = field(default_factory=dict)  # reads per unknown chromosome
    seconds: float = 0.0

    @property
    def skipped_reads(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict:
        return {
            "reads": self.reads,
            "reads_in_windows": self.in_windows,
            "skipped_reads": self.skipped_reads,
            "skipped_chromosomes": dict(sorted(self.skipped.items())),
            "seconds": round(self.seconds, 3),
        }


@numba.njit(cache=True, nogil=True)
def _accumulate(ids, starts, ends, cmap, m_off, m_start, m_end, e_off, edges, h_off, hs, he):
    """Per read: drop it unless it overlaps a merged window, else add its edge-histogram
    entries. Returns the number of reads in windows."""  # pragma: no cover - compiled
    in_windows = 0
    for r in range(len(ids)):
        c = cmap[ids[r]]
        if c < 0:
            continue
        s = starts[r]
        e = ends[r]
        me = m_end[m_off[c]:m_off[c + 1]]
        j = np.searchsorted(me, s, side="right")
        if j >= len(me) or m_start[m_off[c] + j] >= e:
            continue
        in_windows += 1
        ed = edges[e_off[c]:e_off[c + 1]]
        hs[h_off[c] + np.searchsorted(ed, s, side="right")] += 1
        he[h_off[c] + np.searchsorted(ed, e, side="left")] += 1
    return in_windows


class ReadCounter:
    """Accumulates reads (chromosome, start, end) into per-bin counts."""

    def __init__(self, layout: BinLayout):
        self.layout = layout
        self.stats = CountStats()
        chroms = list(layout.chroms.values())
        self._index = {k: i for i, k in enumerate(layout.chroms)}
        self._m_off = np.cumsum([0] + [len(c.merged_start) for c in chroms])
        self._m_start = np.concatenate([c.merged_start for c in chroms] or [np.zeros(0, int)])
        self._m_end = np.concatenate([c.merged_end for c in chroms] or [np.zeros(0, int)])
        self._e_off = np.cumsum([0] + [len(c.edges) for c in chroms])
        self._edges = np.concatenate([c.edges for c in chroms] or [np.zeros(0, int)])
        self._h_off = np.cumsum([0] + [len(c.edges) + 1 for c in chroms])
        self._hs = np.zeros(self._h_off[-1], np.int64)
        self._he = np.zeros(self._h_off[-1], np.int64)
        # per-chromosome views into the flat histograms
        self._hist_start = {k: self._hs[self._h_off[i]:self._h_off[i + 1]]
                            for k, i in self._index.items()}
        self._hist_end = {k: self._he[self._h_off[i]:self._h_off[i + 1]]
                          for k, i in self._index.items()}

    def add_block(self, names: list[str], ids: np.ndarray, start: np.ndarray, end: np.ndarray):
        """Add reads given as chromosome ids into ``names`` (the scanner's output)."""
        cmap = np.array([self._index.get(chrom_key(n), -1) for n in names], dtype=np.int64)
        per_name = np.bincount(ids, minlength=len(names))
        self.stats.reads += len(ids)
        for t in np.flatnonzero((cmap < 0) & (per_name > 0)):
            self.stats.skipped[names[t]] = self.stats.skipped.get(names[t], 0) + int(per_name[t])
        if len(names) > 1:  # chromosome by chromosome keeps each one's edges in cache
            order = np.argsort(ids, kind="stable")  # radix sort on uint16
            ids, start, end = ids[order], start[order], end[order]
        self.stats.in_windows += _accumulate(
            ids, start, end, cmap, self._m_off, self._m_start, self._m_end, self._e_off,
            self._edges, self._h_off, self._hs, self._he,
        )

    def add(self, chrom: str, start: np.ndarray, end: np.ndarray) -> None:
        """Add reads of one chromosome (0-based half-open coordinates)."""
        self.stats.reads += len(start)
        bins = self.layout.chroms.get(chrom_key(chrom))
        if bins is None:
            self.stats.skipped[chrom] = self.stats.skipped.get(chrom, 0) + len(start)
            return
        j = np.searchsorted(bins.merged_end, start, side="right")
        hit = j < len(bins.merged_end)
        hit[hit] = bins.merged_start[j[hit]] < end[hit]
        start, end = start[hit], end[hit]
        self.stats.in_windows += len(start)
        n = len(bins.edges) + 1
        self._hist_start[chrom_key(chrom)] += np.bincount(
            np.searchsorted(bins.edges, start, side="right"), minlength=n
        )
        self._hist_end[chrom_key(chrom)] += np.bincount(
            np.searchsorted(bins.edges, end, side="left"), minlength=n
        )

    def counts(self) -> np.ndarray:
        """(gene, bin) float32 counts, bins 5'→3'; genes on no counted chromosome are 0."""
        lay = self.layout
        out = np.zeros((lay.n_genes, lay.n_bins), dtype=np.float32)
        offs = np.arange(lay.n_bins, dtype=np.int64) * lay.bin_size
        for key, bins in lay.chroms.items():
            start_lt = np.cumsum(self._hist_start[key])  # [k]: #(start < edges[k])
            end_le = np.cumsum(self._hist_end[key])  # [k]: #(end <= edges[k])
            lo = bins.first[:, None] + offs
            ia = np.searchsorted(bins.edges, lo)
            ib = np.searchsorted(bins.edges, lo + lay.bin_size)
            c = (start_lt[ib] - end_le[ia]).astype(np.float32)
            c[bins.minus] = c[bins.minus, ::-1]
            out[bins.genes] = c
        return out


# --- parsing BED text in blocks (numba: one pass over the bytes) ------------------

_ERRORS = {
    1: "expected at least 3 columns, found {cols}",
    2: "start is not a non-negative integer",
    3: "end is not a non-negative integer",
    4: "end < start",
    5: f"more than {1 << 16} chromosome names in one block",
}


MAX_NAMES = 1 << 16


@numba.njit(cache=True, nogil=True)
def _scan_bed(a, n_max):  # pragma: no cover - compiled
    """One pass over complete BED lines: starts, ends, a chromosome id per read and the
    table of chromosome names (hash, offset, length of the first occurrence)."""
    n = len(a)
    starts = np.empty(n_max, np.int64)
    ends = np.empty(n_max, np.int64)
    ids = np.empty(n_max, np.uint16)
    tab_hash = np.empty(MAX_NAMES, np.uint64)
    tab_at = np.empty(MAX_NAMES, np.int64)
    tab_len = np.empty(MAX_NAMES, np.int64)
    n_tab = 0
    last = -1
    k = 0
    line = 0
    i = 0
    while i < n:
        c = a[i]
        skip = c == 10 or c == 13 or c == 35  # empty line, comment
        if c == 116 and i + 5 <= n:  # "track"
            skip = a[i + 1] == 114 and a[i + 2] == 97 and a[i + 3] == 99 and a[i + 4] == 107
        elif c == 98 and i + 7 <= n:  # "browser"
            skip = a[i + 1] == 114 and a[i + 2] == 111 and a[i + 3] == 119 and a[i + 6] == 114
        if skip:
            while i < n and a[i] != 10:
                i += 1
            i += 1
            line += 1
            continue
        # chromosome: FNV-1a hash, looked up in the small table of names seen
        h = np.uint64(14695981039346656037)
        j = i
        while j < n and a[j] != 9 and a[j] != 10:
            h = (h ^ np.uint64(a[j])) * np.uint64(1099511628211)
            j += 1
        if j >= n or a[j] != 9:
            return k, starts, ends, ids, tab_at, tab_len, n_tab, 1, line, 1
        if last < 0 or tab_hash[last] != h or tab_len[last] != j - i:
            last = -1
            for t in range(n_tab):
                if tab_hash[t] == h and tab_len[t] == j - i:
                    last = t
                    break
            if last < 0:
                if n_tab == MAX_NAMES:
                    return k, starts, ends, ids, tab_at, tab_len, n_tab, 5, line, 0
                tab_hash[n_tab] = h
                tab_at[n_tab] = i
                tab_len[n_tab] = j - i
                last = n_tab
                n_tab += 1
        ids[k] = last
        j += 1
        v = 0
        d0 = j
        while j < n and a[j] >= 48 and a[j] <= 57:
            v = v * 10 + (a[j] - 48)
            j += 1
        if j >= n or a[j] == 10 or a[j] == 13:
            return k, starts, ends, ids, tab_at, tab_len, n_tab, 1, line, 2
        if a[j] != 9 or j == d0 or j - d0 > 17:
            return k, starts, ends, ids, tab_at, tab_len, n_tab, 2, line, 0
        starts[k] = v
        j += 1
        v = 0
        d0 = j
        while j < n and a[j] >= 48 and a[j] <= 57:
            v = v * 10 + (a[j] - 48)
            j += 1
        if j == d0 or j - d0 > 17 or (j < n and a[j] != 9 and a[j] != 10 and a[j] != 13):
            return k, starts, ends, ids, tab_at, tab_len, n_tab, 3, line, 0
        ends[k] = v
        if v < starts[k]:
            return k, starts, ends, ids, tab_at, tab_len, n_tab, 4, line, 0
        k += 1
        while j < n and a[j] != 10:
            j += 1
        i = j + 1
        line += 1
    return k, starts, ends, ids, tab_at, tab_len, n_tab, 0, line, 0


def scan_bed_block(buf: bytes, path, line0: int):
    """Parse complete BED3+ lines: (chromosome names, id per read, starts, ends).

    ``line0`` is the file line number of the first line, for error messages.
    """
    a = np.frombuffer(buf, dtype=np.uint8)
    n_max = buf.count(b"\n") + 1
    k, starts, ends, ids, tab_at, tab_len, n_tab, err, line, cols = _scan_bed(a, n_max)
    if err:
        raise InputError(path, line0 + int(line), _ERRORS[err].format(cols=cols))
    names = [_name(buf, tab_at[t], tab_len[t]) for t in range(n_tab)]
    return names, ids[:k], starts[:k], ends[:k]


def parse_bed_block(buf: bytes, path, line0: int):
    """Parse complete BED3+ lines. Yields (chrom, starts, ends) per chromosome."""
    names, ids, starts, ends = scan_bed_block(buf, path, line0)
    k, n_tab = len(ids), len(names)
    if k == 0:
        return
    if n_tab == 1:
        yield names[0], starts, ends
        return
    order = np.argsort(ids, kind="stable")  # radix sort on uint16
    bounds = np.concatenate([[0], np.cumsum(np.bincount(ids, minlength=n_tab))])
    for t, name in enumerate(names):
        sel = order[bounds[t]:bounds[t + 1]]
        yield name, starts[sel], ends[sel]


def _name(buf: bytes, at, length) -> str:
    return buf[int(at):int(at) + int(length)].decode("utf-8", "replace")


def iter_blocks(path: str | os.PathLike, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[bytes, int]]:
    """Complete-line blocks of a plain or gzipped file, with the first line's number."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(path, None, "file not found")
    if os.path.isdir(path):
        raise InputError(path, None, "is a directory, expected a file")
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opener = _gzip.open if gz else open
    line = 1
    rest = b""
    try:
        with opener(path, "rb") as fh:
            while True:
                chunk = fh.read(block_bytes)
                if not chunk:
                    break
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    rest = data
                    continue
                block, rest = data[:cut], data[cut:]
                yield block, line
                line += block.count(b"\n")
    except (EOFError, OSError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise InputError(path, None, "file not found") from None
        raise InputError(path, None, f"unreadable or truncated gzip ({e})") from None
    if rest.strip():
        yield rest, line


def count_bed(
    path: str | os.PathLike, layout: BinLayout, block_bytes: int = BLOCK_BYTES, progress=None
) -> tuple[np.ndarray, CountStats]:
    """Count the reads of a BED3+/tagAlign file (plain or gz) per bin: (gene, bin), stats.

    ``progress(n_reads)`` is called after each block when given.
    """
    t0 = time.perf_counter()
    counter = ReadCounter(layout)
    for block, line0 in iter_blocks(path, block_bytes):
        before = counter.stats.reads
        counter.add_block(*scan_bed_block(block, path, line0))
        if progress is not None:
            progress(counter.stats.reads - before)
    counter.stats.seconds = time.perf_counter() - t0
    return counter.counts(), counter.stats
