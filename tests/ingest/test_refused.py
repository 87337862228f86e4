"""Empty and foreign inputs are refused, never accepted silently: one line naming the file
and the likely cause, exit 1, and the store byte-identical afterwards (a new epigenome is
not appended, a rewritten one keeps its marks). Chromosome names match with or without
``chr`` (``MT`` is ``chrM``); other names need ``--chrom-alias``."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore.app.cli import main
from chromestore.genomes import GENOMES, chrom_key, contradiction, read_aliases
from chromestore.ingest import run_ingest
from chromestore.store import open_store
from tests.conftest import RPKM, sheet
from tests.snapshots import snapshot

N = 4000


def _reads(table, seed: int, n: int = N, rename=lambda c: c) -> str:
    """``n`` 36 bp reads within 6 kb of the TSS of the genes of ``table`` (tagAlign text)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, len(table), n)
    start = np.maximum(table["tss"].to_numpy()[g] + rng.integers(-4000, 4000, n), 0)
    chrom = table["chrom"].to_numpy()[g]
    return "".join(
        f"{rename(c)}\t{s}\t{s + 36}\tN\t1000\t+\n" for c, s in zip(chrom, start, strict=True)
    )


def _refseq(chrom: str) -> str:
    key = chrom_key(chrom)
    return f"NC_0000{int(key):02d}.11" if key.isdigit() else f"NC_{key}"


@pytest.fixture(scope="module")
def built(tmp_path_factory, genes40):
    """A store of 40 genes with E003's H3K4me3 and H3K27me3 from tagAligns, and the folder
    of the inputs of the tests."""
    bed, table = genes40
    root = tmp_path_factory.mktemp("refused")
    (root / "a.tagAlign").write_text(_reads(table, 1))
    (root / "b.tagAlign").write_text(_reads(table, 2))
    (root / "good.tagAlign").write_text(_reads(table, 3))
    (root / "nochr.tagAlign").write_text(_reads(table, 3, rename=lambda c: c[3:]))
    (root / "refseq.tagAlign").write_text(_reads(table, 3, rename=_refseq))
    path = root / "base.zarr"
    rows = [("E003", "H3K4me3", "tagAlign", "a.tagAlign"), ("E003", "H3K27me3", "", "b.tagAlign")]
    run_ingest(path, bed, samples=sheet(root, rows), expression=RPKM, cells=["E003"])
    return root, path, table


@pytest.fixture
def store(built, tmp_path):
    path = tmp_path / "s.zarr"
    shutil.copytree(built[1], path)
    return path


def _ingest(store, root, rows, *extra):
    samples = sheet(root, rows, "sheet.csv")
    return CliRunner().invoke(
        main, ["ingest", str(store), "--samples", str(samples), "--workers", "0", *extra]
    )


def _refused(res, store, before, start: str) -> str:
    """The one line of ``res`` (exit 1), which starts with ``start``; the store unchanged."""
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {start}"), res.output
    assert snapshot(store) == before
    return lines[0]


def test_chromosome_names_of_no_annotation_chromosome__refused_naming_them(built, store):
    root, _, _ = built
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me3", "tagAlign", "refseq.tagAlign")])
    line = _refused(res, store, before, f"{root / 'refseq.tagAlign'}: none of 4,000 reads")
    assert "is on a chromosome of the annotation: it names NC_000001.11, NC_000002.11, " in line
    assert "where the annotation names chr1, chr2, chr3, …; pass --chrom-alias FILE" in line


def test_chrom_alias__the_same_file_under_other_names_gives_the_same_signal(built, tmp_path):
    root, base, table = built
    alias = tmp_path / "alias.tsv"
    alias.write_text("".join(f"{_refseq(c)}\t{c}\n" for c in sorted(set(table.chrom))))
    got = {}
    for name, extra in (("good", ()), ("nochr", ()), ("refseq", ("--chrom-alias", alias))):
        store = tmp_path / f"{name}.zarr"
        shutil.copytree(base, store)
        res = _ingest(store, root, [("E004", "H3K4me3", "tagAlign", f"{name}.tagAlign")], *extra)
        assert res.exit_code == 0, res.output
        got[name] = open_store(store).signal.sel(cell="E004", mark="H3K4me3").values
    assert np.nansum(got["good"]) > N  # every read lies in one or two windows' bins
    np.testing.assert_array_equal(got["nochr"], got["good"])
    np.testing.assert_array_equal(got["refseq"], got["good"])


def test_read_aliases__mt_is_chrm_and_a_name_given_two_targets_is_an_error(tmp_path):
    path = tmp_path / "alias.tsv"
    path.write_text("# UCSC chromAlias\nNC_012920.1\tchrM\textra\nCM000663.2\tchr1\n")
    assert read_aliases(path) == {"NC_012920.1": "M", "CM000663.2": "1"}
    assert chrom_key("MT") == chrom_key("chrM") == "M"
    path.write_text("a\tchr1\na\tchr2\n")
    with pytest.raises(Exception, match=r"alias.tsv, line 2: a already names 1 \(line 1\)"):
        read_aliases(path)


def test_empty_tagalign__refused_new_epigenome_not_appended(built, store):
    root, _, _ = built
    (root / "empty.tagAlign").write_text("")
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me3", "tagAlign", "empty.tagAlign")])
    _refused(res, store, before, f"{root / 'empty.tagAlign'}: holds no reads")


def test_reads_on_no_window__refused_as_another_assembly(built, store):
    root, _, table = built
    far = table.assign(tss=table["tss"] + 5_000_000)
    (root / "far.tagAlign").write_text(_reads(far, 4))
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me3", "tagAlign", "far.tagAlign")])
    line = _refused(res, store, before, f"{root / 'far.tagAlign'}: none of 4,000 reads falls")
    assert "is the file of another assembly than the store's (hg19)?" in line


def test_truncated_gzip__refused_new_epigenome_not_appended(built, store):
    root, _, table = built
    data = gzip.compress(_reads(table, 5).encode())
    (root / "cut.tagAlign.gz").write_bytes(data[: len(data) // 2])
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me3", "tagAlign", "cut.tagAlign.gz")])
    _refused(res, store, before, f"{root / 'cut.tagAlign.gz'}")


def test_truncated_gzip_with_expression__no_empty_epigenome_appended(built, store):
    """The issue's case: a new E004 whose file fails, its expression given too."""
    root, _, table = built
    data = gzip.compress(_reads(table, 6).encode())
    (root / "cut2.tagAlign.gz").write_bytes(data[: len(data) // 2])
    before = snapshot(store)
    rows = [("E004", "H3K4me3", "tagAlign", "cut2.tagAlign.gz")]
    res = _ingest(store, root, rows, "--expression", RPKM)
    _refused(res, store, before, f"{root / 'cut2.tagAlign.gz'}: unreadable or truncated gzip")


def test_force_with_a_bad_file__the_rewritten_epigenome_keeps_its_marks(built, store):
    root, _, _ = built
    before = snapshot(store)
    rows = [
        ("E003", "H3K4me3", "tagAlign", "good.tagAlign"),
        ("E003", "H3K27me3", "tagAlign", "none.tagAlign"),
    ]
    (root / "none.tagAlign").write_text("")
    res = _ingest(store, root, rows, "--force")
    _refused(res, store, before, f"{root / 'none.tagAlign'}: holds no reads")


def test_text_named_bam__refused_store_unchanged(built, store):
    pytest.importorskip("pysam")
    root, _, _ = built
    (root / "x.bam").write_text("chr1\t1\t2\n")
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me3", "bam", "x.bam")])
    _refused(res, store, before, f"{root / 'x.bam'}: not a readable BAM file")


def _bigwig(path, table, sizes: dict[str, int], shift: int = 0, rename=lambda c: c) -> None:
    pyBigWig = pytest.importorskip("pyBigWig")
    bw = pyBigWig.open(str(path), "w")
    chroms = sorted(set(table.chrom), key=list(sizes).index)
    bw.addHeader([(rename(c), sizes[c]) for c in chroms])
    for c in chroms:
        last = -1
        for tss in sorted(table.tss[table.chrom == c]):
            if tss + shift > last:  # entries in order, none overlapping
                bw.addEntries(rename(c), [int(tss) + shift], values=[2.5], span=50)
                last = tss + shift + 50
    bw.close()


def _sizes(name: str) -> dict[str, int]:
    genome = next(g for g in GENOMES if g.name == name)
    return {f"chr{k}": v for k, v in genome.sizes.items()}


def test_bigwig_of_the_store_genome__ingested(built, store):
    root, _, table = built
    _bigwig(root / "hg19.bw", table, _sizes("hg19"))
    res = _ingest(store, root, [("E004", "H3K4me1", "bigwig", "hg19.bw")])
    assert res.exit_code == 0, res.output
    values = open_store(store).signal.sel(cell="E004", mark="H3K4me1").values
    assert (values.max(axis=1) > 0).all()  # every TSS is covered
    assert values.max() <= 2.5 and values.sum() > 0


def test_bigwig_of_another_genome__refused_naming_both(built, store):
    root, _, table = built
    _bigwig(root / "grch38.bw", table, _sizes("GRCh38"))
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me1", "bigwig", "grch38.bw")])
    line = _refused(res, store, before, f"{root / 'grch38.bw'}: its chromosome sizes are not")
    assert "store's genome hg19 (chr1 is 248,956,422 bp there and 249,250,621 bp in hg19: " in line
    assert "the file is of GRCh38)" in line


def test_bigwig_of_hg19_into_a_grch38_store__refused_1_style_names_count_as_chr1(
    built, genes40, tmp_path
):
    root, _, table = built
    store = tmp_path / "grch38.zarr"
    made = CliRunner().invoke(
        main, ["ingest", str(store), "--genes", str(genes40[0]), "--genome", "GRCh38"]
    )
    assert made.exit_code == 0, made.output
    _bigwig(root / "hg19.bw", table, _sizes("hg19"))
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me1", "bigwig", "hg19.bw")])
    line = _refused(res, store, before, f"{root / 'hg19.bw'}: its chromosome sizes are not")
    assert "store's genome GRCh38 (chr1 is 249,250,621 bp there and 248,956,422 bp in " in line
    assert "the file is of hg19)" in line
    _bigwig(root / "chr.bw", table, _sizes("GRCh38"))
    _bigwig(root / "one.bw", table, _sizes("GRCh38"), rename=lambda c: c[3:])  # 1, 2, X
    rows = [("E004", "H3K4me1", "bigwig", "chr.bw"), ("E005", "H3K4me1", "bigwig", "one.bw")]
    done = _ingest(store, root, rows)
    assert done.exit_code == 0, done.output
    signal = open_store(store).signal.sel(mark="H3K4me1")
    assert float(signal.sel(cell="E004").sum()) > 0
    np.testing.assert_array_equal(signal.sel(cell="E005").values, signal.sel(cell="E004").values)


def test_bigwig_covering_no_window__refused(built, store):
    root, _, table = built
    _bigwig(root / "far.bw", table, _sizes("hg19"), shift=3_000_000)
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me1", "bigwig", "far.bw")])
    _refused(res, store, before, f"{root / 'far.bw'}: has no value in any window around a TSS")


def test_contradiction__unknown_genome_or_agreeing_sizes_say_nothing():
    assert contradiction({"chr1": 5}, "mm10") is None
    assert contradiction({"1": 249250621, "chrUn_gl000220": 161802}, "GRCh37") is None
    assert contradiction({"chr1": 249250621}, "hg38").startswith("chr1 is 249,250,621 bp there")
    assert contradiction({"chr1": 1_000_000, "chr2": 5}, "hg19") is None  # sized by its data
    assert contradiction({"chr2": 300_000_000}, "hg19") == (
        "chr2 is 300,000,000 bp there, longer than its 243,199,373 bp in hg19"
    )


@pytest.mark.parametrize("value", ["-3.5", "inf", "-inf"])
def test_rpkm_negative_or_infinite__refused_store_unchanged(built, store, tmp_path, value):
    matrix = tmp_path / "rpkm.tsv"
    matrix.write_text(f"gene_id\tE004\nENSG00000000003\t1.5\nENSG00000000005\t{value}\n")
    before = snapshot(store)
    res = CliRunner().invoke(main, ["ingest", str(store), "--expression", str(matrix)])
    _refused(res, store, before, f"{matrix}, line 3: column E004: '{value}' is not an RPKM")


def test_rpkm_nan__stays_not_measured(built, store, tmp_path):
    matrix = tmp_path / "rpkm.tsv"
    matrix.write_text("gene_id\tE004\nENSG00000000003\tnan\nENSG00000000005\t2\n")
    res = CliRunner().invoke(main, ["ingest", str(store), "--expression", str(matrix)])
    assert res.exit_code == 0, res.output


def test_bam_header_of_another_genome__refused(built, store):
    pysam = pytest.importorskip("pysam")
    root, _, table = built
    sizes = _sizes("GRCh38")
    names = sorted(set(table.chrom), key=list(sizes).index)
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": c, "LN": sizes[c]} for c in names]}
    with pysam.AlignmentFile(root / "grch38.bam", "wb", header=header) as out:
        read = pysam.AlignedSegment()
        read.query_name, read.reference_id, read.reference_start = "r", 0, 1000
        read.cigarstring, read.query_sequence = "36M", "A" * 36
        out.write(read)
    before = snapshot(store)
    res = _ingest(store, root, [("E004", "H3K4me3", "bam", "grch38.bam")])
    line = _refused(res, store, before, f"{root / 'grch38.bam'}: its header's chromosome sizes")
    assert "the file is of GRCh38" in line
