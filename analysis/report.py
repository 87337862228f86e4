"""A self-contained HTML report of a run: figures (embedded PNG), tables and their numbers.

:func:`write_report` takes a run (``chromestore.open_run``) and its reductions
(:func:`chromestore.analysis.analyze.analyze_run`, i.e. ``runs/NAME/metrics``) and writes
``DIR/index.html`` with every image embedded as a base64 PNG (no network needed),
plus ``DIR/data/*.csv|json`` with every number a figure or table shows.
Figures are drawn by :mod:`chromestore.analysis.figures`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import variables as V
from chromestore.analysis import figures as F
from chromestore.analysis import metrics as M
from chromestore.training import registry

#: What the CNN interpretation (:mod:`chromestore.analysis.cnn`) writes, in report order.
CNN_VARS = (
    "classopt_active_bins",
    "classopt_flagged",
    "classopt_pair_count",
    "classopt_map",
    "saliency",
    "integrated_gradients",
    "feature_map_bin",
)


def _seconds(value) -> float:
    """Wall seconds: a number, or a dict of numbers per model (summed)."""
    if isinstance(value, dict):
        return float(sum(_seconds(v) for v in value.values()))
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def cell_names(path: str | Path = M.PUBLISHED) -> dict[str, str]:
    table = pd.read_csv(path, sep="\t", dtype=str)
    return dict(zip(table["epigenome"], table["name"].str.replace("_", " "), strict=True))


# --- figures ------------------------------------------------------------------------


def _table_html(df: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    return df.to_html(
        classes="num",
        border=0,
        na_rep="–",
        float_format=lambda x: floatfmt.format(x),
    )


def _long(metrics: xr.Dataset, var: str) -> pd.DataFrame:
    return metrics[var].to_dataframe().reset_index()[list(metrics[var].dims) + [var]]


def write_numbers(
    run: xr.Dataset, metrics: xr.Dataset, data_dir: Path, explained: Sequence[dict] = ()
) -> list[str]:
    """CSV/JSON of every number in the report; returns the file names written."""
    data_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(name: str, df: pd.DataFrame) -> None:
        df.to_csv(data_dir / name, index=False)
        written.append(name)

    recs = M.records(metrics)
    (data_dir / "metrics.json").write_text(json.dumps(recs, indent=1))
    written.append("metrics.json")
    save("metrics_per_cell.csv", pd.DataFrame(recs))
    save(
        "metrics_per_repeat.csv",
        metrics[[v for v in metrics.data_vars if v.startswith("stat_") and v != "stat_summary"]]
        .to_dataframe()
        .reset_index(),
    )
    save("summary.csv", M.summary_table(metrics).reset_index())
    added = [m.name for plot in registry.PLOTS for m in F.model_metrics(metrics, plot)]
    for var in CNN_VARS + tuple(added):
        if var in metrics:
            save(f"{var}.csv", _long(metrics, var))
    if explained:
        (data_dir / "explained_genes.json").write_text(json.dumps(list(explained), indent=1))
        written.append("explained_genes.json")
    return written


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
max-width:1250px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em} h2{border-bottom:2px solid #0072B2;padding-bottom:4px;
margin-top:2em} .meta{color:#555} table.num{border-collapse:collapse;font-size:.9em}
table.num td,table.num th{padding:3px 9px;text-align:right;border-bottom:1px solid #ddd}
table.num th{background:#f2f6fa} img{max-width:100%;height:auto;display:block;margin:10px 0}
.note{color:#444;font-size:.93em;max-width:950px} .key{display:flex;gap:20px;flex-wrap:wrap}
.key div{background:#f6f8fa;padding:10px 16px;border-radius:6px}
.key b{display:block;font-size:1.5em;color:#0072B2}
"""


def orientation_note(attrs) -> str:
    """One sentence: which way the bins of the store run."""
    if attrs.get("orientation") != "5to3":
        return (
            f"Bin orientation of the store: {attrs.get('orientation', 'unknown')!s} "
            "(not 5'→3': upstream and downstream are not told apart)."
        )
    unknown = int(attrs.get("genes_strand_unknown", 0))
    return (
        "Bins run 5'→3' along each gene (store orientation 5to3): bin 0 is 5 kb upstream "
        "of the TSS on the gene's strand, so positive positions lie in the gene body"
        + (f"; {unknown} gene(s) of unknown strand keep genome order." if unknown else ".")
    )


def write_report(
    run: xr.Dataset,
    metrics: xr.Dataset,
    out_dir: str | Path,
    *,
    name: str = "",
    explained: Sequence[dict] = (),
    cross_within: pd.DataFrame | None = None,
    held_out: dict | None = None,
) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/data/``; return the HTML path.

    ``cross_within`` (:func:`chromestore.analysis.metrics.cross_vs_within`) adds the
    cross- against within-epigenome panel and table; ``held_out`` (``text`` and a
    ``table`` of scores) a prediction for an epigenome held out of training.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = write_numbers(run, metrics, out / "data", explained)
    models = [str(m) for m in metrics[V.MODEL].values]
    n_cells = metrics.sizes[V.CELL]
    names = cell_names()
    parts: list[str] = []

    def section(title: str, note: str = "") -> None:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if note:
            parts.append(f'<p class="note">{note}</p>')

    def image(src: str, alt: str) -> None:
        parts.append(f'<img src="{src}" alt="{html.escape(alt)}">')

    a = run.attrs
    parts.append(f"<h1>chromestore run {html.escape(name or str(a.get('name', '')))}</h1>")
    parts.append(
        '<p class="meta">'
        + " · ".join(
            html.escape(f"{k}: {a[k]}")
            for k in ("task", "split_scheme", "label_rule", "seed", "mode", "device")
            if k in a
        )
        + (
            f" · training wall time {_seconds(a['wall_seconds']):.0f} s"
            if "wall_seconds" in a
            else ""
        )
        + "</p>"
    )
    auc = metrics["stat_auroc"].mean(V.REPEAT) if "stat_auroc" in metrics else None
    if auc is not None:
        key = "".join(
            f"<div>{html.escape(m)}<b>{float(auc.sel({V.MODEL: m}).mean()):.3f}</b>"
            f"mean AUROC"
            + (
                f", beats published in {int(metrics.n_beats_published.sel({V.MODEL: m}))}"
                f"/{int(np.isfinite(metrics.published_auc).sum())}"
                if "n_beats_published" in metrics
                else ""
            )
            + "</div>"
            for m in models
        )
        parts.append(f'<div class="key">{key}</div>')
    parts.append(
        f'<p class="note">{n_cells} epigenomes × {len(models)} models × '
        f"{metrics.sizes[V.REPEAT]} split repeat(s). Each model predicts whether a gene's "
        "expression is above its epigenome's median from the five core histone marks in "
        "100 bins of 100 bp around the TSS; scores are on held-out test genes. "
        "Every number shown is in <code>data/</code>.</p>"
    )
    parts.append(f'<p class="note">{html.escape(orientation_note(metrics.attrs))}</p>')

    has_published = "published_auc" in metrics
    simulated_note = (
        html.escape(
            metrics.attrs.get("published_note")
            or (
                "The signal of this run is simulated (chromestore.simulate), so its "
                "accuracy is not compared with DeepChrome's published accuracy."
            )
        )
        + " "
    )
    section(
        "Summary over epigenomes",
        "Mean, median, min and max over epigenomes of each statistic (each epigenome: mean "
        "over repeats), as in ShallowChrome's Table 2. "
        + (
            "<i>beats published</i>: epigenomes where the model's AUROC exceeds "
            "DeepChrome's published AUC. "
            if has_published
            else simulated_note
        )
        + "(<code>data/summary.csv</code>)",
    )
    parts.append(_table_html(M.summary_table(metrics)))

    if auc is not None:
        section(
            "Test AUROC per epigenome",
            "Bars: each model's test AUROC"
            + (
                "; black ticks: DeepChrome's published test AUC (Singh et al. 2016, "
                "supplementary table 1). Lower panel: difference from the published value. "
                if has_published
                else ". " + simulated_note
            )
            + "(<code>data/metrics_per_cell.csv</code>)",
        )
        image(F.fig_auc_bars(metrics), "AUROC per epigenome")
        image(F.fig_auc_distribution(metrics), "AUROC distribution per model")
        per_cell = auc.to_pandas().T
        per_cell.insert(0, "name", [names.get(str(c), "") for c in per_cell.index])
        if "published_auc" in metrics:
            per_cell["published DeepChrome"] = metrics.published_auc.values
        parts.append(
            "<details><summary>Table: AUROC per epigenome</summary>"
            + _table_html(per_cell, "{:.3f}")
            + "</details>"
        )

    if "classopt_map" in metrics:
        section(
            "What DeepChrome learned: class-optimisation maps",
            "For each epigenome's CNN, an input optimised from random noise to be classified "
            "as high (or low) expression with an L2 penalty (DeepChrome §3.3), negatives "
            "clamped to 0 and scaled to max 1. Bins above 0.25 are active; marks with more "
            "active bins than the mean over marks are flagged. "
            "(<code>data/classopt_map.csv</code>, <code>classopt_active_bins.csv</code>)",
        )
        image(F.fig_class_maps(metrics), "class optimisation heat maps")
        image(F.fig_active_bins(metrics), "active bins per mark")
        counts = metrics["classopt_pair_count"]
        from chromestore.analysis.interpret import top_pairs

        tops = top_pairs(counts, 2)
        summary = "; ".join(
            f"{k}: " + ", ".join(f"{a} + {b} in {c}/{n_cells}" for a, b, c in v)
            for k, v in tops.items()
        )
        section(
            "Combinations of marks",
            "Number of epigenomes in which both marks are flagged for a class (diagonal: "
            "the mark alone). DeepChrome reported H3K4me3 + H3K36me3 for high expression in "
            "47/56 epigenomes and H3K9me3 + H3K27me3 for low in 50/56. Here, most frequent: "
            f"{html.escape(summary)}. (<code>data/classopt_pair_count.csv</code>)",
        )
        image(F.fig_pair_counts(metrics), "pair counts")

    profiles = F.model_metrics(metrics, "profile")
    if profiles or "feature_map_bin" in metrics:
        notes = [
            f"<i>{html.escape(m.title or m.name)}</i>: {html.escape(m.doc)} "
            f"(<code>data/{m.name}.csv</code>)"
            for m in profiles
        ]
        if "feature_map_bin" in metrics:
            notes.append(
                "<i>first-layer feature map</i>: the CNN's first-layer activation at "
                "each position, averaged over filters and test genes (DeepChrome "
                "Fig. 4b) (<code>data/feature_map_bin.csv</code>)"
            )
        section("Which positions matter", " ".join(notes))
        image(F.fig_bin_influence(metrics), "bin influence")

    if "integrated_gradients" in metrics:
        section(
            "Attributions: integrated gradients",
            "Integrated gradients of the CNN's logit margin (high − low) from a zero-signal "
            "baseline, averaged over test genes of each class and over epigenomes. Orange "
            "pushes towards high expression, purple towards low. "
            "(<code>data/integrated_gradients.csv</code>)",
        )
        image(F.fig_attribution(metrics, "integrated_gradients", "attribution", True), "IG maps")
    if "saliency" in metrics:
        section(
            "Attributions: gradient saliency",
            "|∂ margin / ∂ input| averaged over test genes of each class and over "
            "epigenomes. (<code>data/saliency.csv</code>)",
        )
        image(F.fig_attribution(metrics, "saliency", "|gradient|", False), "saliency maps")
    for m in F.model_metrics(metrics, "class_map"):
        section(m.title or m.name, f"{html.escape(m.doc)} (<code>data/{m.name}.csv</code>)")
        image(F.fig_attribution(metrics, m.name, m.label or m.name, False), m.title or m.name)

    if explained:
        section(
            "Explained genes",
            "ShallowChrome's regulative pattern (coefficient × feature per mark; bias; "
            "* Wald p < 0.05) and DeepChrome's integrated gradients for the gene in each "
            "epigenome, from a split repeat where the gene was a test gene. "
            "(<code>data/explained_genes.json</code>)",
        )
        for g in explained:
            image(F.fig_explained(g), f"explained {g['gene']}")

    if cross_within is None:
        cross_within = M.cross_vs_within_of(metrics)
    if cross_within is not None and len(cross_within):
        cross_within.to_csv(out / "data" / "cross_vs_within.csv", index=False)
        files = [*files, "cross_vs_within.csv"]
        section(
            "Cross- against within-epigenome AUROC",
            "Each epigenome's test genes scored by a model trained on the other epigenomes "
            "(leave one epigenome out, inputs normalised per epigenome) against its own "
            "model's. (<code>data/cross_vs_within.csv</code>)",
        )
        image(F.fig_cross_vs_within(cross_within), "cross- vs within-epigenome AUROC")
        parts.append(_table_html(cross_within.set_index("cell"), "{:.3f}"))
    if held_out:
        held_out["table"].to_csv(out / "data" / "held_out_predictions.csv", index=False)
        files = [*files, "held_out_predictions.csv"]
        section(
            "Prediction for an epigenome held out of training",
            html.escape(held_out["text"]) + " (<code>data/held_out_predictions.csv</code>: "
            "cell, gene, score, label)",
        )
        parts.append(
            "<details><summary>Table: the 20 highest scores</summary>"
            + _table_html(held_out["table"].nlargest(20, "score").set_index("gene"), "{:.3f}")
            + "</details>"
        )

    section("Files")
    parts.append("<ul>" + "".join(f'<li><a href="data/{f}">{f}</a></li>' for f in files) + "</ul>")
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>chromestore report {html.escape(name)}</title>"
        f"<style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
