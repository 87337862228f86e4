"""Missing is not NaN: a chunk or ``zarr.json`` deleted from a store is named by ``verify``
(exit 1), by ``info`` and by every read of it, never read as NaN; a corrupt coordinate or
completion-flag chunk is named (store, variable, chunk) by every command, never with zarr's
raw text."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore.app.cli import main
from chromestore.errors import ChunkError
from chromestore.store import integrity, missing_chunks, open_store, records
from tests.snapshots import flip_bit


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_new_store__every_chunk_of_what_it_records_is_stored(store):
    assert missing_chunks(store) == []
    assert _cli("verify", store).exit_code == 0
    # 3 cells × 3 gene chunks of signal, of expression; flags: one chunk per (cell, mark)
    for name, n in (("signal", 9), ("expression", 9), ("signal_completed", 15),
                    ("signal_units", 15)):  # fmt: skip
        assert len([p for p in (store / name / "c").rglob("*") if p.is_file()]) == n


def test_deleted_signal_chunk__verify_names_it_and_exits_1(store):
    (store / "signal/c/1/2/0/0").unlink()
    (store / "expression/c/0/1").unlink()
    res = _cli("verify", store)
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.startswith("missing:")]
    assert len(lines) == 2
    assert lines[0].startswith("missing: expression/c/0/1 (cell E003, genes 64–127)")
    assert lines[1].startswith("missing: signal/c/1/2/0/0 (cell E004, genes 128–149)")
    assert "E004 has signal marks recorded complete" in lines[1]
    assert res.output.strip().endswith(f"error: {store}: 2 missing (listed above)")


@pytest.mark.parametrize("node", ["signal", "gene_name", "signal_completed"])
def test_deleted_zarr_json__verify_names_it_and_exits_1(store, node):
    (store / node / "zarr.json").unlink()
    res = _cli("verify", store)
    assert res.exit_code == 1
    assert f"missing: {node}/zarr.json: the metadata of variable {node!r}" in res.output


def test_deleted_record_zarr_json__verify_names_it(store):
    (store / "records/E003/zarr.json").unlink()
    res = _cli("verify", store)
    assert res.exit_code == 1
    assert "missing: records/E003/zarr.json: the metadata of node 'records/E003'" in res.output


@pytest.mark.parametrize(
    "chunk, what",
    [
        ("gene_name/c/0", "coordinate"),
        ("cell/c/0", "coordinate"),
        ("signal_completed/c/2/4", "completion flag"),
        ("signal_units/c/1/3", "signal units"),
    ],
)
def test_deleted_coordinate_or_flag_chunk__verify_names_it(store, chunk, what):
    (store / chunk).unlink()
    res = _cli("verify", store)
    assert res.exit_code == 1
    line = next(line for line in res.output.splitlines() if line.startswith("missing:"))
    assert line.startswith(f"missing: {chunk}")
    assert f"every {what} chunk is written" in line


def test_deleted_chunk__a_read_raises_chunk_error_naming_it_not_nan(store):
    (store / "signal/c/1/2/0/0").unlink()
    ds = open_store(store)
    assert np.isfinite(ds.signal.sel(cell="E004").isel(gene=slice(0, 128)).values).all()
    with pytest.raises(ChunkError) as err:
        ds.signal.sel(cell="E004").load()
    assert str(err.value).startswith(
        f"{store}: chunk signal/c/1/2/0/0 of variable 'signal' (cell E004, genes 128–149) is "
        "missing, though E004 has signal marks recorded complete: its values are lost, not NaN"
    )


def test_deleted_chunk__info_shows_the_cell_lost_and_names_the_chunk(store):
    (store / "signal/c/1/2/0/0").unlink()
    res = _cli("info", store)
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split()[1:] for line in res.output.splitlines()[-8:]}
    assert rows["E003"] == ["done"] * 5 and rows["E004"] == ["lost"] * 5
    assert (
        "missing: chunk signal/c/1/2/0/0 of signal (cell E004): its values are lost, not NaN"
        in res.output
    )
    facts = _cli("info", store, "--format", "json").output
    assert '"key": "signal/c/1/2/0/0"' in facts


@pytest.mark.parametrize(
    "chunk, command",
    [
        (chunk, command)
        for chunk in ("gene/c/0", "cell/c/0", "gene_tss/c/0")
        for command in ("info", "labels", "query")
    ]
    + [("signal_completed/c/0/0", "info")],  # (labels and query do not read the flags)
)
def test_corrupt_coordinate_or_flag_chunk__commands_name_store_variable_and_chunk(
    store, chunk, command
):
    flip_bit(store / chunk, 12)
    args = ["--gene", "TSPAN6"] if command == "query" else []
    res = _cli(command, store, *args)
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    name = chunk.split("/")[0]
    assert line.startswith(f"error: {store}: chunk {chunk} of variable {name!r}"), line
    assert "is corrupt: checksum mismatch" in line
    assert "Stored and computed" not in res.output


def test_completion_flags__read_at_once_equal_their_chunks_read_one_by_one(store):
    import zarr

    zarr.open_array(store / "signal_completed", mode="r+")[1, 4] = False  # E004's 5th mark
    ds = open_store(store)
    pair = ("E004", str(ds.mark.values[4]))
    flags = ds.signal_completed
    whole = integrity.whole_values(flags)  # one Zarr read of the 15 one-pair chunks
    assert whole is not None and whole.shape == (3, 5) and whole.dtype == bool
    np.testing.assert_array_equal(whole, flags.compute().values)  # one Dask task per chunk
    assert whole.sum() == 14 and not whole[1, 4]
    assert pair not in records.completed(ds)
    assert len(records.completed(ds)) == 14
    # a sliced or replaced variable is no longer the whole array: read as Dask reads it
    swapped = ds.isel(cell=[1, 0])
    assert integrity.whole_values(swapped.signal_completed) is None
    assert pair not in records.completed(swapped)
    assert len(records.completed(swapped)) == 9
    replaced = ds.assign(signal_completed=flags.copy(data=flags.data[::-1]))
    assert integrity.whole_values(replaced.signal_completed) is None
    assert pair not in records.completed(replaced)
    assert ("E003", pair[1]) in records.completed(replaced)


def test_deleted_chunk__query_of_a_gene_in_it_names_the_chunk(store):
    gene = str(open_store(store).gene.values[0])
    (store / "signal/c/0/0/0/0").unlink()
    res = _cli("query", store, "--gene", gene, "--cell", "E003")
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {store}: chunk signal/c/0/0/0/0 of variable 'signal'")
