"""``chromestore simulate``: a store of real genes and RPKM with simulated signal."""

from __future__ import annotations

import click

from chromestore.app import session
from chromestore.store import DEFAULT_GENE_CHUNK  # light: numpy and the schema


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
@session.command_options
@click.pass_context
def simulate(
    ctx, store, cells, genes, seed, genome, gene_chunk, calibration, emit_dir, emit_format
):
    """Simulate STORE: real genes and RPKM, signal drawn from a model fitted on real E003."""
    from chromestore import variables as V
    from chromestore.simulation import calibration_report, format_report, real_rpkm
    from chromestore.simulation import simulate as draw

    if calibration:
        click.echo(format_report(calibration_report(seed)))
    if store is None and emit_dir is None:
        if not calibration:
            session.fail("give a STORE to write, --emit DIR, or --calibration")
        return
    cell_list = session.parse_cells(cells, list(real_rpkm().columns))
    genes_arg = int(genes) if genes.isdigit() else genes
    with session.cluster(ctx, heavy=True):
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

            sheet = emit(ds, emit_dir, emit_format, seed=seed)
            click.echo(f"{emit_format} files and samplesheet: {sheet}")


COMMANDS = (simulate,)
