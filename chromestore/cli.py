"""The ``chromestore`` command line: a thin layer over the library."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click
import numpy as np

from chromestore import store as S
from chromestore import variables as V
from chromestore.errors import InputError


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(1)


class _Group(click.Group):
    """Turns expected errors into one-line messages and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (InputError, V.SchemaError, S.StoreError, KeyError, ValueError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            _fail(str(msg))
        except PermissionError as e:
            if e.filename:  # a local file
                _fail(str(e))
            _fail(_access_denied(ctx, e))
        except Exception as e:
            if type(e).__module__.split(".")[0] in ("botocore", "aiobotocore"):
                _fail(_access_denied(ctx, e))
            raise


def _access_denied(ctx: click.Context, e: Exception) -> str:
    """One line for an object store that refused us (wrong or missing credentials)."""
    so = (ctx.obj or {}).get("storage_options") or {}
    where = f" at {so['endpoint_url']}" if "endpoint_url" in so else ""
    return (
        f"the object store{where} refused access ({type(e).__name__}: {e}); check the "
        "credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or \"key\"/"
        "\"secret\" in --storage-options, and that they may use this bucket"
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--scheduler",
    envvar="CHROMESTORE_SCHEDULER",
    default=None,
    help="Dask scheduler address (tcp://HOST:8786). Default: an embedded LocalCluster "
    "on 127.0.0.1 whose dashboard address is printed.",
)
@click.option("--workers", type=int, default=None, help="Workers of the embedded cluster.")
@click.option(
    "--storage-options",
    default=None,
    help='JSON fsspec options for remote stores, e.g. \'{"endpoint_url": "http://..."}\'.',
)
@click.version_option(package_name="chromestore")
@click.pass_context
def main(ctx: click.Context, scheduler, workers, storage_options) -> None:
    """chromestore: histone marks around TSSs → gene expression, at epigenome scale."""
    ctx.ensure_object(dict)
    ctx.obj["scheduler"] = scheduler
    ctx.obj["workers"] = workers
    ctx.obj["storage_options"] = json.loads(storage_options) if storage_options else None


def _so(ctx: click.Context) -> dict | None:
    return ctx.obj.get("storage_options")


@contextlib.contextmanager
def _scheduler(ctx: click.Context):
    """Run the block's Dask computes on ``--scheduler``/``$CHROMESTORE_SCHEDULER`` when given.

    Without one, light commands keep Dask's in-process threads (no cluster start-up).
    """
    from chromestore.cluster import ENV_SCHEDULER, connect

    address = ctx.obj.get("scheduler") or os.environ.get(ENV_SCHEDULER)
    if not address:
        yield None
        return
    with connect(address) as client:
        yield client


def _human(n: int) -> str:
    if n < 0:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def store_info(path: str, storage_options: dict | None = None) -> dict:
    """The facts ``chromestore info`` prints, as a dict."""
    ds = S.open_store(path, storage_options)
    table = S.completion_table(ds)
    chunks = {
        name: dict(zip(ds[name].dims, ds[name].encoding.get("chunks", ()), strict=False))
        for name in (V.signal.name, V.expression.name, V.peak_max.name)
    }
    expr = ds.attrs.get("expression", {})
    return {
        "path": path,
        "format": f"{ds.attrs['format']} v{ds.attrs['format_version']}",
        "genome": ds.attrs.get("genome"),
        "window": ds.attrs.get("window"),
        "bin_size": ds.attrs.get("bin_size"),
        "dims": {k: int(v) for k, v in ds.sizes.items()},
        "cells": [str(c) for c in ds[V.CELL].values],
        "marks": [str(m) for m in ds[V.MARK].values],
        "chunks": chunks,
        "size_bytes": S.size_on_disk(path, storage_options),
        "signal_completed": {c: [m for m in table.columns if table.loc[c, m]] for c in table.index},
        "expression_cells": sorted(expr),
    }


@main.command()
@click.argument("store")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def info(ctx, store, fmt):
    """Dims, cells, marks, chunking, size on disk and per (cell, mark) completion."""
    facts = store_info(store, _so(ctx))
    if fmt == "json":
        click.echo(json.dumps(facts, indent=2))
        return
    d = facts["dims"]
    click.echo(f"{store}: {facts['format']}, {facts['genome']}, TSS ± {facts['window']} bp "
               f"in {d['bin']} bins of {facts['bin_size']} bp")
    click.echo("dims: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    click.echo(f"marks: {', '.join(facts['marks'])}")
    for name, ch in facts["chunks"].items():
        click.echo(f"chunks {name}: " + " × ".join(f"{k} {v}" for k, v in ch.items()))
    click.echo(f"size on disk: {_human(facts['size_bytes'])}")
    n_expr = len(facts["expression_cells"])
    click.echo(f"cells: {len(facts['cells'])} ({n_expr} with expression)")
    if facts["cells"]:
        marks = facts["marks"]
        width = max(len(m) for m in marks)
        click.echo("signal completion (cell × mark):")
        click.echo("  cell  " + " ".join(m.rjust(width) for m in marks))
        for c in facts["cells"]:
            done = set(facts["signal_completed"][c])
            click.echo(
                f"  {c:<5} " + " ".join(("done" if m in done else "-").rjust(width) for m in marks)
            )


@main.command()
@click.argument("store")
@click.option("--gene", required=True, help="Gene key (ENSGID_SYMBOL), Ensembl id or symbol.")
@click.option("--cell", default=None, help="Epigenome (default: all).")
@click.option("--mark", default=None, help="Mark (default: all).")
@click.pass_context
def query(ctx, store, gene, cell, mark):
    """Print the mark × bin signal matrix of a gene."""
    from chromestore.query import find_gene, gene_matrix

    ds = S.open_store(store, _so(ctx))
    key = find_gene(ds, gene)
    mat = gene_matrix(ds, key, cell)
    if mark is not None:
        mat = mat.sel({V.MARK: [mark]})
    g = ds.sel({V.GENE: key})
    click.echo(
        f"{key}  {str(g.gene_chrom.values)}:{int(g.gene_tss.values)} "
        f"({str(g.gene_strand.values)})  bins 5'→3' from {int(ds.bin_offset[0])} bp"
    )
    np.set_printoptions(linewidth=200, threshold=10**6)
    for c in mat[V.CELL].values:
        expr = ds.expression.sel({V.CELL: c, V.GENE: key}).values
        click.echo(f"[{c}] expression {float(expr):g} RPKM")
        for m in mat[V.MARK].values:
            row = mat.sel({V.CELL: c, V.MARK: m}).values
            cells = " ".join("." if np.isnan(x) else f"{x:g}" for x in row)
            click.echo(f"  {str(m):<9} {cells}")


@main.command()
@click.argument("store")
@click.option("--genes", type=click.Path(exists=False), help="Gene annotation (BED windows or GTF).")
@click.option("--expression", "expression", default=None, help="RPKM matrix (REMC layout).")
@click.option("--cells", default=None, help="Comma-separated epigenomes to take (default: all).")
@click.option("--window", type=int, default=5000, show_default=True, help="bp each side of TSS.")
@click.option("--bin-size", type=int, default=100, show_default=True)
@click.option("--genome", default="hg19", show_default=True)
@click.option("--gene-chunk", type=int, default=S.DEFAULT_GENE_CHUNK, show_default=True)
@click.option("--samples", default=None, type=click.Path(),
              help="Samplesheet CSV: cell,mark,format,path (paths relative to it).")
@click.option("--force", is_flag=True, help="Redo (cell, mark) pairs already completed.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def ingest(ctx, store, genes, expression, cells, window, bin_size, genome, gene_chunk,
           samples, force, progress):
    """Create STORE from a gene annotation if absent, then add signal files from a
    samplesheet (in parallel on Dask; --workers 0: in this process) and expression.
    Re-running skips what is completed; new epigenomes are appended."""
    from chromestore.ingest import run_ingest

    report = run_ingest(
        store, genes, samples, expression, cells=cells.split(",") if cells else None,
        window=window, bin_size=bin_size, genome=genome, gene_chunk=gene_chunk, force=force,
        scheduler=ctx.obj.get("scheduler"), workers=ctx.obj.get("workers"),
        progress=progress, storage_options=_so(ctx),
    )
    click.echo(str(report))


@main.command()
@click.argument("store")
@click.option("--rule", default="median", show_default=True,
              help="median (> median, DeepChrome), median-ge (>=, ShallowChrome) or an RPKM value.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def labels(ctx, store, rule, fmt):
    """Per-epigenome label summary: genes, positives, positive fraction, threshold."""
    from chromestore.labels import compute_labels, label_summary

    ds = S.open_store(store, _so(ctx))
    rule_value: str | float = rule if rule in ("median", "median-ge") else float(rule)
    with _scheduler(ctx):
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
    click.echo(
        f"  {len(df)} epigenomes, mean positive fraction {df.positive_fraction.mean():.4f}"
    )


@main.command()
@click.argument("store", required=False)
@click.option("--cells", default="all", show_default=True,
              help="all, the first N epigenomes, or a comma-separated list (E003,E004).")
@click.option("--genes", default="all", show_default=True,
              help="all (19,802 real genes) or the first N.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gene-chunk", type=int, default=S.DEFAULT_GENE_CHUNK, show_default=True)
@click.option("--calibration", is_flag=True,
              help="Print real vs simulated E003 statistics on the real sample's 600 genes.")
@click.option("--emit", "emit_dir", default=None, type=click.Path(file_okay=False),
              help="Also write the same draw as real files (and a samplesheet) in this folder.")
@click.option("--format", "emit_format", default="tagalign", show_default=True,
              type=click.Choice(["tagalign", "bigwig", "narrowpeak", "deepchrome-csv"]),
              help="File format for --emit.")
@click.pass_context
def simulate(ctx, store, cells, genes, seed, gene_chunk, calibration, emit_dir, emit_format):
    """Simulate STORE: real genes and RPKM, signal drawn from a model fitted on real E003."""
    from chromestore.cluster import connect
    from chromestore.simulate import calibration_report, format_report, simulate

    if calibration:
        click.echo(format_report(calibration_report(seed)))
    if store is None and emit_dir is None:
        if not calibration:
            _fail("give a STORE to write, --emit DIR, or --calibration")
        return
    cells_arg = int(cells) if cells.isdigit() else cells
    genes_arg = int(genes) if genes.isdigit() else genes
    in_process = ctx.obj.get("workers") == 0 and not ctx.obj.get("scheduler")
    cluster = contextlib.nullcontext() if in_process else connect(
        ctx.obj.get("scheduler"), ctx.obj.get("workers")
    )
    with cluster:  # --workers 0: Dask threads in this process
        ds = simulate(
            store, cells_arg, genes_arg, seed=seed, gene_chunk=gene_chunk,
            storage_options=_so(ctx), progress=store is not None,
        )
        if store is not None:
            click.echo(
                f"{store}: simulated {ds.sizes[V.CELL]} epigenomes × {ds.sizes[V.GENE]} "
                f"genes × {ds.sizes[V.MARK]} marks × {ds.sizes[V.BIN]} bins (seed {seed}); "
                "expression is the real RPKM"
            )
        if emit_dir is not None:
            from chromestore.simulate_emit import emit

            sheet = emit(ds, emit_dir, emit_format, seed=seed)
            click.echo(f"{emit_format} files and samplesheet: {sheet}")


def _maybe_client(ctx: click.Context):
    """A Dask client when --scheduler/--workers was given, else a null context (local Dask)."""
    from contextlib import nullcontext

    if ctx.obj.get("scheduler") or ctx.obj.get("workers"):
        from chromestore.cluster import connect

        return connect(ctx.obj.get("scheduler"), ctx.obj.get("workers"))
    return nullcontext(None)


@main.command()
@click.argument("store")
@click.option("--run", "runs", required=True, multiple=True,
              help="Run name (runs/NAME); repeat to analyse runs of several models together.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="table: summary rows per model; json: one record per "
              "model × cell.")
@click.option("--report", "report_dir", default=None, type=click.Path(file_okay=False),
              help="Write a self-contained DIR/index.html with figures and CSV/JSON.")
@click.option("--interpret/--no-interpret", default=True, show_default=True,
              help="Class-optimisation, saliency and IG maps of the stored CNNs.")
@click.option("--explain-gene", "explain_genes", multiple=True,
              help="Gene(s) to explain in the report (key, Ensembl id or symbol).")
@click.option("--explain-cells", default=None, help="Comma-separated epigenomes for "
              "--explain-gene (default: the first three of the run).")
@click.pass_context
def analyze(ctx, store, runs, fmt, report_dir, interpret, explain_genes, explain_cells):
    """Metrics of a run (written to runs/NAME/metrics), printed, and optionally a report."""
    from analysis.cli import analyze_command

    with _maybe_client(ctx) as client:
        text = analyze_command(store, list(runs), fmt=fmt, report_dir=report_dir,
                               interpret=interpret, explain_genes=list(explain_genes),
                               explain_cells=explain_cells, client=client,
                               storage_options=_so(ctx))
    click.echo(text)


@main.command()
@click.argument("store")
@click.option("--run", "runs", required=True, multiple=True, help="Run name (runs/NAME).")
@click.option("--gene", required=True, help="Gene key (ENSGID_SYMBOL), Ensembl id or symbol.")
@click.option("--cells", required=True, help="Comma-separated epigenomes, e.g. E003,E116,E123.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--plot", default=None, type=click.Path(dir_okay=False),
              help="Also save the figure (PNG) here.")
@click.pass_context
def explain(ctx, store, runs, gene, cells, fmt, plot):
    """ShallowChrome's regulative pattern and DeepChrome's integrated gradients for a gene."""
    from analysis.cli import explain_command

    click.echo(explain_command(store, list(runs), gene, cells.split(","), fmt=fmt, plot=plot,
                               storage_options=_so(ctx)))


@main.command()
@click.argument("store")
@click.option("--model", default="deepchrome", show_default=True, help="Registered model.")
@click.option("--cells", default="all", show_default=True, help="all or E003,E123,…")
@click.option("--split", default="deepchrome", show_default=True,
              help="deepchrome, random[:K] or chromosome.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=100, show_default=True)
@click.option("--patience", type=int, default=10, show_default=True,
              help="Stop a model after this many epochs without a better validation AUC.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--transform", type=click.Choice(["raw", "log1p"]), default="raw",
              show_default=True, help="Input transform (raw counts as in the paper).")
@click.option("--mode", type=click.Choice(["auto", "stacked", "distributed"]), default="auto",
              show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--group-size", type=int, default=0, show_default=True,
              help="Epigenomes per Dask task (distributed mode); 0: one stacked group per worker.")
@click.option("--run", "run", required=True, help="Run name: results go to runs/NAME.")
@click.option("--scheduler", "train_scheduler", default=None,
              help="Dask scheduler for distributed mode (overrides the global option).")
@click.option("--cell-stats", is_flag=True,
              help="deepchrome-regression: append each epigenome's per-mark, per-bin mean and "
              "std over genes as channels (5 → 15).")
@click.option("--fasta", default=None, type=click.Path(dir_okay=False),
              help="deepchrome-regression: genome FASTA; adds 3-mer counts per bin (64 channels).")
@click.option("--train-cells", default=None,
              help="deepchrome-regression: epigenomes to train one model on (E003,E004,…).")
@click.option("--test-cells", default=None,
              help="deepchrome-regression: unseen epigenomes to evaluate it on.")
@click.pass_context
def train(ctx, store, model, cells, split, seed, epochs, patience, batch_size, lr, transform,
          mode, device, group_size, run, train_scheduler, cell_stats=False, fasta=None,
          train_cells=None, test_cells=None):
    """Fit MODEL per epigenome (stacked on one device or as Dask tasks); write runs/NAME."""
    from training import registry

    if registry.get(model).kind == "arrays":  # peer models (issue 6): training.peers
        from click.core import ParameterSource

        from training.peers.execute import train_command

        given = {k: v for k, v in (("epochs", epochs), ("patience", patience),
                                   ("batch_size", batch_size), ("lr", lr))
                 if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}
        regression = {"cell_stats": cell_stats, "fasta": fasta,
                      "train_cells": train_cells.split(",") if train_cells else None,
                      "test_cells": test_cells.split(",") if test_cells else None,
                      # deepchrome-regression: log1p unless --transform is given
                      "transform": transform if ctx.get_parameter_source("transform")
                      is not ParameterSource.DEFAULT else None}
        click.echo(train_command(store, run, model, cells, split, seed, given,
                                 train_scheduler or ctx.obj.get("scheduler"),
                                 ctx.obj.get("workers"), _so(ctx), regression))
        return
    from training.trainer import TrainConfig
    from training.trainer import train as fit

    config = TrainConfig(model=model, split=split, seed=seed, epochs=epochs,
                         patience=patience or None, batch_size=batch_size, lr=lr,
                         transform=transform)
    ds = fit(store, run, cells, config, mode=mode, device=device,
             scheduler=train_scheduler or ctx.obj.get("scheduler"),
             workers=ctx.obj.get("workers"), storage_options=_so(ctx), group_size=group_size)
    best = ds.history_valid_auc.max("epoch").mean("repeat").sel(model=model).values
    click.echo(f"run {run}: {ds.sizes['cell']} epigenome(s), mode {ds.attrs['mode']} on "
               f"{ds.attrs['device']}, {ds.attrs['wall_seconds'][model]:.1f} s; best validation "
               f"AUC mean {np.nanmean(best):.4f} (min {np.nanmin(best):.4f}, "
               f"max {np.nanmax(best):.4f}); open with chromestore.open_run({store!r}, {run!r})")


@main.command("call-peaks")
@click.argument("samples", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--broad", is_flag=True, help="Broad peaks (broadPeak) instead of narrowPeak.")
@click.option("--control", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Control reads for cells without an input/control row in SAMPLES.")
@click.option("--gsize", default="hs", show_default=True, help="MACS3 effective genome size.")
@click.option("--qvalue", type=float, default=0.05, show_default=True)
@click.option("--extsize", type=int, default=200, show_default=True,
              help="Fragment length when MACS3 builds no shifting model.")
@click.option("--model/--nomodel", "build_model", default=False, show_default=True,
              help="Let MACS3 build its shifting model.")
def call_peaks_cmd(samples, out, broad, control, gsize, qvalue, extsize, build_model):
    """Call peaks with MACS3 on the tagAlign/BAM reads of SAMPLES (cell,mark,format,path);
    write OUT/samplesheet.csv for `chromestore ingest --samples` (needs the 'peaks' extra)."""
    from training.peers.callpeaks import MissingExtra, call_peaks

    try:
        sheet = call_peaks(samples, out, broad=broad, control=control, gsize=gsize,
                           qvalue=qvalue, extsize=extsize, build_model=build_model)
    except MissingExtra as e:
        _fail(str(e))
    click.echo(f"peaks and samplesheet: {sheet}")


@main.command("run")
@click.argument("store", default="demo-store.zarr")
@click.option("--report", "report_dir", default="demo-report", show_default=True,
              type=click.Path(file_okay=False), help="Report directory (index.html).")
@click.option("--name", default="demo", show_default=True, help="Run name (runs/NAME).")
@click.option("--cells", default="all", show_default=True,
              help="Epigenomes to simulate: all (56), N, or a comma-separated list.")
@click.option("--genes", type=int, default=None,
              help="Genes to simulate (a seeded sample; default 1500, --full: all 19,802).")
@click.option("--epochs", type=int, default=None, help="Max epochs (default 12, --full: 100).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--full", is_flag=True, help="The paper's protocol: all genes, DeepChrome's "
              "file-order split, 100 epochs with patience 10, full SVM/RF grids.")
@click.option("--e003/--no-e003", default=True, show_default=True,
              help="Also train and report on the real E003 sample.")
@click.pass_context
def run_cmd(ctx, store, report_dir, name, cells, genes, epochs, seed, full, e003):
    """The whole job: simulate, label, split, train DeepChrome and peers, analyse, report."""
    from chromestore.pipeline import RunConfig, run_all

    kw = dict(store=store, report=report_dir, name=name, cells=cells, seed=seed, e003=e003)
    if genes is not None:
        kw["genes"] = genes
    if epochs is not None:
        kw["epochs"] = epochs
    cfg = RunConfig.paper(**kw) if full else RunConfig(**kw)
    click.echo(run_all(cfg, scheduler=ctx.obj.get("scheduler"), workers=ctx.obj.get("workers")))


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
