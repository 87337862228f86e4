"""Our tagAlign counts against ``bedtools multicov`` on the same reads and bins."""

from __future__ import annotations

import gzip
import shutil
import subprocess

import numpy as np
import pytest

from chromestore.bins import genome_bin_starts
from chromestore.counting import BinLayout, count_bed

pytestmark = pytest.mark.skipif(
    not (shutil.which("bedtools") and shutil.which("samtools")),
    reason="bedtools/samtools not installed (apt-get install bedtools samtools; .ci/run does)",
)


def test_ingest_tagalign__matches_bedtools_multicov(tmp_path, small_genes, rng):
    genes = small_genes  # 300 real genes, their real strands (+, -, and a few unknown)
    assert set(genes.strand) == {"+", "-", "."}
    n = 60_000
    gi = rng.integers(0, len(genes), n)
    chrom = genes.chrom.values.astype(object)[gi]
    start = np.maximum(genes.tss.values[gi] + rng.integers(-5600, 5600, n), 0)
    length = rng.choice([1, 2, 36, 99, 100, 101, 250, 1200], n)
    # reads ending exactly on, or starting exactly at, bin edges
    edge = genes.tss.values[gi] + rng.integers(-50, 50, n) * 100
    start[: n // 4] = edge[: n // 4]
    start[n // 4 : n // 2] = edge[n // 4 : n // 2] - length[n // 4 : n // 2]
    start = np.maximum(start, 0)
    reads = tmp_path / "r.tagAlign.gz"
    with gzip.open(reads, "wt") as fh:
        fh.write(
            "".join(
                f"{c}\t{s}\t{s + w}\tN\t1000\t+\n"
                for c, s, w in zip(chrom, start, length, strict=True)
            )
        )
    # the oracle's bins, written out by hand: bin 0 is 5 kb upstream of the TSS on the
    # gene's strand, i.e. the window's highest 100 bp on the minus strand
    tss = genes.tss.values[:, None]
    b = np.arange(100)[None, :]
    minus = (genes.strand.values == "-")[:, None]
    starts = np.where(minus, tss + 5000 - (b + 1) * 100, tss - 5000 + b * 100)
    np.testing.assert_array_equal(
        starts, genome_bin_starts(genes.tss.values, genes.strand.values, 5000, 100)
    )
    with open(tmp_path / "bins.bed", "w") as fh:
        for g, c in enumerate(genes.chrom.values.astype(object)):
            fh.write("".join(f"{c}\t{s}\t{s + 100}\t{g}\t{b}\n" for b, s in enumerate(starts[g])))
    sizes = {c: int(genes.tss[genes.chrom == c].max()) + 20_000 for c in set(genes.chrom)}
    (tmp_path / "g.txt").write_text("".join(f"{c}\t{s}\n" for c, s in sizes.items()))
    subprocess.run(
        "bedtools bedtobam -i r.tagAlign.gz -g g.txt > r.bam && samtools sort -o s.bam r.bam "
        "&& samtools index s.bam && bedtools multicov -bams s.bam -bed bins.bed > counts.bed",
        shell=True,
        check=True,
        cwd=tmp_path,
    )
    g, b, c = np.loadtxt(tmp_path / "counts.bed", usecols=(3, 4, 5), dtype=np.int64, unpack=True)
    theirs = np.zeros(starts.shape, dtype=np.float32)
    theirs[g, b] = c
    layout = BinLayout.from_genes(genes.chrom, genes.tss, genes.strand, 5000, 100)
    ours, stats = count_bed(reads, layout)
    assert stats.reads == n and theirs.sum() > n
    np.testing.assert_array_equal(ours, theirs)
