"""The ``chromestore`` command line: a thin layer over the library.

Each command lives in a module of its own (``store_commands``, ``ingest_commands``,
``simulate_command``, ``train_command``, ``analyze_commands``, ``pipeline`` for ``run``,
``verify_command``, ``predict_commands``, ``samplesheet_command``); the choices they share (global options, the
Dask cluster, ``--cells``) are in :mod:`chromestore.app.session`.
"""

from __future__ import annotations

import click

from chromestore.app import session
from chromestore.app.errors import ErrorHandlingGroup


@click.group(cls=ErrorHandlingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@session.global_options
@click.version_option(package_name="chromestore")
@click.pass_context
def main(ctx: click.Context) -> None:
    """chromestore: histone marks around TSSs → gene expression, at epigenome scale."""
    ctx.ensure_object(dict)


def _register() -> None:
    from chromestore.app import (
        analyze_commands,
        ingest_commands,
        pipeline,
        predict_commands,
        samplesheet_command,
        simulate_command,
        store_commands,
        train_command,
        verify_command,
    )

    for module in (
        store_commands,
        ingest_commands,
        simulate_command,
        train_command,
        analyze_commands,
        pipeline,
        verify_command,
        predict_commands,
        samplesheet_command,
    ):
        for command in module.COMMANDS:
            main.add_command(command)


_register()


#: The garbage collector's thresholds while a command runs (Python's: 700, 10, 10). A
#: command allocates millions of small objects (Dask graphs, xarray and Zarr metadata) on
#: top of the million its imports left; at Python's, the collector ran ~800 times in one
#: ``simulate --cells 56 --genes 1500`` and its full passes rescanned all of them: 0.4 s of
#: a 4.3 s command, 0.03–0.07 s at these. Cycles are still collected, 14× less often.
GC_THRESHOLDS = (10_000, 10, 10)


def run() -> None:
    """The console entry (``chromestore``, ``python -m chromestore``): :func:`main` with the
    collector at :data:`GC_THRESHOLDS`, after which whatever objects are left are frozen
    out of the garbage collector, so that the interpreter's last collections skip them
    (with xarray, Dask, pandas and numba loaded, they took about 0.2 s of every command's
    exit). Finalizers and atexit still run."""
    import gc

    gc.set_threshold(*GC_THRESHOLDS)
    try:
        main(prog_name="chromestore")
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    run()
