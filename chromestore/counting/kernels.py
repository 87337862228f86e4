"""The compiled passes that count BED text: parse and screen, bucket sort, rank and add.

:class:`chromestore.counting.ReadCounter` calls them block by block.
:func:`scan_lines` parses each line, finds the chromosome through a hash of its name, and
drops reads lying in a 1 kb cell no window touches (one bit per kb: the whole genome's
screen stays in cache); the remaining candidates are radix-sorted by 4 kb bucket
(:func:`radix_sort`) when the file is not position-sorted, and :func:`count_candidates`
ranks them among the few edges of their bucket and adds them to the edge histograms, with
nearly sequential memory access. :func:`kernel_tables` lays a
:class:`~chromestore.counting.BinLayout` out as the flat arrays the kernels read.
"""

from __future__ import annotations

import numba
import numpy as np

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


def _names(layout) -> list[tuple[str, int]]:
    """Every name a file may give a chromosome of ``layout``, as the kernels see it (without
    ``chr``), with the chromosome's index: its key, ``MT`` for ``M``, and the aliases."""
    index = {k: i for i, k in enumerate(layout.chroms)}
    out = [(k, i) for k, i in index.items()]
    out += [(a, index[k]) for a, k in layout.aliases.items() if k in index and a not in index]
    out += [("MT", i) for k, i in out if k == "M"]
    return list(dict(out).items())


def kernel_tables(layout):
    """Flat arrays for the compiled kernels: chromosome-name hash table (each name's
    chromosome: its key, ``MT`` for ``M``, the layout's aliases), edge buckets, edges with
    their covered flags, screen bits. Built once per layout."""
    cached = layout.__dict__.get("_kernel")
    if cached is not None:
        return cached
    chroms = list(layout.chroms.values())
    names = _names(layout)
    keys = [k.encode("utf-8", "replace") for k, _ in names]
    key_chrom = np.array([i for _, i in names] or [0], np.int64)
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
    layout.__dict__["_kernel"] = tables = (
        slot,
        key_bytes,
        key_at,
        key_chrom,
        np.concatenate(buckets or [np.zeros(1, np.int64)]).astype(np.int32),
        np.asarray(b_off, np.int64),
        np.concatenate(edges2 or [np.zeros(0, np.int64)]),
        np.concatenate(screens or [np.zeros(0, np.uint8)]),
        np.asarray(s_off, np.int64),
    )
    return tables


# --- the kernels ----------------------------------------------------------------------

ERRORS = {
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


@numba.njit(cache=True, nogil=True, inline="always")
def _digits(a, j, n):  # pragma: no cover - compiled
    """The decimal number starting at ``a[j]`` and the index after its last digit."""
    v = 0
    while j < n and a[j] >= 48 and a[j] <= 57:
        v = v * 10 + (a[j] - 48)
        j += 1
    return v, j


@numba.njit(cache=True, nogil=True)
def _chrom_of(a, i, j, slot, key_bytes, key_at, key_chrom):  # pragma: no cover - compiled
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
                return key_chrom[c]
        s = (s + 1) & mask
    return -1


@numba.njit(cache=True, nogil=True)
def scan_lines(a, slot, key_bytes, key_at, key_chrom, b_off, screen, s_off, tab, cand):
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
                tab[3, n_tab] = _chrom_of(a, i, j, slot, key_bytes, key_at, key_chrom)
                tab[4, n_tab] = 0
                last = n_tab
                n_tab += 1
            recent[hs & 255] = last
            c = tab[3, last]
        j += 1
        d0 = j
        v, j = _digits(a, j, n)
        if j >= n or a[j] == 10 or a[j] == 13:
            return reads, k, ordered, n_tab, line, 1, 2
        if a[j] != 9 or j == d0 or j - d0 > 17:
            return reads, k, ordered, n_tab, line, 2, 0
        s = np.int64(v)
        j += 1
        d0 = j
        v, j = _digits(a, j, n)
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
            if (
                q < s_off[c + 1] - so
                and (s >> BUCKET_SHIFT) < b_off[c + 1] - b_off[c] - 1
                and ((e >> SCREEN_SHIFT) != q or (screen[(so + q) >> 3] >> ((so + q) & 7)) & 1)
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
def radix_sort(cand, k, tmp, n_keys):  # pragma: no cover - compiled
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
def count_candidates(cand, k, e_off, edges2, b_off, buckets, shift, h_off, hist):
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
