"""One ingest engine: tasks behave alike in process and on Dask, and the app plans first, so it
opens a cluster only when there are files worth counting on one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore import executors, open_store
from chromestore import store as S
from chromestore.app.cli import main
from chromestore.errors import InputError
from chromestore.ingest import count_sample, placement, plan_ingest, run_ingest, run_plan
from chromestore.ingest.reads import store_fingerprint
from chromestore.store import records
from tests.conftest import sheet, write_counts


def test_in_process__tasks_run_when_waited_for_in_submission_order():
    ex = executors.InProcess()
    ran = []

    def task(name, *inputs):
        ran.append(name)
        return name + "".join(inputs)

    a = ex.submit(task, "a")
    b = ex.submit(task, "b", a)
    c = ex.submit(task, "c")
    assert ran == []
    assert [f.result() for f in ex.as_completed([a, b, c])] == ["a", "ba", "c"]
    assert ran == ["a", "b", "c"]


def test_in_process__a_task_whose_input_failed_fails_with_that_error():
    ex = executors.InProcess()
    boom = ValueError("file x, line 3: bad")

    def fail():
        raise boom

    bad = ex.submit(fail)
    after = ex.submit(lambda values: values, [bad, ex.submit(int, "1")])
    assert [f.status for f in ex.as_completed([bad, after])] == ["error", "error"]
    assert after.exception() is boom
    with pytest.raises(ValueError, match="line 3: bad"):
        after.result()


def _fail_on_line_7(path):
    raise InputError(path, 7, "3 columns, BED3+ needs chrom, start, end")


def _emit_and_return(topic, value):
    executors.emit(topic, value)
    return os.getpid()


def test_forked__independent_tasks_run_in_a_worker_dependent_ones_here():
    with executors.Forked(1) as ex:
        a = ex.submit(os.getpid)
        b = ex.submit(lambda worker: (worker, os.getpid()), a)  # runs here: not pickled
        assert [f.status for f in ex.as_completed([a, b])] == ["finished", "finished"]
        worker, here = b.result()
        assert here == os.getpid() and worker != here


def test_forked__a_file_error_comes_back_whole_with_file_and_line(tmp_path):
    with executors.Forked(1) as ex:
        bad = ex.submit(_fail_on_line_7, str(tmp_path / "x.bed"))
        after = ex.submit(lambda v: v, bad)
        assert [f.status for f in ex.as_completed([bad, after])] == ["error", "error"]
    err = after.exception()
    assert isinstance(err, InputError)
    assert (err.path, err.line) == (str(tmp_path / "x.bed"), 7)
    assert str(err) == f"{tmp_path / 'x.bed'}, line 7: 3 columns, BED3+ needs chrom, start, end"


def test_forked__worker_events_reach_this_process_subscribers():
    got = []
    with executors.Forked(1) as ex, ex.subscribe("topic-f", got.append):
        worker = ex.submit(_emit_and_return, "topic-f", (3, "reads")).result()
        for _ in range(200):  # the event travels apart from the result
            if got:
                break
            time.sleep(0.01)
    assert worker != os.getpid()
    assert [m for _, m in got] == [(3, "reads")]


def test_forked__a_shared_object_travels_once_as_a_file_removed_on_close():
    big = np.arange(1_000_000)
    ex = executors.Forked(1)
    try:
        assert ex.share(big) is big
        (path,) = [ref.path for _, ref in ex._shared.values()]
        assert os.path.getsize(path) >= big.nbytes
        sums = [ex.submit(np.sum, big) for _ in range(3)]
        assert [int(f.result()) for f in sums] == [int(big.sum())] * 3
    finally:
        ex.close()
    assert not os.path.exists(path)


def test_forked__close_stops_a_task_still_running():
    ex = executors.Forked(1)
    worker = ex.submit(os.getpid).result()
    ex.submit(time.sleep, 600)
    pool = ex._pool
    manager, wakeup = pool._executor_manager_thread, pool._executor_manager_thread_wakeup
    ex.close()
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
    # the pool's manager thread has closed its wake-up pipe: Python 3.11's exit handler,
    # racing with it, printed "OSError: [Errno 9] Bad file descriptor" after Ctrl-C
    assert not manager.is_alive() and wakeup._closed


def test_emit__reaches_in_process_subscribers_only_while_subscribed():
    ex = executors.InProcess()
    got = []
    with ex.subscribe("topic-x", got.append):
        executors.emit("topic-x", (1, 2))
        executors.emit("topic-y", 3)
    executors.emit("topic-x", 4)
    assert [m for _, m in got] == [(1, 2)]


def test_toy_format_on_dask__equals_in_process(tmp_path, genes40, counts_tsv, rng):
    from distributed import Client, LocalCluster

    bed, table = genes40
    write_counts(tmp_path / "a.counts.tsv", list(table.gene.iloc[:6]), rng)
    write_counts(tmp_path / "b.counts.tsv", list(table.gene.iloc[4:9]), rng)
    rows = [
        ("E003", "H3K4me3", "", "a.counts.tsv"),
        ("E003", "H3K9me3", "", "b.counts.tsv"),
        ("E004", "H3K4me3", "", "b.counts.tsv"),
    ]
    samples = sheet(tmp_path, rows)
    run_ingest(tmp_path / "p.zarr", bed, samples)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        report = run_ingest(tmp_path / "d.zarr", bed, samples, client=client)
    assert "ingested 3 (cell, mark)" in str(report)
    a, b = open_store(tmp_path / "p.zarr"), open_store(tmp_path / "d.zarr")
    np.testing.assert_array_equal(a.signal.values, b.signal.values)
    assert records.completed(a) == records.completed(b)
    assert np.isfinite(b.signal.sel(cell="E004", mark="H3K4me3").values).all(axis=1).sum() == 5


# --- the app: plan first, then a cluster only where it pays --------------------------------


@pytest.fixture
def clusters(monkeypatch):
    """Records each embedded cluster the app opens (none is started: tasks run in process)."""
    opened = []

    @contextmanager
    def connect(scheduler=None, workers=None, **kwargs):
        opened.append(workers)
        yield None

    monkeypatch.setattr("chromestore.app.cluster.connect", connect)
    monkeypatch.delenv("CHROMESTORE_SCHEDULER", raising=False)
    return opened


def _cli(*args):
    res = CliRunner().invoke(main, [*map(str, args), "--no-progress"])
    assert res.exit_code == 0, res.output
    return res.output


def test_cli_ingest__small_jobs_are_counted_without_a_cluster(
    tmp_path, genes40, counts_tsv, clusters, rng, monkeypatch
):
    bed, table = genes40
    for name in ("a", "b"):
        write_counts(tmp_path / f"{name}.counts.tsv", list(table.gene.iloc[:5]), rng)
    two = sheet(
        tmp_path,
        [("E003", "H3K4me3", "", "a.counts.tsv"), ("E003", "H3K9me3", "", "b.counts.tsv")],
        "two.csv",
    )
    store = tmp_path / "s.zarr"
    _cli("ingest", store, "--genes", bed, "--samples", two)  # 2 files, a few kB in all
    assert clusters == []
    _cli("--workers", "2", "ingest", store, "--samples", two)  # nothing left to count
    assert clusters == []
    monkeypatch.setattr(placement, "SMALL_INPUT_BYTES", 0)  # now every job is large
    one = sheet(tmp_path, [("E004", "H3K4me3", "", "a.counts.tsv")], "one.csv")
    _cli("ingest", store, "--samples", one)  # but one file gains nothing from a cluster
    assert clusters == []
    out = _cli("ingest", store, "--samples", two, "--force")
    assert clusters == [None] and "ingested 2 (cell, mark)" in out
    _cli("--workers", "3", "ingest", store, "--samples", one, "--force")  # asked for
    assert clusters == [None, 3]


def test_plan_ingest__writes_nothing_and_lists_the_pending_files(
    tmp_path, genes40, counts_tsv, rng
):
    bed, table = genes40
    write_counts(tmp_path / "a.counts.tsv", list(table.gene.iloc[:5]), rng)
    samples = sheet(
        tmp_path, [("E003", "H3K4me3", "", "a.counts.tsv"), ("E003", "H3K9me3", "", "a.counts.tsv")]
    )
    store = tmp_path / "s.zarr"
    plan = plan_ingest(store, bed, samples)
    assert not store.exists()
    assert [s.mark for s in plan.pending] == ["H3K4me3", "H3K9me3"]
    assert plan.input_bytes == 2 * (tmp_path / "a.counts.tsv").stat().st_size
    run_ingest(store, bed, sheet(tmp_path, [("E003", "H3K4me3", "", "a.counts.tsv")], "1.csv"))
    assert [s.mark for s in plan_ingest(store, samples=samples).pending] == ["H3K9me3"]
    assert len(plan_ingest(store, samples=samples, force=True).pending) == 2


def test_ingest_help__lists_formats_without_loading_heavy_libraries():
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chromestore.app.cli", "ingest", "--help"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in res.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "chromestore" in loaded
    assert not loaded & {"xarray", "dask", "zarr", "pandas", "numba", "pysam", "torch"}
    assert "deepdiff-csv" in res.stdout and "narrowpeak" in res.stdout


# --- files are read while the store is created ------------------------------------------------


class _EagerReads(executors.InProcess):
    """Runs each file read when it is submitted, noting whether the store existed then."""

    def __init__(self, store):
        self.store, self.store_existed, self.bins = store, [], []

    def submit(self, fn, *args, **kwargs):
        future = super().submit(fn, *args, **kwargs)
        if fn is count_sample:
            self.store_existed.append(S.exists(self.store))
            self.bins.append(args[2].fingerprint)
            future.result()
        return future


def _two_files(tmp_path, table, rng):
    a = write_counts(tmp_path / "a.counts.tsv", list(table.gene.iloc[:6]), rng)
    b = write_counts(tmp_path / "b.counts.tsv", list(table.gene.iloc[10:14]), rng)
    return (
        sheet(
            tmp_path,
            [("E003", "H3K4me3", "", "a.counts.tsv"), ("E004", "H3K9me3", "", "b.counts.tsv")],
        ),
        a,
        b,
    )


def test_run_plan__reads_the_files_before_the_store_exists(tmp_path, genes40, counts_tsv, rng):
    bed, table = genes40
    samples, a, b = _two_files(tmp_path, table, rng)
    store = tmp_path / "s.zarr"
    ex = _EagerReads(store)
    report = run_plan(plan_ingest(store, bed, samples), executor=ex)
    assert ex.store_existed == [False, False]
    assert "created a new store" in str(report) and "ingested 2 (cell, mark)" in str(report)
    ds = open_store(store)
    assert list(ds.cell.values) == ["E003", "E004"]
    np.testing.assert_array_equal(ds.signal.sel(cell="E003", mark="H3K4me3").values[:6], a)
    np.testing.assert_array_equal(ds.signal.sel(cell="E004", mark="H3K9me3").values[10:14], b)
    assert np.isnan(ds.signal.sel(cell="E003", mark="H3K4me3").values[6:]).all()


def test_run_plan__reads_again_when_the_store_was_made_from_other_genes_meanwhile(
    tmp_path, genes40, counts_tsv, rng
):
    bed, table = genes40
    samples, a, b = _two_files(tmp_path, table, rng)
    store = tmp_path / "s.zarr"
    plan = plan_ingest(store, bed, samples)  # no store yet: bins from the annotation
    S.create_store(store, table.iloc[::-1].reset_index(drop=True))  # another ingest's
    ex = _EagerReads(store)
    run_plan(plan, executor=ex)
    first, again = ex.bins[:2], ex.bins[2:]  # read on the annotation's bins, then the store's
    assert len(set(first)) == len(set(again)) == 1 and first != again
    assert again[0] == store_fingerprint(open_store(store))
    ds = open_store(store)
    assert list(ds.gene.values[:2]) == list(table.gene.iloc[[39, 38]])
    np.testing.assert_array_equal(
        ds.signal.sel(cell="E003", mark="H3K4me3", gene=list(table.gene.iloc[:6])).values, a
    )
    np.testing.assert_array_equal(
        ds.signal.sel(cell="E004", mark="H3K9me3", gene=list(table.gene.iloc[10:14])).values, b
    )


def test_cli_ingest__small_job_counted_by_a_forked_worker_equals_in_process(
    tmp_path, genes40, clusters, rng, monkeypatch
):
    from tests.ingest.test_ingest import reads_from_counts, write_tagalign

    bed, table = genes40
    rows = []
    for cell in ["E003", "E004"]:
        counts = rng.integers(0, 4, (len(table), 100))
        write_tagalign(tmp_path / f"{cell}.tagAlign.gz", *reads_from_counts(table, counts, rng))
        rows.append((cell, "H3K27me3", "", f"{cell}.tagAlign.gz"))
    samples = sheet(tmp_path, rows)
    made = []

    class Recorded(executors.Forked):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(executors, "Forked", Recorded)
    out = _cli("ingest", tmp_path / "f.zarr", "--genes", bed, "--samples", samples)
    assert len(made) == 1 and clusters == [] and "ingested 2 (cell, mark)" in out
    _cli("--workers", "0", "ingest", tmp_path / "p.zarr", "--genes", bed, "--samples", samples)
    assert len(made) == 1  # --workers 0: everything in this process
    f, p = open_store(tmp_path / "f.zarr"), open_store(tmp_path / "p.zarr")
    np.testing.assert_array_equal(f.signal.values, p.signal.values)
    assert (
        records.completed(f) == records.completed(p) == {("E003", "H3K27me3"), ("E004", "H3K27me3")}
    )
    bad = tmp_path / "bad.tagAlign"
    bad.write_text("chr1\t100\t136\tN\t0\t+\nchr1\t200\n")
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            str(tmp_path / "f.zarr"),
            "--samples",
            str(sheet(tmp_path, [("E005", "H3K4me3", "", "bad.tagAlign")], "bad.csv")),
            "--no-progress",
        ],
    )
    assert res.exit_code != 0 and len(made) == 2
    assert f"{bad}, line 2:" in res.output
    assert "E005" not in {c for c, _ in records.completed(open_store(tmp_path / "f.zarr"))}


def test_placement__small_jobs_counted_by_the_early_reader_large_ones_on_a_cluster(
    tmp_path, genes40, counts_tsv, rng, monkeypatch
):
    """The small-job rule as the library states it: one file or little input → the early
    reader; more → a cluster (heavy), the reader closed; nothing pending → no Dask."""
    bed, table = genes40
    write_counts(tmp_path / "a.counts.tsv", list(table.gene.iloc[:5]), rng)
    rows = [("E003", "H3K4me3", "", "a.counts.tsv"), ("E003", "H3K9me3", "", "a.counts.tsv")]
    plan = plan_ingest(tmp_path / "s.zarr", bed, sheet(tmp_path, rows))
    assert placement.counts_in_process(1, 10**12) and placement.counts_in_process(2, 10)
    assert not placement.counts_in_process(2, placement.SMALL_INPUT_BYTES)
    assert placement.early_reader(False, cluster_asked=False) is None
    assert placement.early_reader(True, cluster_asked=True) is None

    class Reader:
        closed = False

        def close(self):
            self.closed = True

    reader = Reader()
    assert placement.place(plan, reader) == placement.Placement(reader, heavy=False)
    assert placement.place(plan, None) == placement.Placement(None, heavy=False)
    monkeypatch.setattr(placement, "SMALL_INPUT_BYTES", 0)
    assert not reader.closed
    assert placement.place(plan, reader) == placement.Placement(None, heavy=True)
    assert reader.closed
    run_ingest(tmp_path / "s.zarr", bed, sheet(tmp_path, rows, "again.csv"))
    done = plan_ingest(tmp_path / "s.zarr", samples=sheet(tmp_path, rows, "third.csv"))
    assert placement.place(done, None) == placement.Placement(None, heavy=False, dask=False)
