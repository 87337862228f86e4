"""What every command shares: the global options, the store handle, where Dask work runs,
and the ``--cells`` argument (read by the library's one selector). The one place each of
these choices is made.

Global options (``--scheduler``, ``--workers``, ``--storage-options``, ``--progress``)
are accepted before the subcommand, as in ``chromestore --workers 0 ingest ...``, and
after it, as in ``chromestore ingest ... --workers 0``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import click

ENV_SCHEDULER = "CHROMESTORE_SCHEDULER"
#: --storage-options from the environment (keeps secrets off command lines and out of `ps`)
ENV_STORAGE_OPTIONS = "CHROMESTORE_STORAGE_OPTIONS"


def fail(msg: str, code: int = 1) -> None:
    """Print ``error: msg`` on stderr and exit non-zero."""
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def _state(ctx: click.Context) -> dict:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    return root.obj


def _store_option(ctx: click.Context, param: click.Parameter, value):
    if value is None:
        return value
    if param.name == "storage_options":
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise click.BadParameter(
                f"not valid JSON ({e.msg} at character {e.pos}): {value!r}", ctx, param
            ) from None
        if not isinstance(value, dict):
            raise click.BadParameter(f"a JSON object is expected, got {value!r}", ctx, param)
    _state(ctx)[param.name] = value
    return value


def _global_options(hidden: bool) -> list[Callable]:
    kw = {"expose_value": False, "callback": _store_option, "hidden": hidden}
    return [
        click.option(
            "--scheduler",
            default=None,
            **kw,
            help=f"Dask scheduler address (tcp://HOST:8786; or ${ENV_SCHEDULER}). "
            "Default: heavy commands start an embedded LocalCluster on 127.0.0.1 "
            "and print its dashboard address; light ones run in this process.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=None,
            **kw,
            help="Worker processes of the embedded cluster; 0 runs everything in this process.",
        ),
        click.option(
            "--storage-options",
            default=None,
            **kw,
            # the group's option alone reads the variable, so that a value given
            # on the command line is never replaced by the environment's
            envvar=None if hidden else ENV_STORAGE_OPTIONS,
            help="JSON fsspec options for remote stores, e.g. "
            '\'{"endpoint_url": "http://..."}\' (or $' + ENV_STORAGE_OPTIONS + ").",
        ),
        click.option(
            "--progress/--no-progress",
            default=None,
            **kw,
            help="Progress bars (default: only when stderr is a terminal).",
        ),
    ]


def global_options(f: Callable) -> Callable:
    """Add the global options to the group (shown in its --help)."""
    for option in reversed(_global_options(hidden=False)):
        f = option(f)
    return f


def command_options(f: Callable) -> Callable:
    """Accept the global options after a subcommand too (listed once, in the group's --help),
    and run the command's Dask work outside its cluster (:func:`cluster`) in this process,
    under a scheduler named as a function: left to Dask, each compute would first import
    ``distributed`` to look for a client (0.4 s a command). Entered when the command runs,
    so ``--help`` loads no Dask."""

    @functools.wraps(f)
    def command(*args, **kwargs):
        from chromestore.executors import local_dask

        with local_dask():
            return f(*args, **kwargs)

    for option in reversed(_global_options(hidden=True)):
        command = option(command)
    return command


def storage_options(ctx: click.Context) -> dict | None:
    return _state(ctx).get("storage_options")


def scheduler_address(ctx: click.Context) -> str | None:
    return _state(ctx).get("scheduler") or os.environ.get(ENV_SCHEDULER) or None


def workers(ctx: click.Context) -> int | None:
    return _state(ctx).get("workers")


def progress(ctx: click.Context) -> bool:
    """Progress bars: as asked, else only when stderr is a terminal (no CR noise in logs)."""
    asked = _state(ctx).get("progress")
    return sys.stderr.isatty() if asked is None else bool(asked)


def wants_cluster(ctx: click.Context, *, heavy: bool) -> bool:
    """Whether :func:`cluster` would give a client (the rule documented there)."""
    if scheduler_address(ctx):
        return True
    n = workers(ctx)
    if n == 0:
        return False
    return heavy or n is not None


@contextmanager
def cluster(ctx: click.Context, *, heavy: bool) -> Iterator:
    """Where a command's Dask work runs; yields a ``distributed.Client`` or None.

    - ``--scheduler ADDRESS`` (or ``$CHROMESTORE_SCHEDULER``): that cluster;
    - ``--workers 0``: this process (Dask's threads, no cluster);
    - ``--workers N``: an embedded LocalCluster of N worker processes;
    - neither: an embedded LocalCluster (one worker per core) when the command is
      ``heavy`` (ingest of files, simulate, distributed training, ``run``), else this process.
    """
    if not wants_cluster(ctx, heavy=heavy):
        from chromestore.executors import local_dask

        with local_dask():
            yield None
        return
    from chromestore.app.cluster import connect

    with connect(scheduler_address(ctx), workers(ctx)) as client:  # says where the dashboard is
        try:
            yield client
        except KeyboardInterrupt:
            _quiet_teardown()
            raise


def _quiet_teardown() -> None:
    """After Ctrl-C the cluster closes with tasks cancelled: keep asyncio's "exception was
    never retrieved" and Dask's shutdown chatter off the terminal (one line says why)."""
    import logging

    for name in ("asyncio", "distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def parse_cells(
    value: str | Sequence[str] | None,
    available: Sequence[str] | None = None,
    *,
    option: str = "--cells",
) -> list[str] | None:
    """``--cells`` (or another option naming epigenomes) read by the library's one selector,
    :func:`chromestore.store.select_cells`: None for every epigenome (``all``, or not
    given), else the list chosen; its error becomes a usage error of ``option``."""
    from chromestore.store import means_all, select_cells

    if means_all(value):
        return None
    try:
        return select_cells(value, available)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=f"'{option}'") from None
