"""The (cell, mark) arrays (one chunk per pair) read and written whole at once, and the
provenance groups (one per pair) merged at once: the values Zarr reads and the bytes Zarr
writes, and Zarr's own read, which names the chunk, wherever a chunk is missing or
corrupt."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from chromestore.errors import ChunkError
from chromestore.store import open_store
from chromestore.store.pair_chunks import merge_group_attrs, read_whole, write_pairs
from tests.conftest import store_digest
from tests.snapshots import flip_bit

PAIR_ARRAYS = ("signal_completed", "peak_max_completed", "signal_units")


def test_read_whole__the_values_zarr_reads(store):
    flags = zarr.open_array(store / "signal_completed", mode="r+")
    flags.with_config({"write_empty_chunks": True})[2, 1] = False  # stored, as the store does
    group = zarr.open_group(store, mode="r")
    for name in PAIR_ARRAYS:
        got, want = read_whole(group[name]), group[name][...]
        assert got.shape == want.shape == (3, 5) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert read_whole(group["signal_completed"]).sum() == 14
    assert set(read_whole(group["signal_units"]).ravel()) == {"reads"}
    assert read_whole(group["gene_name"]) is None  # not one element per chunk


@pytest.mark.parametrize("fault", ["missing", "corrupt"])
def test_read_whole__a_missing_or_corrupt_chunk_is_left_to_zarr(store, fault):
    chunk = store / "signal_units" / "c" / "1" / "3"
    if fault == "missing":
        chunk.unlink()
    else:
        flip_bit(chunk, 12)
    assert read_whole(zarr.open_array(store / "signal_units", mode="r")) is None
    if fault == "corrupt":  # the store's reader names the chunk, as before
        with pytest.raises(ChunkError, match=r"chunk signal_units/c/1/3 of variable"):
            open_store(store)


def test_write_pairs__writes_the_bytes_zarr_writes(store, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    for name, value in (("signal_units", "mean value"), ("signal_completed", False)):
        by_zarr = zarr.open_array(store / name, mode="r+").with_config({"write_empty_chunks": True})
        by_pairs = zarr.open_array(copy / name, mode="r+").with_config({"write_empty_chunks": True})
        by_zarr.set_orthogonal_selection(([0, 2], [1, 3]), value)
        assert write_pairs(by_pairs, {(r, c): value for r in (0, 2) for c in (1, 3)})
    # not one element per chunk: refused, nothing written (the caller writes through Zarr)
    assert not write_pairs(zarr.open_array(copy / "gene_name", mode="r+"), {(0,): "X"})
    assert store_digest(copy) == store_digest(store)
    assert open_store(copy).signal_units.values[2, 3] == "mean value"


def test_merge_group_attrs__writes_the_bytes_zarr_writes(store, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    new = {"peak_max": {"format": "narrowPeak", "completed": "2026-12-07T00:00:00+00:00"}}
    zarr.open_group(store / "records" / "E003" / "H3K4me3", mode="r+").update_attributes(new)
    records = zarr.open_group(store / "records", mode="r+")  # and a cell's groups made anew
    records.require_group("ENEW").require_group("H3K4me3").update_attributes(new)
    levels = [{"records": {}}, {"records/E003": {}, "records/ENEW": {}}]
    pairs = {"records/E003/H3K4me3": new, "records/ENEW/H3K4me3": new}
    assert merge_group_attrs(zarr.open_group(copy, mode="r+"), [*levels, pairs])
    assert store_digest(copy) == store_digest(store)
    attrs = zarr.open_group(copy / "records" / "E003" / "H3K4me3", mode="r").attrs
    assert set(attrs) == {"signal", "peak_max"}  # what the group held is kept


def test_merge_group_attrs__anything_but_a_group_is_left_to_zarr(store):
    root = zarr.open_group(store, mode="r+")
    before = store_digest(store)
    levels = [{"records/E003/H3K4me3": {"x": 1}, "signal_units": {"x": 1}}]  # an array
    assert not merge_group_attrs(root, levels)
    assert store_digest(store) == before  # nothing written, the group either
    (store / "records" / "E003" / "zarr.json").write_text("{not json")
    before = store_digest(store)
    assert not merge_group_attrs(root, [{"records/E003": {"x": 1}}])
    assert store_digest(store) == before
