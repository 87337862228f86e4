"""A store behaves like any xarray object: quiet open, eager coordinates, netCDF-safe attrs, units."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import chromestore
from chromestore import runs as R
from chromestore.store.attrs import LEGACY_DICT_ATTRS


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("conv") / "s.zarr"
    chromestore.simulate(path, cells=["E003", "E004"], genes=120, gene_chunk=64)
    return path


def _run_ds(model: str = "deepchrome") -> xr.Dataset:
    genes = [f"G{i}" for i in range(4)]
    return R.create_run_dataset(
        models=[model],
        cells=["E003"],
        genes=genes,
        prediction=np.full((1, 1, 1, 4), 0.5),
        target=[[0, 1, 0, 1]],
        split=[[0, 1, 2, 2]],
        history_loss=[[[[0.5, 0.4]]]],
        history_valid_auc=[[[[0.6, 0.7]]]],
        best_epoch=[[[1]]],
        excluded=[[False] * 4],
        attrs={
            "task": "classification",
            "models": {model: {"lr": 0.001}},
            "wall_seconds": {model: 1.5},
            "stats": ["auc", "ap"],
        },
    )


def test_plain_xarray_opens_groups_filters_and_writes_netcdf_without_any_warning(
    small_store, tmp_path
):
    script = textwrap.dedent(f"""
        import xarray as xr
        import chromestore

        store = {str(small_store)!r}
        plain = xr.open_zarr(store)                      # consolidated metadata: no warning
        assert plain.sizes["gene"] == 120
        quiet = xr.open_zarr(store, chunks=None)         # plain xarray, coordinates not dask
        for ds in (chromestore.open_store(store), quiet):
            by_chrom = ds.expression.groupby("gene_chrom").mean().compute()
            assert by_chrom.sizes["gene_chrom"] == len(set(ds.gene_chrom.values.tolist()))
            name = str(ds.gene_name.values[5])
            one = ds.where(ds.gene_name == name, drop=True)
            assert one.sizes["gene"] == 1 and str(one.gene_name.values[0]) == name
        part = plain.isel(gene=slice(10))
        # completion records are moving out of attrs into variables; until then drop them
        part.attrs = {{k: v for k, v in part.attrs.items()
                      if k not in {sorted(LEGACY_DICT_ATTRS)!r}}}
        part.to_netcdf({str(tmp_path / "slice.nc")!r})
        back = xr.open_dataset({str(tmp_path / "slice.nc")!r})
        assert back.expression.attrs["units"] == "RPKM"
        back.close()
    """)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr


def test_store_attrs_left_as_dicts_are_only_the_completion_records(small_store):
    plain = xr.open_zarr(small_store)
    dicts = {k for k, v in plain.attrs.items() if isinstance(v, dict | list)}
    assert dicts <= LEGACY_DICT_ATTRS
    assert isinstance(plain.attrs["expression"], str)  # JSON text for plain readers ...
    ds = chromestore.open_store(small_store)
    assert set(ds.attrs["expression"]) == {"E003", "E004"}  # ... a dict through chromestore


def test_store_variables_carry_units(small_store):
    ds = xr.open_zarr(small_store)
    assert ds.expression.attrs["units"] == "RPKM"
    assert ds.bin_offset.attrs["units"] == "bp"
    assert ds.gene_tss.attrs["units"] == "bp"
    assert "reads" in ds.signal.attrs["units"]


def test_open_store_coordinates_are_in_memory(small_store):
    ds = chromestore.open_store(small_store)
    assert all(coord.chunks is None for coord in ds.coords.values())
    assert ds.signal.chunks is not None  # data stays lazy


def test_consolidated_metadata_follows_cell_appends(small_store, tmp_path):
    import shutil

    copy = tmp_path / "grown.zarr"
    shutil.copytree(small_store, copy)
    chromestore.store.add_cells(copy, ["E005"])
    assert xr.open_zarr(copy, consolidated=True).sizes["cell"] == 3


def test_run_attrs_are_netcdf_safe_and_read_back_as_dicts(tmp_path):
    store = tmp_path / "r.zarr"
    R.write_run(store, "a", _run_ds())
    raw = xr.open_zarr(store, group="runs/a", consolidated=False)
    assert json.loads(raw.attrs["models"]) == {"deepchrome": {"lr": 0.001}}
    assert json.loads(raw.attrs["stats"]) == ["auc", "ap"]
    run = chromestore.open_run(store, "a")
    assert run.attrs["models"] == {"deepchrome": {"lr": 0.001}}
    assert run.attrs["wall_seconds"] == {"deepchrome": 1.5}
    assert run.attrs["stats"] == ["auc", "ap"]
    plain = raw.drop_vars([v for v in raw.variables if raw[v].dtype.kind == "T"])
    plain.to_netcdf(tmp_path / "run.nc")


def test_write_run_records_created_once(tmp_path):
    store = tmp_path / "r.zarr"
    first = R.write_run(store, "a", _run_ds()).attrs["created"]
    assert first[:4].isdigit() and "T" in first
    again = R.write_run(store, "a", _run_ds("other"), existing="add").attrs["created"]
    assert again == first


def test_weights_live_beside_the_store_and_open_the_run_group_quietly(tmp_path):
    import warnings

    import zarr

    from chromestore.training.weights import load_weights, save

    store = tmp_path / "w.zarr"
    with R.RunWriter(store, "a") as writer:
        url = save(writer.weights_target("deepchrome", "E003", 0), {"w": [1, 2]})
        writer.commit(_run_ds())
    assert url.startswith(str(tmp_path / "w.zarr.weights" / "a" / ".tmp-"))
    assert load_weights(store, "a", "deepchrome", "E003", 0) == {"w": [1, 2]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        group = zarr.open_group(str(store / "runs"), mode="r", use_consolidated=False)
        assert list(group.group_keys()) == ["a"]
        zarr.open_group(str(store / "runs" / "a"), mode="r", use_consolidated=False).members()


def test_info_lists_a_run_with_its_creation_date(small_store, tmp_path):
    import shutil

    from click.testing import CliRunner

    from chromestore.app.cli import main

    copy = tmp_path / "with_run.zarr"
    shutil.copytree(small_store, copy)
    created = R.write_run(copy, "dc", _run_ds()).attrs["created"]
    res = CliRunner().invoke(main, ["info", str(copy)])
    assert res.exit_code == 0, res.output
    assert f"  dc: deepchrome on E003, {created}" in res.output


def test_accessor_profile_is_the_mean_signal_per_class_around_the_tss(small_store):
    ds = xr.open_zarr(small_store).chromestore.eager_coords()
    assert all(c.chunks is None for c in ds.coords.values())
    labelled = ds.chromestore.labels().chromestore.splits("random:2")
    assert labelled.split.sizes["repeat"] == 2 and "label" in labelled
    prof = labelled.chromestore.profile("H3K4me3").compute()
    assert dict(prof.sizes) == {"cell": 2, "class": 2, "bin": 100}
    sig = ds.signal.sel(cell="E004", mark="H3K4me3").values
    label = labelled.label.sel(cell="E004").values
    np.testing.assert_allclose(
        prof.sel(cell="E004", **{"class": "high"}).values, sig[label].mean(0), rtol=1e-5
    )
    np.testing.assert_allclose(
        prof.sel(cell="E004", **{"class": "low"}).values, sig[~label].mean(0), rtol=1e-5
    )
    with pytest.raises(KeyError, match="marks: H3K27me3"):
        ds.chromestore.profile("H3K27ac")


def test_a_new_store_at_a_path_drops_the_weights_of_the_store_once_there(tmp_path, small_genes):
    import shutil

    from chromestore.training.weights import save

    store = tmp_path / "again.zarr"
    chromestore.create_store(store, small_genes)
    with R.RunWriter(store, "a") as writer:
        save(writer.weights_target("m", "E003", 0), {"w": 1})
        writer.commit(_run_ds())
    assert len(list((tmp_path / "again.zarr.weights" / "a").glob("w-*/m/E003/0.safetensors"))) == 1
    shutil.rmtree(store)
    chromestore.create_store(store, small_genes)
    assert not (tmp_path / "again.zarr.weights").exists()
