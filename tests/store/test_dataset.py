"""The store: schema round trip, validation errors, growth along cell, the frozen stores
(v2 opens; v1, bins in genome order, is refused and converted by ``upgrade_store``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

import chromestore
from chromestore import store as S
from chromestore import variables as V
from chromestore.app.cli import main
from chromestore.genes import reference_strands
from chromestore.store import records
from chromestore.store.upgrade import flip_mask, upgrade_store
from tests.conftest import ROOT

FROZEN_V1 = ROOT / "tests" / "data" / "frozen_v1.zarr"
FROZEN_V2 = ROOT / "tests" / "data" / "frozen_v2.zarr"


def test_create_store__round_trips_schema(tmp_path, small_genes):
    path = tmp_path / "s.zarr"
    ds = chromestore.create_store(path, small_genes, cells=["E003", "E004"], chunks={"gene": 128})
    assert dict(ds.sizes) == {"cell": 2, "gene": 300, "mark": 5, "bin": 100}
    assert ds.signal.dtype == np.float32 and ds.signal.dims == ("cell", "gene", "mark", "bin")
    assert ds.signal.data.chunksize == (1, 128, 5, 100)
    assert ds.attrs["format"] == "chromestore" and ds.attrs["format_version"] == V.FORMAT_VERSION
    assert ds.attrs["orientation"] == "5to3"
    assert ds.attrs["window"] == 5000 and ds.attrs["bin_size"] == 100
    assert list(ds.bin_offset.values[:2]) == [-5000, -4900] and int(ds.bin_offset[-1]) == 4900
    assert list(ds.gene.values[:2]) == list(small_genes.gene[:2])
    assert ds.gene_id.values[0] == "ENSG00000000003" and ds.gene_name.values[0] == "TSPAN6"
    assert int(ds.gene_tss.values[0]) == 99884988 + 10000
    assert bool(ds.signal.isnull().all()) and bool(ds.expression.isnull().all())
    # explicit chunk encodings: zstd, one cell per chunk, coordinates in one chunk
    group = zarr.open_group(str(path), mode="r")
    assert group["signal"].chunks == (1, 128, 5, 100)
    assert any("Zstd" in type(c).__name__ for c in group["signal"].metadata.codecs)
    assert group["gene"].chunks == (300,)
    assert group["gene_tss"].chunks == (300,)


def test_create_store__refuses_existing_path(tmp_path, small_genes):
    chromestore.create_store(tmp_path / "s.zarr", small_genes)
    with pytest.raises(S.StoreError, match="already exists"):
        chromestore.create_store(tmp_path / "s.zarr", small_genes)


def test_create_store__in_memory_fsspec_url(small_genes):
    ds = chromestore.create_store("memory://cs-test/a.zarr", small_genes, cells=["E003"])
    assert ds.sizes["cell"] == 1
    assert chromestore.open_store("memory://cs-test/a.zarr").sizes["gene"] == 300


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ds: ds.drop_vars("expression"), "missing variable 'expression'"),
        (lambda ds: ds.assign(expression=ds.expression.T), "has dims"),
        (lambda ds: ds.assign(signal=ds.signal.astype("int32")), "has dtype int32"),
        (lambda ds: ds.assign_attrs(format_version=99), "format version 99 is not supported"),
        (lambda ds: ds.assign_attrs(format="netcdf"), "not a chromestore store"),
        (lambda ds: ds.assign_attrs(orientation="genomic"), "orientation attribute is 'genomic'"),
    ],
)
def test_validate__names_the_problem(tmp_path, small_genes, mutate, message):
    ds = chromestore.create_store(tmp_path / "s.zarr", small_genes, cells=["E003"])
    with pytest.raises(V.SchemaError, match=message):
        V.validate(mutate(ds))


def test_open_store__refuses_unknown_version_on_disk(tmp_path, small_genes):
    path = tmp_path / "s.zarr"
    chromestore.create_store(path, small_genes)
    S.update_attrs(path, format_version=V.FORMAT_VERSION + 1)
    with pytest.raises(
        V.SchemaError,
        match=f"s.zarr: store format version {V.FORMAT_VERSION + 1} "
        "is not supported.*"
        "upgrade chromestore",
    ):
        chromestore.open_store(path)


def test_open_store__missing_path_is_clear(tmp_path):
    with pytest.raises(S.StoreError, match="no chromestore store"):
        chromestore.open_store(tmp_path / "nope.zarr")


def test_add_cells__appends_without_rewriting_existing(tmp_path, small_genes):
    path = tmp_path / "s.zarr"
    chromestore.create_store(path, small_genes, cells=["E003"], chunks={"gene": 128})
    part = xr.Dataset({"signal": (V.signal.dims, np.ones((1, 300, 5, 100), np.float32))}).chunk(
        {"gene": 128}
    )
    S.write_region(path, part, {"cell": slice(0, 1)})
    chunk_files = sorted((path / "signal" / "c" / "0").rglob("*"))
    before = {p: p.read_bytes() for p in chunk_files if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    assert chromestore.add_cells(path, ["E003", "E004", "E005"]) == ["E004", "E005"]
    ds = chromestore.open_store(path)
    assert list(ds.cell.values) == ["E003", "E004", "E005"]
    assert ds.attrs["format_version"] == V.FORMAT_VERSION  # attrs survive the append
    assert float(ds.signal.sel(cell="E003").sum()) == 300 * 500
    assert bool(ds.signal.sel(cell="E004").isnull().all())
    for p, data in before.items():
        assert p.read_bytes() == data and p.stat().st_mtime_ns == mtimes[p]


def test_completion__recorded_per_cell_and_mark(tmp_path, small_genes):
    path = tmp_path / "s.zarr"
    chromestore.create_store(path, small_genes, cells=["E003", "E004"])
    records.mark_completed(path, "E004", "H3K4me3", {"path": "x.tagAlign.gz", "reads": 10})
    ds = chromestore.open_store(path)
    assert records.completed(ds) == {("E004", "H3K4me3")}
    table = records.completion_table(ds)
    assert table.loc["E004", "H3K4me3"] and not table.loc["E003", "H3K4me3"]
    assert records.provenance(ds)[("E004", "H3K4me3")]["reads"] == 10


def test_frozen_v2_store__still_opens():
    ds = chromestore.open_store(FROZEN_V2)
    assert dict(ds.sizes) == {"cell": 2, "gene": 12, "mark": 5, "bin": 100}
    assert ds.attrs["orientation"] == "5to3"
    assert ds.gene_strand.values[0] == "-" and ds.gene_strand.values[1] == "+"  # TSPAN6, TNMD
    np.testing.assert_array_equal(
        ds.signal.sel(cell="E003").values, np.arange(6000).reshape(12, 5, 100)
    )
    assert float(ds.expression.sel(cell="E004").sum()) == pytest.approx(float(np.arange(12).sum()))


def test_frozen_v1_store__refused_with_the_way_to_convert_it():
    with pytest.raises(
        V.SchemaError,
        match="frozen_v1.zarr: store format version 1 holds every "
        "gene's bins in genome order.*chromestore upgrade STORE",
    ):
        chromestore.open_store(FROZEN_V1)
    out = CliRunner().invoke(main, ["info", str(FROZEN_V1)])
    assert out.exit_code == 1
    assert out.output.startswith("error: ") and "chromestore upgrade" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_upgrade_store__v1_gets_strands_and_minus_genes_reversed(tmp_path):
    path = tmp_path / "v1.zarr"
    shutil.copytree(FROZEN_V1, path)
    before = chromestore.open_store(path, validate=False)
    assert (before.gene_strand.values == "+").all()  # v1: every shipped gene stored as '+'
    old = before.signal.values
    report = upgrade_store(path)
    ds = chromestore.open_store(path)
    assert ds.attrs["format_version"] == V.FORMAT_VERSION and ds.attrs["orientation"] == "5to3"
    assert ds.attrs["upgraded_from"] == 1 and "upgrade_cells_done" not in ds.attrs
    # v2 → v3: the v1 records are variables now, none left in the attrs
    assert records.completed(ds) == records.completed(before) == {("E003", "H3K4me3")}
    assert "completed" not in ds.attrs and "provenance" not in ds.attrs
    want = reference_strands().loc[ds.gene.values.astype(object)].to_numpy(object)
    np.testing.assert_array_equal(ds.gene_strand.values.astype(object), want)
    minus = want == "-"
    assert minus.sum() == 7 and report.genes_flipped == 7
    new = ds.signal.values
    np.testing.assert_array_equal(new[:, ~minus], old[:, ~minus])
    np.testing.assert_array_equal(new[:, minus], old[:, minus][..., ::-1])
    np.testing.assert_array_equal(ds.expression.values, before.expression.values)
    # bin 0 of TSPAN6 is now its 5'-most bin: the highest coordinates of the window
    assert new[0, 0, 0, 0] == old[0, 0, 0, 99]
    with pytest.raises(V.SchemaError, match=f"already format v{V.FORMAT_VERSION}"):
        upgrade_store(path)


def test_upgrade_store__cli_says_what_it_did(tmp_path):
    path = tmp_path / "v1.zarr"
    shutil.copytree(FROZEN_V1, path)
    out = CliRunner().invoke(main, ["upgrade", str(path)])
    assert out.exit_code == 0, out.output
    assert (
        f"from format v1 to v{V.FORMAT_VERSION}" in out.output
        and "bins of 7 genes reversed" in out.output
    )
    out = CliRunner().invoke(main, ["info", str(path)])
    assert out.exit_code == 0 and "genes on + 5, on - 7, strand unknown 0" in out.output


def test_upgrade_flip_mask__csv_data_was_genome_order_whatever_the_stored_strand():
    ds = chromestore.open_store(FROZEN_V1, validate=False)
    ds = ds.assign_coords(gene_strand=("gene", np.array(["-"] + ["+"] * 11, dtype=object)))
    ds.attrs = dict(
        ds.attrs,
        provenance={
            "E003/H3K4me3": {"format": "deepdiff-csv"},
            "E003/H3K9me3": {"format": "tagalign"},
        },
    )
    new = np.array(["-", "-"] + ["+"] * 10, dtype=object)
    mask = flip_mask(ds, new)  # cell, gene, mark
    k4, k9 = list(ds.mark.values).index("H3K4me3"), list(ds.mark.values).index("H3K9me3")
    # tagAlign counts followed the stored strand: gene 0 already 5'→3', gene 1 not
    assert list(mask[0, :3, k9]) == [False, True, False]
    # CSV counts were genome order: both minus genes need reversing
    assert list(mask[0, :3, k4]) == [True, True, False]
