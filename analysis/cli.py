"""What ``chromestore analyze`` and ``chromestore explain`` do, callable from Python too."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

from analysis import metrics as M


def analyze_command(
    store: str,
    runs: Sequence[str],
    *,
    fmt: str = "table",
    report_dir: str | None = None,
    interpret: bool = True,
    explain_genes: Sequence[str] = (),
    explain_cells: str | None = None,
    client=None,
    storage_options: dict | None = None,
    interpret_options: dict | None = None,
) -> str:
    """Analyse ``runs`` of ``store``; write the report if asked; return the text to print."""
    from analysis.analyze import analyze_run

    run, out = analyze_run(store, runs, client=client, interpret=interpret,
                           interpret_options=interpret_options, storage_options=storage_options)
    lines = []
    if fmt == "json":
        lines.append(json.dumps(M.records(out), indent=1))
    else:
        lines.append(f"runs/{runs[0]}: {out.sizes['model']} models × {out.sizes['cell']} "
                     f"epigenomes × {out.sizes['repeat']} repeat(s), test split")
        lines.append(M.format_table(out))
        lines.append(f"reductions written to runs/{runs[0]}/metrics")
    if report_dir:
        from analysis.explain import explain_gene
        from analysis.report import write_report

        cells = (explain_cells.split(",") if explain_cells
                 else [str(c) for c in run["cell"].values[:3]])
        explained = [explain_gene(store, run, g, cells, names=runs,
                                  storage_options=storage_options) for g in explain_genes]
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
    from analysis.analyze import open_runs
    from analysis.explain import explain_gene, format_explanation

    run = open_runs(store, runs, storage_options)
    exp = explain_gene(store, run, gene, cells, names=runs, storage_options=storage_options)
    if plot:
        from analysis.report import fig_explained

        uri = fig_explained(exp)
        Path(plot).write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    if fmt == "json":
        return json.dumps(exp)
    return format_explanation(exp) + (f"\nfigure: {plot}" if plot else "")
