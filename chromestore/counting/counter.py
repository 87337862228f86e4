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

The text path (:func:`count_bed`) runs the compiled passes of
:mod:`chromestore.counting.kernels` over each block of decompressed text (imported at the first
block: a :class:`BinLayout` alone does not load numba; :func:`warm_up` loads it ahead).
"""

from __future__ import annotations

import gzip
import os
import queue
import threading
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from chromestore.bins import genome_bin_starts
from chromestore.errors import InputError
from chromestore.genomes import chrom_key, describe_names

try:  # ISA-L's gzip is 2-3x faster than zlib's; optional
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - depends on the environment
    _gzip = gzip

BLOCK_BYTES = 32 << 20


__all__ = ["BinLayout", "ChromBins", "CountStats", "ReadCounter", "chrom_key", "count_bed"]


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
    """Where the bins of every gene lie on the genome, grouped by chromosome.

    ``chroms`` are keyed by :func:`chromestore.genomes.chrom_key` (``chr1`` and ``1`` alike,
    ``MT`` as ``M``); ``aliases`` map other names of a file (by their key) to those keys
    (``ingest --chrom-alias``); :meth:`key` applies both. ``genome`` names the annotation's
    assembly (files' chromosome sizes are checked against it); ``names`` are the
    annotation's own chromosome names (for messages).
    """

    n_genes: int
    n_bins: int
    bin_size: int
    chroms: dict[str, ChromBins]  # by chrom_key
    genome: str = ""
    aliases: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # chrom_key → the annotation's name

    def key(self, name: str) -> str | None:
        """The key in ``chroms`` of a file's chromosome ``name``, or None (not annotated)."""
        k = chrom_key(str(name))
        k = self.aliases.get(k, k)
        return k if k in self.chroms else None

    def with_aliases(self, aliases: dict[str, str] | None) -> BinLayout:
        """This layout, with more aliases (file name key → annotation key)."""
        if not aliases:
            return self
        return BinLayout(
            self.n_genes,
            self.n_bins,
            self.bin_size,
            self.chroms,
            self.genome,
            {**self.aliases, **aliases},
            self.names,
        )

    def translated(self, sizes: dict[str, int]) -> dict[str, int]:
        """A file's chromosome sizes with its aliased names replaced by the annotation's
        keys (to compare them with a genome's)."""
        return {
            (self.aliases[chrom_key(n)] if chrom_key(n) in self.aliases else n): int(size)
            for n, size in sizes.items()
        }

    def annotation_names(self) -> str:
        """The annotation's chromosome names, a few in natural order (for messages)."""
        return describe_names(list(self.names.values()) or list(self.chroms))

    @classmethod
    def from_genes(
        cls, chrom, tss, strand, window: int, bin_size: int, genome: str | None = None
    ) -> BinLayout:
        chrom = np.asarray(chrom).astype(object)
        tss = np.asarray(tss, dtype=np.int64)
        strand = np.asarray(strand).astype(object)
        n_bins = 2 * window // bin_size
        starts = genome_bin_starts(tss, strand, window, bin_size)
        lowest = starts.min(axis=1)
        out: dict[str, ChromBins] = {}
        keys = np.array([chrom_key(str(c)) for c in chrom], dtype=object)
        names = {}
        for key, name in zip(keys, chrom, strict=True):
            names.setdefault(key, str(name))
        for key in dict.fromkeys(keys):
            genes = np.flatnonzero(keys == key)
            first = lowest[genes]
            edges = _sorted_unique(
                first[:, None] + np.arange(n_bins + 1, dtype=np.int64) * bin_size
            )
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
        return cls(len(chrom), n_bins, bin_size, out, str(genome or ""), {}, names)

    def __getstate__(self):  # tables cached by the counters are rebuilt, not shipped
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """The distinct values of ``a``, sorted: a sort and a mask (numpy 2.4's ``np.unique``
    of 2 M int64 takes seconds; this takes tens of milliseconds)."""
    a = np.sort(a, axis=None)
    keep = np.ones(a.size, dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    return a[keep]


@dataclass
class CountStats:
    reads: int = 0  # reads seen
    in_windows: int = 0  # reads overlapping at least one gene window
    skipped: dict[str, int] = field(default_factory=dict)  # reads per unknown chromosome
    seconds: float = 0.0

    @property
    def skipped_reads(self) -> int:
        return sum(self.skipped.values())

    def refuse_empty(self, path, layout: BinLayout, what: str = "reads") -> None:
        """Raise :class:`InputError` naming ``path`` and the likely cause when none of its
        ``what`` (reads, peaks) fell into a window: an empty file, chromosome names that
        none of the annotation's match, or a file of another assembly."""
        if self.in_windows:
            return
        if not self.reads:
            raise InputError(
                path, None, f"holds no {what}: an empty file puts nothing in the store"
            )
        on_annotated = self.reads - self.skipped_reads
        if not on_annotated:
            names = sorted(self.skipped, key=self.skipped.get, reverse=True)
            raise InputError(
                path,
                None,
                f"none of {self.reads:,} {what} is on a chromosome of the annotation: it names "
                f"{describe_names(names)} where the annotation names "
                f"{layout.annotation_names()}; pass --chrom-alias FILE (lines "
                "FILE_NAME<TAB>ANNOTATION_NAME) or fix the file",
            )
        raise InputError(
            path,
            None,
            f"none of {self.reads:,} {what} falls in a window around a TSS ({on_annotated:,} "
            "are on chromosomes of the annotation): is the file of another assembly than "
            f"the store's{' (' + layout.genome + ')' if layout.genome else ''}?",
        )

    def as_dict(self) -> dict:
        return {
            "reads": self.reads,
            "reads_in_windows": self.in_windows,
            "skipped_reads": self.skipped_reads,
            "skipped_chromosomes": dict(sorted(self.skipped.items())),
            "seconds": round(self.seconds, 3),
        }


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
        self._hist_start = {
            k: self._hist[self._h_off[i] : self._h_off[i + 1], 0] for k, i in self._index.items()
        }
        self._hist_end = {
            k: self._hist[self._h_off[i] : self._h_off[i + 1], 1] for k, i in self._index.items()
        }
        self._cand = self._tmp = None  # candidate reads of a block and sort scratch

    def add_text(self, a: np.ndarray, path, line0: int, newlines: int | None = None) -> int:
        """Count the complete BED3+ lines in ``a`` (uint8); returns the number of lines.

        ``line0`` is the file line number of the first line, for error messages;
        ``newlines``, the number of newlines in ``a`` when the caller knows it.
        """
        from chromestore.counting import kernels as K

        slot, key_bytes, key_at, key_chrom, buckets, b_off, edges2, screen, s_off = K.kernel_tables(
            self.layout
        )
        tab = np.empty((5, K.MAX_NAMES), np.int64)  # hash, at, length, chromosome, reads
        cap = (int(np.count_nonzero(a == 10)) if newlines is None else newlines) + 1
        if self._cand is None or self._cand.shape[1] < cap:
            self._cand = np.empty((4, cap), np.int64)
        reads, k, ordered, n_tab, lines, err, cols = K.scan_lines(
            a,
            slot,
            key_bytes,
            key_at,
            key_chrom,
            b_off,
            screen,
            s_off,
            tab,
            self._cand,
        )
        cand = self._cand
        if not ordered:  # unsorted file: sort the candidates by bucket for cache locality
            if self._tmp is None or self._tmp.shape[1] < cand.shape[1]:
                self._tmp = np.empty_like(cand)
            cand = K.radix_sort(cand, k, self._tmp, len(buckets))
        self.stats.reads += int(reads)
        self.stats.in_windows += int(
            K.count_candidates(
                cand,
                k,
                self._e_off,
                edges2,
                b_off,
                buckets,
                K.BUCKET_SHIFT,
                self._h_off,
                self._hist,
            )
        )
        for t in range(n_tab):
            if tab[3, t] < 0 and tab[4, t] > 0:
                name = a[tab[1, t] : tab[1, t] + tab[2, t]].tobytes().decode("utf-8", "replace")
                self.stats.skipped[name] = self.stats.skipped.get(name, 0) + int(tab[4, t])
        if err:
            raise InputError(path, line0 + int(lines), K.ERRORS[err].format(cols=cols))
        return int(lines)

    def add(self, chrom: str, start: np.ndarray, end: np.ndarray) -> None:
        """Add reads of one chromosome (0-based half-open coordinates)."""
        self.stats.reads += len(start)
        key = self.layout.key(chrom)
        if key is None:
            self.stats.skipped[chrom] = self.stats.skipped.get(chrom, 0) + len(start)
            return
        bins = self.layout.chroms[key]
        j = np.searchsorted(bins.merged_end, start, side="right")
        hit = j < len(bins.merged_end)
        hit[hit] = bins.merged_start[j[hit]] < end[hit]
        start, end = start[hit], end[hit]
        self.stats.in_windows += len(start)
        n = len(bins.edges) + 1
        self._hist_start[key] += np.bincount(
            np.searchsorted(bins.edges, start, side="right"), minlength=n
        )
        self._hist_end[key] += np.bincount(
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
                ranks[key] = (
                    np.searchsorted(bins.edges, lo).astype(np.int32),
                    np.searchsorted(bins.edges, lo + lay.bin_size).astype(np.int32),
                )
            ia, ib = ranks[key]
            c = (start_lt[ib] - end_le[ia]).astype(np.float32)
            c[bins.minus] = c[bins.minus, ::-1]
            out[bins.genes] = c
        return out


def warm_up() -> None:
    """Load the compiled kernels (numba's on-disk cache, about half a second) by counting
    two reads out of order (every kernel runs, with the argument types of
    :func:`count_bed`), so that the first file does not wait for them."""
    layout = BinLayout.from_genes(["chr1"], [10_000], ["+"], 5000, 100)
    text = bytearray(b"chr1\t14000\t14036\tN\t0\t+\nchr1\t6000\t6036\tN\t0\t-\n")
    counter = ReadCounter(layout)
    counter.add_text(np.frombuffer(text, np.uint8), "<warm-up>", 1)
    counter.counts()


def _open(path: str):
    if not os.path.exists(path):
        raise InputError(path, None, "file not found")
    if os.path.isdir(path):
        raise InputError(path, None, "is a directory, expected a file")
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    return _gzip.open(path, "rb") if gz else open(path, "rb")


class _BlockReader:
    """Blocks of complete lines of ``fh``, read ahead by one thread: iterate to get
    ``(buffer, cut)`` (the lines are ``buffer[:cut]``), :meth:`release` each buffer when
    done with it. An error of the reading thread is raised by the iteration."""

    _END = object()

    def __init__(self, fh, block_bytes: int, buffers: int = 3) -> None:
        self.fh, self.block = fh, block_bytes
        self.free: queue.Queue = queue.Queue()
        for _ in range(buffers):
            self.free.put(bytearray(block_bytes))
        self.full: queue.Queue = queue.Queue(maxsize=buffers - 1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, name="count_bed-reader", daemon=True)

    def __enter__(self) -> _BlockReader:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        while self.thread.is_alive():  # unblock a reader waiting to hand over a block
            try:
                self.full.get(timeout=0.05)
            except queue.Empty:
                pass
            self.free.put(bytearray(0))

    def release(self, buf: bytearray) -> None:
        self.free.put(buf)

    def __iter__(self):
        while True:
            item = self.full.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.full.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _read(self) -> None:
        try:
            rest = b""
            while not self.stop.is_set():
                buf = self.free.get()
                if len(buf) < max(self.block, 2 * len(rest)):
                    buf = bytearray(max(self.block, 2 * len(rest)))
                buf[: len(rest)] = rest
                got = len(rest)
                view = memoryview(buf)
                while got < len(buf):  # fill the buffer (readinto may return less)
                    k = self.fh.readinto(view[got:])
                    if not k:
                        break
                    got += k
                view.release()
                eof = got < len(buf)
                cut = buf.rfind(b"\n", 0, got) + 1
                if eof and got > cut and bytes(buf[cut:got]).strip():
                    cut = got  # a last line without newline
                rest = bytes(buf[cut:got])  # an incomplete line (or a line longer than buf)
                if cut and not self._put((buf, cut)):
                    return
                if not cut:
                    self.free.put(buf)
                if eof:
                    break
            self._put(self._END)
        except BaseException as e:  # handed to the counting thread
            self._put(e)


def count_bed(
    path: str | os.PathLike, layout: BinLayout, block_bytes: int = BLOCK_BYTES, progress=None
) -> tuple[np.ndarray, CountStats]:
    """Count the reads of a BED3+/tagAlign file (plain or gz) per bin: (gene, bin), stats.

    The file is decompressed ``block_bytes`` at a time by a reader thread into a few
    reused buffers (memory stays bounded: a buffer only grows for a line longer than it)
    while this thread parses and counts the previous block's complete lines with the
    compiled kernels: decompression (which releases the GIL) overlaps the counting.
    ``progress(n_reads)`` is called after each block when given.
    """
    t0 = time.perf_counter()
    path = os.fspath(path)
    counter = ReadCounter(layout)
    line = 1
    try:
        with _open(path) as fh, _BlockReader(fh, max(int(block_bytes), 1 << 10)) as blocks:
            for buf, cut in blocks:
                a = np.frombuffer(buf, np.uint8)
                before = counter.stats.reads
                line += counter.add_text(a[:cut], path, line, buf.count(b"\n", 0, cut))
                del a  # the buffer is reused (and may grow): no view may outlive the block
                blocks.release(buf)
                if progress is not None:
                    progress(counter.stats.reads - before)
    except (EOFError, OSError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise InputError(path, None, "file not found") from None
        raise InputError(path, None, f"unreadable or truncated gzip ({e})") from None
    counter.stats.seconds = time.perf_counter() - t0
    return counter.counts(), counter.stats
