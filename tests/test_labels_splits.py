"""Labels are DeepChrome's median rule on the real RPKM; splits match the published protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import chromestore
from chromestore import variables as V
from chromestore.ingest import ingest_expression, open_or_create
from tests.conftest import GENES_BED, RPKM


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    """The 19,802 real genes with the real RPKM of all 56 epigenomes."""
    path = tmp_path_factory.mktemp("real") / "real.zarr"
    open_or_create(path, GENES_BED)
    ingest_expression(path, RPKM)
    return path


def _numpy_median_labels(path):
    table = pd.read_csv(RPKM, sep="\t", index_col=0)
    table = table[~table.index.duplicated()]
    genes = chromestore.read_gene_bed(GENES_BED)
    values = table.loc[genes.gene_id].to_numpy(np.float64).T  # (cell, gene)
    return list(table.columns), values, values > np.median(values, axis=1, keepdims=True)


def test_labels__match_per_cell_median_for_all_56_epigenomes(real_store):
    ds = chromestore.compute_labels(chromestore.open_store(real_store))
    cells, values, expected = _numpy_median_labels(real_store)
    assert list(ds.cell.values) == cells and len(cells) == 56
    got = ds.label.values
    np.testing.assert_array_equal(got, expected)
    fraction = got.mean(axis=1)
    assert np.all(np.abs(fraction - 0.5) <= 0.01), fraction
    np.testing.assert_allclose(ds.label_threshold.values, np.median(values, axis=1), rtol=1e-6)


def test_labels__median_ge_differs_only_on_ties(real_store):
    ds = chromestore.open_store(real_store)
    gt = chromestore.compute_labels(ds, "median").label.values
    ge = chromestore.compute_labels(ds, "median-ge")
    at_threshold = (ds.expression == ge.label_threshold).values
    np.testing.assert_array_equal(ge.label.values & ~at_threshold, gt)
    assert (ge.label.values.sum() - gt.sum()) == at_threshold.sum()


def test_labels__numeric_threshold(real_store):
    ds = chromestore.compute_labels(chromestore.open_store(real_store), 1.0)
    np.testing.assert_array_equal(ds.label.values, (ds.expression > 1.0).values)
    assert np.all(ds.label_threshold.values == 1.0)


def test_labels__stay_lazy(real_store, no_compute):
    ds = chromestore.open_store(real_store)
    out = chromestore.assign_splits(chromestore.compute_labels(ds), "random:3", seed=1)
    with pytest.warns(UserWarning, match="overwriting"):
        out = chromestore.assign_splits(out, "chromosome")
    assert out.split.sizes["repeat"] == 1
    assert out.label.chunks is not None and out.split.chunks is not None
    summary = chromestore.label_summary(out)
    assert summary.positives.chunks is not None


def test_labels__missing_expression_is_not_valid(tmp_path, small_genes):
    path = tmp_path / "s.zarr"
    ds = chromestore.create_store(path, small_genes, cells=["E003"])
    expr = np.arange(300, dtype=np.float32)
    expr[:10] = np.nan
    ds = ds.assign(expression=(("cell", "gene"), expr[None]))
    out = chromestore.compute_labels(ds)
    assert int(out.label_valid.sum()) == 290
    assert float(out.label_threshold[0]) == float(np.median(expr[10:]))
    assert int(chromestore.label_summary(out).positives[0]) == 145


def test_labels__do_not_mutate_and_warn_before_overwrite(real_store):
    ds = chromestore.open_store(real_store)
    out = chromestore.compute_labels(ds)
    assert "label" not in ds and "label" in out
    with pytest.warns(UserWarning, match="overwriting existing variable"):
        chromestore.compute_labels(out)


@pytest.mark.parametrize("gene_chunk", [2048, 777])
def test_labels_and_splits__identical_for_two_chunkings(tmp_path, gene_chunk):
    path = tmp_path / f"c{gene_chunk}.zarr"
    open_or_create(path, GENES_BED, gene_chunk=gene_chunk)
    ingest_expression(path, RPKM, ["E003", "E116", "E123"])
    ds = chromestore.open_store(path)
    assert ds.expression.data.chunksize == (1, gene_chunk)
    out = chromestore.assign_splits(chromestore.compute_labels(ds), "chromosome", seed=3)
    _, values, _ = _numpy_median_labels(path)
    cells = list(pd.read_csv(RPKM, sep="\t", nrows=0).columns[1:])
    want = values[[cells.index(c) for c in ("E003", "E116", "E123")]]
    np.testing.assert_array_equal(out.label.values, want > np.median(want, 1, keepdims=True))
    other = chromestore.assign_splits(ds.chunk({"gene": 19802}), "chromosome", seed=3)
    np.testing.assert_array_equal(out.split.values, other.split.values)


def test_splits__deepchrome_file_order_sizes(real_store):
    ds = chromestore.assign_splits(chromestore.open_store(real_store), "deepchrome")
    split = ds.split.values[0]
    assert ds.split.dims == ("repeat", "gene")
    assert [int((split == k).sum()) for k in (0, 1, 2)] == [6601, 6601, 6600]
    assert np.all(split[:6601] == 0) and np.all(split[6601:13202] == 1)
    assert np.all(split[13202:] == 2)
    assert chromestore.split_sizes(600) == (200, 200, 200)


def test_splits__random_repeats_are_disjoint_deterministic_and_differ(real_store):
    ds = chromestore.open_store(real_store)
    a = chromestore.assign_splits(ds, "random:10", seed=7).split.values
    b = chromestore.assign_splits(ds, "random", repeats=10, seed=7).split.values
    c = chromestore.assign_splits(ds, "random:10", seed=8).split.values
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, 19802) and not np.array_equal(a, c)
    for r in range(10):
        assert [int((a[r] == k).sum()) for k in (0, 1, 2)] == [6601, 6601, 6600]
    assert not np.array_equal(a[0], a[1])


def test_splits__chromosome_keeps_each_chromosome_in_one_split(real_store):
    ds = chromestore.assign_splits(chromestore.open_store(real_store), "chromosome", seed=0)
    frame = pd.DataFrame(
        {"chrom": ds.gene_chrom.values.astype(object), "split": ds.split.values[0]}
    )
    per_chrom = frame.groupby("chrom").split.nunique()
    assert (per_chrom == 1).all()
    sizes = frame.split.value_counts(normalize=True)
    assert set(sizes.index) == {0, 1, 2}
    assert sizes[2] >= 1 / 3 and sizes[1] >= 0.15 and sizes[0] >= 0.15


def test_splits__explicit_chromosomes(real_store):
    ds = chromestore.assign_splits(
        chromestore.open_store(real_store),
        "chromosome",
        test_chroms=["chr1"],
        valid_chroms=["chr2"],
    )
    chrom = ds.gene_chrom.values.astype(object)
    split = ds.split.values[0]
    assert np.all(split[chrom == "chr1"] == V.TEST) and np.all(split[chrom == "chr2"] == V.VALID)
    assert np.all(split[(chrom != "chr1") & (chrom != "chr2")] == V.TRAIN)


def test_splits__unknown_scheme_is_an_error(real_store):
    with pytest.raises(ValueError, match="unknown split scheme 'kfold'"):
        chromestore.assign_splits(chromestore.open_store(real_store), "kfold")
