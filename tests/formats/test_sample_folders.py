"""Dataset folders as samplesheet rows: the DeepDiff E003 sample and a DeepChrome epigenome."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import chromestore
import chromestore.store.records
from chromestore.app.cli import main
from chromestore.errors import InputError
from chromestore.formats.csv import centre_crop, deepdiff_files, read_deepdiff_csv
from tests.conftest import E003, GENES_BED, RPKM, TOY, sheet


def test_e003_sample_folder_ingests_from_one_row_with_options_after_the_subcommand(tmp_path):
    rows = [("E003", "", "deepdiff-csv", str(E003))]
    store = tmp_path / "e003.zarr"
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            str(store),
            "--genes",
            str(GENES_BED),
            "--expression",
            str(RPKM),
            "--cells",
            "E003",
            "--samples",
            str(sheet(tmp_path, rows)),
            "--workers",
            "0",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    ds = chromestore.open_store(store)
    e003 = ds.signal.sel(cell="E003")
    has_signal = e003.notnull().all(("mark", "bin")).compute()
    assert int(has_signal.sum()) == 600  # 3 files × 200 genes
    files = [E003 / f"E003.{s}.csv" for s in ("train", "valid", "test")]
    expected = centre_crop(xr.concat([read_deepdiff_csv(f) for f in files], "gene"), 100)
    got = e003.sel(gene=expected.gene.values).transpose(*expected.dims).values
    np.testing.assert_array_equal(got, expected.values)
    assert chromestore.store.records.completion_table(ds).loc["E003"].all()


def test_deepdiff_folder_reads_its_three_splits_and_not_the_expression_file():
    assert [f.name for f in deepdiff_files(E003)] == [
        "E003.train.csv",
        "E003.valid.csv",
        "E003.test.csv",
    ]
    assert read_deepdiff_csv(E003).sizes["gene"] == 600


def test_deepdiff_folder_of_plain_split_names_reads(tmp_path):
    for split in ("train", "valid", "test"):
        shutil.copy(E003 / f"E003.{split}.csv", tmp_path / f"{split}.csv")
    assert read_deepdiff_csv(tmp_path).sizes["gene"] == 600


def test_deepdiff_folder_missing_a_split_names_it(tmp_path):
    for split in ("train", "valid"):
        shutil.copy(E003 / f"E003.{split}.csv", tmp_path / f"E003.{split}.csv")
    with pytest.raises(InputError, match="lacks E003.test.csv"):
        read_deepdiff_csv(tmp_path)


def test_deepchrome_zenodo_epigenome_folder_ingests_from_one_row(tmp_path):
    epigenome = tmp_path / "E003" / "classification"
    epigenome.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        shutil.copy(TOY / f"{split}.csv", epigenome / f"{split}.csv")
    rows = [("E003", "", "deepchrome-csv", str(tmp_path / "E003"))]
    store = tmp_path / "toy.zarr"
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            str(store),
            "--genes",
            str(GENES_BED),
            "--expression",
            str(RPKM),
            "--cells",
            "E003",
            "--samples",
            str(sheet(tmp_path, rows)),
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    ds = chromestore.open_store(store)
    has_signal = ds.signal.sel(cell="E003").notnull().all(("mark", "bin")).compute()
    assert int(has_signal.sum()) == 29  # the toy's 29 genes


def test_three_rows_of_one_sample_say_to_give_the_folder(tmp_path):
    rows = [
        ("E003", "", "deepdiff-csv", str(E003 / f"E003.{s}.csv"))
        for s in ("train", "valid", "test")
    ]
    with pytest.raises(InputError, match="give a sample folder"):
        chromestore.ingest.samplesheet.read_samplesheet(sheet(tmp_path, rows))
