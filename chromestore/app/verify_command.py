"""``chromestore verify``: read every chunk of a store back and name each bad one."""

from __future__ import annotations

import click

from chromestore.app import session

#: stores above this size are verified on the Dask cluster (see session.cluster)
LARGE_BYTES = 2 << 30


@click.command()
@click.argument("store")
@session.command_options
@click.pass_context
def verify(ctx, store):
    """Read back every chunk of STORE (runs included), checking each chunk's checksum, and
    every run's weights files against the checksums the run records.

    Prints one line per bad chunk (variable, chunk key, cell and genes) and per missing one
    (a chunk, zarr.json or provenance that the store's records say must be there), and
    exits 1 if there is any; arrays written before checksums existed are listed as
    unchecked.
    Large stores are read on the Dask cluster (--scheduler/--workers), small ones here.
    """
    from chromestore.store import Store, size_on_disk
    from chromestore.store.verify import verify_store

    handle = Store.of(store, session.storage_options(ctx))
    heavy = size_on_disk(handle) > LARGE_BYTES
    with session.cluster(ctx, heavy=heavy) as client:
        report = verify_store(handle, client=client, progress=session.progress(ctx))
    for line in report.lines():
        click.echo(line)
    from chromestore.runs import verify_runs  # every run's weights against its records

    problems, notes = verify_runs(handle)
    for line in notes + [f"bad: {p}" for p in problems]:
        click.echo(line)
    if not report.ok:
        session.fail(f"{store}: {report.summary()} (listed above)")
    if problems:
        n = len(problems)
        session.fail(f"{store}: {n} run weights file{'s' if n > 1 else ''} bad (listed above)")


COMMANDS = (verify,)
