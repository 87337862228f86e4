"""``chromestore samplesheet``: samplesheets made from other tools' listings
(``samplesheet encode``: the ENCODE portal's ``metadata.tsv``)."""

from __future__ import annotations

import click


@click.group()
def samplesheet() -> None:
    """Write a samplesheet (cell,mark,format,path) for `chromestore ingest --samples`."""


@samplesheet.command("encode")
@click.argument("metadata", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The samplesheet.")
@click.option(
    "--output-type",
    "output_types",
    multiple=True,
    default=("fold change over control",),
    show_default=True,
    help="The marks' files to take (ENCODE's Output type); repeat it for the next choice "
    "where the first is missing (e.g. 'replicated peaks', then 'pseudoreplicated peaks'), "
    "or for a signal file and a peaks file of each mark.",
)
@click.option("--assembly", default="GRCh38", show_default=True, help="File assembly to take.")
@click.option(
    "--marks",
    default=None,
    help="Comma-separated histone marks (default: the store's five core marks).",
)
@click.option(
    "--files",
    default=None,
    type=click.Path(file_okay=False),
    help="The folder the batch download put the files in (default: METADATA's folder).",
)
@click.option(
    "--expression/--no-expression",
    default=True,
    show_default=True,
    help="Take each biosample's RSEM gene quantifications as a rsem-genes row.",
)
def encode(metadata, out, output_types, assembly, marks, files, expression):
    """From the portal's METADATA (metadata.tsv of a batch download), per biosample and
    histone mark the file of the output type asked for (most biological replicates, then
    the newest), and each biosample's gene quantifications. Writes OUT, the epigenome ids
    of the biosamples (OUT's name with .epigenomes.tsv) and the files skipped with the
    reason (.skipped.tsv); prints each skipped file."""
    from chromestore import variables as V
    from chromestore.ingest.encode import companion, encode_samplesheet

    mark_list = [m.strip() for m in marks.split(",") if m.strip()] if marks else V.DEFAULT_MARKS
    sheet = encode_samplesheet(
        metadata,
        out,
        output_types=output_types,
        assembly=assembly,
        marks=mark_list,
        files=files,
        expression=expression,
    )
    for accession, line, reason in sheet.skipped:
        click.echo(f"skipped {accession} (line {line}): {reason}")
    click.echo(f"{out}: {sheet.summary()}")
    click.echo(
        f"epigenome ids: {companion(out, 'epigenomes')}; skipped: {companion(out, 'skipped')}"
    )


COMMANDS = (samplesheet,)
