"""Checksums: every chunk carries a CRC-32C; a changed chunk raises an error naming the
variable, the cell and the chunk; `chromestore verify` reads every chunk and names each
bad one. Stores written before checksums still open, and verify says they have none."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

import chromestore
from chromestore.app.cli import main
from chromestore.errors import ChunkError
from chromestore.store.integrity import has_checksum
from chromestore.store.verify import verify_store
from tests.conftest import ROOT
from tests.snapshots import flip_bit, snapshot

FROZEN = ROOT / "tests" / "data" / "frozen_v1.zarr"


def test_new_store__every_array_carries_a_crc32c_checksum(store):
    group = zarr.open_group(str(store), mode="r")
    arrays = list(group.arrays())
    assert {name for name, _ in arrays} >= {"signal", "expression", "peak_max", "cell", "gene"}
    for name, array in arrays:
        codecs = json.loads((store / name / "zarr.json").read_text())["codecs"]
        assert codecs[-1] == {"name": "crc32c"}, (name, codecs)
        assert has_checksum(array)
    # a cell appended later carries one too
    chromestore.add_cells(store, ["E116"])
    assert has_checksum(zarr.open_array(str(store / "cell"), mode="r"))


def test_flipped_bit__read_raises_naming_variable_cell_and_chunk(store):
    before = chromestore.open_store(store).signal.sel(cell="E004").values
    flip_bit(store / "signal" / "c" / "1" / "2" / "0" / "0")
    ds = chromestore.open_store(store)
    with pytest.raises(ChunkError) as err:
        ds.signal.sel(cell="E004").values  # noqa: B018
    msg = str(err.value)
    assert "chunk signal/c/1/2/0/0 of variable 'signal' (cell E004, genes 128–149)" in msg
    assert "checksum mismatch" in msg and f"chromestore verify {store}" in msg
    # the other chunks of that cell and the other cells read back unchanged
    np.testing.assert_array_equal(
        ds.signal.sel(cell="E004").isel(gene=slice(0, 128)).values, before[:128]
    )
    assert np.isfinite(ds.signal.sel(cell="E005").values).all()


def test_flipped_bit__a_single_gene_read_names_the_chunk_too(store):
    flip_bit(store / "expression" / "c" / "2" / "1")
    ds = chromestore.open_store(store)
    with pytest.raises(
        ChunkError,
        match=r"expression/c/2/1 of variable 'expression' "
        r"\(cell E005, genes 64–127\)",
    ):
        float(ds.expression.sel(cell="E005").isel(gene=70))


@pytest.mark.cluster
@pytest.mark.timeout(120)
def test_flipped_bit__dask_worker_process_raises_the_same_error(store):
    from distributed import Client, LocalCluster

    flip_bit(store / "signal" / "c" / "0" / "0" / "0" / "0")
    ds = chromestore.open_store(store)
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=50,
        ) as cluster,
        Client(cluster),
    ):
        with pytest.raises(ChunkError, match=r"signal/c/0/0/0/0 .*\(cell E003, genes 0–63\)"):
            ds.signal.mean().compute()


def test_verify__clean_store_exits_0_and_reads_every_chunk(store):
    before = snapshot(store)
    res = CliRunner().invoke(main, ["verify", str(store)])
    assert res.exit_code == 0, res.output
    report = verify_store(store)
    chunk_files = [k for k in before if "/c/" in f"/{k}"]
    assert report.chunks == len(chunk_files) and report.ok and not report.unchecked
    assert f"{report.chunks} chunks" in res.output and "every chunk reads back" in res.output
    assert snapshot(store) == before


def test_verify__names_each_bad_chunk_and_exits_1(store):
    flip_bit(store / "signal" / "c" / "2" / "0" / "0" / "0", offset=40, bit=3)
    flip_bit(store / "expression" / "c" / "0" / "1")
    (store / "signal" / "c" / "1" / "1" / "0" / "0").write_bytes(b"not a chunk at all")
    before = snapshot(store)
    res = CliRunner().invoke(main, ["verify", str(store)])
    assert res.exit_code == 1
    bad = [line for line in res.output.splitlines() if line.startswith("bad: ")]
    assert [b.split(":")[1].strip().split(" (")[0] for b in bad] == [
        "expression/c/0/1",
        "signal/c/1/1/0/0",
        "signal/c/2/0/0/0",
    ]
    assert "(cell E003, genes 64–127): checksum mismatch" in bad[0]
    assert "(cell E004, genes 64–127): checksum mismatch" in bad[1]
    assert "(cell E005, genes 0–63): checksum mismatch" in bad[2]
    assert res.output.strip().splitlines()[-1] == f"error: {store}: 3 bad chunks (listed above)"
    assert snapshot(store) == before


def test_verify__on_dask_gives_the_same_report(store):
    from distributed import Client, LocalCluster

    flip_bit(store / "signal" / "c" / "1" / "0" / "0" / "0")
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        on_dask = verify_store(store, client=client)
    here = verify_store(store)
    assert on_dask.bad == here.bad and len(here.bad) == 1
    assert on_dask.chunks == here.chunks


def test_verify__reports_metadata_that_is_not_json(store):
    (store / "gene_tss" / "zarr.json").write_text("{not json")
    report = verify_store(store)
    assert [b.key for b in report.bad] == ["gene_tss/zarr.json"]
    assert "not valid JSON" in report.bad[0].problem


def test_store_written_before_checksums__opens_and_verify_says_unchecked(tmp_path):
    # the frozen v1 store (no checksums, genome-order bins), upgraded to the current layout
    old = tmp_path / "old.zarr"
    shutil.copytree(FROZEN, old)
    assert CliRunner().invoke(main, ["upgrade", str(old)]).exit_code == 0
    res = CliRunner().invoke(main, ["verify", str(old)])
    assert res.exit_code == 0, res.output
    assert "13 arrays carry no checksum" in res.output
    assert "every chunk reads back" in res.output
    info = CliRunner().invoke(main, ["info", str(old)])
    # only the completion variables that the upgrade to v3 added carry checksums
    assert "checksums: some arrays" in info.output
    # a chunk of garbage there is still named, by the error it decodes with
    (old / "signal" / "c" / "0" / "0" / "0" / "0").write_bytes(b"garbage")
    res = CliRunner().invoke(main, ["query", str(old), "--gene", "TSPAN6"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and len(lines) == 1, res.output
    assert "chunk signal/c/0/0/0/0 of variable 'signal' (cell E003, genes 0–11)" in lines[0]
    assert "does not decode" in lines[0]
    res = CliRunner().invoke(main, ["verify", str(old)])
    assert res.exit_code == 1 and "bad: signal/c/0/0/0/0 (cell E003, genes 0–11)" in res.output


def test_info__says_every_chunk_carries_a_checksum(store):
    res = CliRunner().invoke(main, ["info", str(store)])
    assert res.exit_code == 0, res.output
    assert f"checksums: every chunk (`chromestore verify {store}`" in res.output
    assert (
        json.loads(CliRunner().invoke(main, ["info", str(store), "--format", "json"]).output)[
            "checksums"
        ]
        == "every chunk"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["labels"],
        ["query", "--gene", "TSPAN6", "--cell", "E004"],
        ["train", "--model", "shallowchrome", "--run", "sc", "--split", "random"],
        ["train", "--model", "deepchrome", "--epochs", "1", "--run", "dc", "--split", "random"],
    ],
)
def test_corrupt_chunk__every_reading_command_says_which_in_one_line(store, command):
    target = {"labels": "expression/c/1/0"}.get(command[0], "signal/c/1/0/0/0")
    flip_bit(store / target)
    before = snapshot(store)
    res = CliRunner().invoke(main, [command[0], str(store), *command[1:], "--workers", "0"])
    assert res.exit_code == 1
    lines = [line for line in res.output.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert (
        f"chunk {target} of variable '{target.split('/')[0]}' (cell E004, genes 0–63)" in lines[0]
    )
    assert snapshot(store) == before


def test_runs_predictions_and_metrics__carry_checksums_and_verify_names_a_bad_run_chunk(store):
    from chromestore.analysis.analyze import analyze_run
    from chromestore.training.trainer import TrainConfig, train

    train(
        str(store),
        "r1",
        "E003",
        TrainConfig(split="random", epochs=1, batch_size=32),
        mode="loop",
        device="cpu",
        progress=False,
    )
    analyze_run(str(store), ["r1"])
    report = verify_store(store)
    assert report.ok and not report.unchecked, report.unchecked
    run_arrays = [k for k in snapshot(store) if k.startswith("runs/r1/") and "/c/" in k]
    assert any(k.startswith("runs/r1/prediction/") for k in run_arrays)
    assert any("/metrics/" in k for k in run_arrays)
    bad = next(k for k in run_arrays if k.startswith("runs/r1/prediction/"))
    flip_bit(store / bad)
    res = CliRunner().invoke(main, ["verify", str(store)])
    assert res.exit_code == 1 and bad in res.output, res.output
