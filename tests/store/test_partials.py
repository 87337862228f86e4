"""A writer killed while zarr wrote a metadata file leaves ``zarr.<hex>.partial`` beside
it; readers pass over it without a word, and the next writer removes it."""

from __future__ import annotations

import warnings

import pytest
from click.testing import CliRunner

import chromestore
from chromestore.app.cli import main

HALF = "zarr." + "0123456789abcdef" * 2 + ".partial"


def _open_warnings(path) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        chromestore.open_store(str(path))
    return [str(w.message) for w in seen]


def _train(store, run: str) -> None:
    res = CliRunner().invoke(
        main, ["--workers", "0", "train", str(store), "--model", "shallowchrome", "--run", run]
    )
    assert res.exit_code == 0, res.output


@pytest.mark.filterwarnings("ignore:Object at zarr.0123456789abcdef")
def test_half_written_metadata__readers_are_quiet_and_the_next_writer_removes_it(store):
    _train(store, "first")
    left = [store / HALF, store / "records" / "E003" / HALF]
    staged = store / "runs" / ".dc.tmp-1" / HALF  # a run being staged: its writer's own
    chunk = store / "signal" / "c" / HALF  # not metadata: never looked at
    for path in (*left, staged, chunk):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'{"zarr_format": 3, "node_ty')
    (staged.parent / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    assert _open_warnings(store) == []  # a reader: not its concern
    res = CliRunner().invoke(main, ["--workers", "0", "labels", str(store)])
    assert res.exit_code == 0, res.output  # a reader: touches nothing
    assert all(p.exists() for p in left)
    _train(store, "sc")  # a writer: takes the lock, cleans
    assert not any(p.exists() for p in left)
    assert staged.exists() and chunk.exists()
    assert _open_warnings(store) == []
