"""``chromestore analyze`` and ``chromestore explain``: metrics, report and explanations.

:func:`analyze_command` and :func:`explain_command` return the text the commands print,
so Python callers get the same output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from chromestore.app import session


def analyze_command(
    store: str,
    runs: Sequence[str],
    *,
    fmt: str = "table",
    report_dir: str | None = None,
    interpret: bool = True,
    explain_genes: Sequence[str] = (),
    explain_cells: Sequence[str] | None = None,
    client=None,
    storage_options: dict | None = None,
    interpret_options: dict | None = None,
    progress: bool = False,
) -> str:
    """Analyse ``runs`` of ``store``; write the report if asked; return the text to print.

    ``progress`` shows the stages (scoring, explaining, report) on a bar on stderr;
    ``explain_cells`` are the epigenomes of the explained genes (default: the run's first
    three).
    """
    from chromestore.analysis import metrics as M
    from chromestore.analysis.analyze import analyze_run
    from chromestore.stages import Stages

    total = 1 + (len(explain_genes) + 1 if report_dir else 0)
    with Stages("bar" if progress else None, total) as stages:
        with stages("scoring" + (" and interpreting" if interpret else "")):
            run, out = analyze_run(
                store,
                runs,
                client=client,
                interpret=interpret,
                interpret_options=interpret_options,
                storage_options=storage_options,
            )
        lines = []
        if fmt == "json":
            lines.append(json.dumps(M.records(out), indent=1))
        else:
            lines.append(
                f"runs/{runs[0]}: {out.sizes['model']} models × {out.sizes['cell']} "
                f"epigenomes × {out.sizes['repeat']} repeat(s), test split"
            )
            lines.append(M.format_table(out))
            lines.append(f"reductions written to {M.metrics_group(runs[0])}")
        if report_dir:
            from chromestore.analysis.explain import explain_gene
            from chromestore.analysis.report import write_report

            cells = list(explain_cells or [str(c) for c in run["cell"].values[:3]])
            explained = []
            for g in explain_genes:
                with stages(f"explaining {g}"):
                    explained.append(
                        explain_gene(
                            store, run, g, cells, names=runs, storage_options=storage_options
                        )
                    )
            with stages("writing the report"):
                path = write_report(run, out, report_dir, name=", ".join(runs), explained=explained)
            if fmt == "json":
                return lines[0]
            lines.append(f"report: {path}")
    return "\n".join(lines)


def explain_command(
    store: str,
    runs: Sequence[str],
    gene: str,
    cells: Sequence[str],
    *,
    fmt: str = "text",
    plot: str | None = None,
    storage_options: dict | None = None,
) -> str:
    """Explain ``gene`` in ``cells``; return the text (or JSON) to print."""
    from chromestore.analysis.analyze import open_runs
    from chromestore.analysis.explain import explain_gene, format_explanation

    run = open_runs(store, runs, storage_options)
    exp = explain_gene(store, run, gene, cells, names=runs, storage_options=storage_options)
    if plot:
        from chromestore.analysis.figures import explained_png

        Path(plot).write_bytes(explained_png(exp))
    if fmt == "json":
        return json.dumps(exp)
    return format_explanation(exp) + (f"\nfigure: {plot}" if plot else "")


@click.command()
@click.argument("store")
@click.option(
    "--run",
    "runs",
    required=True,
    multiple=True,
    help="Run name (runs/NAME); repeat to analyse runs of several models together.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: summary rows per model; json: one record per model × cell.",
)
@click.option(
    "--report",
    "report_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Write a self-contained DIR/index.html with figures and CSV/JSON.",
)
@click.option(
    "--interpret/--no-interpret",
    default=True,
    show_default=True,
    help="Class-optimisation, saliency and IG maps of the stored CNNs.",
)
@click.option(
    "--explain-gene",
    "explain_genes",
    multiple=True,
    help="Gene(s) to explain in the report (key, Ensembl id or symbol).",
)
@click.option(
    "--explain-cells",
    default=None,
    help="Comma-separated epigenomes for --explain-gene (default: the first three of the run).",
)
@session.command_options
@click.pass_context
def analyze(ctx, store, runs, fmt, report_dir, interpret, explain_genes, explain_cells):
    """Metrics of a run (written to runs/NAME/metrics), printed, and optionally a report."""
    with session.cluster(ctx, heavy=False) as client:
        text = analyze_command(
            store,
            list(runs),
            fmt=fmt,
            report_dir=report_dir,
            interpret=interpret,
            explain_genes=list(explain_genes),
            explain_cells=session.parse_cells(explain_cells, option="--explain-cells"),
            client=client,
            storage_options=session.storage_options(ctx),
            progress=session.progress(ctx),
        )
    click.echo(text)


@click.command()
@click.argument("store")
@click.option("--run", "runs", required=True, multiple=True, help="Run name (runs/NAME).")
@click.option("--gene", required=True, help="Gene key (ENSGID_SYMBOL), Ensembl id or symbol.")
@click.option("--cells", required=True, help="Comma-separated epigenomes, e.g. E003,E116,E123.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--plot", default=None, type=click.Path(dir_okay=False), help="Also save the figure (PNG) here."
)
@session.command_options
@click.pass_context
def explain(ctx, store, runs, gene, cells, fmt, plot):
    """ShallowChrome's regulative pattern and DeepChrome's integrated gradients for a gene."""
    click.echo(
        explain_command(
            store,
            list(runs),
            gene,
            session.parse_cells(cells),
            fmt=fmt,
            plot=plot,
            storage_options=session.storage_options(ctx),
        )
    )


COMMANDS = (analyze, explain)
