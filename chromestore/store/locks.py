"""Locks that serialise the writers of one store: local paths, object stores and Dask.

:meth:`chromestore.store.Store.lock` picks one:

- a local path: an OS file lock (``filelock``) on ``STORE.locks/NAME.lock``, a sibling of
  the store so Zarr never sees it; the OS drops it when its process dies (even SIGKILL);
- an object store (``s3://``, ``gs://``, ...): :class:`ObjectLock`, a small object
  ``STORE.locks/NAME`` created with a conditional write (``If-None-Match: *``) and holding a
  lease that its holder renews; a lease not renewed in time (its holder died) is taken over.
  A holder whose lease lapsed (it stalled longer than the lease) learns it from
  :meth:`Held.verify` before it records anything, and fails with :class:`LockLost`;
- ``memory://``: a lock of this process (that filesystem lives in one process).

When a ``distributed`` client is active, a ``distributed.Lock`` named after the store is
taken first as well, so the tasks of one cluster queue on the scheduler instead of polling.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

#: suffix of the folder (or key prefix) beside the store that holds its locks
LOCKS_SUFFIX = ".locks"
_local_locks: dict[str, threading.RLock] = {}
_held = threading.local()  # (url, name) this thread holds: taking it again is a no-op


class LockTimeout(TimeoutError):
    """A store lock was not acquired in time."""


class LockError(OSError):
    """The lock object could not be read or written (not: it is held by another writer)."""


class LockLost(RuntimeError):
    """A holder's lease lapsed while it held the lock: another writer may have taken it."""


class Held:
    """What ``with store.lock() as held`` gives: :meth:`verify` before committing records."""

    def __init__(self) -> None:
        self.locks: list[Any] = []

    def verify(self) -> None:
        """Raise :class:`LockLost` when a lock held here was lost (a lapsed lease)."""
        for lock in self.locks:
            check = getattr(lock, "verify", None)
            if check is not None:
                check()


def locks_url(url: str) -> str:
    """Where the locks of the store at ``url`` live: beside it, outside the Zarr hierarchy."""
    return url.rstrip("/") + LOCKS_SUFFIX


def _active_client():
    """The Dask client of this process (a worker's, or the default one), if any. Without
    ``distributed`` imported there can be none: nothing is imported to find out."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


@contextlib.contextmanager
def store_lock(store, name: str, timeout: float = 600.0) -> Iterator[None]:
    """Hold the lock ``name`` of ``store`` (a :class:`chromestore.store.Store`) inside the block.

    Re-entrant within a thread. Raises :class:`LockTimeout` when it cannot be acquired
    within ``timeout`` seconds.
    """
    key = (store.url, name)
    held = _held.__dict__.setdefault("keys", {})
    if key in held:
        yield held[key]
        return
    holding = Held()
    with contextlib.ExitStack() as stack:
        client = _active_client()
        if client is not None:
            from distributed import Lock

            dlock = Lock(f"chromestore:{store.url}:{name}")
            if not dlock.acquire(timeout=timeout):
                raise LockTimeout(f"{store}: lock {name!r} not acquired in {timeout:.0f} s")
            stack.callback(dlock.release)
        storage = _storage_lock(store, name, timeout)
        stack.enter_context(storage)
        holding.locks.append(storage)
        held[key] = holding
        stack.callback(held.pop, key, None)
        yield holding


def _storage_lock(store, name: str, timeout: float):
    fs, root = store.fs()
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        import filelock

        folder = locks_url(root)
        os.makedirs(folder, exist_ok=True)
        return _filelock(
            filelock.FileLock(os.path.join(folder, f"{name}.lock")), store, name, timeout
        )
    if protocol == "memory":
        return _local_locks.setdefault(f"{store.url}:{name}", threading.RLock())
    return ObjectLock(fs, f"{locks_url(root)}/{name}", timeout=timeout)


@contextlib.contextmanager
def _filelock(lock, store, name: str, timeout: float) -> Iterator[None]:
    import filelock

    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise LockTimeout(
            f"{store}: lock {name!r} not acquired in {timeout:.0f} s "
            f"(held through {lock.lock_file})"
        ) from None
    try:
        yield
    finally:
        lock.release()


class ObjectLock:
    """A lock object on an object store: created only if absent, with a renewed lease.

    The object holds ``{"owner": uuid, "expires": unix time}``. :meth:`acquire` creates it
    with a conditional PUT (``If-None-Match: *``, fsspec ``mode="create"``), so of two
    writers only one succeeds. While held, a thread rewrites it every ``lease / 6`` seconds
    with a later expiry. An object whose expiry has passed (its holder died) is deleted and
    the creation retried; the conditional create still lets only one newcomer win, and a
    newcomer that took over reads the object again after ``poll`` seconds to confirm it.

    Nothing here waits without bound: each storage call is bounded by the filesystem's own
    timeouts and retries, an error other than "already exists" raises :class:`LockError`,
    and waiting for the holder ends with :class:`LockTimeout` after ``timeout`` seconds.
    """

    def __init__(
        self, fs: Any, path: str, lease: float = 120.0, timeout: float = 600.0, poll: float = 0.2
    ) -> None:
        self.fs, self.path, self.lease, self.timeout, self.poll = fs, path, lease, timeout, poll
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._expires = 0.0  # the expiry of the last lease written (unix time)
        self._lost: str | None = None

    def _body(self) -> tuple[bytes, float]:
        expires = time.time() + self.lease
        return json.dumps({"owner": self.owner, "expires": expires}).encode(), expires

    def _read(self) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:  # being written: treat as held
            return {"owner": "?", "expires": time.time() + self.lease}
        except OSError as err:
            raise LockError(f"lock {self.path}: cannot read the lock object ({err})") from err

    def _try_create(self) -> bool:
        body, expires = self._body()
        try:
            self.fs.pipe_file(self.path, body, mode="create")
        except FileExistsError:
            return False
        except FileNotFoundError:
            raise
        except OSError as err:
            if not _exists_error(err):
                raise LockError(f"lock {self.path}: cannot create the lock object ({err})") from err
            # "exists": another holder's, or ours when a retried PUT lost its first answer
            held = self._read()
            if held is None or held.get("owner") != self.owner:
                return False
            expires = float(held["expires"])
        self._expires = expires
        return True

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        took_over = False
        while True:
            if self._try_create():
                if not took_over:
                    break
                time.sleep(self.poll)  # another newcomer may have deleted ours: confirm
                held = self._read()
                if held is not None and held.get("owner") == self.owner:
                    break
                took_over = False
                continue
            held = self._read()
            if held is not None and held["expires"] < time.time():
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(self.path)  # a stale lease: its holder is gone
                took_over = True
                continue
            if time.monotonic() > deadline:
                raise LockTimeout(
                    f"lock {self.path} not acquired in {self.timeout:.0f} s (held by {held})"
                )
            time.sleep(self.poll)
        self._lost = None
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 6):
            try:
                held = self._read()
                if held is None or held.get("owner") != self.owner:
                    self._lost = f"taken over by {held}"
                    return
                if time.time() > self._expires:
                    self._lost = "its lease lapsed before it was renewed"
                    return
                body, expires = self._body()
                self.fs.pipe_file(self.path, body)
                self._expires = expires
            except OSError:  # a failed renewal: the next one may succeed before expiry
                continue

    def verify(self) -> None:
        """Raise :class:`LockLost` when this holder's lease lapsed or was taken over."""
        if self._lost is None and time.time() > self._expires:
            self._lost = "its lease lapsed before it was renewed"
        if self._lost is not None:
            raise LockLost(
                f"lock {self.path} was lost while held ({self._lost}): another "
                "writer may have written meanwhile; nothing was recorded, run "
                "the command again"
            )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        held = self._read()
        if held is not None and held.get("owner") == self.owner:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)

    def __enter__(self) -> ObjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _exists_error(err: OSError) -> bool:
    """Whether a conditional create failed because the object exists (s3fs turns S3's
    ``412 PreconditionFailed`` into ``OSError(EINVAL)``)."""
    text = str(err)
    return err.errno == errno.EINVAL or "PreconditionFailed" in text or "412" in text
