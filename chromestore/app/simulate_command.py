"""``chromestore simulate``: a store of real genes and RPKM with simulated signal."""

from __future__ import annotations

import click

from chromestore.app import session
from chromestore.store import DEFAULT_GENE_CHUNK  # light: numpy and the schema

#: Simulations of at most this many (epigenome, gene) pairs run in this process on Dask's
#: threads (the compiled draw holds no GIL); larger ones start the embedded cluster.
IN_PROCESS_PAIRS = 56 * 4096


@click.command()
@click.argument("store", required=False)
@click.option(
    "--cells",
    default="all",
    show_default=True,
    help="all, the first N epigenomes, or a comma-separated list (E003,E004).",
)
@click.option(
    "--genes", default="all", show_default=True, help="all (19,802 real genes) or the first N."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--genome",
    default="hg19",
    show_default=True,
    help="The genes' coordinates: hg19, or GRCh38 (the shipped GRCh38 annotation's genes, "
    "each with the values it has in hg19; --emit writes GRCh38 files).",
)
@click.option(
    "--gene-chunk", type=click.IntRange(min=1), default=DEFAULT_GENE_CHUNK, show_default=True
)
@click.option(
    "--calibration",
    is_flag=True,
    help="Print real vs simulated E003 statistics on the real sample's 600 genes.",
)
@click.option(
    "--full",
    is_flag=True,
    help="With --calibration: also the test AUROC of every simulated epigenome against "
    "DeepChrome's published one (a logistic regression on stretch totals, or --run's).",
)
@click.option(
    "--run",
    "run_name",
    default=None,
    help="With --calibration --full: read DeepChrome's test AUROC per epigenome from this "
    "run of STORE (a simulated store) instead of fitting the logistic regression.",
)
@click.option(
    "--emit",
    "emit_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Also write the same draw as real files (and a samplesheet) in this folder.",
)
@click.option(
    "--format",
    "emit_format",
    default="tagalign",
    show_default=True,
    type=click.Choice(["tagalign", "bigwig", "narrowpeak", "deepchrome-csv"]),
    help="File format for --emit.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the files in --emit DIR if chromestore emitted them (anything else there "
    "is refused).",
)
@session.command_options
@click.pass_context
def simulate(
    ctx,
    store,
    cells,
    genes,
    seed,
    genome,
    gene_chunk,
    calibration,
    full,
    run_name,
    emit_dir,
    emit_format,
    overwrite,
):
    """Simulate STORE: real genes and RPKM, signal drawn from a model fitted on real E003.

    --emit DIR writes into a new or empty folder, or replaces (--overwrite) files
    chromestore emitted there before; a folder of anything else is refused.
    """
    from chromestore import variables as V
    from chromestore.simulation import real_genes, real_rpkm
    from chromestore.simulation import simulate as draw

    if (full and not calibration) or (run_name and not full):
        session.fail("--full goes with --calibration, and --run with --calibration --full")
    if run_name and store is None:
        session.fail("--run NAME reads the run from STORE: give the simulated STORE")
    cell_list = session.parse_cells(cells, list(real_rpkm().columns))

    if emit_dir is not None:
        from chromestore.simulation.emit import KIND
        from chromestore.store import safety

        safety.check_folder(emit_dir, KIND, overwrite)  # before anything is drawn

    if calibration:
        _calibration(ctx, seed, full, store, run_name, cell_list)
        if run_name:  # STORE was read, not written
            return
    if store is None and emit_dir is None:
        if not calibration:
            session.fail("give a STORE to write, --emit DIR, or --calibration")
        return
    genes_arg = int(genes) if genes.isdigit() else genes
    n_genes = genes_arg if isinstance(genes_arg, int) else len(real_genes())
    n_cells = len(real_rpkm().columns) if cell_list is None else len(cell_list)
    with session.cluster(ctx, heavy=n_cells * n_genes > IN_PROCESS_PAIRS):
        ds = draw(
            store,
            "all" if cell_list is None else cell_list,
            genes_arg,
            seed=seed,
            gene_chunk=gene_chunk,
            storage_options=session.storage_options(ctx),
            progress=store is not None and session.progress(ctx),
            genome=genome,
        )
        if store is not None:
            click.echo(
                f"{store}: simulated {ds.sizes[V.CELL]} epigenomes × {ds.sizes[V.GENE]} "
                f"genes × {ds.sizes[V.MARK]} marks × {ds.sizes[V.BIN]} bins (seed {seed}); "
                "expression is the real RPKM"
            )
        if emit_dir is not None:
            from chromestore.simulation.emit import emit

            sheet = emit(ds, emit_dir, emit_format, seed=seed, overwrite=overwrite)
            click.echo(f"{emit_format} files and samplesheet: {sheet}")


def _calibration(ctx, seed, full, store, run_name, cell_list) -> None:
    """Print the calibration report: per mark and across marks on the real E003 sample's
    genes, and with ``full`` the per-epigenome table."""
    from chromestore.simulation import report

    click.echo(report.format_report(report.calibration_report(seed)))
    click.echo(report.format_cross_mark(report.cross_mark_report(seed)))
    if not full:
        return
    with session.cluster(ctx, heavy=False):  # the draw holds no GIL: threads suffice
        table = report.epigenome_table(
            cell_list, seed, store, run_name, storage_options=session.storage_options(ctx)
        )
    source = (
        f"DeepChrome's, run {run_name}"
        if run_name
        else "a logistic regression on each gene's stretch totals, DeepChrome's split"
    )
    click.echo(report.format_epigenome_table(table, source))


COMMANDS = (simulate,)
