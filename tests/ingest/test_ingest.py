"""Ingestion of every format through the samplesheet engine, on real genes and counts."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from chromestore import open_store
from chromestore import store as S
from chromestore.bins import genome_bin_starts
from chromestore.errors import InputError, SchemaError
from chromestore.formats import read_deepchrome_csv, read_deepdiff_csv
from chromestore.genomes import GENOMES, chrom_key
from chromestore.ingest import read_samplesheet, run_ingest
from chromestore.store import records
from tests.conftest import E003, GENES_BED, RPKM, TOY, sheet, store_digest

MARKS = ["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"]


@pytest.fixture(scope="module")
def e003_counts() -> xr.DataArray:
    """The 600 real E003 genes' counts (gene, mark, 200 bins), in gene-list order."""
    parts = [read_deepdiff_csv(E003 / f"E003.{s}.csv") for s in ("train", "valid", "test")]
    return xr.concat(parts, dim="gene")


@pytest.fixture(scope="module")
def genes_bed(tmp_path_factory, e003_counts) -> tuple[str, pd.DataFrame]:
    """A BED6 of the 600 genes at their real coordinates; every third on the minus strand."""
    from chromestore.genes import read_gene_bed

    real = read_gene_bed(GENES_BED).set_index("gene")
    genes = real.loc[e003_counts.gene.values.astype(object)].reset_index()
    genes["strand"] = np.where(genes.index % 3 == 0, "-", "+")
    path = tmp_path_factory.mktemp("genes") / "genes.bed"
    with open(path, "w") as fh:
        for g in genes.itertuples():
            fh.write(f"{g.chrom}\t{g.tss - 10000}\t{g.tss + 10000}\t{g.gene}\t0\t{g.strand}\n")
    return str(path), genes


def reads_from_counts(genes: pd.DataFrame, counts: np.ndarray, rng, bin_size=100, window=5000):
    """Reads inside single bins, as many per (gene, bin) as ``counts`` (5'→3') says.

    Returns (chrom, start, end) arrays; half the chromosome names lose their ``chr``.
    """
    starts = genome_bin_starts(genes.tss.values, genes.strand.values, window, bin_size)
    n = counts.astype(np.int64)
    gi, bi = np.nonzero(n)
    reps = n[gi, bi]
    gi, bi = np.repeat(gi, reps), np.repeat(bi, reps)
    length = rng.integers(1, 60, len(gi))
    s = starts[gi, bi] + rng.integers(0, bin_size - 60, len(gi))
    chrom = genes.chrom.values.astype(object)[gi]
    strip = rng.random(len(gi)) < 0.5
    chrom[strip] = [c[3:] for c in chrom[strip]]
    order = rng.permutation(len(gi))
    return chrom[order], s[order], s[order] + length[order]


def write_tagalign(path, chrom, start, end, extra=()):
    lines = [f"{c}\t{a}\t{b}\tN\t1000\t+\n" for c, a, b in zip(chrom, start, end, strict=True)]
    lines += list(extra)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as fh:
        fh.write("".join(lines))


def isolated(genes: pd.DataFrame, window=5000) -> np.ndarray:
    """Genes whose ±window overlaps no other gene's window (reads there count once)."""
    ok = np.ones(len(genes), dtype=bool)
    for _, grp in genes.groupby("chrom"):
        t = grp.tss.to_numpy()
        close = (np.abs(t[:, None] - t[None, :]) < 2 * window).sum(axis=1) > 1
        ok[grp.index[close]] = False
    return ok


@pytest.fixture
def store(tmp_path, genes_bed):
    path = tmp_path / "s.zarr"
    run_ingest(path, genes_bed[0], gene_chunk=128)
    return path


# --- real counts ------------------------------------------------------------------


def test_ingest_deepdiff_csv__exact_values_centre_100_bins(tmp_path, store, e003_counts):
    rows = [
        ("E003", "", "deepdiff-csv", str(E003 / f"E003.{s}.csv"))
        for s in ("train", "valid", "test")
    ]
    with pytest.raises(InputError, match="duplicate"):  # three files, same cell: all marks twice
        read_samplesheet(sheet(tmp_path, rows))
    run_ingest(store, samples=sheet(tmp_path, rows[:1]))
    ds = open_store(store)
    # the file is in genome order; the store holds bins 5'→3' on the store's strands
    strand = pd.Series(ds.gene_strand.values.astype(object), index=ds.gene.values.astype(object))
    first = read_deepdiff_csv(E003 / "E003.train.csv", strand)
    got = ds.signal.sel(cell="E003", gene=first.gene.values).transpose("gene", "mark", "bin")
    np.testing.assert_array_equal(got.values, first.sel(mark=MARKS).values[:, :, 50:150])
    genome = read_deepdiff_csv(E003 / "E003.train.csv", pd.Series(dtype=object))
    minus = strand.loc[first.gene.values.astype(object)].to_numpy() == "-"
    assert minus.any() and (~minus).any()
    np.testing.assert_array_equal(
        got.values[minus], genome.sel(mark=MARKS).values[minus][:, :, 149:49:-1]
    )
    assert records.completed(ds) == {("E003", m) for m in MARKS}
    others = ~ds.gene.isin(first.gene.values).values
    assert np.isnan(ds.signal.sel(cell="E003").values[others]).all()


def test_ingest_tagalign__reads_from_real_counts_rebin_exactly(
    tmp_path, store, genes_bed, e003_counts, rng
):
    _, genes = genes_bed
    rows = []
    for mark in ("H3K4me3", "H3K9me3"):
        counts = e003_counts.sel(mark=mark).values[:, 50:150]
        chrom, s, e = reads_from_counts(genes, counts, rng)
        extra = ["chrUn_gl000220\t10\t46\tN\t1000\t+\n"] * 3
        write_tagalign(tmp_path / f"{mark}.tagAlign.gz", chrom, s, e, extra)
        rows.append(("E003", mark, "", f"{mark}.tagAlign.gz"))
    report = run_ingest(store, samples=sheet(tmp_path, rows))
    ds = open_store(store)
    ok = isolated(genes)
    assert ok.sum() > 400
    for mark in ("H3K4me3", "H3K9me3"):
        want = e003_counts.sel(mark=mark).values[:, 50:150]
        got = ds.signal.sel(cell="E003", mark=mark).values
        np.testing.assert_array_equal(got[ok], want[ok])
        assert (got[~ok] >= want[~ok]).all()  # neighbours' reads add to overlapping windows
        prov = records.provenance(ds)[("E003", mark)]
        assert prov["reads"] == want.sum() + 3
        assert prov["skipped_chromosomes"] == {"chrUn_gl000220": 3}
    assert "chrUn_gl000220 3" in str(report)
    assert np.isnan(ds.signal.sel(cell="E003", mark="H3K27me3").values).all()


def test_ingest_deepchrome_toy__folder_matches_by_gene_id(tmp_path):
    path = tmp_path / "toy.zarr"
    rows = [("E003", "", "deepchrome-csv", str(TOY))]
    run_ingest(path, GENES_BED, samples=sheet(tmp_path, rows), gene_chunk=4096)
    ds = open_store(path)
    sig, labels = read_deepchrome_csv(TOY)
    ids = ds.gene_id.values.astype(object)
    first = {g: i for i, g in reversed(list(enumerate(ids)))}
    idx = np.array([first[g] for g in sig.gene.values.astype(object)])
    got = ds.signal.sel(cell="E003").isel(gene=idx).transpose("gene", "mark", "bin")
    np.testing.assert_array_equal(got.values, sig.sel(mark=MARKS).values)
    filled = np.isfinite(ds.signal.sel(cell="E003").values).all(axis=(1, 2))
    assert filled.sum() == np.isin(ids, sig.gene.values.astype(object)).sum() >= len(idx)


def test_ingest_bigwig__exact_per_bin_means(tmp_path, store, genes_bed, rng):
    pyBigWig = pytest.importorskip("pyBigWig")
    _, genes = genes_bed
    chroms = sorted(set(genes.chrom))
    tested = genes[isolated(genes)].iloc[::5].sort_values(["chrom", "tss"])
    path = tmp_path / "x.bw"
    bw = pyBigWig.open(str(path), "w")
    sizes = next(g for g in GENOMES if g.name == "hg19").sizes  # the store's genome
    bw.addHeader([(c, sizes[chrom_key(c)]) for c in chroms])
    truth = {}
    for g in tested.itertuples():
        # piecewise-constant signal in 25 bp steps over the window ± 50 bp, with gaps
        lo = g.tss - 5050
        v = rng.integers(0, 8, 10100 // 25).astype(np.float64) / 4
        keep = rng.random(len(v)) > 0.2
        pos = lo + 25 * np.flatnonzero(keep)
        bw.addEntries(g.chrom, pos.tolist(), values=v[keep].tolist(), span=25)
        truth[g.Index] = (lo, np.repeat(np.where(keep, v, 0.0), 25))
    bw.close()
    run_ingest(store, samples=sheet(tmp_path, [("E003", "H3K4me1", "", "x.bw")]))
    ds = open_store(store)
    got = ds.signal.sel(cell="E003", mark="H3K4me1").values
    starts = genome_bin_starts(genes.tss.values, genes.strand.values, 5000, 100)
    for i, (lo, sig) in truth.items():
        want = [sig[s - lo : s - lo + 100].mean() for s in starts[i]]
        np.testing.assert_allclose(got[i], want, rtol=1e-6)
    assert len(truth) > 50


@pytest.mark.parametrize(
    "fmt, name",
    [
        ("narrowpeak", "p.narrowPeak.gz"),
        ("broadpeak", "p.broadPeak.gz"),
        ("gappedpeak", "p.gappedPeak.gz"),
        # ENCODE's downloads: "bed narrowPeak" files named ENCFF….bed.gz, format left empty
        ("narrowpeak", "ENCFF000AAA.bed.gz"),
        ("broadpeak", "ENCFF000AAB.bed.gz"),
    ],
)
def test_ingest_peaks__peak_max_is_max_overlapping_signal(tmp_path, store, genes_bed, fmt, name):
    _, genes = genes_bed
    g0, g1 = genes.iloc[1], genes.iloc[2]
    col = 12 if fmt == "gappedpeak" else 6
    ncol = {"narrowpeak": 10, "broadpeak": 9, "gappedpeak": 15}[fmt]

    def line(chrom, s, e, value):
        f = [chrom, str(s), str(e), "p", "0", "."] + ["0"] * (ncol - 6)
        f[col] = str(value)
        return "\t".join(f) + "\n"

    lines = [
        line(g0.chrom, g0.tss - 5000 - 300, g0.tss - 5000 + 1, 7.5),  # 1 bp inside
        line(g0.chrom, g0.tss, g0.tss + 200, 3.25),
        line(g0.chrom, g0.tss + 5000, g0.tss + 5200, 99.0),  # touches the end: outside
        line(g1.chrom[3:], g1.tss - 20, g1.tss + 20, 2.0),  # without "chr"
        line("chrUn_x", 0, 100, 50.0),
    ]
    (tmp_path / name).write_bytes(gzip.compress("".join(lines).encode()))
    samples = sheet(tmp_path, [("E003", "H3K4me3", "", name)])
    assert [s.format for s in read_samplesheet(samples)] == [fmt]
    run_ingest(store, samples=samples)
    ds = open_store(store)
    pm = ds.peak_max.sel(cell="E003", mark="H3K4me3").values
    near = np.abs(genes.tss.values - g0.tss) < 5000 + 5000
    assert pm[1] == 7.5 and pm[2] == 2.0
    assert (pm[~near & (genes.chrom.values != g1.chrom)] == 0).all()
    assert np.isnan(ds.peak_max.sel(cell="E003", mark="H3K9me3").values).all()
    assert records.provenance(ds, "peak_max")[("E003", "H3K4me3")]["skipped_chromosomes"] == {
        "chrUn_x": 1
    }
    assert records.completed(ds) == set()  # peaks are not signal


def test_samplesheet__reads_in_bed_files_stay_reads(tmp_path):
    """Only a peak file's layout (its column count, numbers in its peak columns) makes a
    ``.bed`` file peaks: BED3/BED6 reads, a BED12, or a 10-column file with words there
    stay reads."""
    rows = {
        "r3.bed": "chr1\t100\t136\n",
        "r6.bed.gz": "track name=x\nchr1\t100\t136\tN\t1000\t+\n",
        "r12.bed": "\t".join(["chr1", "1", "9", "n", "0", "+", "1", "9", "0", "1", "8", "0"]),
        "r10.bed": "\t".join(["chr1", "1", "9", "n", "0", "+", "a", "b", "c", "d"]),
    }
    for name, text in rows.items():
        data = text.encode()
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    for i, name in enumerate(rows):
        sheet_path = sheet(tmp_path, [("E003", "H3K4me3", "", name)], f"s{i}.csv")
        assert [s.format for s in read_samplesheet(sheet_path)] == ["bed"], name


def test_ingest_bam__matches_tagalign_counts(tmp_path, store, genes_bed, e003_counts, rng):
    pysam = pytest.importorskip("pysam")
    _, genes = genes_bed
    chrom, s, e = reads_from_counts(genes, e003_counts.sel(mark="H3K36me3").values[:, 50:150], rng)
    chrom = np.array(["chr" + c if not c.startswith("chr") else c for c in chrom], dtype=object)
    write_tagalign(tmp_path / "r.tagAlign", chrom, s, e)
    names = sorted(set(chrom))
    sizes = next(g for g in GENOMES if g.name == "hg19").sizes  # the store's genome
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": c, "LN": sizes[chrom_key(c)]} for c in names]}
    with pysam.AlignmentFile(tmp_path / "r.bam", "wb", header=header) as out:
        for i, (c, a, b) in enumerate(zip(chrom, s, e, strict=True)):
            r = pysam.AlignedSegment(out.header)
            r.query_name, r.reference_id, r.reference_start = f"r{i}", names.index(c), int(a)
            r.cigarstring, r.mapping_quality = f"{b - a}M", 30
            r.query_sequence = "A" * int(b - a)
            out.write(r)
        for flag in (0x4 | 0x0, 0x100, 0x200, 0x400):  # skipped like multicov does
            r = pysam.AlignedSegment(out.header)
            r.query_name, r.reference_id, r.reference_start = f"f{flag}", 0, int(s[0])
            r.cigarstring, r.query_sequence, r.flag = "30M", "A" * 30, flag
            out.write(r)
    rows = [("E003", "H3K36me3", "", "r.tagAlign"), ("E003", "H3K4me1", "", "r.bam")]
    run_ingest(store, samples=sheet(tmp_path, rows))
    ds = open_store(store)
    tag = ds.signal.sel(cell="E003", mark="H3K36me3").values
    np.testing.assert_array_equal(ds.signal.sel(cell="E003", mark="H3K4me1").values, tag)
    assert records.provenance(ds)[("E003", "H3K4me1")]["reads"] == len(s)


# --- bad input: message, and the store left untouched ----------------------------------


@pytest.fixture
def used_store(tmp_path, store, genes_bed, e003_counts, rng):
    """The store with E003 H3K4me3 ingested from a tagAlign (something to keep intact)."""
    chrom, s, e = reads_from_counts(
        genes_bed[1], e003_counts.sel(mark="H3K9me3").values[:, 50:150], rng
    )
    write_tagalign(tmp_path / "good.tagAlign.gz", chrom, s, e)
    run_ingest(
        store, samples=sheet(tmp_path, [("E003", "H3K4me3", "", "good.tagAlign.gz")], "good.csv")
    )
    return store


def _bad_file(tmp_path, name, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GOOD = "chr1\t1000\t1036\tN\t1000\t+\n"
BAD_FILES = [
    ("too-few.tagAlign", GOOD + "chr1\t1000\n", "line 2: expected at least 3 columns, found 2"),
    (
        "not-int.tagAlign",
        GOOD * 2 + "chr1\t10x0\t1036\tN\t1000\t+\n",
        "line 3: start is not a non-negative integer",
    ),
    ("not-int-end.bed", GOOD + "chr1\t1000\t1e3\n", "line 2: end is not a non-negative integer"),
    ("end-before.tagAlign", GOOD + "chr1\t1000\t999\tN\t1000\t+\n", "line 2: end < start"),
    (
        "truncated.tagAlign.gz",
        gzip.compress((GOOD * 5000).encode())[:-200],
        "unreadable or truncated gzip",
    ),
    ("not-gzip.tagAlign.gz", b"\x1f\x8b" + b"garbage" * 10, "unreadable or truncated gzip"),
    ("short.csv", "ENSG00000000003_TSPAN6_1,0,1,1,0\n", "line 1: expected 6 columns, found 5"),
    (
        "narrow.csv",
        "".join(f"ENSG00000000003_TSPAN6_{b},0,1,1,0,2\n" for b in range(1, 51)),
        "has 50 bins per gene, the store needs 100",
    ),
]


@pytest.mark.parametrize("name, text, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_ingest_bad_file__names_file_and_line_and_leaves_store_untouched(
    tmp_path, used_store, name, text, message
):
    path = _bad_file(tmp_path, name, text)
    fmt = "deepdiff-csv" if name.endswith(".csv") else ""
    mark = "" if fmt else "H3K27me3"
    rows = [("E003", mark, fmt, name)]
    if not fmt:  # a good file of the same cell in the same run is not written either
        rows.append(("E003", "H3K9me3", "", "good.tagAlign.gz"))
    before = store_digest(used_store)
    with pytest.raises(InputError, match=message) as e:
        run_ingest(used_store, samples=sheet(tmp_path, rows))
    assert str(path) in str(e.value)
    assert store_digest(used_store) == before
    assert records.completed(open_store(used_store)) == {("E003", "H3K4me3")}


BAD_SHEETS = [
    ([("E003", "H3K27me3", "", "missing.tagAlign.gz")], "missing.tagAlign.gz: file not found"),
    ([("E003", "H3K27me3", "wig", "good.tagAlign.gz")], "line 2: unknown format 'wig'"),
    ([("E003", "H3K27me3", "", "good.txt")], "line 2: unknown format 'good.txt'"),
    ([("E003", "", "", "good.tagAlign.gz")], "line 2: format tagalign needs a mark"),
    (
        [("E003", "H3K27me3", "", "good.tagAlign.gz")] * 2,
        r"line 3: duplicate \(E003, H3K27me3\) for signal, first on line 2",
    ),
    ([("E003", "H3K99", "", "good.tagAlign.gz")], "line 2: mark 'H3K99' is not in the store"),
]


@pytest.mark.parametrize("rows, message", BAD_SHEETS, ids=[m[:20] for _, m in BAD_SHEETS])
def test_ingest_bad_samplesheet__message_and_store_untouched(tmp_path, used_store, rows, message):
    (tmp_path / "good.txt").write_text(GOOD)
    before = store_digest(used_store)
    with pytest.raises(InputError, match=message):
        run_ingest(used_store, samples=sheet(tmp_path, rows, "bad.csv"))
    assert store_digest(used_store) == before


def test_ingest_bad_rpkm__message_and_store_untouched(tmp_path, used_store):
    bad = _bad_file(tmp_path, "rpkm.tsv", "gene_id\tE003\nENSG00000000003\t1.5\nENSG1\tn/a\n")
    before = store_digest(used_store)
    rows = [("E003", "H3K27me3", "", "good.tagAlign.gz")]
    with pytest.raises(InputError, match=r"rpkm.tsv, line 3: column E003: 'n/a' is not a number"):
        run_ingest(used_store, samples=sheet(tmp_path, rows), expression=bad)
    assert store_digest(used_store) == before


def test_cli_ingest__bad_input_is_one_line_and_nonzero(tmp_path, used_store):
    from click.testing import CliRunner

    from chromestore.app.cli import main

    _bad_file(tmp_path, "e.tagAlign", GOOD + "chr1\t5\t4\n")
    rows = [("E003", "H3K27me3", "", "e.tagAlign")]
    res = CliRunner().invoke(
        main, ["--workers", "0", "ingest", str(used_store), "--samples", str(sheet(tmp_path, rows))]
    )
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'e.tagAlign'}, line 2: end < start"
    )


# --- resume, append, Dask ----------------------------------------------------------------


def _cells_sheet(tmp_path, genes, counts, rng, cells, name):
    rows = []
    for i, cell in enumerate(cells):
        scale = 1 + i % 3
        chrom, s, e = reads_from_counts(genes, counts * scale, rng)
        write_tagalign(tmp_path / f"{cell}.tagAlign.gz", chrom, s, e)
        rows.append((cell, "H3K4me3", "", f"{cell}.tagAlign.gz"))
    return sheet(tmp_path, rows, name)


def _cell_chunks(path, cell_index: int) -> dict[str, str]:
    return {
        k: v
        for k, v in store_digest(path).items()
        if f"{os.sep}c{os.sep}{cell_index}{os.sep}" in k or k.endswith(f"c{os.sep}{cell_index}")
    }


def test_ingest_append__second_epigenome_leaves_first_byte_identical(
    tmp_path, store, genes_bed, e003_counts, rng
):
    counts = e003_counts.sel(mark="H3K9me3").values[:, 50:150]
    run_ingest(store, samples=_cells_sheet(tmp_path, genes_bed[1], counts, rng, ["E003"], "a.csv"))
    first = _cell_chunks(store, 0)
    assert any("signal" in k for k in first)
    run_ingest(store, samples=_cells_sheet(tmp_path, genes_bed[1], counts, rng, ["E004"], "b.csv"))
    ds = open_store(store)
    assert list(ds.cell.values.astype(object)) == ["E003", "E004"]
    assert _cell_chunks(store, 0) == first
    ok = isolated(genes_bed[1])
    for cell in ("E003", "E004"):
        np.testing.assert_array_equal(
            ds.signal.sel(cell=cell, mark="H3K4me3").values[ok], counts[ok]
        )


@pytest.mark.slow
def test_ingest_resume__killed_run_rerun_equals_uninterrupted(
    tmp_path, genes_bed, e003_counts, rng
):
    counts = e003_counts.sel(mark="H3K9me3").values[:, 50:150]
    cells = [f"E{i:03d}" for i in range(3, 9)]
    samples = _cells_sheet(tmp_path, genes_bed[1], counts, rng, cells, "s.csv")
    ref, resumed = tmp_path / "ref.zarr", tmp_path / "resumed.zarr"
    run_ingest(ref, genes_bed[0], samples)

    def cmd(path):
        return [
            sys.executable,
            "-m",
            "chromestore.app.cli",
            "--workers",
            "0",
            "ingest",
            str(path),
            "--genes",
            genes_bed[0],
            "--samples",
            str(samples),
            "--no-progress",
        ]

    def completed_any() -> bool:
        with warnings.catch_warnings():  # being created: zarr meets a group not yet there
            warnings.simplefilter("ignore")
            try:
                return S.exists(resumed) and bool(records.completed(S.open_store(resumed)))
            except SchemaError:  # being created: not every array is there yet
                return False

    proc = subprocess.Popen(cmd(resumed), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None:
            if completed_any():
                proc.kill()
                break
    finally:
        proc.wait()
    assert proc.returncode != 0, "the ingest finished before it could be interrupted"
    n_done = len(records.completed(S.open_store(resumed)))
    assert 1 <= n_done < len(cells)
    out = subprocess.run(cmd(resumed), capture_output=True, text=True, check=True).stdout
    assert f"{n_done} of {len(cells)} files already ingested" in out
    a, b = open_store(ref), open_store(resumed)
    np.testing.assert_array_equal(a.signal.values, b.signal.values)
    assert records.completed(a) == records.completed(b)


def test_cli_ingest__on_a_local_dask_cluster_matches_in_process(
    tmp_path, genes_bed, e003_counts, rng
):
    from click.testing import CliRunner

    from chromestore.app.cli import main

    counts = e003_counts.sel(mark="H3K9me3").values[:, 50:150]
    samples = _cells_sheet(tmp_path, genes_bed[1], counts, rng, ["E003", "E004", "E005"], "s.csv")
    with open(samples, "a") as fh:
        fh.write(f"E006,,deepdiff-csv,{E003 / 'E003.train.csv'}\n")
    res = CliRunner().invoke(
        main,
        [
            "--workers",
            "2",
            "ingest",
            str(tmp_path / "d.zarr"),
            "--genes",
            genes_bed[0],
            "--samples",
            str(samples),
            "--expression",
            str(RPKM),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "ingested 8 (cell, mark)" in res.output
    run_ingest(tmp_path / "p.zarr", genes_bed[0], samples, RPKM)
    a, b = open_store(tmp_path / "d.zarr"), open_store(tmp_path / "p.zarr")
    assert records.completed(a) == records.completed(b) and len(records.completed(a)) == 8
    # new epigenomes are appended as their files finish: on a cluster, in any order
    a, b = a.sortby("cell"), b.sortby("cell")
    np.testing.assert_array_equal(a.cell.values, b.cell.values)
    np.testing.assert_array_equal(a.signal.values, b.signal.values)
    np.testing.assert_array_equal(a.expression.values, b.expression.values)
    assert np.isfinite(a.expression.sel(cell="E006").values).sum() >= 590
