"""Where tasks run: on a Dask cluster, or in this process, behind one small interface.

The ingest engine submits its tasks, waits for them and hears their events the same way
whichever executor it has (:func:`executor_for`): :class:`OnDask` hands them to a
``distributed.Client``; :class:`InProcess` runs each task in this process when the caller
waits for it, in submission order, with Dask's rules: a task whose input failed fails with
that input's error; :class:`Forked` starts the tasks that take no other task's result at
once, in forked worker processes of this one (a second core without a cluster's start-up),
and runs the others as :class:`InProcess` does. Tasks report through :func:`emit`, which
reaches the subscribers wherever the task runs.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
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


#: in a :class:`Forked` worker process: the queue that carries its events to the parent
_parent_events = None


def emit(topic: str, message: Any) -> None:
    """Report ``message`` on ``topic``: a worker event inside a Dask task, to the parent's
    subscribers inside a :class:`Forked` worker, else to this process's subscribers
    (``InProcess.subscribe``)."""
    if _parent_events is not None:
        _parent_events.put((topic, message))
        return
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


class Pooled:
    """The future of a task running in a :class:`Forked` worker process."""

    def __init__(self, key: str, future):
        self.key = key
        self._future = future

    def _run(self) -> None:
        self._future.exception()  # waits

    @property
    def status(self) -> str:
        return "error" if self._future.exception() is not None else "finished"

    def result(self) -> Any:
        return self._future.result()

    def exception(self) -> BaseException | None:
        return self._future.exception()


def _has_future(obj) -> bool:
    if isinstance(obj, Deferred | Pooled):
        return True
    if isinstance(obj, list | tuple):
        return any(_has_future(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_future(x) for x in obj.values())
    return False


def _resolve(obj):
    """Arguments with the results of the deferred tasks in them (lists, tuples, dicts)."""
    if isinstance(obj, Deferred | Pooled):
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

    def cancel(self, futures: Iterable) -> None:
        """Drop tasks not yet run (a task already running finishes)."""
        for f in futures:
            if isinstance(f, Deferred):
                f._call = None

    @contextmanager
    def subscribe(self, topic: str, handler: Callable) -> Iterator[None]:
        _local_handlers.setdefault(topic, []).append(handler)
        try:
            yield
        finally:
            _local_handlers[topic].remove(handler)


_shared_cache: dict[str, Any] = {}


def _load_shared(token: str, path: str) -> Any:
    """In a :class:`Forked` worker: a shared object, read from its file once (the parent's
    open file, through ``/proc/PARENT/fd/N``: it has no name anywhere)."""
    if token not in _shared_cache:
        import pickle  # our own object, written by the parent for its children

        with open(path, "rb") as fh:
            _shared_cache[token] = pickle.load(fh)
    return _shared_cache[token]


class _SharedRef:
    """Pickles as a reference to a shared object's file (unpickled: the object itself)."""

    def __init__(self, token: str, path: str):
        self.token, self.path = token, path

    def __reduce__(self):
        return _load_shared, (self.token, self.path)


#: ``prctl`` option: the signal a process gets when the thread that forked it exits
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, alive_fd: int | None = None) -> None:
    """Make this (forked) process exit when ``parent`` dies, however it dies (SIGKILL too):
    the kernel sends it SIGKILL then (Linux ``prctl(PR_SET_PDEATHSIG)``), and a thread
    exits it when ``alive_fd``, the read end of a pipe whose write end only the parent
    holds, reaches end of file (every platform). A parent already gone: exit now."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl: nobody will signal us
        os._exit(1)
    if alive_fd is not None:

        def watch() -> None:
            with contextlib.suppress(OSError):
                while os.read(alive_fd, 1):
                    pass
            os._exit(1)  # end of file: the parent is gone

        threading.Thread(target=watch, daemon=True, name="chromestore-parent-watch").start()


def _forked_worker(events, warm: Callable | None, parent: int, pipe: tuple[int, int]) -> None:
    """Set up a :class:`Forked` worker process: it dies with the parent
    (:func:`die_with_parent`), sends its events to the parent, leaves Ctrl-C to the parent
    (which stops the workers) and SIGTERM to its default (the parent's handler would raise
    here), then runs ``warm()`` (imports, compiled code) before the first task arrives."""
    import signal

    global _parent_events
    os.close(pipe[1])  # the write end is the parent's alone: its death closes the pipe
    die_with_parent(parent, pipe[0])
    _parent_events = events
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if warm is not None:
        warm()


def can_fork() -> bool:
    """Whether :class:`Forked` is safe here: Linux (fork is unsafe on macOS, absent on
    Windows)."""
    return sys.platform.startswith("linux")


class Forked(InProcess):
    """Tasks that take no other task's result start at submission in ``workers`` forked
    worker processes of this one; the others run in this process when waited for.

    For small jobs on one machine: a forked worker needs no cluster start-up (seconds) and
    gives a second core to compiled code that a thread would share with this process's
    Python (the GIL). The workers fork when it is made: make it before this process starts
    threads (an embedded cluster, Zarr's I/O loop), and ``warm`` (run in each worker before
    its first task) loads what the tasks will need meanwhile. Task results and errors are
    pickled back; :func:`emit` in a worker reaches this process's subscribers. Close it
    (it is a context manager): workers still running are stopped.

    Nothing outlives the command: the workers exit when this process dies, even by SIGKILL
    (:func:`die_with_parent`), and a shared object lives in an unnamed memory file
    (:meth:`share`), gone with the last process holding it.
    """

    def __init__(self, workers: int = 1, warm: Callable | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork")
        self._events = context.SimpleQueue()
        self._alive = os.pipe()  # the workers watch its read end; we hold the write end
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_forked_worker,
            initargs=(self._events, warm, os.getpid(), self._alive),
        )
        self._running = [self._pool.submit(os.getpid)]  # fork the workers now, to warm up
        os.close(self._alive[0])  # forked (all at the first submit): the read end is theirs
        self._shared: dict[int, tuple[Any, _SharedRef]] = {}  # id → (object, reference)
        self._fds: list[int] = []  # the shared objects' memory files
        self._relay = threading.Thread(
            target=self._relay_events, daemon=True, name="chromestore-forked-events"
        )
        self._relay.start()

    def _relay_events(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            topic, message = item
            for handler in list(_local_handlers.get(topic, ())):
                handler((time.time(), message))

    def share(self, obj: Any) -> Any:
        """One pickled copy in a memory file for the workers (each reads it once); the
        tasks given ``obj`` as an argument carry a reference to it.

        The file has no name (``memfd_create``; elsewhere a temporary file unlinked at once)
        and this process holds it open: the workers open it as ``/proc/PID/fd/N``, and it is
        gone when the last process holding it ends, however it ends.
        """
        if id(obj) not in self._shared:
            import pickle

            token = f"chromestore-shared-{len(self._shared)}-{id(obj):x}"
            fd = _memory_file(token)
            try:
                with os.fdopen(os.dup(fd), "wb") as fh:
                    pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
            except OSError as e:
                os.close(fd)
                raise OSError(
                    e.errno, e.strerror, f"the memory file for the counting workers ({token})"
                ) from e
            self._fds.append(fd)
            self._shared[id(obj)] = (obj, _SharedRef(token, f"/proc/{os.getpid()}/fd/{fd}"))
        return obj

    def _refs(self, args: tuple) -> tuple:
        return tuple(self._shared[id(a)][1] if id(a) in self._shared else a for a in args)

    def submit(self, fn: Callable, *args, **kwargs) -> Deferred | Pooled:
        if _has_future((args, kwargs)):
            return Deferred(fn, args, kwargs)
        key = f"{getattr(fn, '__name__', 'task')}-{next(Deferred._ids)}"
        self._running.append(self._pool.submit(fn, *self._refs(args), **kwargs))
        return Pooled(key, self._running[-1])

    def cancel(self, futures: Iterable) -> None:
        futures = list(futures)
        for f in futures:
            if isinstance(f, Pooled):
                f._future.cancel()
        super().cancel(futures)

    def close(self) -> None:
        """Stop the workers (a task still running is killed) and the event relay."""
        if self._pool is None:
            return
        busy = [f for f in self._running if not f.done()]
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        manager = getattr(self._pool, "_executor_manager_thread", None)
        self._pool.shutdown(wait=not busy, cancel_futures=True)
        if busy:  # Ctrl-C or an error elsewhere: no result is waited for
            for p in processes:
                if p.is_alive():
                    p.terminate()
            for p in processes:
                p.join(timeout=5)
            # let the pool's manager thread finish closing its wake-up pipe: Python 3.11's
            # exit handler may otherwise write to it as it closes ("Exception ignored ...
            # OSError: [Errno 9] Bad file descriptor" after "error: interrupted")
            if manager is not None:
                manager.join(timeout=5)
        self._events.put(None)
        self._relay.join(timeout=5)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._shared.clear()
        with contextlib.suppress(OSError):
            os.close(self._alive[1])  # any worker left sees end of file and exits
        self._pool = None

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _memory_file(name: str) -> int:
    """A file descriptor of an unnamed file in memory: ``memfd_create``, or a temporary
    file in ``/dev/shm`` unlinked at once."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create(name, 0)  # no MFD_CLOEXEC: nothing execs here
    import tempfile

    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix=f"{name}-", dir=folder)
    os.unlink(path)
    return fd


class OnDask:
    """Runs tasks on the cluster of a ``distributed.Client``."""

    def __init__(self, client):
        self.client = client

    def share(self, obj: Any) -> Any:
        """One copy on every worker, referenced by the tasks. Under a key of its own: a
        key from the content would be shared with another client's ingest of the same
        store, and lost to both when that one finishes and releases it."""
        return self.client.scatter(obj, broadcast=True, hash=False)

    def submit(self, fn: Callable, *args, **kwargs):
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def as_completed(self, futures: Iterable) -> Iterator:
        from distributed import as_completed

        return iter(as_completed(list(futures)))

    def cancel(self, futures: Iterable) -> None:
        self.client.cancel(list(futures))

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
