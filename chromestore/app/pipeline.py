"""``chromestore run``: the whole main job (``make demo``), run by
:func:`chromestore.analysis.workflow.run_all`; here only its options and what it prints.

The options' defaults are :class:`~chromestore.analysis.workflow.RunConfig`'s (the
workflow module loads no heavy library until it runs, so ``chromestore --help`` stays fast).
"""

from __future__ import annotations

import click

from chromestore.analysis.workflow import RunConfig
from chromestore.app import session

DEMO, PAPER = RunConfig(), RunConfig.paper()


@click.command("run")
@click.argument("store", default=DEMO.store)
@click.option(
    "--report",
    "report_dir",
    default=DEMO.report,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Report directory (index.html).",
)
@click.option("--name", default=DEMO.name, show_default=True, help="Run name (runs/NAME).")
@click.option(
    "--cells",
    default=DEMO.cells,
    show_default=True,
    help="Epigenomes to simulate: all (56), N, or a comma-separated list.",
)
@click.option(
    "--genes",
    type=int,
    default=None,
    help=f"Genes to simulate (a seeded sample; default {DEMO.genes}, --full: all 19,802).",
)
@click.option(
    "--epochs",
    type=int,
    default=None,
    help=f"Max epochs (default {DEMO.epochs}, --full: {PAPER.epochs}).",
)
@click.option("--seed", type=int, default=DEMO.seed, show_default=True)
@click.option(
    "--full",
    is_flag=True,
    help="The paper's protocol: all genes, DeepChrome's "
    f"file-order split, {PAPER.epochs} epochs with patience {PAPER.patience}, full SVM/RF grids.",
)
@click.option(
    "--e003/--no-e003",
    default=True,
    show_default=True,
    help="Also train and report on the real E003 sample.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace STORE, its -e003 sibling and the "
    "report of an earlier run. Only what chromestore made is replaced; anything "
    "else at those paths is refused, with or without this flag.",
)
@session.command_options
@click.pass_context
def run_cmd(ctx, store, report_dir, name, cells, genes, epochs, seed, full, e003, overwrite):
    """The whole job: simulate, label, split, train DeepChrome and peers, analyse, report."""
    from chromestore.analysis.workflow import check_outputs, run_all
    from chromestore.simulation import real_rpkm

    picked = session.parse_cells(cells, list(real_rpkm().columns))
    kw = dict(
        store=store,
        report=report_dir,
        name=name,
        seed=seed,
        e003=e003,
        overwrite=overwrite,
        cells="all" if picked is None else ",".join(picked),
        progress=session.progress(ctx),
    )
    if genes is not None:
        kw["genes"] = genes
    if epochs is not None:
        kw["epochs"] = epochs
    cfg = RunConfig.paper(**kw) if full else RunConfig(**kw)
    check_outputs(cfg)  # before a cluster starts
    with session.cluster(ctx, heavy=True) as client:
        click.echo(run_all(cfg, client=client))


COMMANDS = (run_cmd,)
