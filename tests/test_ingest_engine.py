"""One ingest engine: tasks behave alike in process and on Dask, and the app plans first, so it
opens a cluster only when there are files worth counting on one."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore import executors, open_store, records
from chromestore.app import ingest_commands
from chromestore.app.cli import main
from chromestore.ingest import plan_ingest, run_ingest
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
    rows = [("E003", "H3K4me3", "", "a.counts.tsv"), ("E003", "H3K9me3", "", "b.counts.tsv"),
            ("E004", "H3K4me3", "", "b.counts.tsv")]
    samples = sheet(tmp_path, rows)
    run_ingest(tmp_path / "p.zarr", bed, samples)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
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


def test_cli_ingest__small_jobs_are_counted_without_a_cluster(tmp_path, genes40, counts_tsv,
                                                             clusters, rng, monkeypatch):
    bed, table = genes40
    for name in ("a", "b"):
        write_counts(tmp_path / f"{name}.counts.tsv", list(table.gene.iloc[:5]), rng)
    two = sheet(tmp_path, [("E003", "H3K4me3", "", "a.counts.tsv"),
                           ("E003", "H3K9me3", "", "b.counts.tsv")], "two.csv")
    store = tmp_path / "s.zarr"
    _cli("ingest", store, "--genes", bed, "--samples", two)  # 2 files, a few kB in all
    assert clusters == []
    _cli("--workers", "2", "ingest", store, "--samples", two)  # nothing left to count
    assert clusters == []
    monkeypatch.setattr(ingest_commands, "SMALL_INPUT_BYTES", 0)  # now every job is large
    one = sheet(tmp_path, [("E004", "H3K4me3", "", "a.counts.tsv")], "one.csv")
    _cli("ingest", store, "--samples", one)  # but one file gains nothing from a cluster
    assert clusters == []
    out = _cli("ingest", store, "--samples", two, "--force")
    assert clusters == [None] and "ingested 2 (cell, mark)" in out
    _cli("--workers", "3", "ingest", store, "--samples", one, "--force")  # asked for
    assert clusters == [None, 3]


def test_plan_ingest__writes_nothing_and_lists_the_pending_files(tmp_path, genes40, counts_tsv,
                                                                 rng):
    bed, table = genes40
    write_counts(tmp_path / "a.counts.tsv", list(table.gene.iloc[:5]), rng)
    samples = sheet(tmp_path, [("E003", "H3K4me3", "", "a.counts.tsv"),
                               ("E003", "H3K9me3", "", "a.counts.tsv")])
    store = tmp_path / "s.zarr"
    plan = plan_ingest(store, bed, samples)
    assert not store.exists()
    assert [s.mark for s in plan.pending] == ["H3K4me3", "H3K9me3"]
    assert plan.input_bytes == 2 * (tmp_path / "a.counts.tsv").stat().st_size
    run_ingest(store, bed, sheet(tmp_path, [("E003", "H3K4me3", "", "a.counts.tsv")], "1.csv"))
    assert [s.mark for s in plan_ingest(store, samples=samples).pending] == ["H3K9me3"]
    assert len(plan_ingest(store, samples=samples, force=True).pending) == 2


def test_ingest_help__lists_formats_without_loading_heavy_libraries():
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "chromestore.app.cli",
                          "ingest", "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0]
              for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "chromestore" in loaded
    assert not loaded & {"xarray", "dask", "zarr", "pandas", "numba", "pysam", "torch"}
    assert "deepdiff-csv" in res.stdout and "narrowpeak" in res.stdout
