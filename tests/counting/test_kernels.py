"""The compiled tagAlign kernel (screen, bucket sort, edge ranks) against the plain numpy
path (``ReadCounter.add``: searchsorted over merged windows and edges) on awkward reads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from chromestore.bins import genome_bin_starts
from chromestore.counting import BinLayout, ReadCounter, count_bed


def awkward_reads(genes, rng, n, window, bin_size):
    """Reads near the genes: on bin edges and window boundaries, empty ones, long ones,
    ones past every window, at 0, and on chromosomes the layout does not know."""
    gi = rng.integers(0, len(genes), n)
    chrom = genes.chrom.values.astype(object)[gi].copy()
    tss = genes.tss.values[gi]
    length = rng.choice([0, 1, 2, 36, bin_size - 1, bin_size, bin_size + 1, 5000, 30_000], n)
    start = tss + rng.integers(-window - 3 * bin_size, window + 3 * bin_size, n)
    edge = tss + rng.integers(-window // bin_size - 2, window // bin_size + 2, n) * bin_size
    q = n // 6
    start[:q] = edge[:q]  # starting on an edge
    start[q : 2 * q] = edge[q : 2 * q] - length[q : 2 * q]  # ending on an edge
    start[2 * q : 3 * q] = edge[2 * q : 3 * q] + rng.integers(-1, 2, q)  # around an edge
    start[3 * q : 3 * q + 50] = 0
    start[3 * q + 50 : 3 * q + 100] = 3_000_000_000  # past every window
    start = np.maximum(start, 0)
    end = start + length
    chrom[-200:-100] = "chrUn_gl000220"  # not in the layout
    chrom[-100:] = [("Chr" if i % 2 else "CHR") + c[3:] for i, c in enumerate(chrom[-100:])]
    chrom[:500] = [c[3:] for c in chrom[:500]]  # without "chr"
    return chrom, start, end


def reference(layout, chrom, start, end):
    counter = ReadCounter(layout)
    for c in dict.fromkeys(chrom):
        sel = chrom == c
        counter.add(c, start[sel], end[sel])
    return counter.counts(), counter.stats


@pytest.mark.parametrize("window,bin_size", [(5000, 100), (40_000, 8000), (2000, 7)])
@pytest.mark.parametrize("order", ["unsorted", "sorted"])
def test_count_bed__equals_numpy_path_on_awkward_reads(
    tmp_path, small_genes, rng, window, bin_size, order
):
    genes = small_genes
    chrom, start, end = awkward_reads(genes, rng, 40_000, window, bin_size)
    if order == "sorted":
        o = np.lexsort((start, chrom.astype(str)))
        chrom, start, end = chrom[o], start[o], end[o]
    path = tmp_path / "r.tagAlign"
    with open(path, "w") as fh:
        fh.write("track name=x\n# comment\n\n")
        fh.write(
            "".join(
                f"{c}\t{s}\t{e}\tN\t1000\t+\n" for c, s, e in zip(chrom, start, end, strict=True)
            )
        )
        fh.write(f"{chrom[0]}\t{start[0]}\t{end[0]}")  # no final newline
    chrom, start, end = (
        np.append(chrom, chrom[0]),
        np.append(start, start[0]),
        np.append(end, end[0]),
    )
    layout = BinLayout.from_genes(genes.chrom, genes.tss, genes.strand, window, bin_size)
    want, want_stats = reference(layout, chrom, start, end)
    assert want.sum() > 0 and 0 < want_stats.in_windows < len(chrom)
    for block in (1 << 20, 4096, 100):  # lines split across blocks, a line longer than one
        got, stats = count_bed(path, layout, block_bytes=block)
        np.testing.assert_array_equal(got, want)
        assert (stats.reads, stats.in_windows, stats.skipped) == (
            want_stats.reads,
            want_stats.in_windows,
            want_stats.skipped,
        )
    assert stats.skipped == {"chrUn_gl000220": 100}


def test_count_bed__read_in_every_bin_it_overlaps(tmp_path, small_genes):
    """Brute force on a few genes: a read counts in bin [a, b) iff start < b and end > a."""
    genes = small_genes.iloc[:5]
    layout = BinLayout.from_genes(genes.chrom, genes.tss, genes.strand, 500, 100)
    starts = genome_bin_starts(genes.tss.values, genes.strand.values, 500, 100)
    rng = np.random.default_rng(1)
    gi = rng.integers(0, 5, 3000)
    s = genes.tss.values[gi] + rng.integers(-700, 700, 3000)
    e = s + rng.integers(0, 300, 3000)
    c = genes.chrom.values.astype(object)[gi]
    path = tmp_path / "r.bed"
    path.write_text("".join(f"{a}\t{b}\t{d}\n" for a, b, d in zip(c, s, e, strict=True)))
    got, _ = count_bed(path, layout)
    want = np.zeros(starts.shape, np.float32)
    for g in range(5):
        on = c == genes.chrom.values[g]
        for b in range(starts.shape[1]):
            want[g, b] = np.sum(on & (s < starts[g, b] + 100) & (e > starts[g, b]))
    np.testing.assert_array_equal(got, want)


def test_layout__pickles_without_cached_tables(small_genes, tmp_path):
    genes = small_genes
    layout = BinLayout.from_genes(genes.chrom, genes.tss, genes.strand, 5000, 100)
    (tmp_path / "r.bed").write_text(f"{genes.chrom[0]}\t{genes.tss[0]}\t{genes.tss[0] + 36}\n")
    before = count_bed(tmp_path / "r.bed", layout)[0]
    assert "_kernel" in layout.__dict__
    copy = pickle.loads(pickle.dumps(layout))
    assert "_kernel" not in copy.__dict__
    np.testing.assert_array_equal(count_bed(tmp_path / "r.bed", copy)[0], before)


def test_kernels__no_out_of_bounds_access_under_numba_boundscheck(tmp_path):
    """The compiled kernels index nothing out of bounds: this file's tests again with
    numba's bounds checks on (a fresh cache, so they are compiled with them). A read past
    the last window of the last chromosome once indexed past the bucket table."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "nb")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            __file__,
            "-k",
            "not boundscheck",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:]
