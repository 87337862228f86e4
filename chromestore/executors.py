"""Where tasks run: on a Dask cluster, or in this process, behind one small interface.

The ingest engine submits its tasks, waits for them and hears their events the same way
whichever executor it has (:func:`executor_for`): :class:`OnDask` hands them to a
``distributed.Client``; :class:`InProcess` runs each task in this process when the caller
waits for it, in submission order, with Dask's rules: a task whose input failed fails with
that input's error. Tasks report through :func:`emit`, which reaches the subscribers
wherever the task runs.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_local_handlers: dict[str, list[Callable]] = {}


@contextmanager
def local_dask(threads: bool = True) -> Iterator[None]:
    """Dask computes in this process: on Dask's threads, or in the calling thread
    (``threads=False``: inside a task or a forked worker, where the parent's thread pool
    is gone and a cluster's threads are held by the other tasks).

    The scheduler is named as a function: named by a string, or left to Dask, every
    compute would first import ``distributed`` to look for a client (a third of a second
    per process), and inside a Dask task it would be sent to the cluster and wait there.
    """
    import dask
    import dask.local
    import dask.threaded

    with dask.config.set(scheduler=dask.threaded.get if threads else dask.local.get_sync):
        yield


def emit(topic: str, message: Any) -> None:
    """Report ``message`` on ``topic``: a worker event inside a Dask task, else to this
    process's subscribers (``InProcess.subscribe``)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        for handler in list(_local_handlers.get(topic, ())):
            handler((time.time(), message))
        return
    worker.log_event(topic, message)


class Deferred:
    """The future of an in-process task: it runs when first waited for."""

    _ids = itertools.count()

    def __init__(self, fn: Callable, args: tuple, kwargs: dict):
        self.key = f"{getattr(fn, '__name__', 'task')}-{next(self._ids)}"
        self._call = (fn, args, kwargs)
        self._value: Any = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        if self._call is None:
            return
        fn, args, kwargs = self._call
        self._call = None
        try:
            self._value = fn(*_resolve(args), **_resolve(kwargs))
        except Exception as e:  # kept, as a Dask future keeps its task's error
            self._error = e

    @property
    def status(self) -> str:
        self._run()
        return "error" if self._error is not None else "finished"

    def result(self) -> Any:
        self._run()
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self) -> BaseException | None:
        self._run()
        return self._error


def _resolve(obj):
    """Arguments with the results of the deferred tasks in them (lists, tuples, dicts)."""
    if isinstance(obj, Deferred):
        return obj.result()
    if isinstance(obj, list | tuple):
        return type(obj)(_resolve(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _resolve(v) for k, v in obj.items()}
    return obj


class InProcess:
    """Runs tasks in this process, each when it is waited for."""

    def share(self, obj: Any) -> Any:
        return obj

    def submit(self, fn: Callable, *args, **kwargs) -> Deferred:
        return Deferred(fn, args, kwargs)

    def as_completed(self, futures: Iterable[Deferred]) -> Iterator[Deferred]:
        for f in futures:
            f._run()
            yield f

    @contextmanager
    def subscribe(self, topic: str, handler: Callable) -> Iterator[None]:
        _local_handlers.setdefault(topic, []).append(handler)
        try:
            yield
        finally:
            _local_handlers[topic].remove(handler)


class OnDask:
    """Runs tasks on the cluster of a ``distributed.Client``."""

    def __init__(self, client):
        self.client = client

    def share(self, obj: Any) -> Any:
        """One copy on every worker, referenced by the tasks."""
        return self.client.scatter(obj, broadcast=True)

    def submit(self, fn: Callable, *args, **kwargs):
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def as_completed(self, futures: Iterable) -> Iterator:
        from distributed import as_completed

        return iter(as_completed(list(futures)))

    @contextmanager
    def subscribe(self, topic: str, handler: Callable) -> Iterator[None]:
        self.client.subscribe_topic(topic, handler)
        try:
            yield
        finally:
            self.client.unsubscribe_topic(topic)


def executor_for(client=None) -> InProcess | OnDask:
    """The executor of a ``distributed.Client``, or this process when None."""
    return InProcess() if client is None else OnDask(client)
