"""Ingest repairs what it rewrites: a corrupt or missing chunk of an epigenome is rewritten
by ``ingest --force`` of its files (and a missing one by a plain re-run); the marks of that
chunk not given again are no longer complete, and the summary says so."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore.app.cli import main
from chromestore.ingest import run_ingest
from chromestore.store import open_store, records
from chromestore.store.verify import verify_store
from tests.conftest import sheet
from tests.snapshots import flip_bit

MARKS = ("H3K4me3", "H3K27me3")


@pytest.fixture(scope="module")
def built(tmp_path_factory, genes40):
    bed, table = genes40
    root = tmp_path_factory.mktemp("repair")
    rng = np.random.default_rng(0)
    rows = []
    for mark in MARKS:
        g = rng.integers(0, len(table), 5000)
        start = np.maximum(table["tss"].to_numpy()[g] + rng.integers(-4000, 4000, 5000), 0)
        chrom = table["chrom"].to_numpy()[g]
        (root / f"{mark}.tagAlign").write_text(
            "".join(f"{c}\t{s}\t{s + 36}\tN\t1000\t+\n" for c, s in zip(chrom, start, strict=True))
        )
        rows.append(("E003", mark, "tagAlign", f"{mark}.tagAlign"))
    both = sheet(root, rows, "both.csv")
    one = sheet(root, rows[:1], "one.csv")
    path = root / "base.zarr"
    run_ingest(path, bed, samples=both)
    return path, both, one


@pytest.fixture
def store(built, tmp_path):
    path = tmp_path / "s.zarr"
    shutil.copytree(built[0], path)
    return path


def _ingest(store, samples, *extra):
    return CliRunner().invoke(
        main, ["ingest", str(store), "--samples", str(samples), "--workers", "0", *extra]
    )


def test_corrupt_signal_chunk__force_ingest_of_its_files_repairs_it(built, store):
    want = open_store(built[0]).signal.values
    flip_bit(store / "signal/c/0/0/0/0", 40)
    assert not verify_store(store).ok
    res = _ingest(store, built[1], "--force")
    assert res.exit_code == 0, res.output
    assert "E003: chunk signal/c/0/0/0/0 of signal was corrupt (checksum mismatch" in res.output
    assert verify_store(store).ok
    np.testing.assert_array_equal(open_store(store).signal.values, want)


def test_corrupt_signal_chunk__force_of_one_mark_leaves_the_others_not_complete(built, store):
    flip_bit(store / "signal/c/0/0/0/0", 40)
    res = _ingest(store, built[2], "--force")
    assert res.exit_code == 0, res.output
    assert (
        "rewritten (marks H3K27me3 lost their values there and are no longer complete: "
        "ingest them again)" in res.output
    )
    ds = open_store(store)
    assert records.completed(ds) == {("E003", "H3K4me3")}
    assert np.isnan(ds.signal.sel(cell="E003", mark="H3K27me3").values).all()
    assert verify_store(store).ok


def test_missing_signal_chunk__a_plain_rerun_rewrites_it(built, store):
    want = open_store(built[0]).signal.values
    (store / "signal/c/0/0/0/0").unlink()
    res = _ingest(store, built[1])
    assert res.exit_code == 0, res.output
    assert "E003: chunk signal/c/0/0/0/0 of signal was missing; rewritten" in res.output
    assert verify_store(store).ok
    np.testing.assert_array_equal(open_store(store).signal.values, want)
