"""Score genes of any epigenome with a fitted model: from a run's weights or an exported folder.

A :class:`Predictor` holds one model's fitted members (the repeats of one epigenome's
model, or of a pooled model), the marks and bin layout it was trained on, its input
transform and optional per-epigenome normalisation. ``predict(dataset)`` takes an xarray
Dataset with ``signal (cell, gene, mark, bin)`` (marks matched by name and reordered) and
returns a ``(cell, gene)`` DataArray: P(high expression) for classifiers, predicted
log RPKM for the regression model, the mean over members. Genes whose signal has a NaN in
a cell get NaN.

How a member turns signal into scores is its registry entry's: ``entry.scorer(weights,
hparams, layout)`` if it has one, else the default of its type (:func:`make_scorer`).
:func:`predict_store` runs one Dask task per epigenome; :func:`write_predictions` keeps
the scores at ``runs/NAME/predictions`` (:func:`chromestore.runs.predictions_store`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from chromestore import runs as R
from chromestore import variables as V
from chromestore.bins import WindowLayout
from chromestore.store import Store, StoreLike, open_store
from chromestore.store.records import provenance
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.entry import ArraysModel, Estimator, ModelEntry, PooledModel, TorchModel

TRANSFORMS = ("raw", "log1p")


class PredictError(ValueError):
    """A model cannot be chosen or applied (ambiguous run, missing mark, bin mismatch)."""


# --- scorers: fitted weights → (genes, marks, bins) signal → scores ----------------------
def torch_scorer(
    entry: TorchModel, weights: Any, hp: Mapping, layout: WindowLayout | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Default scorer of a :class:`TorchModel`: its factory's module with the member's state
    dict. Classifiers give softmax P(class 1); a one-output network gives its value."""
    import torch

    state = weights["state_dict"]
    own = {k: v for k, v in (weights.get("hparams") or {}).items() if k in entry.defaults}
    net = entry.build(n_marks=int(weights["n_marks"]), n_bins=int(weights["n_bins"]), **own)
    net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    net.eval()

    def score(x: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(x), 1024):
                y = net(torch.as_tensor(x[start : start + 1024], dtype=torch.float32))
                y = y[0] if isinstance(y, tuple) else y
                out.append(
                    (
                        torch.softmax(y, -1)[:, 1]
                        if y.ndim == 2 and y.shape[1] == 2
                        else y.reshape(len(y))
                    ).numpy()
                )
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return score


def estimator_scorer(
    entry: ArraysModel, weights: Any, hp: Mapping, layout: WindowLayout | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Default scorer of an :class:`ArraysModel` fitted as an :class:`Estimator`:
    ``predict_proba`` of the fitted estimator on the entry's ``features(signal, layout)``
    (flattened marks × bins by default)."""
    features = entry.fit.features

    def score(x: np.ndarray) -> np.ndarray:
        X = features(x, layout) if features is not None else x.reshape(len(x), -1)
        p = np.asarray(weights.predict_proba(X), np.float32)
        return p[:, 1] if p.ndim == 2 else p  # scikit-learn's (n, 2) or P(class 1) alone

    return score


def make_scorer(
    entry: ModelEntry, weights: Any, hp: Mapping, layout: WindowLayout | None
) -> Callable[[np.ndarray], np.ndarray]:
    """The scoring function of one fitted member: the entry's own scorer, else its type's
    default (a :class:`TorchModel`'s network; an :class:`Estimator`'s ``predict_proba``);
    a clear error for an entry that has none."""
    if entry.scorer is not None:
        return entry.scorer(weights, hp, layout)
    if isinstance(entry, TorchModel):
        return torch_scorer(entry, weights, hp, layout)
    if isinstance(entry, ArraysModel) and isinstance(entry.fit, Estimator):
        return estimator_scorer(entry, weights, hp, layout)
    raise PredictError(
        f"model {entry.name!r} ({entry.kind}) cannot predict: its registry entry has no scorer"
    )


# --- the predictor ----------------------------------------------------------------------
@dataclass
class Predictor:
    """One fitted model ready to score epigenomes (picklable: weights, not closures).

    ``normalisation``: None, or ``{"kind": "per-epigenome", "stats": ...}`` (see
    :func:`normalise`); ``spec`` keeps what :mod:`chromestore.training.export` writes.
    """

    model: str
    task: str
    marks: list[str]
    bin_offset: list[int]
    transform: str
    hparams: dict
    members: list[Any]
    train_cells: list[str] = field(default_factory=list)
    normalisation: dict | None = None
    spec: dict = field(default_factory=dict)

    @property
    def n_bins(self) -> int:
        return len(self.bin_offset)

    @property
    def layout(self) -> WindowLayout:
        """The bins it was trained on, around the TSS (what its features see)."""
        return WindowLayout.from_offsets(
            self.bin_offset, self.spec.get("window"), self.spec.get("bin_size")
        )

    def _scorers(self) -> list[Callable[[np.ndarray], np.ndarray]]:
        if getattr(self, "_built", None) is None:
            entry, layout = registry.get(self.model), self.layout
            self._built = [make_scorer(entry, w, self.hparams, layout) for w in self.members]
        return self._built

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_built"}

    def align(self, ds: xr.Dataset) -> xr.DataArray:
        """``ds.signal`` with this model's marks in its order; errors name what does not fit."""
        if V.signal.name not in ds:
            raise PredictError("the dataset has no 'signal' variable (cell, gene, mark, bin)")
        sig = ds[V.signal.name]
        have = [str(m) for m in sig[V.MARK].values]
        missing = [m for m in self.marks if m not in have]
        if missing:
            raise PredictError(
                f"the dataset lacks mark(s) {missing} that model {self.model!r} "
                f"reads (it has {have}; the model needs {self.marks})"
            )
        if sig.sizes[V.BIN] != self.n_bins:
            raise PredictError(
                f"bin layout mismatch: the dataset has {sig.sizes[V.BIN]} bins, "
                f"model {self.model!r} was trained on {self.n_bins}"
            )
        if V.bin_offset.name in ds.variables:
            offsets = [int(v) for v in ds[V.bin_offset.name].values]
            if offsets != list(self.bin_offset):
                raise PredictError(
                    f"bin layout mismatch: the dataset's bins start at {offsets[:2]}… "
                    f"(bin size {_step(offsets)}), model {self.model!r} was trained on bins at "
                    f"{list(self.bin_offset[:2])}… (bin size {_step(self.bin_offset)})"
                )
        mine, theirs = self.spec.get("orientation"), ds.attrs.get("orientation")
        if mine and theirs and mine != theirs:
            raise PredictError(
                f"bin orientation mismatch: the dataset's bins are {theirs!r}, "
                f"model {self.model!r} was trained on {mine!r} bins"
            )
        return sig.sel({V.MARK: self.marks}).transpose(V.CELL, V.GENE, V.MARK, V.BIN)

    def score_array(self, signal: np.ndarray, cell: str | None = None) -> np.ndarray:
        """Scores of one epigenome's ``(genes, marks, bins)`` signal (marks already aligned);
        NaN for genes with a NaN."""
        signal = np.asarray(signal, np.float32)
        ok = np.isfinite(signal).all(axis=(1, 2))
        out = np.full(len(signal), np.nan, np.float32)
        if not ok.any():
            return out
        x = signal[ok]
        if self.transform == "log1p":
            x = np.log1p(np.clip(x, 0, None))
        x = normalise(x, self.normalisation)
        out[ok] = np.mean([s(x) for s in self._scorers()], axis=0)
        return out

    def predict(self, dataset: xr.Dataset) -> xr.DataArray:
        """Scores ``(cell, gene)`` of every epigenome of ``dataset`` (computed here)."""
        sig = self.align(dataset)
        values = (
            np.stack(
                [self.score_array(sig.isel({V.CELL: i}).values) for i in range(sig.sizes[V.CELL])]
            )
            if sig.sizes[V.CELL]
            else np.zeros((0, sig.sizes[V.GENE]), np.float32)
        )
        return score_array(values, sig[V.CELL].values, sig[V.GENE].values, self)


def _step(offsets: Sequence[int]) -> int | None:
    return int(offsets[1] - offsets[0]) if len(offsets) > 1 else None


def normalise(x: np.ndarray, normalisation: dict | None) -> np.ndarray:
    """Per-epigenome input normalisation of ``x (genes, marks, bins)``, by the epigenome's
    own statistics over its genes: ``{"kind": "per-epigenome"}`` standardises each mark ×
    bin (mean 0, std 1), ``"per-epigenome-scale"`` divides it by its mean; None: as is."""
    if not normalisation:
        return x
    kind = normalisation.get("kind")
    mean = x.mean(axis=0, keepdims=True)
    if kind == "per-epigenome":
        std = x.std(axis=0, keepdims=True)
        return ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    if kind == "per-epigenome-scale":
        return (x / np.where(mean > 0, mean, 1.0)).astype(np.float32)
    raise PredictError(f"unknown normalisation {kind!r}")


def score_array(values: np.ndarray, cells, genes, predictor: Predictor) -> xr.DataArray:
    """The ``score`` DataArray laid out by :data:`chromestore.variables.score`."""
    return xr.DataArray(
        np.asarray(values, np.float32),
        dims=V.score.dims,
        coords={
            V.CELL: np.asarray([str(c) for c in cells], object),
            V.GENE: np.asarray([str(g) for g in genes], object),
        },
        name=V.score.name,
        attrs={
            "description": V.score.doc,
            "model": predictor.model,
            "task": predictor.task,
            "train_cells": list(predictor.train_cells),
        },
    )


# --- a predictor from a run -----------------------------------------------------------------
def run_models(run: xr.Dataset) -> list[tuple[str, str]]:
    """The (model, epigenome) pairs of a run that can be chosen for prediction."""
    pooled = run.attrs.get("pooled_models") or {}
    trained_on = run.attrs.get("train_cells")
    pairs = []
    for model in [str(m) for m in run[V.MODEL].values]:
        entry = registry.find(model)
        if model in pooled:
            pairs.append((model, pooled[model]["key"]))
        elif trained_on and isinstance(entry, PooledModel):
            pairs.append((model, "+".join(trained_on)))
        else:
            pairs += [(model, str(c)) for c in run[V.CELL].values]
    return pairs


def choose(run: xr.Dataset, name: str, model: str | None, from_cell: str | None) -> tuple[str, str]:
    """The one (model, weights key) that ``--model``/``--from-cell`` name in run ``name``."""
    pairs = run_models(run)
    hits = [
        (m, c)
        for m, c in pairs
        if (model is None or m == model)
        and (from_cell is None or c == from_cell or from_cell in c.split("+"))
    ]
    if len(hits) == 1:
        return hits[0]
    listing = ", ".join(f"{m} from {c}" for m, c in pairs)
    if not hits:
        raise PredictError(
            f"run {name!r} has no model {model or ''} from "
            f"{from_cell or 'any epigenome'}; it has: {listing}"
        )
    raise PredictError(
        f"run {name!r} holds {len(hits)} models; choose one with --from-cell "
        f"(or --model): {listing}"
    )


def from_run(
    store: StoreLike,
    name: str,
    *,
    model: str | None = None,
    from_cell: str | None = None,
    storage_options: Mapping | None = None,
) -> Predictor:
    """The predictor of one model in run ``name`` (``from_cell``: which epigenome's, in a
    per-epigenome run; a pooled model needs none). All its repeats are members."""
    store = Store.of(store, storage_options)
    run = R.open_run(store, name)
    model, key = choose(run, name, model, from_cell)
    pooled = (run.attrs.get("pooled_models") or {}).get(model, {})
    entry = registry.get(pooled.get("base", model))
    ds = open_store(store)
    hp = dict((run.attrs.get("models") or {}).get(model, {}))
    members = []
    for r in range(run.sizes.get(V.REPEAT, 1)):
        try:
            members.append(W.load_weights(store, name, model, key, r, entry.codec))
        except FileNotFoundError:
            break
    if not members:
        raise PredictError(
            f"run {name!r} keeps no weights of {model} from {key} (was it "
            "trained to the end, with a run name?)"
        )
    first = members[0] if isinstance(members[0], dict) else {}
    return Predictor(
        model=entry.name,
        task=entry.task,
        marks=[str(m) for m in ds[V.MARK].values],
        bin_offset=[int(v) for v in ds[V.bin_offset.name].values],
        transform=str(first.get("transform", hp.get("transform", "raw"))),
        hparams=R.jsonable(hp, nonfinite_as_str=True),
        members=members,
        train_cells=key.split("+"),
        normalisation=pooled.get("normalisation"),
        spec={
            "run": name,
            "run_model": model,
            "label_rule": run.attrs.get("label_rule"),
            "split_scheme": run.attrs.get("split_scheme"),
            "seed": run.attrs.get("seed"),
            "window": ds.attrs.get("window"),
            "bin_size": ds.attrs.get("bin_size"),
            "genome": ds.attrs.get("genome"),
            "orientation": ds.attrs.get("orientation"),
            "provenance": {
                "store": store.url,
                "created": ds.attrs.get("created"),
                "genes_source": ds.attrs.get("genes_source"),
                "signal": {
                    f"{c}/{m}": v for (c, m), v in provenance(ds).items() if c in key.split("+")
                },
            },
            "versions": run.attrs.get("versions"),
        },
    )


# --- scoring a store ---------------------------------------------------------------------------
def _score_cell(store: Store, cell: str, predictor: Predictor) -> np.ndarray:
    ds = open_store(store)
    sig = predictor.align(ds.sel({V.CELL: [cell]}))
    return predictor.score_array(sig.isel({V.CELL: 0}).values)


def predict_store(
    store: StoreLike,
    predictor: Predictor,
    cells: Sequence[str],
    client=None,
    storage_options: Mapping | None = None,
) -> xr.DataArray:
    """Scores ``(cell, gene)`` of ``cells`` of a store: one Dask task per epigenome, on
    ``client`` when given, else this process's threads."""
    import dask

    store = Store.of(store, storage_options)
    ds = open_store(store)
    have = [str(c) for c in ds[V.CELL].values]
    missing = [c for c in cells if c not in have]
    if missing:
        raise PredictError(f"cells {missing} are not in {store.url} (cells: {have})")
    predictor.align(ds)  # fail here, not in a worker
    tasks = [dask.delayed(_score_cell)(store, c, predictor) for c in cells]
    values = (
        client.gather(client.compute(tasks))
        if client is not None
        else dask.compute(*tasks, scheduler="threads")
    )
    return score_array(
        np.stack(values) if values else np.zeros((0, ds.sizes[V.GENE])),
        cells,
        ds[V.GENE].values,
        predictor,
    )


def write_predictions(
    store: StoreLike, name: str, scores: xr.DataArray, storage_options: Mapping | None = None
) -> str:
    """Keep ``scores`` at ``runs/NAME/predictions`` (cells already there are replaced)."""
    return R.write_predictions(store, name, scores, storage_options)


def to_table(scores: xr.DataArray):
    """``cell,gene,score,label`` rows (label = score ≥ 0.5; regression: empty) of the genes
    with a score."""

    df = scores.to_dataframe(name="score").reset_index()[[V.CELL, V.GENE, "score"]]
    df = df[np.isfinite(df["score"])]
    if scores.attrs.get("task", "classification") == "classification":
        df["label"] = (df["score"] >= 0.5).astype(int)
    else:
        df["label"] = ""
    return df.reset_index(drop=True)
