"""Connecting to Dask: an existing scheduler, or an embedded LocalCluster on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

ENV_SCHEDULER = "CHROMESTORE_SCHEDULER"


@contextmanager
def connect(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
    quiet: bool = False,
) -> Iterator[Client]:
    """Yield a ``distributed.Client``.

    With ``scheduler`` (or ``$CHROMESTORE_SCHEDULER``) it connects to that cluster;
    otherwise it starts a ``LocalCluster`` bound to 127.0.0.1 with ``workers`` worker
    processes (default: one per core), prints its dashboard address and closes it
    on exit.
    """
    scheduler = scheduler or os.environ.get(ENV_SCHEDULER)
    if scheduler:
        client = Client(scheduler)
        try:
            _say(f"connected to {scheduler}; dashboard: {client.dashboard_link}", quiet)
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    # Worker processes talk TCP on loopback only; threads in this process use inproc://.
    where = {"host": "127.0.0.1"} if processes else {}
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=threads_per_worker,
        processes=processes,
        dashboard_address="127.0.0.1:0",
        silence_logs=40,
        **where,
    )
    client = Client(cluster)
    try:
        _say(f"local Dask cluster: {n} workers; dashboard: {client.dashboard_link}", quiet)
        yield client
    finally:
        client.close()
        cluster.close()


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)
