"""``chromestore info``, ``query``, ``labels`` and ``upgrade``: look at a store (the facts
come from the library, :func:`chromestore.info.store_info`; here they are printed)."""

from __future__ import annotations

import json

import click
import numpy as np

from chromestore.app import session


def _human(n: int) -> str:
    if n < 0:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command()
@click.argument("store")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@session.command_options
@click.pass_context
def info(ctx, store, fmt):
    """Dims, cells, marks, chunking, size on disk and per (cell, mark) completion."""
    from chromestore import variables as V
    from chromestore.info import store_info

    facts = store_info(store, session.storage_options(ctx))
    if fmt == "json":
        click.echo(json.dumps(facts, indent=2))
        return
    d = facts["dims"]
    click.echo(
        f"{store}: {facts['format']}, {facts['genome']}, TSS ± {facts['window']} bp "
        f"in {d['bin']} bins of {facts['bin_size']} bp"
    )
    click.echo("dims: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    st = facts["strands"]
    click.echo(
        f"bins 5'→3' ({facts['orientation']}): genes on + {st['+']:,}, on - {st['-']:,}, "
        f"strand unknown {st['.']:,} (bins in genome order)"
    )
    click.echo(f"marks: {', '.join(facts['marks'])}")
    for name, ch in facts["chunks"].items():
        click.echo(f"chunks {name}: " + " × ".join(f"{k} {v}" for k, v in ch.items()))
    click.echo(f"size on disk: {_human(facts['size_bytes'])}")
    click.echo(
        f"checksums: {facts['checksums']} (`chromestore verify {store}` reads every chunk back)"
    )
    n_expr = len(facts["expression_cells"])
    click.echo(f"cells: {len(facts['cells'])} ({n_expr} with expression)")
    if facts["cells"]:
        marks = facts["marks"]
        width = max(len(m) for m in marks)
        click.echo("signal completion (cell × mark):")
        click.echo("  cell  " + " ".join(m.rjust(width) for m in marks))
        lost = {m["cell"] for m in facts["missing_chunks"] if m["variable"] == V.signal.name}
        for c in facts["cells"]:
            done = set(facts["signal_completed"][c])
            word = "lost" if c in lost else "done"  # recorded complete, a chunk missing
            click.echo(
                f"  {c:<5} " + " ".join((word if m in done else "-").rjust(width) for m in marks)
            )
        kinds: dict[str, list[str]] = {}
        for c, per_mark in facts["signal_units"].items():
            for m, unit in per_mark.items():
                kinds.setdefault(unit, []).append(f"{c}/{m}")
        click.echo(
            "signal units: "
            + (
                "; ".join(
                    f"{unit} ({len(pairs)} cell × mark"
                    + (f": {', '.join(pairs)})" if len(kinds) > 1 and len(pairs) <= 6 else ")")
                    for unit, pairs in sorted(kinds.items())
                )
                or "none written"
            )
        )
        peaks = facts["peaks_completed"]
        if any(peaks.values()):
            click.echo("peak completion (cell × mark):")
            click.echo("  cell  " + " ".join(m.rjust(width) for m in marks))
            for c in facts["cells"]:
                done = set(peaks[c])
                click.echo(
                    f"  {c:<5} "
                    + " ".join(("done" if m in done else "-").rjust(width) for m in marks)
                )
        else:
            click.echo("peaks: none ingested")
    for m in facts["missing_chunks"]:
        click.echo(
            f"missing: chunk {m['key']} of {m['variable']} (cell {m['cell']}): its values are "
            f"lost, not NaN; re-running `chromestore ingest` with its files rewrites it"
        )
    runs = facts["runs"]
    click.echo(f"runs: {len(runs) or 'none'}")
    for r in runs:
        cells = ", ".join(r["cells"][:6]) + (
            f" … ({len(r['cells'])})" if len(r["cells"]) > 6 else ""
        )
        click.echo(
            f"  {r['name']}: {', '.join(r['models'])} on {cells}"
            + (f", {r['created']}" if r["created"] else "")
        )


@click.command()
@click.argument("store")
@click.option("--gene", required=True, help="Gene key (ENSGID_SYMBOL), Ensembl id or symbol.")
@click.option("--cell", default=None, help="Epigenome (default: all).")
@click.option("--mark", default=None, help="Mark (default: all).")
@session.command_options
@click.pass_context
def query(ctx, store, gene, cell, mark):
    """Print the mark × bin signal matrix of a gene."""
    from chromestore import store as S
    from chromestore import variables as V
    from chromestore.query import find_gene, gene_matrix, pick
    from chromestore.store.records import signal_units

    ds = S.open_store(store, session.storage_options(ctx))
    key = find_gene(ds, gene)
    mat = gene_matrix(ds, key, cell)
    if mark is not None:
        mat = mat.sel({V.MARK: pick(ds, V.MARK, [mark])})
    g = ds.sel({V.GENE: key})
    click.echo(
        f"{key}  {str(g.gene_chrom.values)}:{int(g.gene_tss.values)} "
        f"({str(g.gene_strand.values)})  bins 5'→3' from {int(ds.bin_offset[0])} bp"
    )
    np.set_printoptions(linewidth=200, threshold=10**6)
    units = signal_units(ds)
    for c in mat[V.CELL].values:
        expr = ds.expression.sel({V.CELL: c, V.GENE: key}).values
        click.echo(f"[{c}] expression {float(expr):g} RPKM")
        for m in mat[V.MARK].values:
            row = mat.sel({V.CELL: c, V.MARK: m}).values
            cells = " ".join("." if np.isnan(x) else f"{x:g}" for x in row)
            unit = str(units.sel({V.CELL: c, V.MARK: m}).values) or "not written"
            click.echo(f"  {str(m):<9} {cells}  ({unit})")


@click.command()
@click.argument("store")
@click.option(
    "--rule",
    default="median",
    show_default=True,
    help="median (> median, DeepChrome), median-ge (>=, ShallowChrome) or an RPKM value.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@session.command_options
@click.pass_context
def labels(ctx, store, rule, fmt):
    """Per-epigenome label summary: genes, positives, positive fraction, threshold."""
    from chromestore import store as S
    from chromestore.labels import compute_labels, label_summary

    ds = S.open_store(store, session.storage_options(ctx))
    rule_value: str | float = rule if rule in ("median", "median-ge") else float(rule)
    with session.cluster(ctx, heavy=False):
        summary = label_summary(compute_labels(ds, rule_value)).compute()
    df = summary.to_dataframe()
    if fmt == "json":
        click.echo(df.reset_index().to_json(orient="records", indent=2))
        return
    click.echo(f"labels ({rule}): cell  genes  positives  fraction  threshold(RPKM)")
    for cell, row in df.iterrows():
        click.echo(
            f"  {cell:<6} {int(row.genes):>6} {int(row.positives):>10} "
            f"{row.positive_fraction:>9.4f} {row.threshold:>15.3f}"
        )
    click.echo(f"  {len(df)} epigenomes, mean positive fraction {df.positive_fraction.mean():.4f}")


@click.command()
@click.argument("store")
@click.option(
    "--genes",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Annotation (BED6 or GTF) giving the strands; default the shipped one.",
)
@session.command_options
@click.pass_context
def upgrade(ctx, store, genes):
    """Convert STORE from format v1 (bins in genome order) to the current format, in place:
    each gene gets its strand and the bins of minus-strand genes are reversed (5'→3')."""
    from chromestore.store.upgrade import upgrade_store

    click.echo(str(upgrade_store(store, genes, session.storage_options(ctx))))


COMMANDS = (info, query, labels, upgrade)
