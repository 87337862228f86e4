"""The pipeline on a real Dask cluster: `dask scheduler` + `dask worker` processes on 127.0.0.1.

Commands run as subprocesses through ``--scheduler`` and are compared with the embedded
LocalCluster run; the dashboard answers and renders while a job runs; a worker killed
in the middle of a run leaves the same store as an undisturbed run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from distributed import Client

import chromestore
from chromestore import variables as V
from chromestore.store import records
from tests.cluster_fixtures import BOKEH_RENDERED, http_status, screenshot

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

TIMESTAMPS = ("created", "completed")


def chromestore_cli(
    *args: str, env: dict | None = None, timeout: float = 240, **popen
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "CHROMESTORE_SCHEDULER"}
    return subprocess.run(
        [sys.executable, "-m", "chromestore.app.cli", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def _ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def _tasks_done(address: str) -> int:
    with Client(address, timeout=30) as c:
        return c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)


def assert_same_store(a: xr.Dataset, b: xr.Dataset) -> None:
    """The same epigenomes, values, attrs and records; the order of the epigenomes may
    differ (a new epigenome is appended when its files are counted, on a cluster in the
    order its workers finish)."""
    xr.testing.assert_identical(
        a.sortby(V.CELL).load().drop_attrs(deep=False),
        b.sortby(V.CELL).load().drop_attrs(deep=False),
    )
    skip = (*TIMESTAMPS, "provenance")
    assert {k: v for k, v in a.attrs.items() if k not in skip} == {
        k: v for k, v in b.attrs.items() if k not in skip
    }
    assert records.completed(a) == records.completed(b)
    assert _provenance(a) == _provenance(b)


def _provenance(ds: xr.Dataset) -> dict:
    """Per (cell, mark) provenance without its run time and completion time."""
    return {
        k: {f: v for f, v in p.items() if f not in ("seconds", "completed")}
        for k, p in records.provenance(ds).items()
    }


SIM = ["--cells", "3", "--genes", "1500", "--gene-chunk", "256"]


@pytest.fixture(scope="module")
def embedded_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("embedded") / "sim.zarr"
    res = _ok(chromestore_cli("--workers", "2", "simulate", str(path), *SIM))
    # Without --scheduler an embedded cluster on 127.0.0.1 starts and says where its dashboard is.
    assert "local Dask cluster: 2 workers; dashboard: http://127.0.0.1:" in res.stderr
    return path


@pytest.fixture(scope="module")
def cluster_store(dask_cluster, tmp_path_factory) -> Path:  # noqa: F811
    path = tmp_path_factory.mktemp("cluster") / "sim.zarr"
    before = _tasks_done(dask_cluster.address)
    res = _ok(chromestore_cli("--scheduler", dask_cluster.address, "simulate", str(path), *SIM))
    assert f"connected to {dask_cluster.address}" in res.stderr
    # The work went through the cluster's scheduler (3 cells × 6 chunks and more).
    assert _tasks_done(dask_cluster.address) - before >= 3 * 6
    return path


def test_simulate_on_cluster__store_equals_embedded_run(embedded_store, cluster_store):
    a = chromestore.open_store(embedded_store)
    b = chromestore.open_store(cluster_store)
    assert_same_store(a, b)
    assert b.sizes == {"cell": 3, "gene": 1500, "mark": 5, "bin": 100}
    assert np.isfinite(b.signal.values).all()


def test_labels_through_scheduler_env__equal_embedded(dask_cluster, cluster_store):  # noqa: F811
    local = _ok(chromestore_cli("labels", str(cluster_store), "--format", "json"))
    before = _tasks_done(dask_cluster.address)
    remote = _ok(
        chromestore_cli(
            "labels",
            str(cluster_store),
            "--format",
            "json",
            env={"CHROMESTORE_SCHEDULER": dask_cluster.address},
        )
    )
    assert _tasks_done(dask_cluster.address) > before
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    rows = json.loads(remote.stdout)
    assert [r["cell"] for r in rows] == ["E003", "E004", "E005"]
    assert all(r["genes"] == 1500 and r["positives"] == 750 for r in rows)


def test_s3_store_on_cluster__workers_open_it_themselves(
    dask_cluster,
    s3_server,  # noqa: F811
    embedded_store,
):
    """Workers read and write s3:// with the options they were given: equal to local."""
    s3_server.make_bucket("cluster")
    so = json.dumps(s3_server.options())
    url = "s3://cluster/sim.zarr"
    _ok(
        chromestore_cli(
            "--scheduler", dask_cluster.address, "--storage-options", so, "simulate", url, *SIM
        )
    )
    assert_same_store(
        chromestore.open_store(embedded_store), chromestore.open_store(url, s3_server.options())
    )
    remote = _ok(
        chromestore_cli(
            "--scheduler",
            dask_cluster.address,
            "--storage-options",
            so,
            "labels",
            url,
            "--format",
            "json",
        )
    )
    local = _ok(chromestore_cli("labels", str(embedded_store), "--format", "json"))
    assert json.loads(remote.stdout) == json.loads(local.stdout)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_dashboard__status_answers_and_renders_while_a_job_runs(dask_cluster, tmp_path):  # noqa: F811
    store = tmp_path / "busy.zarr"
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chromestore.app.cli",
            "--scheduler",
            dask_cluster.address,
            "simulate",
            str(store),
            "--cells",
            "4",
            "--genes",
            "3000",
            "--gene-chunk",
            "128",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with Client(dask_cluster.address, timeout=30) as client:
            _wait_for(lambda: any(client.processing().values()), 120, "tasks on the workers")
            status = http_status(f"{dask_cluster.dashboard}/status")
            running = job.poll() is None
        png = screenshot(
            f"{dask_cluster.dashboard}/status",
            tmp_path / "status.png",
            tmp_path / "chromium-profile",
            ready_js=BOKEH_RENDERED,
        )
        out, _ = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(10)
    assert job.returncode == 0, out.decode(errors="replace")
    assert status == 200 and running
    import matplotlib.image

    img = (matplotlib.image.imread(png)[..., :3] * 255).astype(np.uint8)
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    # Below the navigation bar: a page whose plots never drew is one flat colour (measured:
    # 1 colour, 0 % off it); the drawn status page has axes, labels and task rectangles.
    body = img[60:].reshape(-1, 3)
    colours, counts = np.unique(body, axis=0, return_counts=True)
    off_background = 1 - counts.max() / counts.sum()
    assert len(colours) > 100 and off_background > 0.05, (len(colours), off_background)


def test_dashboard__listens_on_loopback_only(dask_cluster):  # noqa: F811
    import psutil

    pid = dask_cluster.scheduler.pid
    addrs = {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert addrs == {"127.0.0.1"}, addrs


# --- ingest of a samplesheet ----------------------------------------------------------------


@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> Path:
    """tagAlign files + samplesheet of 3 simulated epigenomes × 5 marks (400 real genes)."""
    from chromestore.simulation import simulate
    from chromestore.simulation.emit import emit

    return emit(
        simulate(cells=3, genes=400, gene_chunk=200), tmp_path_factory.mktemp("emit"), "tagalign"
    )


INGEST = ["--genes", str(Path(__file__).resolve().parents[2] / "data" / "gene_windows.hg19.bed.gz")]


@pytest.fixture(scope="module")
def embedded_ingest(emitted, tmp_path_factory) -> Path:
    """The reference: the same ingest in one process (no cluster to start; an embedded
    cluster's ingest equals it: tests/ingest/test_ingest.py)."""
    path = tmp_path_factory.mktemp("ingest") / "remc.zarr"
    _ok(
        chromestore_cli(
            "--workers",
            "0",
            "ingest",
            str(path),
            *INGEST,
            "--samples",
            str(emitted),
            "--no-progress",
        )
    )
    return path


def test_worker_loss_during_ingest__survivors_finish_same_store(
    dask_procs,
    emitted,  # noqa: F811
    embedded_ingest,
    tmp_path,
):
    dask_procs.start_scheduler()
    dask_procs.start_worker("a")
    dask_procs.start_worker("victim")
    store = tmp_path / "remc.zarr"
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chromestore.app.cli",
            "--scheduler",
            dask_procs.address,
            "ingest",
            str(store),
            *INGEST,
            "--samples",
            str(emitted),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with Client(dask_procs.address, timeout=30) as client:
            victim = next(
                a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "victim"
            )

            def counted() -> int:
                """Files counted so far (count_sample results held by the cluster)."""
                return client.run_on_scheduler(
                    lambda dask_scheduler: sum(
                        1
                        for ts in dask_scheduler.tasks.values()
                        if ts.prefix.name == "count_sample" and ts.state == "memory"
                    )
                )

            # Mid-run: some files counted, the victim counting another one.
            def mid_run():
                assert job.poll() is None, "the ingest ended before a worker could be killed"
                busy = [
                    k
                    for k in client.processing().get(victim, ())
                    if str(k).startswith("count_sample")
                ]
                return busy and 1 <= counted() < 15

            _wait_for(mid_run, 180, "a counted file and a count on the victim")
            done_at_kill = counted()
            dask_procs.kill_worker("victim")
            _wait_for(
                lambda: len(client.scheduler_info()["workers"]) == 1,
                60,
                "the scheduler noticing the loss",
            )
        out, _ = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(10)
    assert job.returncode == 0, out.decode(errors="replace") + dask_procs.logs()
    assert 1 <= done_at_kill < 15
    a, b = chromestore.open_store(embedded_ingest), chromestore.open_store(store)
    assert_same_store(a, b)
    assert len(records.completed(b)) == 15  # every (cell, mark) exactly once
    assert float(b.signal.sel(cell="E003").sum()) > 0


# --- training --------------------------------------------------------------------------------

TRAIN = ["--cells", "E003,E004", "--epochs", "3", "--patience", "3", "--mode", "distributed"]


@pytest.fixture(scope="module")
def train_store(embedded_store, tmp_path_factory) -> Path:
    import shutil

    path = tmp_path_factory.mktemp("train") / "sim.zarr"
    shutil.copytree(embedded_store, path)
    _ok(chromestore_cli("--workers", "2", "train", str(path), *TRAIN, "--run", "embedded"))
    return path


def test_worker_loss_during_training__gpu_workers_finish_same_run(dask_procs, train_store):  # noqa: F811
    """Fit tasks go only to GPU=1 workers; one is killed mid-fit; the run equals the embedded one."""
    from chromestore.runs import open_run

    dask_procs.start_scheduler()
    dask_procs.start_worker("cpu")
    dask_procs.start_worker("gpu-a", resources="GPU=1")
    dask_procs.start_worker("gpu-victim", resources="GPU=1")
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chromestore.app.cli",
            "--scheduler",
            dask_procs.address,
            "train",
            str(train_store),
            *TRAIN,
            "--run",
            "lossy",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with Client(dask_procs.address, timeout=30) as client:
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
            victim = next(a for a, n in names.items() if n == "gpu-victim")
            fit_workers: set[str] = set()

            def fitting() -> set[str]:
                """Names of the workers running a fit task now (and remember them)."""
                now = {
                    names[a]
                    for a, keys in client.processing().items()
                    if any(str(k).startswith("fit-") for k in keys)
                }
                fit_workers.update(now)
                return now

            def mid_fit():
                assert job.poll() is None, "training ended before a worker could be killed"
                return "gpu-victim" in fitting()

            _wait_for(mid_fit, 240, "a fit task on the victim")
            time.sleep(2)  # well inside the fit: data loaded, epochs under way
            dask_procs.kill_worker("gpu-victim")
            assert victim not in _wait_for(
                lambda: (
                    client.scheduler_info()["workers"].keys()
                    if len(client.scheduler_info()["workers"]) == 2
                    else None
                ),
                60,
                "the loss noticed",
            )
            while job.poll() is None:
                fitting()
                time.sleep(0.1)
        out, _ = job.communicate(timeout=280)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(10)
    assert job.returncode == 0, out.decode(errors="replace") + dask_procs.logs()
    # Training went only to the GPU=1 workers, and the survivor took over.
    assert fit_workers == {"gpu-a", "gpu-victim"}, fit_workers
    a = open_run(str(train_store), "embedded").load()
    b = open_run(str(train_store), "lossy").load()
    assert list(b.cell.values) == ["E003", "E004"]
    for name in ("best_epoch", "history_loss", "history_valid_auc", "prediction"):
        xr.testing.assert_equal(a[name], b[name])


def test_analyze_through_scheduler__equals_in_process(dask_cluster, train_store):  # noqa: F811
    args = ["analyze", str(train_store), "--run", "embedded", "--format", "json", "--no-interpret"]
    local = _ok(chromestore_cli("--workers", "0", *args))  # in this process, no cluster
    before = _tasks_done(dask_cluster.address)
    remote = _ok(chromestore_cli("--scheduler", dask_cluster.address, *args))
    assert _tasks_done(dask_cluster.address) > before
    rows = json.loads(remote.stdout)
    assert rows == json.loads(local.stdout)
    assert sorted({r["cell"] for r in rows}) == ["E003", "E004"]
