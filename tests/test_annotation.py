"""Gene annotations, expression matrices and the 5'→3' bin layout."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pytest

import chromestore
from chromestore.bins import bin_coordinates, genome_bin_starts, to_5to3, to_genome_order
from chromestore.errors import InputError
from chromestore.expression import align_expression, read_rpkm
from chromestore.genes import StrandWarning, strand_counts
from tests.conftest import RPKM


def test_gene_bed__real_gene_list(real_genes):
    assert len(real_genes) == 19802
    first = real_genes.iloc[0]
    assert (first.gene, first.gene_id, first.gene_name) == (
        "ENSG00000000003_TSPAN6",
        "ENSG00000000003",
        "TSPAN6",
    )
    assert first.chrom == "chrX" and first.tss == 99884988 + 10000
    # 7 Ensembl ids appear twice with two symbols: the key stays unique
    assert real_genes.gene_id.duplicated().sum() == 7 and not real_genes.gene.duplicated().any()


def test_gene_bed__shipped_annotation_is_bed6_with_gencode_strands(real_genes):
    # TSPAN6 lies on the minus strand (GENCODE v19), TNMD on the plus strand
    strand = dict(zip(real_genes.gene_name, real_genes.strand, strict=False))
    assert strand["TSPAN6"] == "-" and strand["TNMD"] == "+"
    assert strand_counts(real_genes.strand) == {"+": 9984, "-": 9707, ".": 111}
    # the 7 Ensembl ids listed under two symbols share one window, hence one strand
    dup = real_genes[real_genes.gene_id.duplicated(keep=False)]
    assert dup.groupby("gene_id").strand.nunique().max() == 1


def test_gene_bed__strand_column_plus_minus_and_unknown(tmp_path):
    bed = tmp_path / "g.bed"
    bed.write_text(
        "chr1\t0\t20000\tENSG1_A\t0\t-\nchr2\t100\t20100\tENSG2_B\t0\t+\n"
        "chr3\t0\t20000\tENSG3_C\t0\t.\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a BED6 warns about nothing
        genes = chromestore.read_genes(bed)
    assert list(genes.strand) == ["-", "+", "."] and list(genes.tss) == [10000, 10100, 10000]


def test_gene_bed__bed4_genes_get_unknown_strand_and_one_warning(tmp_path):
    bed = tmp_path / "g4.bed"
    bed.write_text("chr1\t0\t20000\tENSG1_A\nchr2\t100\t20100\tENSG2_B\n")
    with pytest.warns(StrandWarning) as record:
        genes = chromestore.read_genes(bed)
    assert list(genes.strand) == [".", "."]
    assert len(record) == 1
    assert "g4.bed: 2 of 2 genes have no strand column" in str(record[0].message)


def test_gene_bed__bad_strand_names_file_and_line(tmp_path):
    bed = tmp_path / "bad.bed"
    bed.write_text("chr1\t0\t20000\tENSG1_A\t0\t+\nchr1\t0\t20000\tENSG2_B\t0\tminus\n")
    with pytest.raises(InputError, match="bad.bed, line 2: strand .column 6. must be"):
        chromestore.read_genes(bed)


def test_gtf__tss_is_start_on_plus_and_end_on_minus(tmp_path):
    gtf = tmp_path / "a.gtf.gz"
    rows = [
        'chr1\tHAVANA\tgene\t11869\t14409\t.\t+\t.\tgene_id "ENSG00000223972.5"; gene_name "DDX11L1";',
        'chr1\tHAVANA\ttranscript\t11869\t14409\t.\t+\t.\tgene_id "ENSG00000223972.5";',
        'chr1\tHAVANA\tgene\t14404\t29570\t.\t-\t.\tgene_id "ENSG00000227232.5"; gene_name "WASH7P";',
    ]
    with gzip.open(gtf, "wt") as fh:
        fh.write("#!genome-build GRCh37\n" + "\n".join(rows) + "\n")
    genes = chromestore.read_genes(gtf)
    assert list(genes.gene) == ["ENSG00000223972_DDX11L1", "ENSG00000227232_WASH7P"]
    assert list(genes.tss) == [11868, 29569] and list(genes.strand) == ["+", "-"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("chr1\t10\n", "line 2: expected at least 4 columns, found 2"),
        ("chr1\tx\t20\tG_A\n", "line 2: start/end are not integers"),
        ("chr1\t30\t20\tG_A\n", "line 2: end 20 < start 30"),
    ],
)
def test_gene_bed__bad_lines_name_file_and_line(tmp_path, line, message):
    bed = tmp_path / "bad.bed"
    bed.write_text("chr1\t0\t20000\tENSG1_A\n" + line)
    with pytest.raises(InputError, match=f"bad.bed, {message}"):
        chromestore.read_genes(bed)


def test_minus_strand_bins__come_out_reversed():
    starts = genome_bin_starts(np.array([10_000, 10_000]), np.array(["+", "-"]), 5000, 100)
    assert starts.shape == (2, 100)
    assert starts[0, 0] == 5000 and starts[0, -1] == 14_900  # + : 5' = lower coordinates
    assert starts[1, 0] == 14_900 and starts[1, -1] == 5000  # - : 5' = higher coordinates
    np.testing.assert_array_equal(starts[1], starts[0][::-1])
    values = np.arange(200).reshape(2, 100)
    back = to_genome_order(values, np.array(["+", "-"]))
    np.testing.assert_array_equal(back[0], values[0])
    np.testing.assert_array_equal(back[1], values[1][::-1])


def test_unknown_strand_bins__stay_in_genome_order():
    starts = genome_bin_starts(np.array([10_000]), np.array(["."]), 5000, 100)
    assert starts[0, 0] == 5000 and starts[0, -1] == 14_900
    values = np.arange(300).reshape(3, 1, 100)  # gene, mark, bin
    out = to_5to3(values, np.array(["+", "-", "."]))
    np.testing.assert_array_equal(out[[0, 2]], values[[0, 2]])
    np.testing.assert_array_equal(out[1, 0], values[1, 0, ::-1])
    np.testing.assert_array_equal(to_genome_order(out, np.array(["+", "-", "."])), values)


def test_bin_coordinates__of_a_store(tmp_path, small_genes):
    ds = chromestore.create_store(tmp_path / "s.zarr", small_genes)
    coords = bin_coordinates(ds)
    g_plus, g_minus = small_genes.iloc[1], small_genes.iloc[0]
    assert int(coords.sel(gene=g_plus.gene)[0]) == g_plus.tss - 5000
    assert int(coords.sel(gene=g_minus.gene)[0]) == g_minus.tss + 4900


def test_rpkm__real_matrix():
    m = read_rpkm(RPKM)
    assert m.shape == (19795, 56) and m.columns[0] == "E003" and m.columns[-1] == "E128"
    assert m.loc["ENSG00000000003", "E003"] == pytest.approx(43.985)


def test_rpkm__join_reports_missing_genes(real_genes):
    m = read_rpkm(RPKM).drop(index=["ENSG00000000003", "ENSG00000062370"])
    aligned = align_expression(m, real_genes.gene_id.to_numpy(), ["E003", "E004"])
    assert aligned.values.shape == (2, 19802)
    # the dropped duplicated id stands for two store genes (ZFP112 and ZNF285)
    assert len(aligned.missing_genes) == 3 and np.isnan(aligned.values).sum() == 6
    assert "3 absent from the matrix" in aligned.summary()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("gene_id\tE003\nENSG1\tabc\n", "bad.tsv, line 2: column E003: 'abc' is not a number"),
        ("gene_id\tE003\nENSG1\t1\t2\n", "bad.tsv, line 2: expected 2 columns, found 3"),
        ("id\tE003\nENSG1\t1\n", "bad.tsv, line 1: expected a header"),
        ("gene_id\tE003\nENSG1\t1\nENSG1\t2\n", "bad.tsv, line 3: gene id .ENSG1. appears twice"),
    ],
)
def test_rpkm__bad_values_name_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.tsv"
    path.write_text(body)
    with pytest.raises(InputError, match=message):
        read_rpkm(path)


def test_rpkm__every_value_reads_as_numpy_reads_it(tmp_path):
    """The fast parser gives each value exactly numpy's float32 of its text."""
    rng = np.random.default_rng(0)
    x = rng.random(3000) * 10.0 ** rng.integers(-8, 8, 3000)
    texts = [t for v in x for t in (repr(float(v)), f"{v:.7g}", f"{v:.9g}", f"{v:.3e}")]
    texts += ["0", "12", "1e3", ".5", "5.", "nan", "NaN", "+3", "7"]
    n = len(texts) // 4 * 4
    rows = np.array(texts[:n]).reshape(-1, 4)
    path = tmp_path / "r.tsv"
    lines = ["gene_id\tE003\tE004\tE005\tE006"]
    lines += [f"ENSG{i}\t" + "\t".join(r) for i, r in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    got = read_rpkm(path)
    np.testing.assert_array_equal(got.to_numpy(), rows.astype(np.float32))


def test_rpkm__truncated_gzip_is_clear(tmp_path):
    data = gzip.compress(RPKM.read_bytes()[:0] + b"gene_id\tE003\n" + b"ENSG1\t1\n" * 5000)
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.tsv.gz: unreadable or truncated gzip"):
        read_rpkm(path)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(InputError, match="nope.tsv: file not found"):
        read_rpkm(tmp_path / "nope.tsv")
