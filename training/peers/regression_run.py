"""``deepchrome-regression`` on a store: one model over several epigenomes, a ``task="regression"`` run.

The kernels are in :mod:`chromestore.training.peers.regression`; this module reads the
store, trains one model on the training epigenomes' training genes, predicts every
epigenome's test genes (the unseen ones too) and writes the run, with the model's own
command-line options, and is the runner of this ``pooled`` entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from chromestore import runs as R
from chromestore import variables as V
from chromestore.splits import assign_splits
from chromestore.store.dataset import open_store
from chromestore.training import weights as W
from chromestore.training.entry import ModelOption, PooledModel
from chromestore.training.peers.regression import DEFAULTS, cross_epigenome, store_kmers
from chromestore.training.request import TrainRequest

MODEL = "deepchrome-regression"
PREFIX = R.model_prefix(MODEL)


def _extra(what: str, dims: tuple, kind: str, dtype: str, doc: str) -> V.Spec:
    return V.Spec(PREFIX + what, dims, kind, dtype, doc, required=False)


EXTRAS = {
    "history_valid_mse": _extra(
        "history_valid_mse",
        (V.EPOCH,),
        "f",
        "float32",
        "Validation MSE of each epoch (one model for all epigenomes).",
    ),
    "unseen": _extra(
        "unseen", (V.CELL,), "b", "bool", "The epigenome was not among the training epigenomes."
    ),
    "mse": _extra("mse", (V.CELL,), "f", "float64", "Test-split MSE of log(RPKM + 1)."),
    "pearson": _extra("pearson", (V.CELL,), "f", "float64", "Test-split Pearson r."),
    "spearman": _extra("spearman", (V.CELL,), "f", "float64", "Test-split Spearman rho."),
}


def run_regression(
    store: str,
    name: str,
    train_cells: Sequence[str],
    test_cells: Sequence[str] = (),
    *,
    use_cell_stats: bool = False,
    fasta: str | None = None,
    split_scheme: str = "random",
    seed: int = 0,
    storage_options: dict | None = None,
    write: bool = True,
    transform: str = "log1p",
    existing: str = "refuse",
    **hyper,
) -> xr.Dataset:
    """Train one ``deepchrome-regression`` model on ``train_cells``; predict every cell's test genes.

    The run holds ``train_cells`` and ``test_cells`` (unseen epigenomes) along
    ``cell``; ``target`` is log(RPKM + 1); ``prediction`` is set on the test genes.
    Scores per cell are in ``deepchrome_regression_{mse,pearson,spearman}`` and the
    attrs say which cells were seen in training. With ``write`` the run and the model's
    weights are written as one unit (``existing``: :class:`chromestore.runs.RunWriter`).
    """
    args = (store, name, train_cells, test_cells, use_cell_stats, fasta, split_scheme, seed,
            storage_options, transform, hyper)  # fmt: skip
    if not write:
        return _regression(*args, None)
    with R.RunWriter(store, name, existing=existing, storage_options=storage_options) as writer:
        writer.expect([MODEL], split_scheme=split_scheme, seed=seed, label_rule="log(RPKM + 1)")
        run = _regression(*args, writer)
        writer.commit(run)
    return run


def _regression(
    store, name, train_cells, test_cells, use_cell_stats, fasta, split_scheme, seed,
    storage_options, transform, hyper, writer,
) -> xr.Dataset:  # fmt: skip
    t0 = time.time()
    cells = list(dict.fromkeys([*train_cells, *test_cells]))
    ds = open_store(store, storage_options).sel({V.CELL: cells})
    ds = assign_splits(ds, split_scheme, seed=seed)
    signal = ds[V.signal.name].values
    expr = ds[V.expression.name].values
    split = ds["split"].values[0]
    extra = store_kmers(ds, fasta) if fasta else None
    tr = [cells.index(c) for c in train_cells]
    res = cross_epigenome(
        signal,
        expr,
        split,
        tr,
        list(range(len(cells))),
        use_cell_stats=use_cell_stats,
        extra=extra,
        seed=seed,
        transform=transform,
        **hyper,
    )
    target = np.log1p(expr).astype(np.float32)
    excluded = ~np.isfinite(signal).all(axis=(2, 3)) | ~np.isfinite(target)
    pred = np.where(excluded, np.nan, res.prediction).astype(np.float32)
    n_ep, n_cells = len(res.fit.history_loss), len(cells)
    hp = {
        **DEFAULTS,
        **hyper,
        "cell_stats": use_cell_stats,
        "fasta": fasta,
        "transform": transform,
        "kmer_k": 3 if fasta else None,
        "n_channels": int(res.fit.model.net.conv.in_channels),
    }
    values = {
        "history_valid_mse": res.fit.history_valid_mse,
        "unseen": [c not in train_cells for c in cells],
        **{
            stat: [res.scores[i][stat] for i in range(n_cells)]
            for stat in ("mse", "pearson", "spearman")
        },
    }
    run = R.create_run_dataset(
        models=[MODEL],
        cells=cells,
        genes=ds[V.GENE].values.astype(object),
        prediction=pred[None, :, None],
        target=target,
        split=split[None],
        history_loss=np.broadcast_to(res.fit.history_loss, (1, n_cells, 1, n_ep)),
        history_valid_auc=np.full((1, n_cells, 1, n_ep), np.nan),
        best_epoch=np.full((1, n_cells, 1), res.fit.best_epoch),
        excluded=excluded,
        extras={EXTRAS[k]: v for k, v in values.items()},
        attrs=R.run_attrs(
            task="regression",
            models={MODEL: hp},
            split_scheme=split_scheme,
            seed=seed,
            label_rule="log(RPKM + 1)",
            packages=("torch", "scikit-learn", "numpy", "xarray"),
            wall_seconds={MODEL: time.time() - t0},
            mode="peers",
            device="cpu",
            train_cells=list(train_cells),
            test_cells=list(test_cells),
        ),
    )
    if writer is not None:
        state = {
            "state_dict": res.fit.model.state_dict(),
            "mean": torch.from_numpy(res.fit.mean),
            "scale": torch.from_numpy(res.fit.scale),
        }
        # one model for all training epigenomes: weights/<model>/<E003+E004+...>/0.pt
        W.save(writer.weights_target(MODEL, "+".join(train_cells), 0), state, ENTRY)
    return run


# --- the runner of this "pooled" entry (chromestore.training.request) ----------------------
def plan(request: TrainRequest, cluster: bool) -> tuple[TrainRequest, None]:
    """One model in this process: no cluster."""
    return request, None


def run(request: TrainRequest, client=None) -> str:
    """``--model deepchrome-regression [--cell-stats] [--fasta FA] [--train-cells --test-cells]``."""
    if (request.setting("normalise") or "none") != "none":
        raise ValueError(
            f"--normalise {request.setting('normalise')}: {MODEL} is one model over its "
            "training epigenomes, not an epigenome's own; train it without --normalise"
        )
    opts = request.options
    hyper = request.hyper(ENTRY.defaults)
    transform = hyper.pop("transform", ENTRY.defaults["transform"])
    train = opts.get("train_cells") or request.cells
    out = run_regression(
        request.store,
        request.run,
        train,
        opts.get("test_cells") or [],
        use_cell_stats=bool(opts.get("cell_stats")),
        fasta=opts.get("fasta"),
        split_scheme=request.split,
        seed=request.seed,
        transform=transform,
        storage_options=request.storage_options,
        existing=request.existing,
        **hyper,
    )
    lines = [
        f"run {request.run}: {MODEL} trained on {len(train)} epigenome(s) "
        f"({out.attrs['models'][MODEL]['n_channels']} channels), "
        f"{out.attrs['wall_seconds'][MODEL]:.1f} s"
    ]
    for c in out[V.CELL].values:
        seen = "unseen" if bool(out[PREFIX + "unseen"].sel({V.CELL: c})) else "seen"
        score = {s: float(out[PREFIX + s].sel({V.CELL: c})) for s in ("mse", "pearson", "spearman")}
        lines.append(
            f"  {c} ({seen}): test MSE {score['mse']:.4f}, "
            f"Pearson {score['pearson']:.4f}, Spearman {score['spearman']:.4f}"
        )
    return "\n".join(lines)


def regression_scorer(weights: Mapping, hp: Mapping, layout) -> Callable[[np.ndarray], np.ndarray]:
    """``deepchrome-regression``: predicted log(RPKM + 1); the epigenome's cell statistics
    appended when it was trained with them; a model trained with k-mers (``--fasta``) refuses."""
    from chromestore.training.peers import regression as G

    if hp.get("fasta"):
        raise ValueError(
            "this deepchrome-regression model reads k-mers of a genome FASTA "
            "(--fasta); predict supports models of histone marks only"
        )
    state = weights["state_dict"]
    n_channels = int(state["net.conv.weight"].shape[1])
    n_bins = int(weights.get("n_bins") or hp.get("n_bins") or 100)
    net = G.DeepChromeRegressor(n_channels, n_bins, float(hp.get("dropout", 0.5)))
    net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    net.eval()
    mean = np.asarray(weights["mean"], np.float32)
    scale = np.asarray(weights["scale"], np.float32)

    def score(x: np.ndarray) -> np.ndarray:
        if hp.get("cell_stats"):
            x = G.with_cell_stats(x)
        xs = torch.from_numpy(((x - mean) / scale).astype(np.float32))
        with torch.no_grad():
            return torch.cat([net(xs[i : i + 1024]) for i in range(0, len(xs), 1024)]).numpy()

    return score


ENTRY = PooledModel(
    MODEL,
    __name__,
    task="regression",
    scorer=regression_scorer,
    defaults={**DEFAULTS, "transform": "log1p"},
    paper="Singh et al. 2016 network, regression on log(RPKM + 1)",
    extras=tuple(EXTRAS.values()),
    options=(
        ModelOption(
            "--cell-stats",
            "Append each epigenome's per-mark, per-bin mean and std over "
            "genes as channels (5 → 15).",
            flag=True,
            default=False,
        ),
        ModelOption(
            "--fasta", "Genome FASTA; adds 3-mer counts per bin (64 channels).", type="path"
        ),
        ModelOption(
            "--train-cells", "Epigenomes to train one model on (E003,E004,…).", type="cells"
        ),
        ModelOption("--test-cells", "Unseen epigenomes to evaluate it on.", type="cells"),
    ),
)
