"""Read counting: BED/tagAlign text → reads per bin around each TSS.

Semantics are those of ``bedtools multicov`` with one BED interval per bin: a read
``[start, end)`` counts in every bin it overlaps by at least 1 bp. No store access:
:class:`BinLayout` describes the bins, :class:`ReadCounter` accumulates reads block by
block (memory is bounded by the block size), and :func:`count_bed` streams a plain or
gzipped BED3+ file through it.

How it counts: per chromosome, the sorted unique bin boundaries ``E``. A read
overlaps bin ``[a, b)`` iff ``start < b`` and ``end > a``, so the bin's count is
``#(start < b) - #(end <= a)`` (every read with ``end <= a`` also has ``start < b``).
Both terms are prefix sums of histograms of the ranks ``#(E <= start)`` and
``#(E < end)``; histograms add across blocks. Only reads overlapping a window are added
(which leaves both terms exact).

The text path (:func:`count_bed`) is two compiled passes per block of decompressed text:
``_scan_lines`` parses each line, finds the chromosome through a hash of its name, and
drops reads lying in a 1 kb cell no window touches (one bit per kb: the whole genome's
screen stays in cache); the remaining candidates are radix-sorted by 4 kb bucket when
the file is not position-sorted, and ``_count_candidates`` ranks them among the few edges
of their bucket and adds them to the histograms, with nearly sequential memory access.
"""

from __future__ import annotations

import gzip
import os
import time
import zlib
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

    def __getstate__(self):  # tables cached by the counters are rebuilt, not shipped
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

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


#: positions are bucketed by ``>> BUCKET_SHIFT`` (4 kb): each bucket knows its first edge, so a
#: position's rank among a chromosome's edges is a search among the few edges of its bucket
BUCKET_SHIFT = 12
#: reads are first screened with one bit per 1 kb (set where a window touches it): 3 Gb of
#: genome in 375 kB, which stays in cache however unsorted the file is
SCREEN_SHIFT = 10


def _fnv(data: bytes) -> int:
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


class ReadCounter:
    """Accumulates reads (chromosome, start, end) into per-bin counts.

    Per chromosome, with ``E`` its sorted unique bin edges: ``hist[h + i, 0]`` counts the
    reads in windows whose ``start`` has rank ``i = #(E <= start)``, ``hist[h + i, 1]``
    those whose ``end`` has rank ``#(E < end)`` (start and end side by side: one cache
    line for most reads). ``covered[h + i]`` says whether the gap ``[E[i-1], E[i])`` lies
    in a window, which decides "in windows" from the two ranks alone.
    """

    def __init__(self, layout: BinLayout):
        self.layout = layout
        self.stats = CountStats()
        chroms = list(layout.chroms.values())
        self._index = {k: i for i, k in enumerate(layout.chroms)}
        self._e_off = np.cumsum([0] + [len(c.edges) for c in chroms]).astype(np.int64)
        self._edges = np.concatenate([c.edges for c in chroms] or [np.zeros(0, np.int64)])
        self._h_off = np.cumsum([0] + [len(c.edges) + 1 for c in chroms]).astype(np.int64)
        self._hist = np.zeros((self._h_off[-1], 2), np.int64)
        # per-chromosome views into the flat histograms
        self._hist_start = {k: self._hist[self._h_off[i]:self._h_off[i + 1], 0]
                            for k, i in self._index.items()}
        self._hist_end = {k: self._hist[self._h_off[i]:self._h_off[i + 1], 1]
                          for k, i in self._index.items()}
        self._cand = self._tmp = None  # candidate reads of a block and sort scratch

    def _kernel_tables(self):
        """Flat arrays for the compiled kernels: chromosome-key hash table, edge buckets,
        edges with their covered flags, screen bits. Built once per layout."""
        cached = self.layout.__dict__.get("_kernel")
        if cached is not None:
            return cached
        chroms = list(self.layout.chroms.values())
        keys = [k.encode("utf-8", "replace") for k in self.layout.chroms]
        size = 16
        while size < 4 * len(keys):
            size *= 2
        slot = np.full(size, -1, np.int64)
        key_at = np.cumsum([0] + [len(k) for k in keys]).astype(np.int64)
        key_bytes = np.frombuffer(b"".join(keys) or b"\0", np.uint8).copy()
        for c, k in enumerate(keys):
            s = _fnv(k) & (size - 1)
            while slot[s] >= 0:
                s = (s + 1) & (size - 1)
            slot[s] = c
        b_off = [0]
        buckets = []
        edges2 = []
        s_off = [0]  # in bits
        screens = []
        for c in chroms:
            e = c.edges
            cov = np.zeros(len(e), np.int64)
            if len(e) > 1:  # gap [E[i-1], E[i]) lies in a merged window
                lo = e[:-1]
                j = np.searchsorted(c.merged_end, lo, side="right")
                ok = j < len(c.merged_end)
                ok[ok] = c.merged_start[j[ok]] <= lo[ok]
                cov[1:] = ok
            edges2.append(2 * e + cov)
            nb = (int(e[-1]) >> BUCKET_SHIFT) + 2 if len(e) else 1
            # bucket q = rank #(E < q << shift) (q = 0..nb-1, the last is len(E)), times 2,
            # plus 1 where the bucket holds no edge and lies in an uncovered gap
            rank = np.searchsorted(e, np.arange(nb, dtype=np.int64) << BUCKET_SHIFT)
            empty = np.append(rank[1:] == rank[:-1], True)
            gap_cov = np.append(cov, 0)[rank]  # gap [E[rank-1], E[rank]) holding the bucket
            buckets.append(2 * rank + (empty & (gap_cov == 0)))
            b_off.append(b_off[-1] + nb)
            # screen bits: 1 kb cells that a merged window [ms, me) touches
            ns = (int(c.merged_end.max()) >> SCREEN_SHIFT) + 1 if len(c.merged_end) else 0
            cell = np.zeros(ns + 1, np.int64)
            np.add.at(cell, c.merged_start >> SCREEN_SHIFT, 1)
            np.add.at(cell, ((c.merged_end - 1) >> SCREEN_SHIFT) + 1, -1)
            bits = np.cumsum(cell)[:ns] > 0
            screens.append(np.packbits(bits, bitorder="little"))
            s_off.append(s_off[-1] + 8 * len(screens[-1]))
        self.layout.__dict__["_kernel"] = tables = (
            slot, key_bytes, key_at,
            np.concatenate(buckets or [np.zeros(1, np.int64)]).astype(np.int32),
            np.asarray(b_off, np.int64),
            np.concatenate(edges2 or [np.zeros(0, np.int64)]),
            np.concatenate(screens or [np.zeros(0, np.uint8)]),
            np.asarray(s_off, np.int64),
        )
        return tables

    def add_text(self, a: np.ndarray, path, line0: int, newlines: int | None = None) -> int:
        """Count the complete BED3+ lines in ``a`` (uint8); returns the number of lines.

        ``line0`` is the file line number of the first line, for error messages;
        ``newlines``, the number of newlines in ``a`` when the caller knows it.
        """
        slot, key_bytes, key_at, buckets, b_off, edges2, screen, s_off = self._kernel_tables()
        tab = np.empty((5, MAX_NAMES), np.int64)  # hash, at, length, chromosome, reads
        cap = (int(np.count_nonzero(a == 10)) if newlines is None else newlines) + 1
        if self._cand is None or self._cand.shape[1] < cap:
            self._cand = np.empty((4, cap), np.int64)
        reads, k, ordered, n_tab, lines, err, cols = _scan_lines(
            a, slot, key_bytes, key_at, b_off, screen, s_off, tab, self._cand,
        )
        cand = self._cand
        if not ordered:  # unsorted file: sort the candidates by bucket for cache locality
            if self._tmp is None or self._tmp.shape[1] < cand.shape[1]:
                self._tmp = np.empty_like(cand)
            cand = _radix_sort(cand, k, self._tmp, len(buckets))
        self.stats.reads += int(reads)
        self.stats.in_windows += int(_count_candidates(
            cand, k, self._e_off, edges2, b_off, buckets, BUCKET_SHIFT, self._h_off, self._hist,
        ))
        for t in range(n_tab):
            if tab[3, t] < 0 and tab[4, t] > 0:
                name = a[tab[1, t]:tab[1, t] + tab[2, t]].tobytes().decode("utf-8", "replace")
                self.stats.skipped[name] = self.stats.skipped.get(name, 0) + int(tab[4, t])
        if err:
            raise InputError(path, line0 + int(lines), _ERRORS[err].format(cols=cols))
        return int(lines)

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
        ranks = lay.__dict__.setdefault("_bin_ranks", {})  # per chromosome, built once
        for key, bins in lay.chroms.items():
            start_lt = np.cumsum(self._hist_start[key])  # [k]: #(start < edges[k])
            end_le = np.cumsum(self._hist_end[key])  # [k]: #(end <= edges[k])
            if key not in ranks:  # each bin's edges' ranks
                lo = bins.first[:, None] + offs
                ranks[key] = (np.searchsorted(bins.edges, lo).astype(np.int32),
                              np.searchsorted(bins.edges, lo + lay.bin_size).astype(np.int32))
            ia, ib = ranks[key]
            c = (start_lt[ib] - end_le[ia]).astype(np.float32)
            c[bins.minus] = c[bins.minus, ::-1]
            out[bins.genes] = c
        return out


# --- BED text → counts in one numba pass over the bytes ---------------------------

_ERRORS = {
    1: "expected at least 3 columns, found {cols}",
    2: "start is not a non-negative integer",
    3: "end is not a non-negative integer",
    4: "end < start",
    5: f"more than {1 << 16} chromosome names in one block",
}


MAX_NAMES = 1 << 16


@numba.njit(cache=True, nogil=True, inline="always")
def _rank(edges2, base, lo, hi, x):  # pragma: no cover - compiled
    """``lo`` + #(edges2[base+lo:base+hi] < x), binary search. ``edges2`` holds
    ``2 * edge + flag``: ``x = 2p + 2`` counts edges <= p, ``x = 2p`` those < p."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if edges2[base + mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _chrom_of(a, i, j, slot, key_bytes, key_at):  # pragma: no cover - compiled
    """The layout index of the chromosome named ``a[i:j]`` (``chr`` prefix ignored), or -1."""
    if j - i >= 3 and (a[i] | 32) == 99 and (a[i + 1] | 32) == 104 and (a[i + 2] | 32) == 114:
        i += 3
    h = np.uint64(14695981039346656037)
    for t in range(i, j):
        h = (h ^ np.uint64(a[t])) * np.uint64(1099511628211)
    mask = len(slot) - 1
    s = np.int64(h & np.uint64(mask))
    while slot[s] >= 0:
        c = slot[s]
        k0 = key_at[c]
        if key_at[c + 1] - k0 == j - i:
            same = True
            for t in range(j - i):
                if key_bytes[k0 + t] != a[i + t]:
                    same = False
                    break
            if same:
                return c
        s = (s + 1) & mask
    return -1


@numba.njit(cache=True, nogil=True)
def _scan_lines(a, slot, key_bytes, key_at, b_off, screen, s_off, tab, cand):
    # pragma: no cover - compiled
    """One pass over complete BED lines: parse each read; those that may overlap a window
    go to ``cand`` (bucket key, chromosome, start, end). ``tab`` collects the chromosome
    names seen (hash, offset, length, layout index, reads). Returns reads, candidates,
    whether their keys are ordered, names, lines, error, columns."""
    n = len(a)
    n_tab = 0
    last = -1
    c = -1
    reads = 0
    k = 0
    last_key = np.zeros(len(b_off), np.int64)
    recent = np.full(256, -1, np.int64)
    ordered = True
    line = 0
    i = 0
    while i < n:
        ch = a[i]
        skip = ch == 10 or ch == 13 or ch == 35  # empty line, comment
        if ch == 116 and i + 5 <= n:  # "track"
            skip = a[i + 1] == 114 and a[i + 2] == 97 and a[i + 3] == 99 and a[i + 4] == 107
        elif ch == 98 and i + 7 <= n:  # "browser"
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
            return reads, k, ordered, n_tab, line, 1, 1
        hs = np.int64(h)
        if last < 0 or tab[0, last] != hs or tab[2, last] != j - i:
            last = recent[hs & 255]  # the name last seen with these hash bits
            if last < 0 or tab[0, last] != hs or tab[2, last] != j - i:
                last = -1
                for t in range(n_tab):
                    if tab[0, t] == hs and tab[2, t] == j - i:
                        last = t
                        break
            if last < 0:
                if n_tab == MAX_NAMES:
                    return reads, k, ordered, n_tab, line, 5, 0
                tab[0, n_tab] = hs
                tab[1, n_tab] = i
                tab[2, n_tab] = j - i
                tab[3, n_tab] = _chrom_of(a, i, j, slot, key_bytes, key_at)
                tab[4, n_tab] = 0
                last = n_tab
                n_tab += 1
            recent[hs & 255] = last
            c = tab[3, last]
        j += 1
        v = 0
        d0 = j
        while j < n and a[j] >= 48 and a[j] <= 57:
            v = v * 10 + (a[j] - 48)
            j += 1
        if j >= n or a[j] == 10 or a[j] == 13:
            return reads, k, ordered, n_tab, line, 1, 2
        if a[j] != 9 or j == d0 or j - d0 > 17:
            return reads, k, ordered, n_tab, line, 2, 0
        s = np.int64(v)
        j += 1
        v = 0
        d0 = j
        while j < n and a[j] >= 48 and a[j] <= 57:
            v = v * 10 + (a[j] - 48)
            j += 1
        if j == d0 or j - d0 > 17 or (j < n and a[j] != 9 and a[j] != 10 and a[j] != 13):
            return reads, k, ordered, n_tab, line, 3, 0
        e = np.int64(v)
        if e < s:
            return reads, k, ordered, n_tab, line, 4, 0
        reads += 1
        tab[4, last] += 1
        if c >= 0:
            # keep the read unless it lies in one 1 kb cell that no window touches (most
            # reads outside windows stop here)
            # (a read starting past the chromosome's last bucket lies past its last edge)
            q = s >> SCREEN_SHIFT
            so = s_off[c]
            if q < s_off[c + 1] - so and (s >> BUCKET_SHIFT) < b_off[c + 1] - b_off[c] - 1 and (
                (e >> SCREEN_SHIFT) != q or (screen[(so + q) >> 3] >> ((so + q) & 7)) & 1
            ):
                key = b_off[c] + (s >> BUCKET_SHIFT)
                ordered = ordered and key >= last_key[c]  # ascending per chromosome
                last_key[c] = key
                cand[0, k] = key
                cand[1, k] = c
                cand[2, k] = s
                cand[3, k] = e
                k += 1
        while j < n and a[j] != 10:
            j += 1
        i = j + 1
        line += 1
    return reads, k, ordered, n_tab, line, 0, 0


@numba.njit(cache=True, nogil=True)
def _radix_sort(cand, k, tmp, n_keys):  # pragma: no cover - compiled
    """Sort ``cand[:, :k]`` by ``cand[0]`` (0 <= key < n_keys), LSD, 11 bits a pass.
    Returns the array holding the result (``cand`` or ``tmp``)."""
    src = cand
    dst = tmp
    shift = 0
    while (n_keys - 1) >> shift > 0 or shift == 0:
        cnt = np.zeros(2049, np.int64)
        for r in range(k):
            cnt[((src[0, r] >> shift) & 2047) + 1] += 1
        for t in range(2048):
            cnt[t + 1] += cnt[t]
        for r in range(k):
            d = (src[0, r] >> shift) & 2047
            w = cnt[d]
            cnt[d] = w + 1
            dst[0, w] = src[0, r]
            dst[1, w] = src[1, r]
            dst[2, w] = src[2, r]
            dst[3, w] = src[3, r]
        src, dst = dst, src
        shift += 11
    return src


@numba.njit(cache=True, nogil=True)
def _count_candidates(cand, k, e_off, edges2, b_off, buckets, shift, h_off, hist):
    # pragma: no cover - compiled
    """Add the candidate reads that overlap a window to ``hist``; returns how many did.
    Candidates sorted by bucket make the edge and histogram accesses nearly sequential."""
    in_windows = 0
    for r in range(k):
        c = cand[1, r]
        s = cand[2, r]
        e = cand[3, r]
        bb = b_off[c]
        nb = b_off[c + 1] - bb - 1
        eb = e_off[c]
        ne = e_off[c + 1] - eb
        q = cand[0, r] - bb
        ri = _rank(edges2, eb, buckets[bb + q] >> 1, buckets[bb + q + 1] >> 1, 2 * s + 2)
        q = e >> shift
        if q < nb:
            rj = _rank(edges2, eb, buckets[bb + q] >> 1, buckets[bb + q + 1] >> 1, 2 * e)
        else:
            rj = ne
        # the gap [E[k-1], E[k]) is covered iff edges2[k] is odd (none past the end)
        if rj > ri:  # spans an edge: overlaps a bin
            inside = True
        elif rj == ri:  # within one gap between edges
            inside = ri < ne and edges2[eb + ri] & 1 == 1
        else:  # empty read on an edge: inside iff strictly within a merged window
            inside = ri < ne and edges2[eb + ri] & 1 == 1 and edges2[eb + ri - 1] & 1 == 1
        if inside:
            hb = h_off[c]
            in_windows += 1
            hist[hb + ri, 0] += 1
            hist[hb + rj, 1] += 1
    return in_windows


def _open(path: str):
    if not os.path.exists(path):
        raise InputError(path, None, "file not found")
    if os.path.isdir(path):
        raise InputError(path, None, "is a directory, expected a file")
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    return _gzip.open(path, "rb") if gz else open(path, "rb")


def count_bed(
    path: str | os.PathLike, layout: BinLayout, block_bytes: int = BLOCK_BYTES, progress=None
) -> tuple[np.ndarray, CountStats]:
    """Count the reads of a BED3+/tagAlign file (plain or gz) per bin: (gene, bin), stats.

    The file is decompressed into one reused buffer ``block_bytes`` at a time (memory
    stays bounded: the buffer only grows for a line longer than it) and each block's
    complete lines are parsed and counted by the compiled kernels.
    ``progress(n_reads)`` is called after each block when given.
    """
    t0 = time.perf_counter()
    path = os.fspath(path)
    counter = ReadCounter(layout)
    buf = bytearray(max(int(block_bytes), 1 << 10))
    a = np.frombuffer(buf, np.uint8)
    line = 1
    rest = 0  # bytes of an incomplete line kept at the front of buf
    try:
        with _open(path) as fh:
            while True:
                view = memoryview(buf)
                got = rest
                while got < len(buf):  # fill the buffer (readinto may return less)
                    k = fh.readinto(view[got:])
                    if not k:
                        break
                    got += k
                view.release()
                eof = got < len(buf)
                cut = buf.rfind(b"\n", 0, got) + 1
                if eof and got > cut and bytes(buf[cut:got]).strip():
                    cut = got  # a last line without newline
                if cut:
                    before = counter.stats.reads
                    line += counter.add_text(a[:cut], path, line, buf.count(b"\n", 0, cut))
                    if progress is not None:
                        progress(counter.stats.reads - before)
                if eof:
                    break
                rest = got - cut
                if cut == 0:  # one line longer than the buffer: grow it
                    del a
                    buf.extend(bytes(len(buf)))
                    a = np.frombuffer(buf, np.uint8)
                elif rest:
                    buf[:rest] = buf[cut:got]
    except (EOFError, OSError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise InputError(path, None, "file not found") from None
        raise InputError(path, None, f"unreadable or truncated gzip ({e})") from None
    counter.stats.seconds = time.perf_counter() - t0
    return counter.counts(), counter.stats
