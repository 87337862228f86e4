from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from chromestore import open_store
from chromestore.bins import to_genome_order
from chromestore.errors import InputError
from chromestore.formats import (
    centre_crop,
    deepchrome_gene_id,
    read_deepchrome_csv,
    read_deepdiff_csv,
)
from chromestore.genes import reference_strands
from tests.conftest import E003, TOY


def _rows(path):
    return [line.rstrip("\n").split(",") for line in open(path)]


def test_read_deepdiff_csv__values_and_mark_order_match_the_file():
    sig = read_deepdiff_csv(E003 / "E003.test.csv")
    assert dict(sig.sizes) == {"gene": 200, "mark": 5, "bin": 200}
    assert sig.attrs["orientation"] == "5to3" and sig.attrs["genes_without_strand"] == 0
    rows = _rows(E003 / "E003.test.csv")
    assert sig.gene.values[0] == rows[0][0].rsplit("_", 1)[0] == "ENSG00000000003_TSPAN6"
    assert sig.gene_id.values[0] == "ENSG00000000003"
    strand = reference_strands().loc[sig.gene.values.astype(object)].to_numpy()
    assert strand[0] == "-" and "+" in strand  # TSPAN6 is a minus-strand gene
    order = ["H3K4me1", "H3K4me3", "H3K9me3", "H3K27me3", "H3K36me3"]
    for r in (0, 1, 57, 399, 39999, 3 * 200 + 7):
        g, b = divmod(r, 200)
        b = 199 - b if strand[g] == "-" else b  # the file is in genome order
        for c, mark in enumerate(order):
            assert sig.sel(mark=mark).values[g, b] == float(rows[r][c + 1])
    assert sig.sum().item() == sum(sum(map(float, r[1:])) for r in rows)


def test_read_deepdiff_csv__given_strands_orient_only_minus_genes():
    plain = read_deepdiff_csv(E003 / "E003.test.csv", pd.Series(dtype=object))  # no strands
    assert plain.attrs["genes_without_strand"] == 200
    rows = _rows(E003 / "E003.test.csv")
    assert plain.sel(mark="H3K4me1").values[0, 1] == float(rows[1][1])  # file (genome) order
    genes = plain.gene.values.astype(object)
    strand = pd.Series(["-", "."] * 100, index=genes)
    sig = read_deepdiff_csv(E003 / "E003.test.csv", strand)
    np.testing.assert_array_equal(sig.values[0::2], plain.values[0::2, :, ::-1])
    np.testing.assert_array_equal(sig.values[1::2], plain.values[1::2])
    assert sig.attrs["genes_without_strand"] == 100


def test_read_csv__genome_keeps_the_published_order_for_ingestion_to_orient():
    genome = read_deepdiff_csv(E003 / "E003.test.csv", "genome")
    assert genome.attrs["orientation"] == "genome"
    rows = _rows(E003 / "E003.test.csv")
    assert genome.sel(mark="H3K4me1").values[0, 1] == float(rows[1][1])  # file order
    toy, _ = read_deepchrome_csv(TOY, "genome")
    assert toy.sel(mark="H3K27me3").values[0, 1] == float(_rows(TOY / "train.csv")[1][2])
    with pytest.raises(ValueError, match="strand must be a table, 'shipped' or 'genome'"):
        read_deepdiff_csv(E003 / "E003.test.csv", "minus")


def test_published_csv_layout__is_genome_order_and_reads_5_to_3():
    """In genome order H3K36me3 rises towards higher coordinates on + genes and lower ones on
    - genes; read 5'→3' it rises into the gene body on both strands."""
    sample = xr.concat(
        [read_deepdiff_csv(E003 / f"E003.{s}.csv") for s in ("train", "valid", "test")], "gene"
    )
    k36 = sample.sel(mark="H3K36me3").values[:, 50:150]  # TSS ± 5 kb
    strand = reference_strands().loc[sample.gene.values.astype(object)].to_numpy()
    genome = to_genome_order(k36, strand)

    def down_up(x):
        return x[:, 50:].sum() / x[:, :50].sum()

    plus, minus = strand == "+", strand == "-"
    assert down_up(genome[plus]) > 1.4 and down_up(genome[minus]) < 0.85
    assert down_up(k36[plus]) > 1.4 and down_up(k36[minus]) > 1.2


def test_read_deepchrome_csv__folder_gene_ids_labels_and_marks():
    sig, labels = read_deepchrome_csv(TOY)
    assert sig.sizes["bin"] == 100 and sig.sizes["mark"] == 5
    assert sig.gene.values[0] == "ENSG00000000003"
    assert sig.attrs["gene_key"] == "gene_id" and sig.attrs["orientation"] == "5to3"
    rows = _rows(TOY / "train.csv")
    order = ["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"]
    # TSPAN6 (000003) is on the minus strand: file bin 1 (BinID 2) is its bin 98
    for c, mark in enumerate(order):
        assert sig.sel(mark=mark).values[0, 98] == float(rows[1][c + 2])
    assert labels.values[0] == int(rows[0][7])
    assert list(labels.split.values).count("train") == len(rows) // 100
    assert len(labels) == sig.sizes["gene"]


def test_deepchrome_gene_id():
    assert deepchrome_gene_id("000003") == "ENSG00000000003"
    assert deepchrome_gene_id("172936") == "ENSG00000172936"


def test_centre_crop__keeps_centre_and_refuses_narrower():
    sig = read_deepdiff_csv(E003 / "E003.valid.csv")
    out = centre_crop(sig, 100)
    np.testing.assert_array_equal(out.values, sig.values[:, :, 50:150])
    with pytest.raises(InputError, match="200 bins per gene, the store needs 300"):
        centre_crop(sig, 300)


@pytest.mark.parametrize(
    "line, message",
    [
        ("ENSG00000000003_TSPAN6_1,0,1,1,0", "line 2: expected 6 columns, found 5"),
        ("ENSG00000000003_TSPAN6_1,0,1,x,0,2", "line 2: column 4: 'x' is not a number"),
        ("ENSG00000000003_TSPAN6_1,0,1,1,0,2,7", "line 2: expected 6 columns, found 7"),
    ],
)
def test_read_deepdiff_csv__bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.csv"
    path.write_text("ENSG00000000003_TSPAN6_1,0,1,1,0,2\n" + line + "\n")
    with pytest.raises(InputError, match=message) as e:
        read_deepdiff_csv(path)
    assert str(path) in str(e.value)


def test_read_deepdiff_csv__bin_count_must_fit(tmp_path):
    lines = [f"ENSG1_A_{b},0,0,0,0,0" for b in range(1, 4)]
    lines += [f"ENSG2_B_{b},0,0,0,0,0" for b in range(1, 3)]
    path = tmp_path / "bins.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 4: gene 'ENSG2_B' has 2 bins, expected 3"):
        read_deepdiff_csv(path)


def test_e003_store_fixture__holds_the_sample_and_rpkm(e003_store):
    ds = open_store(e003_store)
    assert dict(ds.sizes) == {"cell": 1, "gene": 19802, "mark": 5, "bin": 100}
    e003 = ds.signal.sel(cell="E003").values
    have = np.isfinite(e003).all(axis=(1, 2))
    assert have.sum() == 600 and np.isnan(e003[~have]).all()
    sig = read_deepdiff_csv(E003 / "E003.test.csv")
    got = ds.signal.sel(cell="E003", gene=sig.gene.values).values
    np.testing.assert_array_equal(got, sig.values[:, :, 50:150])
    assert np.isfinite(ds.expression.sel(cell="E003").values).sum() >= 19795
