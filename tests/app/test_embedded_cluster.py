"""The embedded Dask cluster (`chromestore.app.cluster.connect`): the environment its workers
start with, and the one it leaves to this process."""

from __future__ import annotations

import os

from chromestore.app.cluster import connect

KEYS = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")


def _worker_environ(client) -> list[dict]:
    return [
        {key: client.run(os.getenv, key)[w] for key in KEYS}
        for w in sorted(client.scheduler_info()["workers"])
    ]


def test_connect__workers_keep_glibcs_trim_threshold_and_this_process_its_environment(
    monkeypatch,
):
    """Dask's 64 KiB trim threshold made training on the workers ~1.6× slower (README):
    the workers start without it, with Dask's other settings, and starting them changes
    nothing in this process's environment (the commands it runs later inherit it)."""
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    before = dict(os.environ)
    with connect(workers=1, quiet=True) as client:
        seen = _worker_environ(client)
        assert dict(os.environ) == before
    assert seen == [{"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}]
    assert dict(os.environ) == before


def test_connect__a_trim_threshold_the_user_set_reaches_the_workers(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    with connect(workers=1, quiet=True) as client:
        seen = _worker_environ(client)
    assert [s["MALLOC_TRIM_THRESHOLD_"] for s in seen] == ["1048576"]
