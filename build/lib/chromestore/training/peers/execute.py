"""Run the peer models on a store: one Dask task per (model, epigenome), or per bin for svm-bin.

Every task opens the store itself and reads only its epigenome's block (streaming
reads, as the trainer does), fits the model for each split repeat and returns plain
numpy results; :func:`run_peers` assembles them into the run layout shared by every
model (``runs/NAME``: ``prediction`` (model, cell, repeat, gene), ``target``,
``split``, ``history_*``, ``best_epoch``, ``excluded``, model-specific extras
prefixed with the model's name) and writes it into the store, with weights beside
it under ``runs/NAME/weights/<model>/<cell>/<repeat>.{pt,joblib}``.

Examples
--------
>>> run = run_peers("sim.zarr", "peers", ["shallowchrome", "rf-bestbin"])  # doctest: +SKIP
>>> run.prediction.sizes  # doctest: +SKIP
Frozen({'model': 2, 'cell': 56, 'repeat': 1, 'gene': 19802})
"""

from __future__ import annotations

import io
import os
import platform
import time
from collections.abc import Sequence

import dask
import fsspec
import joblib
import numpy as np
import xarray as xr
from sklearn.metrics import roc_auc_score

import chromestore
from chromestore import variables as V
from chromestore.runs import jsonable
from chromestore.training.peers import PAPERS
from chromestore.training.peers import attentivechrome as AC
from chromestore.training.peers import baselines as BL
from chromestore.training.peers import shallowchrome as SC

#: The peer models this module runs, with the paper each reproduces.
MODELS = {k: v for k, v in PAPERS.items() if k != "deepchrome-regression"}


def prefix(model: str) -> str:
    """Prefix of a model's extra variables in a run: ``svm-bin`` → ``svm_bin_``."""
    return model.replace("-", "_") + "_"


# --- reading one epigenome ----------------------------------------------------
def read_cell(
    store: str, cell: str, genes: np.ndarray, storage_options: dict | None = None,
    peaks: bool = True,
) -> dict:
    """One epigenome's ``signal`` (gene, mark, bin) and ``peak_max`` (gene, mark) for ``genes``."""
    ds = chromestore.open_store(store, storage_options)
    sub = ds.isel({V.GENE: genes}).sel({V.CELL: cell})
    out = {"signal": sub[V.signal.name].values.astype(np.float32)}
    pk = sub[V.peak_max.name].values.astype(np.float32) if peaks else None
    out["peak_max"] = pk if pk is not None and np.isfinite(pk).any() else None
    return out


def read_cell_max(
    store: str, cell: str, genes, storage_options: dict | None = None,
) -> dict:
    """ShallowChrome's inputs of one epigenome, reduced chunk by chunk as they are read.

    ``signal_max`` (gene, mark): the max over bins of ``signal`` (NaN bins ignored, NaN
    where a window has none); ``finite`` (gene,): every bin of every mark is finite;
    ``peak_max`` (gene, mark) or None when no peaks were ingested. The (gene, mark, bin)
    block is never held whole, only one chunk at a time.
    """
    import warnings

    ds = chromestore.open_store(store, storage_options)
    sub = ds.isel({V.GENE: genes}).sel({V.CELL: cell})
    sig = sub[V.signal.name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows → NaN
        smax, finite, pk = dask.compute(
            sig.max(V.BIN, skipna=True).data, sig.notnull().all([V.MARK, V.BIN]).data,
            sub[V.peak_max.name].data, scheduler="synchronous",
        )
    pk = np.asarray(pk, dtype=np.float32)
    return {"signal_max": np.asarray(smax, dtype=np.float64), "finite": np.asarray(finite),
            "peak_max": pk if np.isfinite(pk).any() else None}


# --- per-model kernels over repeats -------------------------------------------
def _auc(y, score) -> float:
    return float(roc_auc_score(y, score)) if np.unique(y).size == 2 else float("nan")


def _fit_shallowchrome(data: dict, y, split, hp: dict, seed: int) -> dict:
    if data["peak_max"] is not None:
        X, source = data["peak_max"].astype(np.float64), "peak_max"
    elif "signal_max" in data:
        X, source = data["signal_max"], "max over bins of signal"
    else:
        X, source = SC.max_signal_features(data["signal"]), "max over bins of signal"
    R = split.shape[0]
    out = {k: [] for k in ("prediction", "coef", "stderr", "pvalue", "intercept",
                           "intercept_stderr", "intercept_pvalue", "pattern", "valid_auc",
                           "loss", "weights")}
    for r in range(R):
        tr = split[r] == V.TRAIN
        fit = SC.fit_logistic(X[tr], y[tr], tol=hp["tol"], max_iter=hp["max_iter"])
        p = fit.predict_proba(X)
        pattern, _ = SC.regulative_patterns(fit, X)
        va = split[r] == V.VALID
        eps = 1e-12
        loss = -np.mean(y[tr] * np.log(p[tr] + eps) + (1 - y[tr]) * np.log(1 - p[tr] + eps))
        for k, v in (("prediction", p), ("coef", fit.coef), ("stderr", fit.stderr),
                     ("pvalue", fit.pvalue), ("intercept", fit.intercept),
                     ("intercept_stderr", fit.intercept_stderr),
                     ("intercept_pvalue", fit.intercept_pvalue), ("pattern", pattern),
                     ("valid_auc", _auc(y[va], p[va])), ("loss", loss), ("weights", fit)):
            out[k].append(v)
    out["feature"] = X
    out["source"] = source
    return out


def _fit_rf(data: dict, y, split, hp: dict, seed: int, expression) -> dict:
    out = {k: [] for k in ("prediction", "bin", "n_trees", "importance", "valid_auc",
                           "loss", "weights")}
    for r in range(split.shape[0]):
        res = BL.rf_bestbin(data["signal"], y, split[r], expression,
                            trees=tuple(hp["trees"]), seed=seed + r)
        for k, v in (("prediction", res.score), ("bin", res.bins), ("n_trees", res.n_trees),
                     ("importance", res.importance), ("valid_auc", res.valid_auc),
                     ("loss", np.nan), ("weights", res)):
            out[k].append(v)
    return out


def _fit_svm_bin(features: np.ndarray, y, split, grid: dict) -> list[BL.SvmBinFit]:
    """All repeats of one (cell, bin): one Dask task."""
    return [BL.svm_fit_bin(features, y, split[r], grid) for r in range(split.shape[0])]


def _collect_svm(per_bin: list[list[BL.SvmBinFit]], y, split) -> dict:
    out = {k: [] for k in ("prediction", "valid_auc_bin", "test_auc_bin", "best_bin", "C",
                           "gamma", "valid_auc", "loss", "weights")}
    for r in range(split.shape[0]):
        fits = [b[r] for b in per_bin]
        res = BL.svm_collect(fits, y, split[r])
        for k, v in (("prediction", res.score), ("valid_auc_bin", res.valid_auc),
                     ("test_auc_bin", res.test_auc), ("best_bin", res.best_bin),
                     ("C", [f.C for f in fits]), ("gamma", [f.gamma for f in fits]),
                     ("valid_auc", res.valid_auc[res.best_bin]), ("loss", np.nan),
                     ("weights", {"best_bin": res.best_bin, "model": fits[res.best_bin].model,
                                  "log1p_mean": fits[res.best_bin].mean,
                                  "log1p_scale": fits[res.best_bin].scale})):
            out[k].append(v)
    return out


def _fit_attentive(data: dict, y, split, hp: dict, seed: int) -> dict:
    out = {k: [] for k in ("prediction", "attention_bin", "attention_mark", "valid_auc",
                           "history_loss", "history_valid_auc", "best_epoch", "weights")}
    for r in range(split.shape[0]):
        fit = AC.fit_attentivechrome(data["signal"], y, split[r], seed=seed + r, **hp)
        for k, v in (("prediction", fit.score), ("attention_bin", fit.bin_attention),
                     ("attention_mark", fit.mark_attention),
                     ("valid_auc", fit.valid_auc),
                     ("history_loss", fit.history_loss),
                     ("history_valid_auc", fit.history_valid_auc),
                     ("best_epoch", fit.best_epoch),
                     # one state dict per ensemble member
                     ("weights", [m.state_dict() for m in fit.models])):
            out[k].append(v)
    return out


DEFAULT_HYPER = {
    "shallowchrome": dict(SC.DEFAULTS),
    "svm-bin": {"grid": {k: list(v) for k, v in BL.SVM_GRID.items()}, "features": "log1p, standardised"},
    "rf-bestbin": {"trees": list(BL.RF_TREES), "correlation": "pearson with log(RPKM+1)"},
    "attentivechrome": dict(AC.DEFAULTS),
}

#: Outputs of the per-cell kernels that have a gene dim (first axis after repeat).
_GENE_KEYS = ("prediction", "pattern", "attention_bin", "attention_mark")


def _scatter(out: dict, keep: np.ndarray) -> dict:
    """Put the kept genes' outputs back at their place among all genes (NaN elsewhere)."""
    n = keep.size
    for k in _GENE_KEYS:
        if k in out:
            vals = []
            for v in out[k]:
                v = np.asarray(v, dtype=np.float32)
                full = np.full((n, *v.shape[1:]), np.nan, dtype=np.float32)
                full[keep] = v
                vals.append(full)
            out[k] = vals
    if "feature" in out:
        full = np.full((n, *out["feature"].shape[1:]), np.nan, dtype=np.float32)
        full[keep] = out["feature"]
        out["feature"] = full
    out["keep"] = keep
    return out


def _cell_job(model, store, cell, genes, label, valid, split, hp, seed, expression, so):
    """One (model, cell) task: read, drop genes with missing signal or label, fit, scatter."""
    if model == "shallowchrome":  # only the max over bins is needed: reduce while reading
        data = read_cell_max(store, cell, genes, so)
        keep = data["finite"] & valid
        sub = {"signal_max": data["signal_max"][keep]}
    else:
        data = read_cell(store, cell, genes, so, peaks=False)
        keep = np.isfinite(data["signal"]).all(axis=(1, 2)) & valid
        sub = {"signal": data["signal"][keep]}
    sub["peak_max"] = None if data["peak_max"] is None else data["peak_max"][keep]
    y, sp = label[keep].astype(int), split[:, keep]
    expr = None if expression is None else expression[keep]
    if model == "shallowchrome":
        out = _fit_shallowchrome(sub, y, sp, hp, seed)
    elif model == "rf-bestbin":
        out = _fit_rf(sub, y, sp, hp, seed, expr)
    elif model == "attentivechrome":
        out = _fit_attentive(sub, y, sp, hp, seed)
    else:
        raise ValueError(f"unknown peer model {model!r}")
    return _scatter(out, keep)


#: Bins fitted per ``svm-bin`` task: enough tasks to spread one epigenome over the workers,
#: few enough that scheduling and reading stay small next to the SVM fits.
SVM_BINS_PER_TASK = 10


def _svm_read(store, cell, genes, valid, so):
    """One epigenome's signal (kept gene, mark, bin) and the kept-gene mask, read once."""
    ds = chromestore.open_store(store, so)
    sig = ds[V.signal.name].isel({V.GENE: genes}).sel({V.CELL: cell}).values
    keep = np.isfinite(sig).all(axis=(1, 2)) & valid
    return sig[keep], keep


def _svm_block(read, bins, label, split, grid):
    feats, keep = read
    y, sp = label[keep].astype(int), split[:, keep]
    return [_fit_svm_bin(feats[:, :, b], y, sp, grid) for b in bins]


def _svm_cell(blocks, read, label, split):
    keep = read[1]
    per_bin = [fit for block in blocks for fit in block]
    out = _collect_svm(per_bin, label[keep].astype(int), split[:, keep])
    return _scatter(out, keep)


def run_peers(
    store: str | os.PathLike,
    name: str,
    models: Sequence[str],
    cells: Sequence[str] | str = "all",
    *,
    genes: Sequence[str] | None = None,
    split_scheme: str = "random",
    seed: int = 0,
    label_rule: str | float = "median",
    hyper: dict | None = None,
    storage_options: dict | None = None,
    write: bool = True,
) -> xr.Dataset:
    """Fit peer ``models`` on ``cells`` of ``store`` as Dask tasks and write ``runs/NAME``.

    Labels (``label_rule``) are computed on all the store's genes; the run then keeps
    ``genes`` (all by default), split with ``split_scheme`` and ``seed`` among them.
    A gene whose signal is missing in an epigenome is ``excluded`` there (never fitted,
    prediction NaN). Tasks go to the active ``distributed`` client if there is one
    (see :func:`chromestore.app.cluster.connect`), else to Dask's local scheduler.
    Returns the run as written (loaded).
    """
    t0 = time.time()
    store = os.fspath(store)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown peer model(s) {unknown}; choose from {sorted(MODELS)}")
    hyper = hyper or {}
    hp = {m: {**{k: v for k, v in DEFAULT_HYPER[m].items()}, **hyper.get(m, {})} for m in models}
    ds = chromestore.open_store(store, storage_options)
    all_cells = ds[V.CELL].values.astype(object).tolist()
    if isinstance(cells, str):
        cells = all_cells if cells == "all" else cells.split(",")
    missing = sorted(set(cells) - set(all_cells))
    if missing:
        raise ValueError(f"cells not in the store: {missing}")
    ds = chromestore.compute_labels(ds.sel({V.CELL: list(cells)}), label_rule)
    gene_names = ds[V.GENE].values.astype(object)
    if genes is not None:
        pos = {g: i for i, g in enumerate(gene_names)}
        absent = [g for g in genes if g not in pos]
        if absent:
            raise ValueError(f"{len(absent)} genes not in the store, e.g. {absent[:3]}")
        gidx = np.array([pos[g] for g in genes], dtype=np.int64)
        if np.array_equal(gidx, np.arange(len(gene_names))):
            gidx = slice(None)
        ds = ds.isel({V.GENE: gidx})
    else:
        gidx = slice(None)  # all genes: contiguous reads, no fancy indexing
    ds = chromestore.assign_splits(ds, split_scheme, seed=seed)
    label, valid, expr, split = dask.compute(
        ds["label"], ds["label_valid"], ds[V.expression.name], ds["split"]
    )
    label, valid, expr = label.values, valid.values, expr.values
    split = split.values.astype(np.int8)
    n_bins = ds.sizes[V.BIN]

    tasks = {}
    for m in models:
        for ci, c in enumerate(cells):
            if m == "svm-bin":
                read = dask.delayed(_svm_read)(store, c, gidx, valid[ci], storage_options)
                blocks = [
                    dask.delayed(_svm_block)(
                        read, range(b, min(b + SVM_BINS_PER_TASK, n_bins)), label[ci], split,
                        hp[m]["grid"],
                    )
                    for b in range(0, n_bins, SVM_BINS_PER_TASK)
                ]
                tasks[m, c] = dask.delayed(_svm_cell)(blocks, read, label[ci], split)
            else:
                tasks[m, c] = dask.delayed(_cell_job)(
                    m, store, c, gidx, label[ci], valid[ci], split, hp[m], seed,
                    expr[ci], storage_options,
                )
    keys = list(tasks)
    results = dict(zip(keys, dask.compute(*tasks.values()), strict=True))
    run = assemble(results, models, list(cells), ds, label, valid, split, hp)
    run.attrs.update(
        task="classification",
        models={m: {"paper": MODELS[m], **jsonable(hp[m], nonfinite_as_str=True)} for m in models},
        split_scheme=split_scheme,
        seed=int(seed),
        label_rule=str(label_rule),
        versions=_versions(),
        wall_seconds={m: float(time.time() - t0) for m in models},
        mode="peers",
        device="cpu",
    )
    if "shallowchrome" in models:
        run.attrs["shallowchrome_feature"] = sorted(
            {results["shallowchrome", c]["source"] for c in cells}
        )
    if write:
        write_run(run, store, name, storage_options)
        save_weights(results, store, name, storage_options)
    return run


def assemble(results, models, cells, ds, label, valid, split, hp) -> xr.Dataset:
    """Stack the per-(model, cell) results into the run layout."""
    M, C, R, G = len(models), len(cells), split.shape[0], split.shape[1]
    marks = ds[V.MARK].values.astype(object)
    n_bins = ds.sizes[V.BIN]
    n_epoch = max(
        [1] + [len(h) for (m, c), res in results.items() for h in res.get("history_loss", [])]
    )
    pred = np.full((M, C, R, G), np.nan, np.float32)
    h_loss = np.full((M, C, R, n_epoch), np.nan, np.float32)
    h_auc = np.full((M, C, R, n_epoch), np.nan, np.float32)
    best = np.zeros((M, C, R), np.int16)
    excluded = np.ones((C, G), bool)
    for mi, m in enumerate(models):
        for ci, c in enumerate(cells):
            res = results[m, c]
            pred[mi, ci] = np.stack(res["prediction"])
            excluded[ci] &= ~res["keep"]
            if "history_loss" in res:
                for r in range(R):
                    n = len(res["history_loss"][r])
                    h_loss[mi, ci, r, :n] = res["history_loss"][r]
                    h_auc[mi, ci, r, :n] = res["history_valid_auc"][r]
                    best[mi, ci, r] = res["best_epoch"][r]
            else:
                h_loss[mi, ci, :, 0] = res["loss"]
                h_auc[mi, ci, :, 0] = res["valid_auc"]
    target = np.where(valid, label.astype(np.float32), np.nan).astype(np.float32)
    coords = {
        "model": np.array(models, dtype=object),
        V.CELL: np.array(cells, dtype=object),
        V.GENE: ds[V.GENE].values.astype(object),
        V.MARK: marks,
        V.BIN: np.arange(n_bins),
    }
    run = xr.Dataset(
        {
            "prediction": (("model", V.CELL, V.REPEAT, V.GENE), pred),
            "target": ((V.CELL, V.GENE), target),
            "split": ((V.REPEAT, V.GENE), split),
            "history_loss": (("model", V.CELL, V.REPEAT, "epoch"), h_loss),
            "history_valid_auc": (("model", V.CELL, V.REPEAT, "epoch"), h_auc),
            "best_epoch": (("model", V.CELL, V.REPEAT), best),
            "excluded": ((V.CELL, V.GENE), excluded),
        },
        coords=coords,
    )
    cr = (V.CELL, V.REPEAT)

    def stack(m, key, dtype=np.float32):
        return np.stack([np.asarray(results[m, c][key], dtype=dtype) for c in cells])

    if "shallowchrome" in models:
        p = prefix("shallowchrome")
        for k in ("coef", "stderr", "pvalue"):
            run[p + k] = ((*cr, V.MARK), stack("shallowchrome", k, np.float64))
        for k in ("intercept", "intercept_stderr", "intercept_pvalue"):
            run[p + k] = (cr, stack("shallowchrome", k, np.float64))
        run[p + "pattern"] = ((*cr, V.GENE, V.MARK), stack("shallowchrome", "pattern"))
        run[p + "feature"] = ((V.CELL, V.GENE, V.MARK), stack("shallowchrome", "feature"))
    if "svm-bin" in models:
        p = prefix("svm-bin")
        for k in ("valid_auc_bin", "test_auc_bin", "C", "gamma"):
            run[p + k] = ((*cr, V.BIN), stack("svm-bin", k))
        run[p + "best_bin"] = (cr, stack("svm-bin", "best_bin", np.int16))
    if "rf-bestbin" in models:
        p = prefix("rf-bestbin")
        run[p + "bin"] = ((*cr, V.MARK), stack("rf-bestbin", "bin", np.int16))
        run[p + "importance"] = ((*cr, V.MARK), stack("rf-bestbin", "importance"))
        run[p + "n_trees"] = (cr, stack("rf-bestbin", "n_trees", np.int16))
    if "attentivechrome" in models:
        p = prefix("attentivechrome")
        run[p + "attention_bin"] = (
            (*cr, V.GENE, V.MARK, V.BIN), stack("attentivechrome", "attention_bin"))
        run[p + "attention_mark"] = (
            (*cr, V.GENE, V.MARK), stack("attentivechrome", "attention_mark"))
        # the ensemble's validation AUC (history_* and best_epoch are its first member's)
        run[p + "valid_auc"] = (cr, stack("attentivechrome", "valid_auc"))
    return run


def run_group(name: str) -> str:
    return f"runs/{name}"


def write_run(run: xr.Dataset, store: str, name: str, storage_options: dict | None = None) -> str:
    """Write ``run`` into the store's ``runs/NAME`` group.

    With :mod:`chromestore.runs` (the trainer's run store) the peer models are merged
    into an existing run of that name beside other models; without it the group is
    written whole.
    """
    try:
        from chromestore import runs as _runs
    except ImportError:
        _runs = None
    if _runs is not None:
        _runs.write_run(store, name, run, storage_options)
        return run_group(name)
    out = run.copy()
    for k, v in list(out.variables.items()):
        if v.dtype.kind in "UTO":
            arr = np.asarray(v.values.astype(str), dtype=np.dtypes.StringDType())
            if k in out.coords:
                out = out.assign_coords({k: (v.dims, arr, v.attrs)})
            else:
                out[k] = (v.dims, arr, v.attrs)
    out.attrs = jsonable(out.attrs, nonfinite_as_str=True)
    out.to_zarr(store, group=run_group(name), mode="w", zarr_format=3, consolidated=False,
                storage_options=storage_options)
    return run_group(name)


def open_peer_run(store: str, name: str, storage_options: dict | None = None) -> xr.Dataset:
    """A run written by :func:`write_run`, lazily (``chromestore.open_run`` reads it too)."""
    return xr.open_zarr(store, group=run_group(name), zarr_format=3, consolidated=False,
                        storage_options=storage_options)


def save_weights(results: dict, store: str, name: str, storage_options=None) -> list[str]:
    """Fitted models beside the run: ``weights/<model>/<cell>/<repeat>.{pt,joblib}``."""
    written = []
    for (m, c), res in results.items():
        for r, w in enumerate(res["weights"]):
            if m in ("attentivechrome", "deepchrome-regression"):
                import torch

                buf = io.BytesIO()
                torch.save(w, buf)
                ext, payload = "pt", buf.getvalue()
            else:
                buf = io.BytesIO()
                joblib.dump(w, buf)
                ext, payload = "joblib", buf.getvalue()
            path = f"{store.rstrip('/')}/{run_group(name)}/weights/{m}/{c}/{r}.{ext}"
            fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
            fs.makedirs(p.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(p, "wb") as f:
                f.write(payload)
            written.append(path)
    return written


def _versions() -> dict:
    import sklearn

    return {"chromestore": chromestore.__version__ if hasattr(chromestore, "__version__") else
            _pkg_version("chromestore"), "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "xarray": xr.__version__, "python": platform.python_version()}


def _pkg_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
