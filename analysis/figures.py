"""The report's figures: each a function of the reductions, returning an embeddable PNG
(a ``data:`` URI; :func:`explained_png` gives a gene's explanation as PNG bytes for a file).

Colours are the Okabe-Ito palette; heat-maps use cividis or the diverging PuOr. What a
model adds (its registry entry's ``metrics``) is drawn by kind: a ``profile`` as one
panel of :func:`fig_bin_influence`, a ``class_map`` with :func:`fig_attribution`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from chromestore import variables as V  # noqa: E402
from chromestore.training import registry  # noqa: E402

#: Okabe & Ito (2008), colour-blind safe; black is kept for the published reference.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#999999")
PUBLISHED_COLOUR = "#000000"
plt.rcParams.update(
    {
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "figure.dpi": 100,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def png_bytes(fig) -> bytes:
    """``fig`` as PNG (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _png(fig) -> str:
    """``fig`` as an embeddable PNG (a ``data:`` URI)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig)).decode("ascii")


def _colours(models: Sequence[str]) -> dict[str, str]:
    return {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(models)}


def _kb(offsets: np.ndarray) -> np.ndarray:
    return np.asarray(offsets, dtype=float) / 1000.0


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
        axes[0].bar(
            x - 0.4 + width * (i + 0.5),
            auc.sel({V.MODEL: m}).values,
            width,
            color=colours[m],
            label=m,
        )
    if published:
        pub = metrics["published_auc"].values
        axes[0].scatter(
            x,
            pub,
            marker="_",
            s=160,
            color=PUBLISHED_COLOUR,
            linewidths=2,
            label="DeepChrome (published)",
            zorder=3,
        )
        diff = metrics["auroc_vs_published"]
        for i, m in enumerate(models):
            axes[1].bar(
                x - 0.4 + width * (i + 0.5), diff.sel({V.MODEL: m}).values, width, color=colours[m]
            )
        axes[1].axhline(0, color=PUBLISHED_COLOUR, lw=1)
        axes[1].set_ylabel("AUROC − published")
    lo = np.nanmin(auc.values) if np.isfinite(auc.values).any() else 0.5
    axes[0].set_ylim(max(0.0, min(0.5, lo - 0.05)), 1.0)
    axes[0].set_ylabel("test AUROC (mean over repeats)")
    axes[0].legend(
        ncols=min(n_m + 1, 5),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        fontsize=9,
        frameon=False,
    )
    axes[1].set_xticks(x, cells, rotation=90, fontsize=8)
    axes[1].set_xlabel("epigenome")
    fig.tight_layout()
    return _png(fig)


def fig_auc_distribution(metrics: xr.Dataset) -> str:
    """Box plot of the per-epigenome AUROC of each model (the spread behind Table 2)."""
    auc = metrics["stat_auroc"].mean(V.REPEAT)
    models = [str(m) for m in metrics[V.MODEL].values]
    colours = _colours(models)
    data = [auc.sel({V.MODEL: m}).values[np.isfinite(auc.sel({V.MODEL: m}).values)] for m in models]
    fig, ax = plt.subplots(figsize=(1.4 * len(models) + 2.5, 3.6))
    bp = ax.boxplot(data, patch_artist=True, widths=0.6)
    ax.set_xticks(np.arange(1, len(models) + 1), models)
    for patch, m in zip(bp["boxes"], models, strict=True):
        patch.set_facecolor(colours[m])
        patch.set_alpha(0.8)
    if "published_auc" in metrics:
        ax.axhline(
            float(np.nanmean(metrics["published_auc"])),
            color=PUBLISHED_COLOUR,
            ls="--",
            lw=1,
            label="DeepChrome published mean",
        )
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
    im = ax.imshow(
        data,
        aspect="auto",
        cmap=cmap,
        vmin=lims[0],
        vmax=lims[1],
        interpolation="nearest",
        extent=extent,
    )
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
        im = _heat(
            ax,
            maps.sel({V.CLASS: k}).values,
            marks,
            metrics.bin_offset.values,
            f"{k} expression (mean over {metrics.sizes[V.CELL]} epigenomes)",
            "cividis",
            False,
        )
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
        ax.axhline(
            float(c.mean().values), color=PUBLISHED_COLOUR, ls="--", lw=1, label="mean over marks"
        )
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
                ax.text(
                    j,
                    i,
                    str(int(c[i, j])),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if c[i, j] < 0.6 * n else "black",
                )
        ax.set_xticks(range(len(marks)), marks, rotation=40, ha="right")
        ax.set_yticks(range(len(marks)), marks)
        ax.set_title(f"{k} expression: marks flagged together (of {n})")
    fig.colorbar(im, ax=axes, label="epigenomes", shrink=0.8)
    return _png(fig)


def model_metrics(metrics: xr.Dataset, plot: str) -> list:
    """The registered models' metrics of kind ``plot`` that ``metrics`` holds, in registry order."""
    return [
        m for e in registry.entries() for m in e.metrics if m.plot == plot and m.name in metrics
    ]


def _quantile_over_cells(values: xr.DataArray, q: float) -> np.ndarray:
    """The ``q`` quantile over epigenomes of each bin; NaN where no epigenome has a value
    (e.g. edge bins a convolution never covers), computed without numpy's All-NaN warning."""
    has = values.notnull().any(V.CELL).values
    out = np.full(has.shape, np.nan)
    if has.any():
        out[has] = values.isel({V.BIN: np.flatnonzero(has)}).quantile(q, V.CELL).values
    return out


def fig_bin_influence(metrics: xr.Dataset) -> str:
    """One panel per value-per-bin profile: the models' (e.g. svm-bin's AUROC of each bin,
    DeepChrome Fig. 4a) and the CNN's mean first-layer activation per bin (Fig. 4b)."""
    profiles = model_metrics(metrics, "profile")
    has_fm = "feature_map_bin" in metrics
    fig, axes = plt.subplots(1, len(profiles) + int(has_fm), figsize=(11, 3.2), squeeze=False)
    kb = _kb(metrics.bin_offset.values)
    for ax, metric in zip(axes[0], profiles, strict=False):
        ax.plot(kb, metrics[metric.name].values, color=OKABE_ITO[3], lw=2)
        ax.set_ylabel(metric.label or metric.name)
        ax.set_title(metric.title or metric.name)
    if has_fm:
        ax = axes[0, -1]
        fm = metrics["feature_map_bin"]
        ax.fill_between(
            kb,
            _quantile_over_cells(fm, 0.1),
            _quantile_over_cells(fm, 0.9),
            color=OKABE_ITO[0],
            alpha=0.3,
            label="10–90% of epigenomes",
        )
        ax.plot(kb, fm.mean(V.CELL).values, color=OKABE_ITO[4], lw=2, label="mean")
        ax.set_ylabel("mean first-layer activation")
        ax.set_title(f"{metrics.attrs.get('interpreted_model', 'CNN')}: first-layer feature map")
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
        im = _heat(
            ax,
            data.sel({V.CLASS: k}).values,
            marks,
            metrics.bin_offset.values,
            f"genes of {k} expression",
            "PuOr_r" if diverging else "cividis",
            diverging,
        )
    fig.colorbar(im, ax=axes, label=label, shrink=0.9)
    return _png(fig)


def fig_explained(gene: dict) -> str:
    """ShallowChrome's regulative pattern and the CNN's IG for one gene in each epigenome."""
    return _png(_draw_explained(gene))


def explained_png(gene: dict) -> bytes:
    """:func:`fig_explained` as PNG bytes, for a file (``chromestore explain --plot``)."""
    return png_bytes(_draw_explained(gene))


def _draw_explained(gene: dict):
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
                    ax.text(
                        vals[i],
                        i,
                        " *" if vals[i] >= 0 else "* ",
                        va="center",
                        ha="left" if vals[i] >= 0 else "right",
                    )
            ax.axvline(0, color="black", lw=0.8)
            ax.set_title(
                f"{c['cell']}: ShallowChrome (bias {sc['bias']:+.2f},\n"
                f"P(high) {sc['probability']:.2f}, label {c.get('label', '?')})",
                fontsize=9,
            )
            ax.set_xlabel("coef × feature (* p < 0.05)")
        else:
            ax.text(
                0.5,
                0.5,
                "gene not in a ShallowChrome test split",
                ha="center",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
        ax = axes[1, j]
        ig = c.get("integrated_gradients")
        if ig is not None:
            arr = np.asarray(ig, dtype=float)
            im = _heat(ax, arr, marks, gene["bin_offset"], "", "PuOr_r", True)
            ax.set_xlabel("kb from TSS")
            ax.set_title(f"DeepChrome IG (P(high) {c['deepchrome_probability']:.2f})", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
        else:
            ax.text(
                0.5, 0.5, "gene not in a DeepChrome test split", ha="center", transform=ax.transAxes
            )
            ax.set_axis_off()
    fig.suptitle(f"{gene['gene']}", fontsize=12)
    fig.tight_layout()
    return fig


# --- tables and numbers ------------------------------------------------------------


def fig_cross_vs_within(table) -> str:
    """Per epigenome: AUROC of the model trained on the other epigenomes (cross) against the
    epigenome's own model (within); points above the diagonal: cross-epigenome is better."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.scatter(table["within_auroc"], table["cross_auroc"], color=OKABE_ITO[2], zorder=3)
    for row in table.itertuples():
        ax.annotate(
            row.cell,
            (row.within_auroc, row.cross_auroc),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    values = np.r_[table["within_auroc"].values, table["cross_auroc"].values]
    lo = max(0.0, float(np.nanmin(values)) - 0.05) if len(values) else 0.5
    ax.plot([lo, 1], [lo, 1], color=PUBLISHED_COLOUR, lw=1)
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1)
    ax.set_xlabel("within-epigenome test AUROC")
    ax.set_ylabel("cross-epigenome test AUROC (held out)")
    fig.tight_layout()
    return _png(fig)
