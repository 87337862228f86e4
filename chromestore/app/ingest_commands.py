"""``chromestore ingest`` and ``chromestore call-peaks``: files into a store."""

from __future__ import annotations

import click

from chromestore.app import session

# the layout's defaults (chromestore.store.layout loads only numpy and the schema)
from chromestore.store import DEFAULT_BIN_SIZE, DEFAULT_GENE_CHUNK, DEFAULT_GENOME, DEFAULT_WINDOW


class _FormatsHelp(click.Command):
    """``--help`` ends with the formats of the registry (built-in and plugins)."""

    def format_epilog(self, ctx, formatter):
        from chromestore import formats

        with formatter.section("Formats (samplesheet format column; empty: from the suffix)"):
            formatter.write_dl(
                [
                    (
                        e.name,
                        f"→ {e.target}"
                        + (f" ({', '.join('*' + s for s in e.suffixes)})" if e.suffixes else "")
                        + f": {e.description}",
                    )
                    for e in formats.entries()
                ]
            )
        super().format_epilog(ctx, formatter)


@click.command(cls=_FormatsHelp)
@click.argument("store")
@click.option(
    "--genes",
    type=click.Path(exists=False),
    help="Gene annotation (BED windows or GTF); default: the shipped one of --genome.",
)
@click.option(
    "--expression",
    "expression",
    default=None,
    help="RPKM matrix (REMC layout); or give RSEM files as rsem-genes samplesheet rows.",
)
@click.option("--cells", default=None, help="Comma-separated epigenomes to take (default: all).")
@click.option(
    "--window", type=int, default=DEFAULT_WINDOW, show_default=True, help="bp each side of TSS."
)
@click.option("--bin-size", type=int, default=DEFAULT_BIN_SIZE, show_default=True)
@click.option(
    "--genome",
    default=None,
    help=f"The store's assembly: hg19 (GRCh37) or GRCh38 (hg38) take the shipped annotation "
    f"when --genes is not given; any other name is a label (default {DEFAULT_GENOME}; an "
    "existing store keeps its own).",
)
@click.option(
    "--gene-chunk", type=click.IntRange(min=1), default=DEFAULT_GENE_CHUNK, show_default=True
)
@click.option(
    "--samples",
    default=None,
    type=click.Path(),
    help="Samplesheet CSV: cell,mark,format,path (paths relative to it).",
)
@click.option("--force", is_flag=True, help="Redo (cell, mark) pairs already completed.")
@click.option(
    "--quantity",
    type=click.Choice(["TPM", "FPKM"]),
    default="TPM",
    show_default=True,
    help="What the samplesheet's rsem-genes rows give the store's expression.",
)
@click.option(
    "--chrom-alias",
    "chrom_alias",
    default=None,
    type=click.Path(dir_okay=False),
    help="Chromosome names of the files that the annotation calls otherwise: lines "
    "FILE_NAME<TAB>ANNOTATION_NAME (e.g. NC_000001.11<TAB>chr1; UCSC chromAlias.txt works). "
    "Without it, names match with or without 'chr', and MT is chrM.",
)
@session.command_options
@click.pass_context
def ingest(
    ctx,
    store,
    genes,
    expression,
    cells,
    window,
    bin_size,
    genome,
    gene_chunk,
    samples,
    force,
    quantity,
    chrom_alias,
):
    """Create STORE from a gene annotation if absent, then add signal files from a
    samplesheet and expression. Re-running skips what is completed; new epigenomes are
    appended once their files were read. Files are counted in parallel on Dask (an embedded
    cluster unless --scheduler; --workers 0: in this process). A small job, one file or under
    50 MB, is counted without a cluster unless --workers or --scheduler is given: by a forked
    worker process, while this one creates the store. A file that puts no read into any
    window (chromosome names that do not match, another assembly, an empty file) is refused.
    A killed or interrupted ingest is completed by running it again."""
    import warnings
    from contextlib import nullcontext

    from chromestore.ingest import early_reader

    asked = session.workers(ctx) is not None or bool(session.scheduler_address(ctx))
    reader = early_reader(bool(samples), cluster_asked=asked)  # before anything else: a fork
    from chromestore.genes import StrandWarning
    from chromestore.ingest import place, plan_ingest, run_plan

    with (
        warnings.catch_warnings(record=True) as caught,  # the annotation is read in both
        reader or nullcontext(),
    ):
        warnings.simplefilter("always", StrandWarning)
        plan = plan_ingest(
            store,
            genes,
            samples,
            expression,
            cells=session.parse_cells(cells),
            window=window,
            bin_size=bin_size,
            genome=genome,
            gene_chunk=gene_chunk,
            force=force,
            storage_options=session.storage_options(ctx),
            quantity=quantity,
            chrom_alias=chrom_alias,
        )
        where = place(plan, reader)  # the small-job rule
        if not where.dask:  # nothing to count: no cluster
            report = run_plan(plan)
        else:
            with session.cluster(ctx, heavy=where.heavy) as client:
                report = run_plan(
                    plan, client=client, executor=where.executor, progress=session.progress(ctx)
                )
    for w in caught:  # genes without a strand: one line
        if issubclass(w.category, StrandWarning):
            click.echo(f"warning: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    click.echo(str(report))


@click.command("call-peaks")
@click.argument("samples", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--broad", is_flag=True, help="Broad peaks (broadPeak) instead of narrowPeak.")
@click.option(
    "--control",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Control reads for cells without an input/control row in SAMPLES.",
)
@click.option("--gsize", default="hs", show_default=True, help="MACS3 effective genome size.")
@click.option("--qvalue", type=float, default=0.05, show_default=True)
@click.option(
    "--extsize",
    type=int,
    default=200,
    show_default=True,
    help="Fragment length when MACS3 builds no shifting model.",
)
@click.option(
    "--model/--nomodel",
    "build_model",
    default=False,
    show_default=True,
    help="Let MACS3 build its shifting model.",
)
@session.command_options
def call_peaks_cmd(samples, out, broad, control, gsize, qvalue, extsize, build_model):
    """Call peaks with MACS3 on the tagAlign/BAM reads of SAMPLES (cell,mark,format,path);
    write OUT/samplesheet.csv for `chromestore ingest --samples` (needs the 'peaks' extra)."""
    from chromestore.ingest.callpeaks import MissingExtra, call_peaks

    try:
        sheet = call_peaks(
            samples,
            out,
            broad=broad,
            control=control,
            gsize=gsize,
            qvalue=qvalue,
            extsize=extsize,
            build_model=build_model,
        )
    except MissingExtra as e:
        session.fail(str(e))
    click.echo(f"peaks and samplesheet: {sheet}")


COMMANDS = (ingest, call_peaks_cmd)
