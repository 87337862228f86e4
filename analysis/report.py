"""A self-contained HTML report of a run: figures (embedded PNG), tables and their numbers.

:func:`write_report` takes a run (``chromestore.open_run``) and its reductions
(:func:`chromestore.analysis.analyze.analyze_run`, i.e. ``runs/NAME/metrics``) and writes
``DIR/index.html`` with every image embedded as a base64 PNG (no network needed),
plus ``DIR/data/*.csv|json`` with every number a figure or table shows.
Colours are the Okabe-Ito palette; heat-maps use cividis or the diverging PuOr.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from chromestore import variables as V  # noqa: E402
from chromestore.analysis import metrics as M  # noqa: E402

#: Okabe & Ito (2008), colour-blind safe; black is kept for the published reference.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442",
             "#999999")
PUBLISHED_COLOUR = "#000000"

plt.rcParams.update({
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "figure.dpi": 100,
    "axes.spines.top": False, "axes.spines.right": False,
})


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colours(models: Sequence[str]) -> dict[str, str]:
    return {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(models)}


def _kb(offsets: np.ndarray) -> np.ndarray:
    return np.asarray(offsets, dtype=float) / 1000.0


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
def fig_auc_bars(metrics: xr.Dataset) -> str:
    """Per-epigenome mean test AUROC of every model, with DeepChrome's published AUC."""
    auc = metrics["stat_auroc"].mean(V.REPEAT)
    models = [str(m) for m in metrics[V.MODEL].values]
    cells = [str(c) for c in metrics[V.CELL].values]
    colours = _colours(models)
    n_m = len(models)
    width = 0.8 / max(n_m, 1)
    published = "published_auc" in metrics
    width_in = min(18, max(8, 0.07 * len(cells) * max(n_m, 2) + 3))
    if published:
        fig, axes = plt.subplots(
            2, 1, figsize=(width_in, 7.5), gridspec_kw={"height_ratios": [3, 2]}, sharex=True
        )
    else:  # simulated signal: no comparison with published accuracy, one panel
        fig, ax = plt.subplots(figsize=(width_in, 4.8))
        axes = [ax, ax]
    x = np.arange(len(cells))
    for i, m in enumerate(models):
        axes[0].bar(x - 0.4 + width * (i + 0.5), auc.sel({V.MODEL: m}).values, width,
                    color=colours[m], label=m)
    if published:
        pub = metrics["published_auc"].values
        axes[0].scatter(x, pub, marker="_", s=160, color=PUBLISHED_COLOUR, linewidths=2,
                        label="DeepChrome (published)", zorder=3)
        diff = metrics["auroc_vs_published"]
        for i, m in enumerate(models):
            axes[1].bar(x - 0.4 + width * (i + 0.5), diff.sel({V.MODEL: m}).values, width,
                        color=colours[m])
        axes[1].axhline(0, color=PUBLISHED_COLOUR, lw=1)
        axes[1].set_ylabel("AUROC − published")
    lo = np.nanmin(auc.values) if np.isfinite(auc.values).any() else 0.5
    axes[0].set_ylim(max(0.0, min(0.5, lo - 0.05)), 1.0)
    axes[0].set_ylabel("test AUROC (mean over repeats)")
    axes[0].legend(ncols=min(n_m + 1, 5), loc="lower center", bbox_to_anchor=(0.5, 1.0),
                   fontsize=9, frameon=False)
    axes[1].set_xticks(x, cells, rotation=90, fontsize=8)
    axes[1].set_xlabel("epigenome")
    fig.tight_layout()
    return _png(fig)


def fig_auc_distribution(metrics: xr.Dataset) -> str:
    """Box plot of the per-epigenome AUROC of each model (the spread behind Table 2)."""
    auc = metrics["stat_auroc"].mean(V.REPEAT)
    models = [str(m) for m in metrics[V.MODEL].values]
    colours = _colours(models)
    data = [auc.sel({V.MODEL: m}).values[np.isfinite(auc.sel({V.MODEL: m}).values)]
            for m in models]
    fig, ax = plt.subplots(figsize=(1.4 * len(models) + 2.5, 3.6))
    bp = ax.boxplot(data, patch_artist=True, widths=0.6)
    ax.set_xticks(np.arange(1, len(models) + 1), models)
    for patch, m in zip(bp["boxes"], models, strict=True):
        patch.set_facecolor(colours[m])
        patch.set_alpha(0.8)
    if "published_auc" in metrics:
        ax.axhline(float(np.nanmean(metrics["published_auc"])), color=PUBLISHED_COLOUR, ls="--",
                   lw=1, label="DeepChrome published mean")
        ax.legend(frameon=False, fontsize=9)
    ax.set_ylabel("test AUROC per epigenome")
    ax.set_title("Distribution over epigenomes")
    fig.tight_layout()
    return _png(fig)


def _heat(ax, data: np.ndarray, marks, offsets, title: str, cmap: str, diverging: bool):
    kb = _kb(offsets)
    step = kb[1] - kb[0] if len(kb) > 1 else 0.1
    extent = (kb[0], kb[-1] + step, len(marks) - 0.5, -0.5)  # bin edges in kb
    v = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    lims = (-(v or 1.0), v or 1.0) if diverging else (0, v or 1.0)
    im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=lims[0], vmax=lims[1],
                   interpolation="nearest", extent=extent)
    ax.set_yticks(np.arange(len(marks)), marks)
    ax.axvline(0, color="#999999", lw=0.6, ls=":")
    ax.set_xlabel("position relative to TSS (kb, 5'→3')")
    ax.set_title(title)
    return im


def fig_class_maps(metrics: xr.Dataset) -> str:
    """Mean normalised class-optimisation maps for high and low expression."""
    maps = metrics["classopt_map"].mean(V.CELL)
    marks = [str(m) for m in metrics[V.MARK].values]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), sharey=True)
    for ax, k in zip(axes, ("high", "low"), strict=True):
        im = _heat(ax, maps.sel({V.CLASS: k}).values, marks, metrics.bin_offset.values,
                   f"{k} expression (mean over {metrics.sizes[V.CELL]} epigenomes)", "cividis",
                   False)
    fig.colorbar(im, ax=axes, label="normalised input", shrink=0.9)
    return _png(fig)


def fig_active_bins(metrics: xr.Dataset) -> str:
    """Active bins per mark of the class-optimisation maps (mean ± sd over epigenomes)."""
    counts = metrics["classopt_active_bins"]
    marks = [str(m) for m in metrics[V.MARK].values]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    for ax, k, colour in zip(axes, ("high", "low"), (OKABE_ITO[4], OKABE_ITO[3]), strict=True):
        c = counts.sel({V.CLASS: k})
        ax.bar(marks, c.mean(V.CELL).values, yerr=c.std(V.CELL).values, color=colour, capsize=3)
        ax.axhline(float(c.mean().values), color=PUBLISHED_COLOUR, ls="--", lw=1,
                   label="mean over marks")
        ax.set_title(f"{k} expression: active bins (> 0.25) per mark")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(frameon=False, fontsize=9)
    axes[0].set_ylabel("active bins")
    fig.tight_layout()
    return _png(fig)


def fig_pair_counts(metrics: xr.Dataset) -> str:
    """Epigenomes in which each pair of marks is flagged together, per class."""
    counts = metrics["classopt_pair_count"]
    marks = [str(m) for m in metrics[V.MARK].values]
    n = metrics.sizes[V.CELL]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"wspace": 0.45})
    for ax, k in zip(axes, ("high", "low"), strict=True):
        c = counts.sel({V.CLASS: k}).values
        im = ax.imshow(c, cmap="cividis", vmin=0, vmax=n)
        for i in range(len(marks)):
            for j in range(len(marks)):
                ax.text(j, i, str(int(c[i, j])), ha="center", va="center", fontsize=9,
                        color="white" if c[i, j] < 0.6 * n else "black")
        ax.set_xticks(range(len(marks)), marks, rotation=40, ha="right")
        ax.set_yticks(range(len(marks)), marks)
        ax.set_title(f"{k} expression: marks flagged together (of {n})")
    fig.colorbar(im, ax=axes, label="epigenomes", shrink=0.8)
    return _png(fig)


def fig_bin_influence(metrics: xr.Dataset) -> str:
    """svm-bin AUC per bin (Fig. 4a) and the CNN's mean first-layer activation per bin (4b)."""
    has_svm = "svmbin_auc_curve" in metrics
    has_fm = "feature_map_bin" in metrics
    fig, axes = plt.subplots(1, int(has_svm) + int(has_fm), figsize=(11, 3.2), squeeze=False)
    kb = _kb(metrics.bin_offset.values)
    i = 0
    if has_svm:
        ax = axes[0, i]
        ax.plot(kb, metrics["svmbin_auc_curve"].values, color=OKABE_ITO[3], lw=2)
        ax.set_ylabel("test AUROC of one bin")
        ax.set_title("svm-bin: AUROC of each bin alone")
        i += 1
    if has_fm:
        ax = axes[0, i]
        fm = metrics["feature_map_bin"]
        ax.fill_between(kb, fm.quantile(0.1, V.CELL).values, fm.quantile(0.9, V.CELL).values,
                        color=OKABE_ITO[0], alpha=0.3, label="10–90% of epigenomes")
        ax.plot(kb, fm.mean(V.CELL).values, color=OKABE_ITO[4], lw=2, label="mean")
        ax.set_ylabel("mean first-layer activation")
        ax.set_title("DeepChrome: first-layer feature map")
        ax.legend(frameon=False, fontsize=9)
    for ax in axes[0]:
        ax.set_xlabel("position relative to TSS (kb)")
        ax.axvline(0, color="#999999", lw=0.8)
    fig.tight_layout()
    return _png(fig)


def fig_attribution(metrics: xr.Dataset, var: str, label: str, diverging: bool) -> str:
    """A (class, mark, bin) attribution map averaged over epigenomes, one panel per class."""
    data = metrics[var].mean(V.CELL)
    marks = [str(m) for m in metrics[V.MARK].values]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), sharey=True)
    for ax, k in zip(axes, ("high", "low"), strict=True):
        im = _heat(ax, data.sel({V.CLASS: k}).values, marks, metrics.bin_offset.values,
                   f"genes of {k} expression", "PuOr_r" if diverging else "cividis", diverging)
    fig.colorbar(im, ax=axes, label=label, shrink=0.9)
    return _png(fig)


def fig_attention(metrics: xr.Dataset) -> str:
    """AttentiveChrome's bin attention per mark, averaged over test genes of each class."""
    return fig_attribution(metrics, "attention_class", "attention weight", False)


def fig_explained(gene: dict) -> str:
    """ShallowChrome's regulative pattern and the CNN's IG for one gene in each epigenome."""
    cells = [c["cell"] for c in gene["cells"]]
    marks = gene["marks"]
    n = len(cells)
    fig, axes = plt.subplots(2, n, figsize=(max(4.2 * n, 6), 6.2), squeeze=False)
    for j, c in enumerate(gene["cells"]):
        ax = axes[0, j]
        sc = c.get("shallowchrome")
        if sc:
            vals = np.array([sc["pattern"][m] for m in marks])
            ax.barh(marks, vals, color=[OKABE_ITO[4] if v > 0 else OKABE_ITO[3] for v in vals])
            for i, m in enumerate(marks):
                p = sc["pvalue"].get(m)
                if p is not None and p < 0.05:
                    ax.text(vals[i], i, " *" if vals[i] >= 0 else "* ", va="center",
                            ha="left" if vals[i] >= 0 else "right")
            ax.axvline(0, color="black", lw=0.8)
            ax.set_title(f"{c['cell']}: ShallowChrome (bias {sc['bias']:+.2f},\n"
                         f"P(high) {sc['probability']:.2f}, label {c.get('label', '?')})",
                         fontsize=9)
            ax.set_xlabel("coef × feature (* p < 0.05)")
        else:
            ax.text(0.5, 0.5, "gene not in a ShallowChrome test split", ha="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
        ax = axes[1, j]
        ig = c.get("integrated_gradients")
        if ig is not None:
            arr = np.asarray(ig, dtype=float)
            im = _heat(ax, arr, marks, gene["bin_offset"], "", "PuOr_r", True)
            ax.set_xlabel("kb from TSS")
            ax.set_title(f"DeepChrome IG (P(high) {c['deepchrome_probability']:.2f})",
                         fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
        else:
            ax.text(0.5, 0.5, "gene not in a DeepChrome test split", ha="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
    fig.suptitle(f"{gene['gene']}", fontsize=12)
    fig.tight_layout()
    return _png(fig)


# --- tables and numbers ------------------------------------------------------------
def _table_html(df: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    return df.to_html(
        classes="num", border=0, na_rep="–",
        float_format=lambda x: floatfmt.format(x),
    )


def _long(metrics: xr.Dataset, var: str) -> pd.DataFrame:
    return metrics[var].to_dataframe().reset_index()[list(metrics[var].dims) + [var]]


def write_numbers(run: xr.Dataset, metrics: xr.Dataset, data_dir: Path,
                  explained: Sequence[dict] = ()) -> list[str]:
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
    save("metrics_per_repeat.csv", metrics[[v for v in metrics.data_vars
                                            if v.startswith("stat_") and v != "stat_summary"]]
         .to_dataframe().reset_index())
    save("summary.csv", M.summary_table(metrics).reset_index())
    for var in ("classopt_active_bins", "classopt_flagged", "classopt_pair_count", "classopt_map",
                "saliency", "integrated_gradients", "feature_map_bin", "svmbin_auc_curve",
                "attention_class"):
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


def write_report(
    run: xr.Dataset,
    metrics: xr.Dataset,
    out_dir: str | Path,
    *,
    name: str = "",
    explained: Sequence[dict] = (),
) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/data/``; return the HTML path."""
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
        + " · ".join(html.escape(f"{k}: {a[k]}") for k in
                     ("task", "split_scheme", "label_rule", "seed", "mode", "device")
                     if k in a)
        + (f" · training wall time {_seconds(a['wall_seconds']):.0f} s"
           if "wall_seconds" in a else "")
        + "</p>"
    )
    auc = metrics["stat_auroc"].mean(V.REPEAT) if "stat_auroc" in metrics else None
    if auc is not None:
        key = "".join(
            f"<div>{html.escape(m)}<b>{float(auc.sel({V.MODEL: m}).mean()):.3f}</b>"
            f"mean AUROC"
            + (f", beats published in {int(metrics.n_beats_published.sel({V.MODEL: m}))}"
               f"/{int(np.isfinite(metrics.published_auc).sum())}"
               if "n_beats_published" in metrics else "")
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

    has_published = "published_auc" in metrics
    simulated_note = (
        "The signal of this run is simulated (<code>chromestore.simulate</code>), so its "
        "accuracy is not compared with DeepChrome's published accuracy. "
    )
    section("Summary over epigenomes",
            "Mean, median, min and max over epigenomes of each statistic (each epigenome: mean "
            "over repeats), as in ShallowChrome's Table 2. "
            + ("<i>beats published</i>: epigenomes where the model's AUROC exceeds "
               "DeepChrome's published AUC. " if has_published else simulated_note)
            + "(<code>data/summary.csv</code>)")
    parts.append(_table_html(M.summary_table(metrics)))

    if auc is not None:
        section("Test AUROC per epigenome",
                "Bars: each model's test AUROC"
                + ("; black ticks: DeepChrome's published test AUC (Singh et al. 2016, "
                   "supplementary table 1). Lower panel: difference from the published value. "
                   if has_published else ". " + simulated_note)
                + "(<code>data/metrics_per_cell.csv</code>)")
        image(fig_auc_bars(metrics), "AUROC per epigenome")
        image(fig_auc_distribution(metrics), "AUROC distribution per model")
        per_cell = auc.to_pandas().T
        per_cell.insert(0, "name", [names.get(str(c), "") for c in per_cell.index])
        if "published_auc" in metrics:
            per_cell["published DeepChrome"] = metrics.published_auc.values
        parts.append("<details><summary>Table: AUROC per epigenome</summary>"
                     + _table_html(per_cell, "{:.3f}") + "</details>")

    if "classopt_map" in metrics:
        section("What DeepChrome learned: class-optimisation maps",
                "For each epigenome's CNN, an input optimised from random noise to be classified "
                "as high (or low) expression with an L2 penalty (DeepChrome §3.3), negatives "
                "clamped to 0 and scaled to max 1. Bins above 0.25 are active; marks with more "
                "active bins than the mean over marks are flagged. "
                "(<code>data/classopt_map.csv</code>, <code>classopt_active_bins.csv</code>)")
        image(fig_class_maps(metrics), "class optimisation heat maps")
        image(fig_active_bins(metrics), "active bins per mark")
        counts = metrics["classopt_pair_count"]
        from chromestore.analysis.interpret import top_pairs

        tops = top_pairs(counts, 2)
        summary = "; ".join(
            f"{k}: " + ", ".join(f"{a} + {b} in {c}/{n_cells}" for a, b, c in v)
            for k, v in tops.items()
        )
        section("Combinations of marks",
                "Number of epigenomes in which both marks are flagged for a class (diagonal: "
                "the mark alone). DeepChrome reported H3K4me3 + H3K36me3 for high expression in "
                "47/56 epigenomes and H3K9me3 + H3K27me3 for low in 50/56. Here, most frequent: "
                f"{html.escape(summary)}. (<code>data/classopt_pair_count.csv</code>)")
        image(fig_pair_counts(metrics), "pair counts")

    if "svmbin_auc_curve" in metrics or "feature_map_bin" in metrics:
        section("Which positions matter",
                "Left: AUROC of an SVM trained on a single bin (all marks), averaged over "
                "epigenomes (DeepChrome Fig. 4a). Right: the CNN's first-layer activation at "
                "each position, averaged over filters and test genes (Fig. 4b). "
                "(<code>data/svmbin_auc_curve.csv</code>, <code>feature_map_bin.csv</code>)")
        image(fig_bin_influence(metrics), "bin influence")

    if "integrated_gradients" in metrics:
        section("Attributions: integrated gradients",
                "Integrated gradients of the CNN's logit margin (high − low) from a zero-signal "
                "baseline, averaged over test genes of each class and over epigenomes. Orange "
                "pushes towards high expression, purple towards low. "
                "(<code>data/integrated_gradients.csv</code>)")
        image(fig_attribution(metrics, "integrated_gradients", "attribution", True), "IG maps")
    if "saliency" in metrics:
        section("Attributions: gradient saliency",
                "|∂ margin / ∂ input| averaged over test genes of each class and over "
                "epigenomes. (<code>data/saliency.csv</code>)")
        image(fig_attribution(metrics, "saliency", "|gradient|", False), "saliency maps")
    if "attention_class" in metrics:
        section("AttentiveChrome attention", "(<code>data/attention_class.csv</code>)")
        image(fig_attention(metrics), "attention per class")

    if explained:
        section("Explained genes",
                "ShallowChrome's regulative pattern (coefficient × feature per mark; bias; "
                "* Wald p < 0.05) and DeepChrome's integrated gradients for the gene in each "
                "epigenome, from a split repeat where the gene was a test gene. "
                "(<code>data/explained_genes.json</code>)")
        for g in explained:
            image(fig_explained(g), f"explained {g['gene']}")

    section("Files")
    parts.append("<ul>" + "".join(f'<li><a href="data/{f}">{f}</a></li>' for f in files)
                 + "</ul>")
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>chromestore report {html.escape(name)}</title>"
        f"<style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
