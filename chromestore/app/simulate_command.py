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
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the files in --emit DIR if chromestore emitted them (anything else there "
    "is refused).",
)
@session.command_options
@click.pass_context
def simulate(
    ctx, store, cells, genes, seed, gene_chunk, calibration, emit_dir, emit_format, overwrite
):
    """Simulate STORE: real genes and RPKM, signal drawn from a model fitted on real E003.

    --emit DIR writes into a new or empty folder, or replaces (--overwrite) files
    chromestore emitted there before; a folder of anything else is refused.
    """
    from chromestore import variables as V
    from chromestore.simulation import calibration_report, format_report, real_rpkm
    from chromestore.simulation import simulate as draw

    if emit_dir is not None:
        from chromestore.simulation.emit import KIND
        from chromestore.store import safety

        safety.check_folder(emit_dir, KIND, overwrite)  # before anything is drawn

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


COMMANDS = (simulate,)
