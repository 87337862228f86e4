"""Models by name: one :class:`ModelEntry` per model carries everything model-specific.

The trainer, the peer executor, ``chromestore train`` (its options and ``--help``),
analysis and the report read entries and never name a model. An entry says:

- what runs it (``kind``): ``"torch"``, a network fitted per (epigenome, repeat) by
  :mod:`chromestore.training.trainer` as one stacked ensemble; ``"arrays"``, a kernel
  fitted per epigenome on in-memory numpy arrays by :mod:`chromestore.training.peers.execute`
  (one Dask task per epigenome, or per part with ``fan_out``); ``"pooled"``, one model
  fitted on several epigenomes by its own ``runner`` module;
- how it is built and fitted (``factory``, ``stacked``, ``features``, ``fit_cell``),
  its ``task`` and its hyper-parameter ``defaults`` (the one place they are written);
- what it writes: ``extras``, specs (:class:`chromestore.variables.Spec`) of its own run
  variables, each named ``<model>_<what>``; its weights ``codec``
  (:mod:`chromestore.training.weights`);
- its own command-line ``options`` (:class:`ModelOption`) and the ``metrics`` it adds to
  analysis and the report (:class:`ModelMetric`).

The interfaces, by ``kind``:

``"torch"``
    ``factory(n_marks=5, n_bins=100, **hparams)`` returns an ``nn.Module`` mapping
    ``(B, marks, bins)`` float32 to logits ``(B, 2)``; ``stacked(models)`` returns one
    module evaluating them all at once (``forward(x (M, B, marks, bins), dropout_masks)``
    → ``(M, B, 2)``, ``state_dict_of(i)``); without it the trainer stacks any module
    with ``torch.func`` (:mod:`chromestore.training.stacking`).
``"arrays"``
    ``fit_cell(data, hp, seed)`` gets one epigenome's
    :class:`chromestore.training.peers.cells.CellData` and returns per-repeat lists (see
    :mod:`chromestore.training.peers.cells`); or, simpler, ``factory(**hparams)`` returns
    a scikit-learn-style estimator fitted on ``features(signal)`` (default: flattened
    marks × bins) and scored with ``predict_proba``.
``"pooled"``
    ``runner`` names a module with ``plan(request, cluster)`` and ``run(request, client)``
    (see :mod:`chromestore.training.request`).

Registering is one call, :func:`register`; third-party packages declare entries in the
``chromestore.models`` entry-point group (an entry, a list of them, or a function that
returns them), loaded on the first lookup. A plugin that fails to load is skipped with a
one-line :class:`PluginWarning` naming it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chromestore.runs.merge import model_prefix
from chromestore.training import weights as W
from chromestore.variables import Spec

KINDS = ("torch", "arrays", "pooled")
TASKS = ("classification", "regression")
#: How the report draws a model's metric: ``profile`` a value per bin (one panel of the
#: "which positions matter" figure), ``class_map`` (cell, class, mark, bin) heat maps.
PLOTS = ("profile", "class_map")
GROUP = "chromestore.models"
#: Modules that run each kind (``plan`` and ``run``); a ``pooled`` entry names its own.
RUNNERS = {"torch": "chromestore.training.trainer", "arrays": "chromestore.training.peers.execute"}
#: The built-in entries, in the order analysis and the report list them.
BUILTIN = (
    "chromestore.training.models:ENTRY",
    "chromestore.training.peers.shallowchrome:ENTRY",
    "chromestore.training.peers.baselines:SVM_BIN",
    "chromestore.training.peers.baselines:RF_BESTBIN",
    "chromestore.training.peers.attentivechrome:ENTRY",
    "chromestore.training.peers.regression_run:ENTRY",
    "chromestore.training.pooled:ENTRY",
)


class PluginWarning(RuntimeWarning):
    """A model plugin could not be loaded or registered; the others still are."""


@dataclass(frozen=True)
class ModelOption:
    """A ``chromestore train`` option of one model's own, listed under that model in ``--help``.

    ``type``: ``"str"``, ``"int"``, ``"float"``, ``"path"`` (an existing file) or
    ``"cells"`` (epigenomes, parsed like ``--cells``); ``flag=True`` for an on/off switch.
    For ``torch`` and ``arrays`` models a value (not None) overrides the default of the
    same name (``--l2`` → ``defaults["l2"]``); a ``pooled`` runner reads it itself.
    """

    name: str
    help: str
    flag: bool = False
    type: str = "str"
    default: Any = None

    @property
    def dest(self) -> str:
        """The keyword the runner receives it as (``--cell-stats`` → ``cell_stats``), as click
        names it (lower case)."""
        return self.name.lstrip("-").replace("-", "_").lower()


@dataclass(frozen=True)
class ModelMetric:
    """A reduction of a run that a model adds to ``runs/NAME/metrics`` and the report.

    ``compute(run)`` gets the analysed run (all its models) and returns a DataArray, or
    None when the run lacks what it needs; ``plot`` is one of :data:`PLOTS`.
    """

    name: str
    compute: Callable[[Any], Any]
    doc: str
    plot: str = "profile"
    title: str = ""
    label: str = ""


@dataclass(frozen=True)
class FanOut:
    """Split one epigenome's fit into Dask tasks over bins: ``fit(data, bins, hp)`` for each
    run of ``size`` bins, then ``collect(parts, data, hp)`` → the ``fit_cell`` result."""

    fit: Callable[..., Any]
    collect: Callable[..., Any]
    size: int = 10


@dataclass(frozen=True)
class ModelEntry:
    """Everything chromestore knows about one model (see the module docstring)."""

    name: str
    factory: Callable[..., Any] | None = None
    kind: str = "torch"
    task: str = "classification"
    defaults: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    stacked: Callable[..., Any] | None = None
    features: Callable[..., Any] | None = None
    fit_cell: Callable[..., Any] | None = None
    reads: str = "signal"
    fan_out: FanOut | None = None
    extras: tuple[Spec, ...] = ()
    weights: W.Codec | None = None
    options: tuple[ModelOption, ...] = ()
    metrics: tuple[ModelMetric, ...] = ()
    runner: str | None = None
    #: ``scorer(entry, weights, hparams)`` → a function of ``(genes, marks, bins)`` float32
    #: input (transformed, normalised) returning scores; None: its kind's default
    #: (:data:`chromestore.training.predict.DEFAULT_SCORERS`).
    scorer: Callable[..., Any] | None = None
    #: ``to_arrays(weights)`` → (flat ``{name: array}``, JSON-able rest) for export as
    #: safetensors, and ``from_arrays(arrays, rest)`` back; None: plain dicts/lists of tensors.
    to_arrays: Callable[..., Any] | None = None
    from_arrays: Callable[..., Any] | None = None

    def build(self, **hparams: Any) -> Any:
        """``factory`` called with the defaults overridden by ``hparams``."""
        return self.factory(**{**self.defaults, **hparams})

    @property
    def codec(self) -> W.Codec:
        """How its weights are written: its own, else torch state dicts or joblib by kind."""
        return self.weights or (W.JOBLIB if self.kind == "arrays" else W.TORCH)

    @property
    def prefix(self) -> str:
        """Prefix of its extra run variables (``svm-bin`` → ``svm_bin_``)."""
        return model_prefix(self.name)

    def runner_module(self):
        """The module that trains it (``plan`` and ``run``)."""
        return importlib.import_module(self.runner or RUNNERS[self.kind])

    def check(self) -> ModelEntry:
        """Raise ``ValueError`` naming what is wrong with this entry; return it."""
        where = f"model {self.name!r}"
        if not self.name or "/" in self.name:
            raise ValueError(f"{where}: a model name must be non-empty without '/'")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: unknown kind {self.kind!r}; use one of {KINDS}")
        if self.task not in TASKS:
            raise ValueError(f"{where}: unknown task {self.task!r}; use one of {TASKS}")
        needs = {
            "torch": self.factory,
            "arrays": self.fit_cell or self.fan_out or self.factory,
            "pooled": self.runner,
        }[self.kind]
        if needs is None:
            what = {
                "torch": "a factory",
                "arrays": "fit_cell, fan_out or a factory",
                "pooled": "a runner module",
            }[self.kind]
            raise ValueError(f"{where}: kind {self.kind!r} needs {what}")
        if self.reads not in ("signal", "signal_max"):
            raise ValueError(f"{where}: reads must be 'signal' or 'signal_max'")
        for spec in self.extras:
            if not spec.name.startswith(self.prefix):
                raise ValueError(
                    f"{where}: extra variable {spec.name!r} must start with {self.prefix!r}"
                )
        for metric in self.metrics:
            if metric.plot not in PLOTS:
                raise ValueError(
                    f"{where}: metric {metric.name!r} has plot {metric.plot!r}; use one of {PLOTS}"
                )
        for option in self.options:
            if not option.name.startswith("--"):
                raise ValueError(f"{where}: option {option.name!r} must start with '--'")
        return self


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register(
    entry: ModelEntry | str,
    factory: Callable[..., Any] | None = None,
    *,
    replace: bool = False,
    **fields: Any,
) -> ModelEntry:
    """Register a model: an entry, or a name with the entry's fields.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> register("logistic-flat", LogisticRegression, kind="arrays",
    ...          defaults={"max_iter": 1000}).codec.name  # doctest: +SKIP
    'joblib'
    """
    _ensure_loaded()
    if not isinstance(entry, ModelEntry):
        entry = ModelEntry(name=entry, factory=factory, **fields)
    elif factory is not None or fields:
        raise TypeError("give a ModelEntry alone, or a name with its fields")
    entry.check()
    if entry.name in _REGISTRY and not replace:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Forget model ``name`` (a no-op if it is not registered)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> ModelEntry:
    """The entry of model ``name``; ``KeyError`` naming the registered ones otherwise."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(names())}")
    return _REGISTRY[name]


def find(name: str) -> ModelEntry | None:
    """The entry of model ``name``, or None (a run may hold models no longer installed)."""
    _ensure_loaded()
    return _REGISTRY.get(name)


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def entries() -> list[ModelEntry]:
    """Every registered entry, built-ins first, in registration order."""
    _ensure_loaded()
    return list(_REGISTRY.values())


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _add(found: Any, source: str) -> None:
    """Register what a built-in or plugin gave: an entry, a list, or a function of them."""
    if callable(found) and not isinstance(found, ModelEntry):
        found = found()
    if found is None:
        return
    for entry in [found] if isinstance(found, ModelEntry) else list(found):
        if not isinstance(entry, ModelEntry):
            raise TypeError(f"{source} gave {type(entry).__name__}, not a ModelEntry")
        if _REGISTRY.get(entry.name) is entry:
            continue  # the plugin registered it itself
        register(entry)


def load_plugins(entry_points: Iterable | None = None) -> list[str]:
    """Register the models of the ``chromestore.models`` entry points; return their names.

    A plugin that fails (import error, bad entry, a name already taken) is skipped
    with one :class:`PluginWarning` naming it.
    """
    if entry_points is None:
        from importlib.metadata import entry_points as _entry_points

        entry_points = _entry_points(group=GROUP)
    before = set(_REGISTRY)
    for ep in entry_points:
        try:
            _add(ep.load(), f"plugin {ep.name!r}")
        except Exception as e:  # a broken plugin must not break chromestore
            msg = str(e).splitlines()[0] if str(e) else ""
            warnings.warn(
                f"chromestore model plugin {ep.name!r} ({ep.value}) was not loaded: "
                f"{type(e).__name__}: {msg}",
                PluginWarning,
                stacklevel=2,
            )
    return [n for n in _REGISTRY if n not in before]


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for path in BUILTIN:
        _add(_resolve(path), path)
    load_plugins()
