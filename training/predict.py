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

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from chromestore import datasets
from chromestore import runs as R
from chromestore import variables as V
from chromestore.bins import WindowLayout
from chromestore.store import Store, StoreLike, open_store
from chromestore.store.records import provenance
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.entry import ArraysModel, Estimator, ModelEntry, PooledModel, TorchModel

TRANSFORMS = ("raw", "log1p")
#: The per-epigenome input normalisations (:func:`normalise`).
NORMALISATIONS = ("per-epigenome", "per-epigenome-scale")


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
    load_state(net, state, entry.name)
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


def load_state(net, state: Mapping, model: str) -> None:
    """Load ``state`` into ``net``; weights that do not fit it are one line
    (:class:`PredictError`: the array missing, extra or of another shape), never torch's."""
    import torch

    if not isinstance(state, Mapping):
        raise PredictError(f"its weights are not a state dict of the {model} network")
    expected = net.state_dict()
    for key, have in expected.items():
        if key not in state:
            raise PredictError(f"its weights lack {key!r}, which the {model} network has")
        if tuple(np.shape(state[key])) != tuple(have.shape):
            raise PredictError(
                f"its weights {key!r} have shape {tuple(np.shape(state[key]))} where the "
                f"{model} network has {tuple(have.shape)}"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise PredictError(f"its weights hold {extra[0]!r}, which the {model} network has not")
    net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})


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
    #: genes of its training epigenomes each member was fitted with, which it never
    #: scores: ``{cell: (genes, fitted (members, genes) bool)}``; applied when scoring the
    #: store the run lives in (``spec["provenance"]["store"]``)
    fitted: dict = field(default_factory=dict)
    #: what made it, for the predictions' records (model, weights' SHA-256, origin)
    source: dict = field(default_factory=dict)
    #: the units of its training epigenomes' signal, per mark (empty: not recorded)
    units: dict = field(default_factory=dict)
    #: per-epigenome quantile normalisation (``train --normalise quantile``): None, or
    #: ``{"kind": "quantile", "levels": L, "reference": (marks, L) lists}``, applied to the
    #: signal before the input transform (:func:`chromestore.runs.quantile_map`)
    quantiles: dict | None = None

    @property
    def per_epigenome(self) -> bool:
        """Whether it normalises each epigenome it scores (any signal units will do)."""
        return bool(self.quantiles) or bool(self.normalisation)

    def check_units(self, ds: xr.Dataset, cells: Sequence[str] | None = None) -> None:
        """:class:`PredictError` for an epigenome of ``ds`` whose signal units differ from
        those the model was trained on (a model that normalises per epigenome takes any)."""
        if self.per_epigenome or not self.units:
            return
        units = R.dataset_units(ds)
        for cell in cells if cells is not None else [str(c) for c in ds[V.CELL].values]:
            for mark in self.marks:
                have, want = units.get((str(cell), mark), ""), self.units.get(mark, "")
                if have and want and have != want:
                    raise PredictError(
                        f"epigenome {cell}: its {mark} signal is {have}, model {self.model!r} "
                        f"was trained on {want}; train the model with --normalise quantile "
                        f"(per-epigenome normalisation), or ingest {cell} as {want}"
                    )

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
        if mine and theirs and mine != theirs and not _same_orientation(mine, theirs):
            raise PredictError(
                f"bin orientation mismatch: the dataset's bins are {theirs!r}, "
                f"model {self.model!r} was trained on {mine!r} bins"
            )
        if self.cross_assembly(ds) is None:
            mine, theirs = self.spec.get("genome"), ds.attrs.get("genome")
            if mine is not None and theirs is not None and str(mine) != str(theirs):
                if not _known(mine) or not _known(theirs):
                    raise PredictError(
                        f"genome assembly mismatch: the dataset's is {theirs!r}, model "
                        f"{self.model!r} was trained on {mine!r}"
                    )
                raise PredictError(
                    f"genome assembly mismatch: the dataset's is {theirs!r}, model "
                    f"{self.model!r} was trained on {mine!r}, and no gene of the dataset is a "
                    f"gene of chromestore's {mine} annotation (no map between their genes: "
                    f"ingest with the shipped {theirs} annotation, --genome {theirs})"
                )
        for key, what in (("window", "window (bp)"), ("bin_size", "bin size (bp)")):
            mine, theirs = self.spec.get(key), ds.attrs.get(key)
            if mine is not None and theirs is not None and str(mine) != str(theirs):
                raise PredictError(
                    f"{what} mismatch: the dataset's is {theirs!r}, model {self.model!r} was "
                    f"trained on {mine!r}"
                )
        return sig.sel({V.MARK: self.marks}).transpose(V.CELL, V.GENE, V.MARK, V.BIN)

    def cross_assembly(self, ds: xr.Dataset) -> CrossAssembly | None:
        """How ``ds``'s genes match the model's assembly's when the two differ (bins are
        relative to each gene's TSS: only the genes and the layout must agree), else None;
        None too where the genes cannot be matched (assemblies chromestore does not ship,
        or no gene of ``ds`` in the model's assembly's annotation)."""
        mine, theirs = self.spec.get("genome"), ds.attrs.get("genome")
        if mine is None or theirs is None or str(mine) == str(theirs):
            return None
        if not (_known(mine) and _known(theirs)):
            return None
        mine, theirs = datasets.assembly(str(mine)), datasets.assembly(str(theirs))
        if mine == theirs:
            return None
        keys = [str(g) for g in ds[V.GENE].values]
        theirs_keys = _annotation_keys(mine)
        shared = sum(k in theirs_keys for k in keys)
        if not shared:
            return None
        return CrossAssembly(mine, theirs, len(keys), shared, len(theirs_keys))

    def score_array(self, signal: np.ndarray, fitted: np.ndarray | None = None) -> np.ndarray:
        """Scores of one epigenome's ``(genes, marks, bins)`` signal (marks already aligned);
        NaN for genes with a NaN. ``fitted`` (members, genes) bool: genes a member was
        fitted with, which it does not score (a gene none may score is NaN)."""
        signal = np.asarray(signal, np.float32)
        ok = np.isfinite(signal).all(axis=(1, 2))
        out = np.full(len(signal), np.nan, np.float32)
        if not ok.any():
            return out
        x = signal[ok]
        if self.quantiles:  # the signal as stored, each mark onto the training quantiles
            x = R.quantile_map(x, self.quantiles["reference"])
        if self.transform == "log1p":
            x = np.log1p(np.clip(x, 0, None))
        x = normalise(x, self.normalisation)
        scores = np.stack([s(x) for s in self._scorers()]).astype(np.float64)
        if fitted is None:
            out[ok] = scores.mean(axis=0)
            return out
        free = ~np.asarray(fitted, bool)[:, ok]
        n = free.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(free, scores, 0.0).sum(axis=0) / n
        out[ok] = np.where(n > 0, mean, np.nan)
        return out

    def fitted_mask(self, cell: str, genes, store: StoreLike | None) -> np.ndarray | None:
        """(members, genes) bool: which of ``genes`` each member was fitted with in ``cell``
        of ``store`` (None: none; it was not trained on that epigenome of that store)."""
        if cell not in self.fitted or store is None:
            return None
        if Store.of(store).url != (self.spec.get("provenance") or {}).get("store"):
            return None
        run_genes, mask = self.fitted[cell]
        pos = {g: i for i, g in enumerate(run_genes)}
        out = np.zeros((mask.shape[0], len(genes)), bool)
        idx = np.array([pos.get(str(g), -1) for g in genes], np.int64)
        out[:, idx >= 0] = mask[:, idx[idx >= 0]]
        return out

    def predict(self, dataset: xr.Dataset) -> xr.DataArray:
        """Scores ``(cell, gene)`` of every epigenome of ``dataset`` (computed here)."""
        sig = self.align(dataset)
        self.check_units(dataset)
        values = (
            np.stack(
                [self.score_array(sig.isel({V.CELL: i}).values) for i in range(sig.sizes[V.CELL])]
            )
            if sig.sizes[V.CELL]
            else np.zeros((0, sig.sizes[V.GENE]), np.float32)
        )
        return score_array(values, sig[V.CELL].values, sig[V.GENE].values, self)


@dataclass(frozen=True)
class CrossAssembly:
    """A model of one assembly scoring a dataset of another: their genes matched by their
    shared keys (``ENSGID_SYMBOL``: chromestore's hg19 and GRCh38 annotations name the same
    genes alike; ``data/gene_map.GRCh38.tsv.gz`` says how each was placed)."""

    model_genome: str
    data_genome: str
    n_genes: int  # the dataset's
    shared: int  # of them, genes of the model's assembly's annotation
    n_model_genes: int  # genes of the model's assembly's annotation

    def line(self) -> str:
        """One line: how many genes each side has that the other has not (no error)."""
        return (
            f"model of {self.model_genome} on a {self.data_genome} store: genes matched by "
            f"their keys, {self.shared:,} in both; {self.n_model_genes - self.shared:,} of "
            f"the {self.model_genome} annotation's genes are not in the store, "
            f"{self.n_genes - self.shared:,} of the store's not in the {self.model_genome} "
            "annotation (scored all the same: bins are relative to each gene's TSS)"
        )

    def ids(self, genes) -> dict[str, list[str]]:
        """Each gene's id in both assemblies (columns ``{genome}_gene``): its key in the
        model's annotation ('' where it has none) and its gene in the store's (GRCh38: the
        GENCODE gene it was placed on, from the shipped map; else its key)."""
        keys = [str(g) for g in genes]
        model = _annotation_keys(self.model_genome)
        out = {f"{self.model_genome}_gene": [k if k in model else "" for k in keys]}
        names = _placed_names(self.data_genome)
        out[f"{self.data_genome}_gene"] = [names.get(k, k) for k in keys]
        return out


def _known(genome: str) -> bool:
    """Whether chromestore ships an annotation of ``genome`` (``hg19``, ``GRCh38``, aliases)."""
    try:
        return datasets.assembly(str(genome)) in datasets.ANNOTATIONS
    except KeyError:
        return False


@functools.lru_cache(maxsize=4)
def _annotation_keys(genome: str) -> frozenset[str]:
    from chromestore.genes import read_gene_bed

    return frozenset(read_gene_bed(datasets.gene_windows(genome))["gene"].astype(str))


@functools.lru_cache(maxsize=4)
def _placed_names(genome: str) -> dict[str, str]:
    """key → the gene it was placed on in ``genome`` (the shipped map's ``gencode_gene``)."""
    import pandas as pd

    name = f"gene_map_{genome}"
    if name not in datasets.FILES:
        return {}
    table = pd.read_csv(datasets.path(name), sep="\t", usecols=["gene", "gencode_gene"])
    table = table.dropna()
    return dict(zip(table["gene"].astype(str), table["gencode_gene"].astype(str), strict=True))


def _same_orientation(a: str, b: str) -> bool:
    """The store's ``5to3`` and an exported model's longer wording of it are one orientation."""
    return {a, b} <= {V.ORIENTATION, "5'->3' along the gene (minus-strand genes reversed), "
                      "bin 0 most upstream"}  # fmt: skip


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


def _pooled_key(run: xr.Dataset, model: str, key: str) -> bool:
    """Whether (model, key) of a run is one model over several epigenomes."""
    entry = registry.find(model)
    return model in (run.attrs.get("pooled_models") or {}) or isinstance(entry, PooledModel)


def choose(run: xr.Dataset, name: str, model: str | None, from_cell: str | None) -> tuple[str, str]:
    """The one (model, weights key) that ``--model``/``--from-cell`` name in run ``name``.

    A model pooled over several epigenomes is one model: naming an epigenome for it
    (``--from-cell``, ``export --cell``) is refused rather than ignored."""
    pairs = run_models(run)
    listing = ", ".join(f"{m} from {c}" for m, c in pairs)
    if from_cell is not None:
        pooled = [
            (m, c)
            for m, c in pairs
            if (model is None or m == model)
            and _pooled_key(run, m, c)
            and from_cell in c.split("+")
        ]
        if pooled and not [
            (m, c) for m, c in pairs if (model is None or m == model) and c == from_cell
        ]:
            m, c = pooled[0]
            raise PredictError(
                f"run {name!r}: {m} is one model pooled over {c.replace('+', ', ')}, not a "
                f"model of {from_cell}; name no epigenome (--from-cell/--cell) for it"
            )
    hits = [
        (m, c)
        for m, c in pairs
        if (model is None or m == model) and (from_cell is None or c == from_cell)
    ]
    if len(hits) == 1:
        return hits[0]
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
    per-epigenome run; a pooled model needs none). All its repeats are members, read from
    the files the run's records name and checked against their SHA-256.

    A run in which a model's test genes overlap the genes it was trained on is refused
    (:func:`chromestore.runs.check_test_genes`). The predictor keeps, for each epigenome
    it was trained on, the genes each member was fitted with, which it leaves unscored
    when it scores that epigenome of this store.
    """
    store = Store.of(store, storage_options)
    run = R.open_run(store, name)
    try:
        R.check_test_genes(run, name)
    except R.RunError as e:
        raise PredictError(str(e.args[0])) from None
    model, key = choose(run, name, model, from_cell)
    pooled = (run.attrs.get("pooled_models") or {}).get(model, {})
    entry = registry.get(pooled.get("base", model))
    ds = open_store(store)
    hp = dict((run.attrs.get("models") or {}).get(model, {}))
    members = []
    for r in range(run.sizes.get(V.REPEAT, 1)):
        try:
            members.append(W.load_weights(store, name, model, key, r, entry, attrs=run.attrs))
        except FileNotFoundError:
            break
    if not members:
        raise PredictError(
            f"run {name!r} keeps no weights of {model} from {key} (was it "
            "trained to the end, with a run name?)"
        )
    first = members[0] if isinstance(members[0], dict) else {}
    train_cells = key.split("+")
    units = run.attrs.get("signal_units") or R.store_units(ds, train_cells)  # older runs: now
    quantiles = None
    if (run.attrs.get("input_normalisation") or {}).get(model) == "quantile":
        ref = R.reference_of(run.attrs["signal_quantiles"], train_cells)
        quantiles = {"kind": "quantile", "levels": ref.shape[1], "reference": ref.tolist()}
    split = run[V.model_split.name].sel({V.MODEL: model})
    genes = [str(g) for g in run[V.GENE].values]
    fitted = {}
    for c in train_cells:
        if c in set(run[V.CELL].values):
            own = split.sel({V.CELL: c}).transpose(V.REPEAT, V.GENE).values[: len(members)]
            fitted[c] = (genes, (own == V.TRAIN) | (own == V.VALID))
    return Predictor(
        model=entry.name,
        task=entry.task,
        marks=[str(m) for m in ds[V.MARK].values],
        bin_offset=[int(v) for v in ds[V.bin_offset.name].values],
        transform=str(first.get("transform", hp.get("transform", "raw"))),
        hparams=R.jsonable(hp, nonfinite_as_str=True),
        members=members,
        train_cells=train_cells,
        normalisation=pooled.get("normalisation"),
        fitted=fitted,
        units=R.model_units(units, train_cells),
        quantiles=quantiles,
        source={
            "model": model,
            "weights_sha256": W.weights_digest(store, name, model, key, run.attrs),
            "from": f"run {name} of {store.url}, {key}",
            "run": name,
        },
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
                    f"{c}/{m}": v for (c, m), v in provenance(ds).items() if c in train_cells
                },
            },
            "versions": run.attrs.get("versions"),
        },
    )


# --- scoring a store ---------------------------------------------------------------------------
def _score_cell(store: Store, cell: str, predictor: Predictor) -> np.ndarray:
    ds = open_store(store)
    sig = predictor.align(ds.sel({V.CELL: [cell]}))
    fitted = predictor.fitted_mask(cell, ds[V.GENE].values, store)
    return predictor.score_array(sig.isel({V.CELL: 0}).values, fitted)


def predict_store(
    store: StoreLike,
    predictor: Predictor,
    cells: Sequence[str],
    client=None,
    storage_options: Mapping | None = None,
) -> xr.DataArray:
    """Scores ``(cell, gene)`` of ``cells`` of a store: one Dask task per epigenome, on
    ``client`` when given, else this process's threads. An epigenome of this store the
    model was trained on is scored only on the genes it was not fitted with (its test
    genes): the others are NaN."""
    import dask
    import dask.threaded

    store = Store.of(store, storage_options)
    ds = open_store(store)
    have = [str(c) for c in ds[V.CELL].values]
    missing = [c for c in cells if c not in have]
    if missing:
        raise PredictError(f"cells {missing} are not in {store.url} (cells: {have})")
    predictor.align(ds)  # fail here, not in a worker
    predictor.check_units(ds, cells)
    tasks = [dask.delayed(_score_cell)(store, c, predictor) for c in cells]
    values = (
        client.gather(client.compute(tasks))
        if client is not None
        else dask.compute(*tasks, scheduler=dask.threaded.get)  # (a name imports distributed)
    )
    return score_array(
        np.stack(values) if values else np.zeros((0, ds.sizes[V.GENE])),
        cells,
        ds[V.GENE].values,
        predictor,
    )


def write_predictions(
    store: StoreLike,
    name: str,
    scores: xr.DataArray,
    storage_options: Mapping | None = None,
    *,
    predictor: Predictor | None = None,
    existing: str = "refuse",
) -> str:
    """Keep ``scores`` at ``runs/NAME/predictions`` (:func:`chromestore.runs.write_predictions`:
    the same model's scores for other epigenomes join them; another model's are refused
    unless ``existing="overwrite"``)."""
    source = predictor.source if predictor is not None else None
    return R.write_predictions(
        store, name, scores, storage_options, source=source, existing=existing
    )


def to_table(scores: xr.DataArray, ids: Mapping[str, Sequence[str]] | None = None):
    """``cell,gene,score,label`` rows (label = score ≥ 0.5; regression: empty) of the genes
    with a score; ``ids`` (column → one value per gene of ``scores``: a model of another
    assembly's :meth:`CrossAssembly.ids`) follow ``gene``."""

    df = scores.to_dataframe(name="score").reset_index()[[V.CELL, V.GENE, "score"]]
    for i, (column, values) in enumerate((ids or {}).items()):
        by_gene = dict(zip([str(g) for g in scores[V.GENE].values], values, strict=True))
        df.insert(2 + i, column, df[V.GENE].astype(str).map(by_gene))
    df = df[np.isfinite(df["score"])]
    if scores.attrs.get("task", "classification") == "classification":
        df["label"] = (df["score"] >= 0.5).astype(int)
    else:
        df["label"] = ""
    return df.reset_index(drop=True)
