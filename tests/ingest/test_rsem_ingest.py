"""Expression from RSEM gene quantifications (``rsem-genes`` samplesheet rows): joined on
unversioned Ensembl ids, the quantity recorded, labels by the median split as for RPKM."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore import open_store
from chromestore.app.cli import main
from chromestore.errors import InputError, StoreError
from chromestore.ingest import read_samplesheet, run_ingest
from chromestore.labels import compute_labels
from tests.conftest import RPKM, sheet
from tests.encode_fixtures import par_y_row, spike_in_row, write_rsem


def _quantifications(tmp_path, table, rng, name, skip=()):
    """An RSEM file of the 40 genes' ids (versioned; the genes at ``skip`` left out, five
    genes not in the store added), with random TPM and FPKM = TPM / 2."""
    ids = [g for i, g in enumerate(dict.fromkeys(table.gene_id)) if i not in skip]
    ids = [f"{g}.{i % 9 + 1}" for i, g in enumerate(ids)]
    ids += [f"ENSG99999999{i:03d}.1" for i in range(5)]
    tpm = np.round(rng.gamma(0.8, 20.0, len(ids)) * 50) / 50  # FPKM = TPM / 2 to the 0.01
    extra = [par_y_row("ENSG00000182378.14"), spike_in_row()]
    write_rsem(tmp_path / name, ids, tpm, tpm / 2, extra)
    return dict(zip((i.split(".")[0] for i in ids), tpm, strict=True))


def test_ingest_rsem_genes__tpm_joined_on_unversioned_ids(tmp_path, genes40, rng):
    genes_path, table = genes40
    a = _quantifications(tmp_path, table, rng, "ENCFF001AAA.tsv", skip={3})
    b = _quantifications(tmp_path, table, rng, "ENCFF002BBB.tsv")
    rows = [
        ("K562", "", "rsem-genes", "ENCFF001AAA.tsv"),
        ("HepG2", "", "rsem-genes", "ENCFF002BBB.tsv"),
    ]
    store = tmp_path / "s.zarr"
    report = run_ingest(store, genes_path, samples=sheet(tmp_path, rows), gene_chunk=16)
    ds = open_store(store)
    ids = ds.gene_id.values.astype(object)
    missing = ids == table.gene_id.drop_duplicates().iloc[3]
    for cell, truth in (("K562", a), ("HepG2", b)):
        got = ds.expression.sel(cell=cell).values
        want = np.array([truth.get(g, np.nan) for g in ids], dtype=np.float32)
        np.testing.assert_array_equal(got, want)
    assert np.isnan(ds.expression.sel(cell="K562").values[missing]).all()
    assert not np.isnan(ds.expression.sel(cell="HepG2").values).any()
    record = ds.attrs["expression"]["K562"]
    assert record["quantity"] == "TPM"
    assert record["source"].endswith("ENCFF001AAA.tsv")
    text = str(report)
    # the union of both files: 39 + 1 store genes, 5 foreign ids, 1 spike-in
    assert "expression (TPM) for 2 epigenomes" in text
    assert f"{len(ids)}/{len(ids)} genes matched" in text
    assert "6 matrix rows unused" in text
    assert (
        "K562   rsem-genes TPM: 45 genes (1 _PAR_Y rows left out, 1 ids not Ensembl genes)" in text
    )
    # the label rule: above the epigenome's median over the genes with a value
    labels = compute_labels(ds).sel(cell="K562")
    expr = ds.expression.sel(cell="K562").values
    have = ~np.isnan(expr)
    np.testing.assert_array_equal(labels.label.values[have], expr[have] > np.median(expr[have]))
    assert int(labels.label_valid.sum()) == have.sum() == len(ids) - missing.sum()


def test_rsem_genes__fpkm_by_option_and_one_quantity_per_store(tmp_path, genes40, rng):
    genes_path, table = genes40
    truth = _quantifications(tmp_path, table, rng, "q.genes.results")
    store = tmp_path / "s.zarr"
    rows = sheet(tmp_path, [("E1", "", "", "q.genes.results")])  # format from the suffix
    run_ingest(store, genes_path, samples=rows, quantity="FPKM")
    ds = open_store(store)
    gid = ds.gene_id.values[0]
    assert ds.expression.sel(cell="E1").values[0] == np.float32(truth[gid] / 2)
    assert ds.attrs["expression"]["E1"]["quantity"] == "FPKM"
    other = sheet(tmp_path, [("E2", "", "rsem-genes", "q.genes.results")], "two.csv")
    with pytest.raises(StoreError, match=r"its expression is FPKM \(E1\), not TPM"):
        run_ingest(store, samples=other)
    with pytest.raises(StoreError, match=r"its expression is FPKM \(E1\), not RPKM"):
        run_ingest(store, expression=RPKM)
    with pytest.raises(
        InputError, match=r"rsem-genes rows \(samplesheet line 2\) and --expression"
    ):
        run_ingest(tmp_path / "t.zarr", genes_path, samples=other, expression=RPKM)


def test_rsem_genes__samplesheet_rows_take_no_mark_and_one_file_per_epigenome(tmp_path):
    (tmp_path / "q.tsv").write_text("gene_id\tTPM\n")
    with pytest.raises(
        InputError, match=r"line 2: format rsem-genes is expression: leave the mark empty"
    ):
        read_samplesheet(sheet(tmp_path, [("E1", "H3K4me3", "rsem-genes", "q.tsv")]))
    twice = [("E1", "", "rsem-genes", "q.tsv")] * 2
    with pytest.raises(
        InputError, match=r"line 3: duplicate \(E1\) for expression, first on line 2"
    ):
        read_samplesheet(sheet(tmp_path, twice))


def test_cli_ingest__quantity_option_and_bad_rsem_file_one_line(tmp_path, genes40, rng):
    genes_path, table = genes40
    _quantifications(tmp_path, table, rng, "q.tsv")
    rows = sheet(tmp_path, [("E1", "", "rsem-genes", "q.tsv")])
    store = tmp_path / "s.zarr"
    run = CliRunner().invoke
    result = run(
        main,
        [
            "ingest",
            str(store),
            "--genes",
            str(genes_path),
            "--samples",
            str(rows),
            "--quantity",
            "FPKM",
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "expression (FPKM) for 1 epigenomes" in result.output
    (tmp_path / "bad.tsv").write_text("gene_id\tFPKM\nENSG00000000003.1\tabc\n")
    bad = sheet(tmp_path, [("E2", "", "rsem-genes", "bad.tsv")], "bad.csv")
    result = run(main, ["ingest", str(store), "--samples", str(bad), "--quantity", "FPKM"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'bad.tsv'}, line 2: FPKM 'abc' is not a number ≥ 0"
    ]
