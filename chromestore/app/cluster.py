"""Connecting to Dask: an existing scheduler, or an embedded LocalCluster on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

ENV_SCHEDULER = "CHROMESTORE_SCHEDULER"

#: What the embedded cluster changes in the environment Dask's nannies start their workers
#: with (``distributed.nanny.pre-spawn-environ``; None: not set). Dask sets
#: ``MALLOC_TRIM_THRESHOLD_=65536`` so that glibc hands freed memory back to the system at
#: once; a training step frees and allocates megabytes of tensors every few milliseconds,
#: and under it the workers spent as much time in the kernel as in the step: DeepChrome on
#: 56 × 2,048 genes, 5 epochs, two workers, 44.7–46.4 s with it against 27.2–29.9 s
#: without (glibc's own adaptive threshold), the same models. A value set in the
#: environment of this process still reaches the workers.
WORKER_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": None}


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
    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENVIRON.items()}
    with _workers_ignore_ctrl_c(), dask.config.set(environ), _environ_kept():
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address="127.0.0.1:0",
            silence_logs=50,  # task errors come back through the client as one line
            **where,
        )
    client = Client(cluster)
    try:
        _say(f"local Dask cluster: {n} workers; dashboard: {client.dashboard_link}", quiet)
        yield client
    finally:
        client.close()
        cluster.close()


@contextmanager
def _environ_kept() -> Iterator[None]:
    """Put this process's environment back as it was: a nanny sets its workers' variables
    (``OMP_NUM_THREADS=1``, …) in the environment of the process that starts it, from
    where they would reach every command this process runs later."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored (they inherit it): Ctrl-C in a terminal
    signals the whole process group, and only this process should act on it (it closes
    the cluster and says "interrupted"), not each worker with its own traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)
