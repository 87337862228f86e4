"""Processes and files die with their command: a killed ``chromestore ingest`` leaves no
counting worker and no ``/dev/shm`` file behind; SIGTERM is Ctrl-C with its own line and exit
143; an OS error without a file name (a full disk) names the store."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from click.testing import CliRunner

from chromestore.app.cli import main
from chromestore.app.errors import message
from chromestore.store import creation
from chromestore.store.handle import names_store
from tests.conftest import sheet
from tests.processes import alive

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def big(tmp_path_factory, genes40):
    """A samplesheet of one tagAlign of 1.5 M reads (counted by the forked worker)."""
    bed, table = genes40
    root = tmp_path_factory.mktemp("processes")
    rng = np.random.default_rng(0)
    n = 1_500_000
    g = rng.integers(0, len(table), n)
    start = np.maximum(table["tss"].to_numpy()[g] + rng.integers(-6000, 6000, n), 0)
    chrom = table["chrom"].to_numpy()[g]
    with open(root / "big.tagAlign", "w") as fh:
        fh.writelines(
            f"{c}\t{s}\t{s + 36}\tN\t1000\t+\n" for c, s in zip(chrom, start, strict=True)
        )
    return bed, sheet(root, [("E003", "H3K4me3", "tagAlign", "big.tagAlign")])


def _shared_files(pids) -> list[str]:
    """What the processes ``pids`` hold open of the shared file: its ``/proc/PID/fd`` links."""
    out = []
    for pid in pids:
        fds = f"/proc/{pid}/fd"
        for fd in os.listdir(fds):
            try:
                link = os.readlink(f"{fds}/{fd}")
            except OSError:
                continue
            if "chromestore-shared" in link or link.startswith("/dev/shm/"):
                out.append(link)
    return out


@pytest.mark.parametrize(
    "sig, code, line",
    [
        (signal.SIGKILL, -9, None),
        (signal.SIGTERM, 143, "error: terminated (SIGTERM); what was recorded complete is kept"),
        (signal.SIGINT, 130, "error: interrupted"),
    ],
)
def test_killed_ingest__no_worker_and_no_shm_file_survive(big, tmp_path, sig, code, line):
    bed, samples = big
    store = tmp_path / "s.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chromestore", "ingest", str(store), "--genes", str(bed)]
        + ["--samples", str(samples)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
            if workers and store.exists():  # the store created, the file being counted
                break
            time.sleep(0.02)
        assert workers and proc.poll() is None, "ingest ended before it was caught counting"
        # the shared file has no name anywhere (a memory file): nothing in /dev/shm to leak
        held = _shared_files([proc.pid, *workers])
        assert held and all(link.startswith("/memfd:chromestore-shared-") for link in held)
        proc.send_signal(sig)
        out = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == code, out
    if line is not None:
        assert out.strip().splitlines()[-1].startswith(line), out
    deadline = time.monotonic() + 20
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(workers) == []


def test_disk_full__the_message_names_the_store(tmp_path, genes40, monkeypatch):
    def full(target, ds, mode="w-"):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(creation, "_write", full)
    store = tmp_path / "s.zarr"
    res = CliRunner().invoke(main, ["ingest", str(store), "--genes", str(genes40[0])])
    assert res.exit_code == 1
    assert res.output.strip() == (
        f"error: {store}: No space left on device; free some space and run the command again "
        "(what was recorded complete is kept)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr.locks"]  # no leftover


def test_names_store__an_os_error_naming_a_file_keeps_it():
    @names_store
    def write(store):
        raise PermissionError(errno.EACCES, "Permission denied", "/x/s.zarr/signal/c/0")

    with pytest.raises(PermissionError) as err:
        write("/x/s.zarr")
    assert message(None, err.value).startswith("/x/s.zarr/signal/c/0: permission denied;")
