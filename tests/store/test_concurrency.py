"""Concurrent writers of one store: several ``chromestore ingest`` processes at once, a writer
killed mid-write, the store lock itself. Each must leave what one sequential ingest leaves."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.genes import read_gene_bed
from chromestore.ingest import run_ingest
from chromestore.ingest.writes import write_cell
from chromestore.store import records
from tests.conftest import GENES_BED, sheet

pytestmark = pytest.mark.timeout(600)

N_READS = 50_000
#: four writers started together: two marks of one new epigenome, two other new epigenomes
JOBS = (("E901", "H3K4me3"), ("E901", "H3K27me3"), ("E902", "H3K4me3"), ("E903", "H3K9me3"))
TRIALS = 5
#: seconds a group of writers may take before they are killed and the test fails
WRITER_TIMEOUT = 240


def _tagalign(path: Path, genes, seed: int, n: int = N_READS) -> Path:
    """``n`` 36 bp reads around the TSS of ``genes`` (a BED6 tagAlign, gzip-free)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, len(genes), n)
    start = genes["tss"].to_numpy()[g] + rng.integers(-6000, 6000, n)
    strand = np.where(rng.random(n) < 0.5, "+", "-")
    chrom = genes["chrom"].to_numpy()[g]
    lines = [
        f"{c}\t{s}\t{s + 36}\tN\t1000\t{d}\n"
        for c, s, d in zip(chrom, np.maximum(start, 0), strand, strict=True)
    ]
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """An empty store of 40 genes, one tagAlign and one samplesheet per job, and the store
    one sequential ingest of all four leaves."""
    root = tmp_path_factory.mktemp("concurrency")
    genes = read_gene_bed(GENES_BED).iloc[:40].reset_index(drop=True)
    bed = root / "genes40.bed"
    bed.write_text(
        "".join(
            f"{g.chrom}\t{g.tss - 10000}\t{g.tss + 10000}\t{g.gene}\t0\t{g.strand}\n"
            for g in genes.itertuples()
        )
    )
    empty = root / "empty.zarr"
    run_ingest(empty, bed)
    sheets = []
    for i, (cell, mark) in enumerate(JOBS):
        reads = _tagalign(root / f"{cell}.{mark}.tagAlign", genes, seed=i)
        sheets.append(sheet(root, [(cell, mark, "tagAlign", reads.name)], f"job{i}.csv"))
    sequential = root / "sequential.zarr"
    shutil.copytree(empty, sequential)
    for s in sheets:
        run_ingest(sequential, samples=s)
    return empty, sheets, _canonical(sequential)


def _canonical(path) -> dict:
    """What must match: cells, signal per cell, completion and provenance (no times)."""
    ds = S.open_store(path).load()
    prov = {
        k: {f: v for f, v in p.items() if f not in ("completed", "seconds")}
        for k, p in records.provenance(ds).items()
    }
    for p in prov.values():  # paths differ between copies of the inputs
        p["file"] = os.path.basename(p["file"])
    order = ds.sortby(V.CELL)
    return {
        "cells": sorted(str(c) for c in ds[V.CELL].values),
        "signal": order[V.signal.name],
        "completed": records.completed(ds),
        "provenance": prov,
        # the variable as stored (records.signal_units would fall back on the provenance)
        "units": {
            (str(c), str(m)): str(order[V.signal_units.name].sel(cell=c, mark=m).item())
            for c, m in records.completed(ds)
        },
    }


def _sequential(empty: Path, sheets, path: Path) -> dict:
    """What one sequential ingest of ``sheets`` into a copy of ``empty`` leaves."""
    if not path.exists():
        shutil.copytree(empty, path)
        for s in sheets:
            run_ingest(path, samples=s)
    return _canonical(path)


def _assert_same(got: dict, want: dict, jobs=JOBS) -> None:
    assert got["cells"] == want["cells"]
    assert got["completed"] == want["completed"] == set(jobs)
    assert got["provenance"] == want["provenance"]
    assert got["units"] == want["units"] and set(got["units"].values()) == {"reads"}
    xr.testing.assert_identical(got["signal"], want["signal"])


def _cli(store, samples, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chromestore",
            "ingest",
            str(store),
            "--samples",
            str(samples),
            "--workers",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(procs: list[subprocess.Popen], timeout: float = WRITER_TIMEOUT) -> list[str]:
    """The outputs of ``procs`` once all exited; past ``timeout`` seconds all are killed and
    the test fails with what they printed (a stuck writer never hangs the suite)."""
    deadline = time.monotonic() + timeout
    outs: list[str | None] = [None] * len(procs)
    try:
        for i, p in enumerate(procs):
            outs[i] = p.communicate(timeout=max(0.1, deadline - time.monotonic()))[0]
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                p.kill()
        outs = [
            out if out is not None else p.communicate()[0]
            for out, p in zip(outs, procs, strict=True)
        ]
        pytest.fail(f"writers still running after {timeout:.0f} s:\n" + "\n".join(outs))
    return [out or "" for out in outs]


@pytest.mark.parametrize("trials", [1, pytest.param(TRIALS, marks=pytest.mark.slow)])
def test_four_ingest_processes_at_once__equal_one_sequential_ingest(inputs, tmp_path, trials):
    empty, sheets, want = inputs
    for trial in range(trials):
        store = tmp_path / f"trial{trial}.zarr"
        shutil.copytree(empty, store)
        procs = [_cli(store, s) for s in sheets]
        outs = _finish(procs)
        assert [p.returncode for p in procs] == [0] * 4, "\n".join(outs)
        added = [line for out in outs for line in out.splitlines() if "added" in line]
        assert sorted(added) == sorted(set(added)), added  # no epigenome added twice
        _assert_same(_canonical(store), want)


def test_writer_killed_mid_write__other_finishes_rerun_completes(inputs, tmp_path):
    """SIGKILL one writer while it writes its epigenome (holding the store's write lock, its
    cell in the store, its mark not yet recorded), another writing meanwhile."""
    empty, sheets, want = inputs
    store = tmp_path / "killed.zarr"
    shutil.copytree(empty, store)
    victim = _cli(store, sheets[0])
    other = _cli(store, sheets[2])
    try:
        caught = _stop_while_writing(victim, store, JOBS[0])
    finally:
        victim.kill()
        victim.wait()
    assert caught, "the writer finished before it was caught writing:\n" + victim.stdout.read()
    out = _finish([other])[0]
    assert other.returncode == 0, out
    ds = S.open_store(store)
    assert ("E902", "H3K4me3") in records.completed(ds)
    assert JOBS[0] not in records.completed(ds)  # killed before its record: not complete
    # the re-run, every job's row in one samplesheet: completes the killed one (its cell
    # already in the store) and skips what is done
    rows = [line.split(",") for s in sheets for line in s.read_text().splitlines()[1:]]
    rows = [(c, m, f, str(sheets[0].parent / path)) for c, m, f, path in rows]
    res = _cli(store, sheet(tmp_path, rows, "again.csv"))
    out = _finish([res])[0]
    assert res.returncode == 0, out
    _assert_same(_canonical(store), want)


def _stop_while_writing(
    proc: subprocess.Popen, store: Path, job: tuple[str, str], limit: float = 120
) -> bool:
    """SIGSTOP ``proc`` at a moment it holds the store's write lock with ``job``'s cell in the
    store and ``job`` not recorded (checked again once it is stopped, so the moment is
    exact); True when caught so (it stays stopped), False when it exited first."""
    import zarr

    lock_file = str(Path(f"{store}.locks") / f"{S.WRITE_LOCK}.lock")
    fd_dir = Path(f"/proc/{proc.pid}/fd")
    cell, mark = job

    def writing() -> bool:
        try:
            if not any(os.path.realpath(fd_dir / fd) == lock_file for fd in os.listdir(fd_dir)):
                return False
            cells = [str(c) for c in zarr.open_array(f"{store}/cell", mode="r")[...]]
            if cell not in cells:
                return False
            marks = [str(m) for m in zarr.open_array(f"{store}/mark", mode="r")[...]]
            flags = zarr.open_array(f"{store}/{V.RECORDS_OF['signal']}", mode="r")
            return not bool(flags[cells.index(cell), marks.index(mark)])
        except (OSError, ValueError, KeyError, IndexError):  # being written: look again
            return False

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if writing():
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.05)
            if writing():
                return True
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    return False


def test_store_lock__excludes_threads_and_is_reentrant(tmp_path, small_genes):
    store = S.Store.of(tmp_path / "s.zarr")
    S.create_store(store, small_genes)
    inside, overlaps = [], []

    def hold(i):
        with store.lock(), store.lock():  # re-entrant
            inside.append(i)
            if len(inside) > 1:
                overlaps.append(i)
            time.sleep(0.05)
            inside.remove(i)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert overlaps == []
    assert not list(Path(store.url).glob("*.lock"))  # nothing inside the Zarr hierarchy
    assert (Path(store.url + ".locks") / "write.lock").exists()


def test_open_zarr__sees_no_lock_files(tmp_path, small_genes):
    import warnings

    store = S.Store.of(tmp_path / "s.zarr")
    S.create_store(store, small_genes)
    S.add_cells(store, ["E003"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(xr.open_zarr(store.url, zarr_format=3, consolidated=False).cell.values) == [
            "E003"
        ]
        import zarr

        assert "signal_completed" in zarr.open_group(store.url, mode="r")


def test_format2_store__converted_on_first_write_records_kept(tmp_path):
    from tests.conftest import ROOT

    path = tmp_path / "v2.zarr"
    shutil.copytree(ROOT / "tests" / "data" / "frozen_v2.zarr", path)
    before = S.open_store(path)
    legacy = records.completed(before)
    assert before.attrs["format_version"] == 2 and legacy == {("E003", "H3K4me3")}
    S.add_cells(path, ["E999"])
    after = S.open_store(path)
    assert after.attrs["format_version"] == V.FORMAT_VERSION
    assert "completed" not in after.attrs and "provenance" not in after.attrs
    assert records.completed(after) == legacy
    assert records.provenance(after)[("E003", "H3K4me3")]["path"] == "synthetic"


# --- on S3 (a real moto server) and through one Dask scheduler ---------------------------


@pytest.mark.cluster
@pytest.mark.parametrize(
    "trials, writers", [(1, 2), pytest.param(TRIALS, 4, marks=pytest.mark.slow)]
)
def test_ingest_processes_at_once_on_s3__equal_one_sequential_ingest(
    inputs, s3_server, trials, writers
):  # noqa: F811
    """Two writers at once on S3 (four, five times over, in the slow run): the store equals
    one sequential ingest of the same rows."""
    empty, sheets, want = inputs
    bucket = f"concurrency{trials}"
    s3_server.make_bucket(bucket)
    so = s3_server.options()
    bed = empty.parent / "genes40.bed"
    mine = sheets[:writers]
    if writers < len(sheets):
        want = _sequential(empty, mine, empty.parent / f"sequential{writers}.zarr")
    for trial in range(trials):
        url = f"s3://{bucket}/trial{trial}.zarr"
        run_ingest(url, bed, storage_options=so)
        procs = [_cli(url, s, "--storage-options", json.dumps(so)) for s in mine]
        outs = _finish(procs)
        assert [p.returncode for p in procs] == [0] * writers, "\n".join(outs)
        _assert_same(_canonical(S.Store.of(url, so)), want, JOBS[:writers])


@pytest.mark.cluster
@pytest.mark.parametrize("trials", [1, pytest.param(TRIALS, marks=pytest.mark.slow)])
def test_two_clients_through_one_scheduler__equal_one_sequential_ingest(
    inputs, dask_cluster, tmp_path, trials
):  # noqa: F811
    empty, sheets, want = inputs
    for trial in range(trials):
        store = tmp_path / f"trial{trial}.zarr"
        shutil.copytree(empty, store)
        both = sheet(
            sheets[0].parent,
            [line.split(",") for s in sheets[:2] for line in s.read_text().splitlines()[1:]],
            f"first{trial}.csv",
        )
        rest = sheet(
            sheets[0].parent,
            [line.split(",") for s in sheets[2:] for line in s.read_text().splitlines()[1:]],
            f"rest{trial}.csv",
        )
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chromestore",
                    "--scheduler",
                    dask_cluster.address,
                    "ingest",
                    str(store),
                    "--samples",
                    str(s),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for s in (both, rest)
        ]
        outs = _finish(procs)
        assert [p.returncode for p in procs] == [0, 0], "\n".join(outs) + dask_cluster.logs()
        _assert_same(_canonical(store), want)


def test_object_lock__one_holder_and_stale_lease_taken_over(tmp_path):
    """The S3 lock protocol on fsspec's local filesystem (create-if-absent is O_EXCL there)."""
    import fsspec

    from chromestore.store.locks import LockTimeout, ObjectLock

    fs = fsspec.filesystem("file")
    path = str(tmp_path / "x.zarr.locks" / "write")
    fs.makedirs(str(tmp_path / "x.zarr.locks"), exist_ok=True)
    first = ObjectLock(fs, path, lease=30, timeout=0.3)
    first.acquire()
    with pytest.raises(LockTimeout, match="not acquired"):
        ObjectLock(fs, path, lease=30, timeout=0.3).acquire()
    first.release()
    assert not fs.exists(path)
    fs.pipe_file(path, json.dumps({"owner": "dead", "expires": time.time() - 1}).encode())
    with ObjectLock(fs, path, lease=30, timeout=5) as taker:  # the dead holder's lease expired
        assert json.loads(fs.cat_file(path))["owner"] == taker.owner


class _AnswerLost:
    """A filesystem whose conditional create is made but answered "exists" (a PUT retried
    after its first answer was lost), or that fails every write (``broken``)."""

    def __init__(self, fs, broken: bool = False) -> None:
        self.fs, self.broken = fs, broken

    def pipe_file(self, path, data, mode="overwrite"):
        if self.broken:
            raise PermissionError(13, "Access Denied")
        self.fs.pipe_file(path, data, mode=mode)
        if mode == "create":
            raise OSError(
                errno.EINVAL,
                "PreconditionFailed: At least one of the pre-conditions you specified did not hold",
            )

    def __getattr__(self, name):
        return getattr(self.fs, name)


def _lock_path(tmp_path) -> str:
    folder = tmp_path / "x.zarr.locks"
    folder.mkdir()
    return str(folder / "write")


def test_object_lock__own_create_answered_exists_is_held(tmp_path):
    import fsspec

    from chromestore.store.locks import ObjectLock

    fs = fsspec.filesystem("file")
    path = _lock_path(tmp_path)
    lock = ObjectLock(_AnswerLost(fs), path, lease=30, timeout=0.5)
    lock.acquire()  # not a 0.5 s wait ending in LockTimeout: the object is its own
    assert json.loads(fs.cat_file(path))["owner"] == lock.owner
    lock.release()
    assert not fs.exists(path)


def test_object_lock__storage_error_is_raised_at_once_not_waited_on(tmp_path):
    import fsspec

    from chromestore.store.locks import LockError, ObjectLock

    lock = ObjectLock(
        _AnswerLost(fsspec.filesystem("file"), broken=True), _lock_path(tmp_path), timeout=600
    )
    started = time.monotonic()
    with pytest.raises(LockError, match="cannot create the lock object .*Access Denied"):
        lock.acquire()
    assert time.monotonic() - started < 60  # far below the 600 s wait for a holder


def test_object_lock__lease_taken_over_while_held_is_reported_lost(tmp_path):
    import fsspec

    from chromestore.store.locks import LockLost, ObjectLock

    fs = fsspec.filesystem("file")
    path = _lock_path(tmp_path)
    lock = ObjectLock(fs, path, lease=0.6, timeout=5)
    lock.acquire()
    lock.verify()  # held: nothing to report
    fs.pipe_file(path, json.dumps({"owner": "newcomer", "expires": time.time() + 60}).encode())
    deadline = time.monotonic() + 10
    while lock._lost is None and time.monotonic() < deadline:  # the renewer looks every 0.1 s
        time.sleep(0.05)
    with pytest.raises(LockLost, match="lost while held .*newcomer.*run the command again"):
        lock.verify()
    lock.release()
    assert json.loads(fs.cat_file(path))["owner"] == "newcomer"  # not the loser's to delete


def test_cell_append_left_half_done__undone_then_readers_and_writers_work(tmp_path, small_genes):
    """A writer killed inside add_cells' append leaves arrays of different ``cell`` lengths;
    the next open (under the lock) cuts them back, and the next add_cells appends anew."""
    import zarr

    store = S.Store.of(tmp_path / "s.zarr")
    S.create_store(store, small_genes, ["E003"])
    write_cell(
        store,
        "E003",
        {"H3K4me3": np.ones((len(small_genes), 100), np.float32)},
        records={"signal": {"H3K4me3": {"format": "test"}}},
    )
    for name in ("cell", "signal"):  # the append had resized these two when it was killed
        array = zarr.open_array(f"{store.url}/{name}", mode="r+")
        array.resize((2, *array.shape[1:]))
    ds = S.open_store(store)
    assert [str(c) for c in ds[V.CELL].values] == ["E003"]
    assert records.completed(ds) == {("E003", "H3K4me3")}
    assert float(ds.signal.sel(cell="E003", mark="H3K4me3").mean()) == 1.0
    assert S.add_cells(store, ["E004"]) == ["E004"]
    ds = S.open_store(store)
    assert [str(c) for c in ds[V.CELL].values] == ["E003", "E004"]
    assert np.isnan(ds.signal.sel(cell="E004").values).all()
