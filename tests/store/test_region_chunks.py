"""A region of whole chunks written by the tasks that compute them: the bytes xarray and
Zarr write, edge chunks padded as Zarr pads them; anything else is left to xarray, with
nothing written."""

from __future__ import annotations

import shutil

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from chromestore.store import open_store
from chromestore.store.region_chunks import write_aligned
from tests.conftest import store_digest
from tests.store.conftest import CHUNK

SIGNAL_DIMS, EXPRESSION_DIMS = ("cell", "gene", "mark", "bin"), ("cell", "gene")


def _part(chunks: int = CHUNK, dtype=np.float32) -> xr.Dataset:
    """Two cells of new values, in Dask blocks of ``chunks`` genes."""
    rng = np.random.default_rng(0)
    signal = rng.poisson(3.0, (2, 150, 5, 100)).astype(dtype)
    signal[0, 140:] = np.nan  # in the edge chunk (genes 128–149 of a chunk of 64)
    expression = rng.random((2, 150)).astype(dtype)
    return xr.Dataset(
        {
            "signal": (SIGNAL_DIMS, da.from_array(signal, chunks=(1, chunks, 5, 100))),
            "expression": (EXPRESSION_DIMS, da.from_array(expression, chunks=(1, chunks))),
        }
    )


def test_write_aligned__writes_the_bytes_xarray_writes(store, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    part, region = _part(), {"cell": slice(1, 3), "gene": slice(None)}
    part.to_zarr(
        str(store),
        region=region,
        mode="r+",
        consolidated=False,
        zarr_format=3,
        write_empty_chunks=True,
    )
    before = store_digest(copy)
    assert write_aligned(zarr.open_group(copy, mode="r+"), part, region)
    after = store_digest(copy)
    assert sum(after[k] != v for k, v in before.items()) == 2 * 3 * 2  # cells × chunks × vars
    assert after == store_digest(store)
    written = open_store(copy)
    np.testing.assert_array_equal(written.signal.values[1:], part.signal.values)
    assert np.isnan(written.signal.values[1, 140:]).all()


@pytest.mark.parametrize(
    "case",
    ["blocks are not the chunks", "region off the chunks", "another dtype", "a coordinate"],
)
def test_write_aligned__anything_else_is_left_to_xarray(store, case):
    part, region = _part(), {"cell": slice(1, 3), "gene": slice(None)}
    if case == "blocks are not the chunks":
        part = _part(chunks=50)
    elif case == "region off the chunks":
        part, region = part.isel(gene=slice(0, 100)), {"cell": slice(1, 3), "gene": slice(10, 110)}
    elif case == "another dtype":
        part = _part(dtype=np.float64)
    else:
        part = part.assign_coords(cell=["E004", "E005"])
    before = store_digest(store)
    assert not write_aligned(zarr.open_group(store, mode="r+"), part, region)
    assert store_digest(store) == before


def test_write_region__reads_the_arrays_live_not_the_consolidated_copy(store):
    """A writer killed between a resize and the consolidation leaves the consolidated copy
    behind the arrays: a region beyond their live extent is refused, not written."""
    from chromestore.store.dataset import write_region

    signal = zarr.open_array(store / "signal", mode="r+")
    signal.resize((2, *signal.shape[1:]))  # live: 2 cells; the consolidated copy: 3
    before = store_digest(store)
    part = _part().isel(cell=slice(1, 2))[["signal"]]
    assert not write_aligned(
        zarr.open_group(store, mode="r+", use_consolidated=False),
        part,
        {"cell": slice(2, 3), "gene": slice(None)},
    )
    with pytest.raises(ValueError):
        write_region(store, part, {"cell": slice(2, 3), "gene": slice(None)})
    assert not any(
        k.startswith("signal/c/2/") and before.get(k) != v for k, v in store_digest(store).items()
    )
