"""Stores on S3: a real S3-compatible server (moto_server) on 127.0.0.1, with authentication on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import chromestore
from chromestore.app.cli import main
from chromestore.simulation import simulate
from chromestore.store import records
from tests.conftest import GENES_BED, RPKM

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

BUCKET = "chromestore"
TIMESTAMPS = ("created", "completed")


def _ingest(path: str, storage_options: dict | None = None):
    extra = ["--storage-options", json.dumps(storage_options)] if storage_options else []
    return CliRunner().invoke(
        main,
        [
            *extra,
            "ingest",
            path,
            "--genes",
            str(GENES_BED),
            "--expression",
            str(RPKM),
            "--cells",
            "E003,E116",
            "--gene-chunk",
            "4096",
        ],
    )


@pytest.fixture(scope="module")
def stores(s3_server, tmp_path_factory):  # noqa: F811
    """The same ingest into a local directory and into s3://chromestore/remc.zarr."""
    s3_server.make_bucket(BUCKET)
    local = str(tmp_path_factory.mktemp("s3") / "remc.zarr")
    remote = f"s3://{BUCKET}/remc.zarr"
    for path, so in ((local, None), (remote, s3_server.options())):
        res = _ingest(path, so)
        assert res.exit_code == 0, res.output
        assert "added 2 epigenomes: E003, E116" in res.output
    return local, remote


def _assert_same_store(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.drop_attrs(deep=False), b.drop_attrs(deep=False))
    strip = {k: v for k, v in a.attrs.items() if k not in TIMESTAMPS}
    assert strip == {k: v for k, v in b.attrs.items() if k not in TIMESTAMPS}
    assert records.completed(a) == records.completed(b)


def test_s3_ingest__reads_back_identical_to_local_ingest(stores, s3_server):  # noqa: F811
    local, remote = stores
    a = chromestore.open_store(local).load()
    b = chromestore.open_store(remote, s3_server.options()).load()
    _assert_same_store(a, b)
    assert b.sizes == {"cell": 2, "gene": 19802, "mark": 5, "bin": 100}
    # Real values came back, not a NaN template: TSPAN6 in E003 is 43.985 RPKM.
    assert float(b.expression.sel(cell="E003", gene="ENSG00000000003_TSPAN6")) == pytest.approx(
        43.985, abs=1e-3
    )
    assert int(np.isfinite(b.expression.values).sum()) == 2 * 19802


def test_s3_simulated_signal__identical_to_local(s3_server, tmp_path):  # noqa: F811
    s3_server.make_bucket("sim")
    so = s3_server.options()
    a = simulate(str(tmp_path / "sim.zarr"), cells=2, genes=300, gene_chunk=128)
    b = simulate("s3://sim/sim.zarr", cells=2, genes=300, gene_chunk=128, storage_options=so)
    a, b = a.load(), chromestore.open_store("s3://sim/sim.zarr", so).load()
    _assert_same_store(a, b)
    assert np.isfinite(b.signal.values).all() and float(b.signal.sum()) > 0
    assert len(records.completed(b)) == 2 * 5


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "chromestore.app.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_s3_credentials_from_environment_chain(stores, s3_server):  # noqa: F811
    """No --storage-options: keys and endpoint come from AWS_* variables (as in compose)."""
    _, remote = stores
    res = _cli(["info", remote, "--format", "json"], s3_server.env())
    assert res.returncode == 0, res.stderr
    facts = json.loads(res.stdout)
    assert facts["dims"] == {"cell": 2, "gene": 19802, "mark": 5, "bin": 100}
    assert facts["expression_cells"] == ["E003", "E116"]


def test_s3_wrong_secret__one_line_error(stores, s3_server):  # noqa: F811
    _, remote = stores
    bad = json.dumps(s3_server.options(secret="not-the-secret"))
    res = CliRunner().invoke(main, ["--storage-options", bad, "info", remote])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith(f"error: the object store at {s3_server.endpoint} refused access")
    assert "AWS_ACCESS_KEY_ID" in lines[0] and "--storage-options" in lines[0]


def test_s3_unknown_key_from_environment__one_line_error(stores, s3_server):  # noqa: F811
    _, remote = stores
    env = {**s3_server.env(), "AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY00000"}
    res = _cli(["labels", remote], env)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the object store refused access"), (
        res.stderr
    )
    # The store was not touched by the refused client.
    ok = _cli(["info", remote, "--format", "json"], s3_server.env())
    assert json.loads(ok.stdout)["cells"] == ["E003", "E116"]


def _bucket_listing(s3_server) -> list[str]:  # noqa: F811
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server.options(), skip_instance_cache=True)
    return sorted(fs.find(BUCKET))


@pytest.mark.parametrize(
    "command",
    [
        ["info", "s3://no-such-bucket/remc.zarr"],
        ["verify", "s3://no-such-bucket/remc.zarr"],
        ["ingest", "s3://no-such-bucket/remc.zarr", "--genes", str(GENES_BED)],
        [
            "simulate",
            "s3://no-such-bucket/remc.zarr",
            "--cells",
            "1",
            "--genes",
            "50",
            "--workers",
            "0",
        ],
    ],
)
def test_s3_missing_bucket__one_line_naming_the_bucket(stores, s3_server, command):  # noqa: F811
    before = _bucket_listing(s3_server)
    so = json.dumps(s3_server.options())
    res = CliRunner().invoke(main, ["--storage-options", so, *command])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith(
        "error: s3://no-such-bucket/remc.zarr: the bucket 'no-such-bucket' does not exist"
    )
    assert _bucket_listing(s3_server) == before


def test_s3_dead_endpoint__one_line_saying_it_cannot_be_reached(stores):
    from tests.cluster_fixtures import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # a closed loopback port: connection refused
    so = json.dumps({"endpoint_url": dead, "key": "k", "secret": "s"})
    for command in (
        ["info", "s3://chromestore/remc.zarr"],
        ["ingest", "s3://chromestore/new.zarr", "--genes", str(GENES_BED)],
    ):
        res = CliRunner().invoke(main, ["--storage-options", so, *command])
        assert res.exit_code == 1
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.output, res.output
        assert lines[0].startswith(
            f"error: cannot reach the object store at {dead} (EndpointConnectionError"
        )
        assert "refused access" not in lines[0] and "credentials" not in lines[0]


def _half_created(s3_server, bucket: str, genes40):
    """A store on S3 whose creation looks killed half way: whole, with the ``creating``
    marker a creation writes first. Returns its URL, options, filesystem and root."""
    from chromestore import store as S
    from chromestore.genes import read_genes

    s3_server.make_bucket(bucket)
    url, so = f"s3://{bucket}/half.zarr", s3_server.options()
    S.create_store(url, read_genes(genes40[0]), ["E003"], storage_options=so)
    fs, root = S.Store.of(url, so).fs()
    root = root.rstrip("/")
    fs.pipe_file(f"{root}/creating", b"{}")
    return url, so, fs, root


def test_s3_interrupted_creation__readers_say_so_and_a_rerun_completes(s3_server, genes40):
    """What a creation killed half way leaves on S3 (no rename there): its ``creating``
    marker and some arrays. Readers stop with one line; the same ingest completes it."""
    from chromestore import store as S
    from chromestore.store.verify import verify_store

    url, so, fs, root = _half_created(s3_server, "creating", genes40)
    fs.rm(f"{root}/signal", recursive=True)
    opts = ["--storage-options", json.dumps(so)]
    res = CliRunner().invoke(main, [*opts, "info", url])
    assert res.exit_code == 1
    assert res.output.startswith(f"error: {url}: an interrupted creation (its 'creating' marker")
    res = CliRunner().invoke(main, [*opts, "ingest", url, "--genes", str(genes40[0])])
    assert res.exit_code == 0, res.output
    assert not S.Store(url, so).creating()
    assert verify_store(url, so).ok


def test_s3_interrupted_creation__an_ingest_without_genes_plans_the_shipped_annotation(
    s3_server, genes40
):
    """A store whose creation was killed counts as absent for its annotation too: an ingest
    without ``--genes`` creates it again from the shipped hg19 gene windows (as a new store
    gets), not from nothing."""
    from chromestore import datasets
    from chromestore.ingest.plan import plan_ingest

    url, so, _, _ = _half_created(s3_server, "creating2", genes40)
    plan = plan_ingest(url, storage_options=so)
    assert plan.dataset is None
    assert str(plan.genes) == str(datasets.gene_windows("hg19"))
    assert plan.settings["genome"] == "hg19"
