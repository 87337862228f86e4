"""Every error becomes one line on stderr and a non-zero exit, never a traceback.

- errors a user can fix (bad input, schema, store, corrupt chunk, a file or folder that
  cannot be used, an object store that refuses or cannot be reached): ``error: …``, exit 1;
- Ctrl-C: ``error: interrupted``, exit 130 (the embedded Dask cluster is closed first;
  what a command records as complete is only ever recorded after it was written);
- SIGTERM (``kill``, a scheduler's time limit): the same as Ctrl-C, with its own line
  (``error: terminated (SIGTERM)…``) and exit 143 (128 + SIGTERM);
- an OS error (a full disk, a read-only folder): the path and what the system said;
- anything else (a bug): one line naming the exception, exit 1; the traceback is printed
  only when ``CHROMESTORE_TRACEBACK=1``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import warnings
from collections.abc import Iterator

import click

from chromestore.app import session
from chromestore.errors import InputError, SchemaError, StoreError

ENV_TRACEBACK = "CHROMESTORE_TRACEBACK"
#: exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130
#: exit status of a command stopped by SIGTERM (128 + SIGTERM), as shells report it
EXIT_TERMINATED = 143
#: exit status when the reader of stdout went away (``| head``), as a shell reports SIGPIPE
EXIT_PIPE = 141
#: botocore/aiohttp errors that mean the endpoint did not answer (not that it refused us)
_UNREACHABLE = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ProxyConnectionError",
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is (see :func:`sigterm_raises`): a
    ``KeyboardInterrupt``, so that it unwinds the command as Ctrl-C does."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside the block (in the main thread; elsewhere
    nothing changes); the previous handler comes back after it."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ErrorHandlingGroup(click.Group):
    """Turns every error into a one-line message and a non-zero exit."""

    def invoke(self, ctx):
        try:
            with sigterm_raises():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own: usage errors (exit 2), --help, explicit exits
        except Terminated:
            _quiet_abandoned_coroutines()
            session.fail(
                "terminated (SIGTERM); what was recorded complete is kept: run the command "
                "again to finish",
                EXIT_TERMINATED,
            )
        except KeyboardInterrupt:
            _quiet_abandoned_coroutines()
            session.fail("interrupted", EXIT_INTERRUPTED)
        except Exception as e:
            if isinstance(e, BrokenPipeError) and _stdout_closed():
                _quiet_stdout()  # `chromestore labels STORE | head`: nothing to say
                raise SystemExit(EXIT_PIPE) from None
            if os.environ.get(ENV_TRACEBACK) == "1":
                raise
            session.fail(message(ctx, e))


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (a broken pipe of ours, not of a
    connection to an object store or a scheduler)."""
    import select
    import sys

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's last flush at exit finds no broken pipe
    (it would print "Exception ignored ... BrokenPipeError")."""
    import sys

    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _quiet_abandoned_coroutines() -> None:
    """An interrupt can land while Zarr's event loop runs a store operation: its coroutines
    are then dropped unfinished, and Python would print "coroutine ... was never awaited"
    (twice, with a tracemalloc hint) after the one-line message. They are ours to drop."""
    warnings.filterwarnings(
        "ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning
    )
    # Likewise a Dask client's wait for results (``Client._gather``) that the closing
    # cluster ended with distributed's ``AllExit``: asyncio would log "Task exception was
    # never retrieved" with its traceback when the task is collected.
    logging.getLogger("asyncio").addFilter(_drop_abandoned_dask_waits)


def _drop_abandoned_dask_waits(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not (exc is not None and type(exc).__name__ == "AllExit")


def message(ctx: click.Context, e: BaseException) -> str:
    """The one line that says what went wrong."""
    if isinstance(e, InputError | SchemaError | StoreError):
        return str(e)
    if _is_object_store(e):
        if type(e).__name__ in _UNREACHABLE or _caused_by_unreachable(e):
            return _unreachable(ctx, e)
        return _access_denied(ctx, e)
    if isinstance(e, PermissionError):
        return _permission(e) if e.filename else _access_denied(ctx, e)
    if isinstance(e, FileNotFoundError) and not e.filename and "bucket" in str(e).lower():
        return f"{e} at {_endpoint(ctx) or 'the object store'}; create the bucket or fix the URL"
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}{_os_hint(e)}"
    if isinstance(e, ConnectionError | TimeoutError):
        return _unreachable(ctx, e)
    if isinstance(e, KeyError):
        return str(e.args[0]) if e.args else "a key is missing"
    if isinstance(e, ValueError | OSError):
        return str(e)
    hint = f"set {ENV_TRACEBACK}=1 for the traceback and please report it"
    return f"unexpected {type(e).__name__}: {e} ({hint})"


def _os_hint(e: OSError) -> str:
    """What to do about an OS error, where the error says it."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "; free some space and run the command again (what was recorded complete is kept)"
    return ""


def _is_object_store(e: BaseException) -> bool:
    top = type(e).__module__.split(".")[0]
    return top in ("botocore", "aiobotocore", "aiohttp")


def _caused_by_unreachable(e: BaseException) -> bool:
    seen = e.__cause__ or e.__context__
    while seen is not None:
        if type(seen).__name__ in _UNREACHABLE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _endpoint(ctx: click.Context, environment: bool = True) -> str | None:
    """The object store's endpoint from --storage-options (or, with ``environment``, the
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL variables)."""
    so = session.storage_options(ctx) or {}
    given = so.get("endpoint_url") or (so.get("client_kwargs") or {}).get("endpoint_url")
    if given or not environment:
        return given
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _unreachable(ctx: click.Context, e: BaseException) -> str:
    """One line for an object store (or scheduler) that did not answer at all."""
    where = _endpoint(ctx)
    return (
        f"cannot reach the object store{f' at {where}' if where else ''} "
        f"({type(e).__name__}: {e}); check that it is running and that endpoint_url in "
        "--storage-options (or AWS_ENDPOINT_URL_S3) points at it"
    )


def _permission(e: PermissionError) -> str:
    where = str(e.filename)
    if re.search(r"\.[0-9a-f]{32}\.partial$", where):  # zarr's temporary file of a write:
        where = os.path.dirname(where)  # name the folder written to
    return (
        f"{where}: permission denied; the store or folder is read-only for this "
        "user (check its permissions, or write to a copy)"
    )


def _access_denied(ctx: click.Context, e: Exception) -> str:
    """One line for an object store that refused us (wrong or missing credentials)."""
    where = _endpoint(ctx, environment=False)
    return (
        f"the object store{f' at {where}' if where else ''} refused access "
        f"({type(e).__name__}: {e}); check the credentials: AWS_ACCESS_KEY_ID/"
        'AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or "key"/"secret" in --storage-options, '
        "and that they may use this bucket"
    )
