"""A self-contained HTML report of a run: figures (embedded PNG), tables and their numbers.

:func:`write_report` takes a run (``chromestore.open_run``) and its reductions
(:func:`chromestore.analysis.analyze.analyze_run`, i.e. ``runs/NAME/metrics``) and writes
``DIR/index.html`` with every image embedded as a base64 PNG (no network needed),
plus ``DIR/data/*.csv|json`` with every number a figure or table shows.
Figures are drawn by :mod:`chromestore.analysis.figures`; the page is the Jinja2 template
``templates/report.html.j2`` (its words and markup, escaped as it is filled), filled by one
small function per section here (its numbers, tables and figures).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from markupsafe import Markup

from chromestore import variables as V
from chromestore.analysis import figures
from chromestore.analysis import metrics as M
from chromestore.training import registry

#: The templates of the page (package data: installed with the wheel).
TEMPLATES = Path(__file__).with_name("templates")
#: How the page's title begins (an earlier report is recognised by it: :func:`is_report`).
TITLE = "chromestore report"
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
    added = [m.name for plot in registry.PLOTS for m in figures.model_metrics(metrics, plot)]
    for var in CNN_VARS + tuple(added):
        if var in metrics:
            save(f"{var}.csv", _long(metrics, var))
    if explained:
        (data_dir / "explained_genes.json").write_text(json.dumps(list(explained), indent=1))
        written.append("explained_genes.json")
    return written


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


# --- the sections: each gives its numbers and figures, the template gives the words ------
def _figure(src: str, alt: str) -> dict:
    return {"src": src, "alt": alt}


def _header(run: xr.Dataset, metrics: xr.Dataset, name: str) -> dict:
    """The title, the run's settings, each model's mean AUROC and what the numbers are."""
    a = run.attrs
    key = []
    if "stat_auroc" in metrics:
        auc = metrics["stat_auroc"].mean(V.REPEAT)
        beats = "n_beats_published" in metrics
        key = [
            {
                "model": m,
                "auroc": float(auc.sel({V.MODEL: m}).mean()),
                "beats": int(metrics.n_beats_published.sel({V.MODEL: m})) if beats else None,
                "published": int(np.isfinite(metrics.published_auc).sum()) if beats else None,
            }
            for m in (str(m) for m in metrics[V.MODEL].values)
        ]
    return {
        "heading": name or str(a.get("name", "")),
        "meta": [
            f"{k}: {a[k]}"
            for k in ("task", "split_scheme", "label_rule", "seed", "mode", "device")
            if k in a
        ],
        "wall_seconds": _seconds(a["wall_seconds"]) if "wall_seconds" in a else None,
        "key": key,
        "n_cells": metrics.sizes[V.CELL],
        "n_models": metrics.sizes[V.MODEL],
        "n_repeats": metrics.sizes[V.REPEAT],
        "orientation": orientation_note(metrics.attrs),
    }


def _summary(metrics: xr.Dataset) -> dict:
    """The summary table; whether DeepChrome's published AUCs are there to compare with."""
    return {
        "table": Markup(_table_html(M.summary_table(metrics))),
        "published": "published_auc" in metrics,
        "simulated_note": metrics.attrs.get("published_note")
        or (
            "The signal of this run is simulated (chromestore.simulate), so its "
            "accuracy is not compared with DeepChrome's published accuracy."
        ),
    }


def _auroc(metrics: xr.Dataset) -> dict | None:
    """Test AUROC per epigenome: bars, their distribution and the table (names included)."""
    if "stat_auroc" not in metrics:
        return None
    per_cell = metrics["stat_auroc"].mean(V.REPEAT).to_pandas().T
    names = cell_names()
    per_cell.insert(0, "name", [names.get(str(c), "") for c in per_cell.index])
    if "published_auc" in metrics:
        per_cell["published DeepChrome"] = metrics.published_auc.values
    return {
        "published": "published_auc" in metrics,
        "bars": _figure(figures.fig_auc_bars(metrics), "AUROC per epigenome"),
        "distribution": _figure(
            figures.fig_auc_distribution(metrics), "AUROC distribution per model"
        ),
        "table": Markup(_table_html(per_cell, "{:.3f}")),
    }


def _class_maps(metrics: xr.Dataset) -> dict | None:
    """The CNN's class-optimisation maps, active bins, and the marks flagged together."""
    if "classopt_map" not in metrics:
        return None
    from chromestore.analysis.interpret import top_pairs

    n_cells = metrics.sizes[V.CELL]
    tops = top_pairs(metrics["classopt_pair_count"], 2)
    return {
        "maps": _figure(figures.fig_class_maps(metrics), "class optimisation heat maps"),
        "active_bins": _figure(figures.fig_active_bins(metrics), "active bins per mark"),
        "top_pairs": "; ".join(
            f"{k}: " + ", ".join(f"{a} + {b} in {c}/{n_cells}" for a, b, c in v)
            for k, v in tops.items()
        ),
        "pairs": _figure(figures.fig_pair_counts(metrics), "pair counts"),
    }


def _positions(metrics: xr.Dataset) -> dict | None:
    """What each position adds: the models' profiles and the CNN's first-layer feature map."""
    profiles = figures.model_metrics(metrics, "profile")
    if not profiles and "feature_map_bin" not in metrics:
        return None
    return {
        "profiles": [{"title": m.title or m.name, "doc": m.doc, "name": m.name} for m in profiles],
        "feature_map": "feature_map_bin" in metrics,
        "figure": _figure(figures.fig_bin_influence(metrics), "bin influence"),
    }


def _attributions(metrics: xr.Dataset) -> dict:
    """Integrated gradients, saliency, and each model's own map per class."""
    out: dict = {"integrated_gradients": None, "saliency": None, "models": []}
    if "integrated_gradients" in metrics:
        out["integrated_gradients"] = _figure(
            figures.fig_attribution(metrics, "integrated_gradients", "attribution", True), "IG maps"
        )
    if "saliency" in metrics:
        out["saliency"] = _figure(
            figures.fig_attribution(metrics, "saliency", "|gradient|", False), "saliency maps"
        )
    for m in figures.model_metrics(metrics, "class_map"):
        title = m.title or m.name
        figure = figures.fig_attribution(metrics, m.name, m.label or m.name, False)
        out["models"].append(
            {"title": title, "doc": m.doc, "name": m.name, "figure": _figure(figure, title)}
        )
    return out


def _explained(explained: Sequence[dict]) -> list[dict]:
    """One figure per explained gene."""
    return [_figure(figures.fig_explained(g), f"explained {g['gene']}") for g in explained]


def _cross_within(
    metrics: xr.Dataset, table: pd.DataFrame | None, data_dir: Path, files: list[str]
) -> dict | None:
    """Cross- against within-epigenome AUROC (given, or from a model and its pooled
    version among the runs); its CSV is written and listed."""
    if table is None:
        table = M.cross_vs_within_of(metrics)
    if table is None or not len(table):
        return None
    table.to_csv(data_dir / "cross_vs_within.csv", index=False)
    files.append("cross_vs_within.csv")
    return {
        "figure": _figure(figures.fig_cross_vs_within(table), "cross- vs within-epigenome AUROC"),
        "table": Markup(_table_html(table.set_index("cell"), "{:.3f}")),
    }


def _held_out(held_out: dict | None, data_dir: Path, files: list[str]) -> dict | None:
    """A prediction for an epigenome held out of training: its text and highest scores."""
    if not held_out:
        return None
    held_out["table"].to_csv(data_dir / "held_out_predictions.csv", index=False)
    files.append("held_out_predictions.csv")
    top = held_out["table"].nlargest(20, "score").set_index("gene")
    return {"text": held_out["text"], "table": Markup(_table_html(top, "{:.3f}"))}


@functools.cache
def _templates():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render(context: dict) -> str:
    """The report page from the sections' ``context`` (``templates/report.html.j2``)."""
    return _templates().get_template("report.html.j2").render(title=TITLE, **context)


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
    data_dir = out / "data"
    files = write_numbers(run, metrics, data_dir, explained)
    context = {
        "name": name,
        "header": _header(run, metrics, name),
        "summary": _summary(metrics),
        "auroc": _auroc(metrics),
        "class_maps": _class_maps(metrics),
        "positions": _positions(metrics),
        "attributions": _attributions(metrics),
        "explained": _explained(explained),
        "cross_within": _cross_within(metrics, cross_within, data_dir, files),
        "held_out": _held_out(held_out, data_dir, files),
        "files": files,
    }
    path = out / "index.html"
    path.write_text(render(context), encoding="utf-8")
    return path


def is_report(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a report :func:`write_report` wrote."""
    index = Path(path) / "index.html"
    return index.is_file() and f"<title>{TITLE}" in index.read_text()[:2000]


def check_report_dir(path: str | Path, overwrite: bool) -> None:
    """Refuse a report folder :func:`write_report` may not write into: one that holds
    anything but a chromestore report, or a report unless ``overwrite``."""
    from chromestore.errors import StoreError

    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    if not is_report(path):
        raise StoreError(
            f"{path}: the report folder exists and holds no chromestore report; "
            "nothing was changed: choose another --report folder"
        )
    if not overwrite:
        raise StoreError(
            f"{path}: a chromestore report is already there; pass --overwrite to replace it"
        )
