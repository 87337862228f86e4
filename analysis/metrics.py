"""Test-split metrics of a run, one Dask task per (model, cell), reduced into an xr.Dataset.

A run (``chromestore.open_run``) holds ``prediction`` (model, cell, repeat, gene),
``target`` (cell, gene), ``split`` (repeat, gene) and ``excluded`` (cell, gene).
:func:`compute_metrics` scores every (model, cell, repeat) on its test genes with
scikit-learn/scipy and returns the ``stat_*`` variables of
:mod:`chromestore.variables`, the summary rows over epigenomes (ShallowChrome's
Table 2 layout) and the comparison with DeepChrome's published AUC per epigenome.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as sps
from sklearn import metrics as skm

from chromestore import datasets
from chromestore import runs as R
from chromestore import variables as V
from chromestore.store.integrity import write_checksummed

#: DeepChrome's published test AUC per epigenome, shipped with the repository.
PUBLISHED = datasets.epigenomes()

CLASSIFICATION_STATS = ("auroc", "auprc", "f1")
REGRESSION_STATS = ("mse", "pearson", "spearman")


def stat_names(task: str) -> tuple[str, ...]:
    """The statistics computed for a run's ``task``."""
    if task == "classification":
        return CLASSIFICATION_STATS
    if task == "regression":
        return REGRESSION_STATS
    raise ValueError(f"unknown task {task!r} (classification or regression)")


# --- kernel: one (model, cell) block, pure numpy ------------------------------
def score_block(
    prediction: np.ndarray,
    target: np.ndarray,
    split: np.ndarray,
    excluded: np.ndarray | None,
    task: str,
    which: int = V.TEST,
) -> np.ndarray:
    """Scores of one (model, cell): an array (repeat, n_stats + 1), the last column n genes.

    ``prediction`` and ``split`` are (repeat, gene), ``target`` and ``excluded``
    (gene,). A gene counts where ``split == which``, prediction and target are
    finite and it is not excluded. A statistic that is undefined (fewer than two
    genes, or a single class) is NaN.
    """
    names = stat_names(task)
    out = np.full((prediction.shape[0], len(names) + 1), np.nan)
    keep_gene = np.isfinite(target)
    if excluded is not None:
        keep_gene &= ~excluded.astype(bool)
    for r in range(prediction.shape[0]):
        keep = keep_gene & (split[r] == which) & np.isfinite(prediction[r])
        y, p = target[keep], prediction[r, keep].astype(np.float64)
        out[r, -1] = keep.sum()
        if len(y) < 2:
            continue
        if task == "classification":
            y = y.astype(int)
            if len(np.unique(y)) < 2:
                continue
            out[r, 0] = skm.roc_auc_score(y, p)
            out[r, 1] = skm.average_precision_score(y, p)
            out[r, 2] = skm.f1_score(y, (p >= 0.5).astype(int), zero_division=0.0)
        else:
            out[r, 0] = skm.mean_squared_error(y, p)
            if np.ptp(p) > 0 and np.ptp(y) > 0:
                out[r, 1] = sps.pearsonr(y, p).statistic
                out[r, 2] = sps.spearmanr(y, p).statistic
    return out


# --- wrapper ------------------------------------------------------------------
def _own_split(run: xr.Dataset, model, cell) -> np.ndarray:
    """The run's split (repeat, gene) where the model's own record agrees, -1 elsewhere: a
    model is scored only on genes that are its own test genes too (``model_split``)."""
    split = run["split"].transpose(V.REPEAT, V.GENE).values
    if V.model_split.name not in run:
        return split
    own = run[V.model_split.name].sel({V.MODEL: model, V.CELL: cell})
    own = own.transpose(V.REPEAT, V.GENE).values
    return np.where(own == split, split, -1).astype(split.dtype)


def _blocks(run: xr.Dataset, task: str, which: int):
    excluded = run["excluded"] if "excluded" in run else None
    tasks = []
    for m in run[V.MODEL].values:
        for c in run[V.CELL].values:
            pred = run["prediction"].sel({V.MODEL: m, V.CELL: c}).transpose(V.REPEAT, V.GENE)
            targ = run["target"].sel({V.CELL: c})
            exc = excluded.sel({V.CELL: c}).data if excluded is not None else None
            tasks.append(
                dask.delayed(score_block, pure=True)(
                    pred.data, targ.data, _own_split(run, m, c), exc, task, which
                )
            )
    return tasks


def compute_metrics(
    run: xr.Dataset,
    *,
    client=None,
    which: int = V.TEST,
    published: str | Path | pd.Series | None = PUBLISHED,
) -> xr.Dataset:
    """Score a run: ``stat_*`` (model, cell, repeat), summaries and published-AUC comparison.

    Each (model, cell) is one Dask task (``dask.delayed``), run on ``client``
    (a ``distributed.Client``, e.g. from :func:`chromestore.app.cluster.connect`) or
    on the default scheduler.

    Examples
    --------
    >>> m = compute_metrics(chromestore.open_run("demo-store.zarr", "demo"))  # doctest: +SKIP
    >>> m.stat_auroc.mean("repeat").to_pandas()                               # doctest: +SKIP
    """
    task = run.attrs.get("task", "classification")
    names = stat_names(task)
    blocks = _blocks(run, task, which)
    if client is not None:
        results = client.compute(blocks, sync=True)
    else:
        results = dask.compute(*blocks)
    n_models, n_cells = run.sizes[V.MODEL], run.sizes[V.CELL]
    arr = np.stack(results).reshape(n_models, n_cells, run.sizes[V.REPEAT], len(names) + 1)
    coords = {
        V.MODEL: run[V.MODEL].values,
        V.CELL: run[V.CELL].values,
        V.REPEAT: run[V.REPEAT].values,
    }
    dims = (V.MODEL, V.CELL, V.REPEAT)
    out = xr.Dataset(coords=coords)
    for i, name in enumerate(names):
        out[f"stat_{name}"] = (dims, arr[..., i])
    out["stat_n_test"] = (dims, arr[..., -1].astype(np.int64))
    out = summarize(out)
    if published is not None and task == "classification":
        out = compare_published(out, published)
    for name, var in out.variables.items():
        if name in V.ALL:
            var.attrs["description"] = V.ALL[name].doc
    out.attrs.update(task=task, split_scored=V.SPLIT_NAMES[which], stats=list(names))
    return out


def summarize(metrics: xr.Dataset) -> xr.Dataset:
    """Add ``stat_summary`` (model, stat, summary): mean/median/min/max over epigenomes.

    Each epigenome contributes its statistic's mean over repeats.
    """
    names = [n.removeprefix("stat_") for n in metrics.data_vars if _is_stat(n)]
    per_cell = xr.concat(
        [metrics[f"stat_{n}"].mean(V.REPEAT, skipna=True) for n in names],
        dim=pd.Index(names, name=V.STAT),
    )
    rows = [
        per_cell.mean(V.CELL, skipna=True),
        per_cell.median(V.CELL, skipna=True),
        per_cell.min(V.CELL, skipna=True),
        per_cell.max(V.CELL, skipna=True),
    ]
    summary = xr.concat(rows, dim=pd.Index(list(V.SUMMARY_ROWS), name=V.SUMMARY))
    return metrics.assign(stat_summary=summary.transpose(V.MODEL, V.STAT, V.SUMMARY))


def _is_stat(name: str) -> bool:
    return name.startswith("stat_") and name not in ("stat_n_test", "stat_summary")


def read_published(path: str | Path = PUBLISHED) -> pd.Series:
    """DeepChrome's published test AUC, indexed by epigenome id."""
    table = pd.read_csv(path, sep="\t", dtype={"epigenome": str})
    return table.set_index("epigenome")["deepchrome_test_auc"].astype(float)


def compare_published(
    metrics: xr.Dataset, published: str | Path | pd.Series = PUBLISHED
) -> xr.Dataset:
    """Add ``published_auc``, ``auroc_vs_published`` and ``n_beats_published``."""
    pub = published if isinstance(published, pd.Series) else read_published(published)
    cells = [str(c) for c in metrics[V.CELL].values]
    pub_auc = xr.DataArray(
        pub.reindex(cells).to_numpy(np.float64), dims=(V.CELL,), coords={V.CELL: metrics[V.CELL]}
    )
    diff = metrics["stat_auroc"].mean(V.REPEAT, skipna=True) - pub_auc
    return metrics.assign(
        published_auc=pub_auc,
        auroc_vs_published=diff,
        n_beats_published=(diff > 0).sum(V.CELL).astype(np.int64),
    )


# --- tables -------------------------------------------------------------------
def summary_table(metrics: xr.Dataset) -> pd.DataFrame:
    """One row per (model, summary row), one column per statistic, plus ``beats_published``."""
    df = metrics["stat_summary"].to_series().unstack(V.STAT)
    df = df.reindex(list(V.SUMMARY_ROWS), level=V.SUMMARY)
    stats = [s for s in metrics.attrs.get("stats", df.columns) if s in df.columns]
    df = df[stats]
    if "n_beats_published" in metrics:
        beats = metrics["n_beats_published"].to_series()
        n_pub = int(np.isfinite(metrics["published_auc"]).sum())
        df["beats_published"] = [
            f"{int(beats[m])}/{n_pub}" if s == "mean" else "" for m, s in df.index
        ]
    cells = metrics.sizes[V.CELL]
    df.insert(
        0,
        "epigenomes",
        [
            int(np.isfinite(metrics[f"stat_{stats[0]}"].sel({V.MODEL: m}).mean(V.REPEAT)).sum())
            if s == "mean"
            else cells
            for m, s in df.index
        ],
    )
    # over one epigenome median, min and max only repeat the mean: keep the mean row alone
    single = {m for m, s in df.index if s == "mean" and df.loc[(m, s), "epigenomes"] <= 1}
    return df[[s == "mean" or m not in single for m, s in df.index]]


def records(metrics: xr.Dataset) -> list[dict]:
    """One record per (model, cell): mean and std over repeats of each statistic."""
    out = []
    stats = [n.removeprefix("stat_") for n in metrics.data_vars if _is_stat(n)]
    for m in metrics[V.MODEL].values:
        for c in metrics[V.CELL].values:
            sel = metrics.sel({V.MODEL: m, V.CELL: c})
            rec: dict = {"model": str(m), "cell": str(c)}
            for s in stats:
                vals = sel[f"stat_{s}"].values
                rec[s] = _num(np.nanmean(vals) if np.isfinite(vals).any() else np.nan)
                rec[f"{s}_std"] = _num(np.nanstd(vals) if np.isfinite(vals).sum() > 1 else np.nan)
            rec["n_test"] = int(sel["stat_n_test"].values.mean())
            rec["repeats"] = int(sel.sizes[V.REPEAT])
            if "published_auc" in metrics:
                rec["published_auc"] = _num(sel["published_auc"].item())
                rec["auroc_vs_published"] = _num(sel["auroc_vs_published"].item())
            out.append(rec)
    return out


def _num(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 6)


def format_table(metrics: xr.Dataset, models: Sequence[str] | None = None) -> str:
    """The summary table as text (one block per model, rows mean/median/min/max; the mean
    alone for a model scored on one epigenome)."""
    df = summary_table(metrics)
    if models is not None:
        df = df.loc[list(models)]
    stats = [c for c in df.columns if c not in ("epigenomes", "beats_published")]
    head = f"{'model':<16} {'row':<7} {'cells':>5} " + " ".join(f"{s:>9}" for s in stats)
    if "beats_published" in df:
        head += "  beats DeepChrome (published)"
    lines = [head]
    for (m, s), row in df.iterrows():
        line = f"{m:<16} {s:<7} {int(row.epigenomes):>5} " + " ".join(
            f"{row[c]:>9.4f}" for c in stats
        )
        if "beats_published" in df and row.beats_published:
            line += f"  {row.beats_published}"
        lines.append(line)
    return "\n".join(lines)


# --- storage ------------------------------------------------------------------
def metrics_group(name: str) -> str:
    """The Zarr group of a run's reductions (:func:`chromestore.runs.metrics_group`)."""
    return R.metrics_group(name)


def write_metrics(
    metrics: xr.Dataset, store: str | Path, name: str, storage_options: dict | None = None
) -> str:
    """Write ``metrics`` to ``runs/NAME/metrics``, replacing earlier reductions whole (written
    beside them and swapped in under the run's lock); return the group."""
    out = metrics.copy()
    for k, v in list(out.variables.items()):  # variable-length strings: Zarr v3's string dtype
        if v.dtype.kind in "UTO":
            arr = np.asarray(v.values, dtype=np.dtypes.StringDType())
            if k in out.coords:
                out = out.assign_coords({k: (v.dims, arr, v.attrs)})
            else:
                out[k] = (v.dims, arr, v.attrs)
    out.attrs = R.jsonable(out.attrs)

    R.replace_child(
        store, name, R.METRICS, lambda target: write_checksummed(out, target), storage_options
    )
    return R.metrics_group(name)


def read_metrics(store: str | Path, name: str, storage_options: dict | None = None) -> xr.Dataset:
    """The reductions written by :func:`write_metrics`, loaded."""
    target = R.metrics_store(store, name, storage_options)
    return xr.open_zarr(
        target.url, zarr_format=3, consolidated=False, storage_options=target.storage_options
    ).load()


def cross_vs_within(cross: dict[str, float], within: dict[str, float]) -> pd.DataFrame:
    """Per epigenome: AUROC of a model trained on other epigenomes (cross, e.g. leave one
    epigenome out) against its own model's (within), and the difference; one row per cell.

    Examples
    --------
    >>> cross_vs_within({"E003": 0.86}, {"E003": 0.81}).round(2).values.tolist()
    [['E003', 0.81, 0.86, 0.05]]
    """
    cells = [c for c in within if c in cross]
    return pd.DataFrame(
        {
            "cell": cells,
            "within_auroc": [within[c] for c in cells],
            "cross_auroc": [cross[c] for c in cells],
            "cross_minus_within": [cross[c] - within[c] for c in cells],
        }
    )


def cross_vs_within_of(metrics: xr.Dataset) -> pd.DataFrame | None:
    """:func:`cross_vs_within` from analysed runs holding a model and its pooled version
    (``deepchrome`` and ``deepchrome-pooled``: ``analyze`` of a per-epigenome run and a
    ``--model pooled`` run together); None when there is no such pair."""
    if "stat_auroc" not in metrics:
        return None
    models = [str(m) for m in metrics[V.MODEL].values]
    pairs = [
        (m.removesuffix("-pooled"), m)
        for m in models
        if m.endswith("-pooled") and m.removesuffix("-pooled") in models
    ]
    if not pairs:
        return None
    within_model, cross_model = pairs[0]
    auroc = metrics["stat_auroc"].mean(V.REPEAT)
    cells = [str(c) for c in metrics[V.CELL].values]

    def per_cell(model):
        values = auroc.sel({V.MODEL: model}).values
        return {c: float(v) for c, v in zip(cells, values, strict=True) if np.isfinite(v)}

    table = cross_vs_within(per_cell(cross_model), per_cell(within_model))
    table.insert(1, "model", within_model)
    return table
