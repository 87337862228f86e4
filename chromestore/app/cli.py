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


def run() -> None:
    """The console entry (``chromestore``, ``python -m chromestore``): :func:`main`, after
    which whatever objects are left are frozen out of the garbage collector, so that the
    interpreter's last collections skip them (with xarray, Dask, pandas and numba loaded,
    they took about 0.2 s of every command's exit). Finalizers and atexit still run."""
    import gc

    try:
        main(prog_name="chromestore")
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    run()
