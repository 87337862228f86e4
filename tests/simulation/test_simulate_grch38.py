"""``simulate(genome="GRCh38")``: the genes of the shipped GRCh38 annotation at its
coordinates, each gene's signal the same as in hg19."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from chromestore import datasets, open_store
from chromestore.app.cli import main
from chromestore.genes import read_gene_bed
from chromestore.simulation import simulate


def test_simulate_grch38__same_values_per_gene_at_grch38_coordinates():
    hg19 = simulate(cells=["E003"], genes=300, seed=3)
    grch38 = simulate(cells=["E003"], genes=300, seed=3, genome="hg38")
    annotation = read_gene_bed(datasets.gene_windows("GRCh38")).set_index("gene")
    keys = grch38.gene.values.astype(object)
    assert grch38.attrs["genome"] == "GRCh38" and hg19.attrs["genome"] == "hg19"
    assert set(keys) == set(hg19.gene.values.astype(object)) & set(annotation.index)
    assert 280 <= len(keys) < 300
    np.testing.assert_array_equal(grch38.gene_tss.values, annotation.loc[keys, "tss"].to_numpy())
    np.testing.assert_array_equal(grch38.signal.values, hg19.signal.sel(gene=keys).values)
    np.testing.assert_array_equal(grch38.expression.values, hg19.expression.sel(gene=keys).values)


def test_cli_simulate__genome_grch38_store_records_it(tmp_path):
    store = tmp_path / "sim38.zarr"
    result = CliRunner().invoke(
        main, ["simulate", str(store), "--cells", "E003", "--genes", "120", "--genome", "GRCh38"]
    )
    assert result.exit_code == 0, result.output
    ds = open_store(store)
    assert ds.attrs["genome"] == "GRCh38"
    first = read_gene_bed(datasets.gene_windows()).gene.iloc[:120]
    in_grch38 = first.isin(read_gene_bed(datasets.gene_windows("GRCh38")).gene)
    assert ds.sizes["gene"] == in_grch38.sum() < 120  # the first 120 genes GRCh38 has
