"""A store is created whole or not at all: on a local disk under a temporary name renamed into
place, on an object store between a ``creating`` marker and its removal (readers stop with
one line); re-running the command that was killed completes it, ``simulate`` included."""

from __future__ import annotations

import shutil

import fsspec
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import chromestore
from chromestore import store as S
from chromestore import variables as V
from chromestore.app.cli import main
from chromestore.errors import StoreError
from chromestore.genes import read_genes
from chromestore.store import records
from chromestore.store.verify import verify_store


@pytest.fixture
def genes40_table(genes40):
    return read_genes(genes40[0])


def test_local_creation__no_temporary_folder_left_and_every_flag_chunk_written(
    tmp_path, genes40_table
):
    S.create_store(tmp_path / "s.zarr", genes40_table, ["E003", "E004"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr", "s.zarr.locks"]
    flags = tmp_path / "s.zarr/signal_completed/c"
    chunks = sorted(str(p.relative_to(flags)) for p in flags.rglob("*") if p.is_file())
    assert chunks == [f"{c}/{m}" for c in range(2) for m in range(5)]  # false ones too


def test_local_leftover_of_a_killed_creation__path_is_empty_and_rerun_creates(
    tmp_path, genes40_table
):
    leftover = tmp_path / ".s.zarr.creating-0123456789ab"
    S.create_store(leftover, genes40_table, ["E003"])  # what a kill before the rename leaves
    shutil.rmtree(leftover / "signal")
    res = CliRunner().invoke(main, ["info", str(tmp_path / "s.zarr")])
    assert res.exit_code == 1 and "s.zarr: no chromestore store here" in res.output
    ds = S.create_store(tmp_path / "s.zarr", genes40_table, ["E003"])
    assert dict(ds.sizes) == {"cell": 1, "gene": 40, "mark": 5, "bin": 100}
    assert not leftover.exists()


def _interrupted(url: str, genes) -> None:
    """What a creation on an object store killed half way leaves: its marker, some arrays."""
    S.create_store(url, genes, ["E003"])
    fs, root = S.Store(url).fs()
    fs.rm(f"{root}/signal", recursive=True)
    fs.rm(f"{root}/expression", recursive=True)
    fs.pipe_file(f"{root}/creating", b'{"started": "now"}')


@pytest.mark.parametrize("command", ["info", "verify", "labels"])
def test_object_store_interrupted_creation__readers_say_so_in_one_line(genes40_table, command):
    url = f"memory://interrupted-{command}.zarr"
    _interrupted(url, genes40_table)
    res = CliRunner().invoke(main, [command, url])
    assert res.exit_code == 1
    assert res.output.strip() == (
        f"error: {url}: an interrupted creation (its 'creating' marker is there): delete "
        f"{url} or re-run the command that created it (ingest/simulate resume it; run needs "
        "--overwrite)"
    )


def test_object_store_interrupted_creation__rerun_completes_it(genes40_table, genes40):
    url = "memory://rerun.zarr"
    _interrupted(url, genes40_table)
    res = CliRunner().invoke(main, ["ingest", url, "--genes", str(genes40[0])])
    assert res.exit_code == 0, res.output
    fs, root = S.Store(url).fs()
    assert not fs.exists(f"{root}/creating")
    assert verify_store(url).ok
    assert dict(S.open_store(url).sizes) == {"cell": 0, "gene": 40, "mark": 5, "bin": 100}


def test_object_store_creation__marker_gone_once_whole(genes40_table):
    url = "memory://whole.zarr"
    S.create_store(url, genes40_table, ["E003"])
    fs = fsspec.filesystem("memory")
    assert not fs.exists("/whole.zarr/creating")
    assert S.Store(url).exists() and not S.Store(url).creating()


def test_create_store__existing_store_refused_unless_resume_with_the_same_layout(
    tmp_path, genes40_table
):
    path = tmp_path / "s.zarr"
    S.create_store(path, genes40_table, ["E003"], attrs={"simulated": True})
    with pytest.raises(S.StoreExists, match="a store already exists here$"):
        S.create_store(path, genes40_table, ["E003"])
    ds = S.create_store(path, genes40_table, ["E003"], attrs={"simulated": True}, resume=True)
    assert list(ds[V.CELL].values) == ["E003"]
    with pytest.raises(S.StoreExists, match=r"made with other settings \(bin_size 100 there"):
        S.create_store(path, genes40_table, ["E003"], bin_size=200, resume=True)
    with pytest.raises(S.StoreExists, match=r"other cell values \(1 there, 2 asked\)"):
        S.create_store(path, genes40_table, ["E003", "E004"], resume=True)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "s.zarr"
    chromestore.simulate(str(path), cells=3, genes=150, seed=2, gene_chunk=64)
    return path


def test_simulate_rerun_after_a_kill__fills_what_is_not_complete(simulated, tmp_path):
    path = tmp_path / "s.zarr"
    shutil.copytree(simulated, path)
    ds = S.open_store(path)
    # what a kill mid-way leaves: E005 not recorded complete, its chunks not written
    records.clear_records(path, ds, "E005", V.signal.name, list(V.DEFAULT_MARKS))
    shutil.rmtree(path / "signal/c/2")
    assert records.completed(S.open_store(path)) == {
        (c, m) for c in ("E003", "E004") for m in V.DEFAULT_MARKS
    }
    again = chromestore.simulate(str(path), cells=3, genes=150, seed=2, gene_chunk=64)
    want = S.open_store(simulated)
    xr.testing.assert_identical(again.signal.load(), want.signal.load())
    assert records.completed(again) == records.completed(want)
    assert verify_store(path).ok


def test_clearing_records__writes_only_the_flags_that_are_set(simulated, tmp_path):
    """A rewrite clears each pair's flag first; a flag already false is read, not rewritten
    (a new store's 280 pairs cost no writes there)."""
    path = tmp_path / "s.zarr"
    shutil.copytree(simulated, path)
    flags = path / V.RECORDS_OF[V.signal.name]

    def files():
        return {
            str(f.relative_to(flags)): (f.stat().st_ino, f.stat().st_mtime_ns)
            for f in (flags / "c").rglob("*")
            if f.is_file()
        }

    ds = S.open_store(path)
    records.clear_records(path, ds, "E005", V.signal.name, ["H3K4me3", "H3K27me3"])
    first = files()
    assert len(first) == 3 * 5  # one chunk per (cell, mark), every one stored
    records.clear_cells_records(
        path, ds, V.signal.name, {"E005": list(V.DEFAULT_MARKS), "E004": ["H3K4me3"]}
    )
    changed = {k for k, v in files().items() if first[k] != v}
    # E005's three set flags and E004's H3K4me3 rewritten; its two cleared ones untouched
    marks = list(V.DEFAULT_MARKS)
    assert changed == {
        f"c/2/{marks.index(m)}" for m in marks if m not in ("H3K4me3", "H3K27me3")
    } | {f"c/1/{marks.index('H3K4me3')}"}
    done = records.completed(S.open_store(path))
    assert not any(c == "E005" for c, _ in done) and ("E004", "H3K4me3") not in done
    assert ("E004", "H3K27me3") in done and len(done) == 15 - 6


def test_simulate_into_a_store_of_other_settings__refused_naming_the_difference(
    simulated, tmp_path
):
    path = tmp_path / "s.zarr"
    shutil.copytree(simulated, path)
    with pytest.raises(StoreError, match=r"made with other settings \(simulation_seed 2 there"):
        chromestore.simulate(str(path), cells=3, genes=150, seed=3, gene_chunk=64)
    assert np.isfinite(S.open_store(path).signal.values).all()
