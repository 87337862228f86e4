"""The types of the model registry: one small entry type per kind of model, and their parts.

A model is one entry; its type says what runs it, and its fields are what that runner
needs, so an entry that could not run cannot be built (each type checks its fields when
it is made, and raises :class:`EntryError` naming what is wrong):

:class:`TorchModel`
    A network trained per (epigenome, repeat) by :mod:`chromestore.training.trainer` as
    one stacked ensemble. ``factory(n_marks=5, n_bins=100, **hparams)`` returns an
    ``nn.Module`` mapping ``(B, marks, bins)`` float32 to logits ``(B, 2)``;
    ``stacked(models)`` optionally returns one module evaluating them all at once
    (``forward(x (M, B, marks, bins), dropout_masks)`` → ``(M, B, 2)``,
    ``state_dict_of(i)``); without it the trainer stacks any module with ``torch.func``
    (:mod:`chromestore.training.stacking`).
:class:`ArraysModel`
    Fitted per epigenome on in-memory numpy arrays by
    :mod:`chromestore.training.peers.execute` (one Dask task per epigenome). Its ``fit`` is
    one of: a function ``fit_cell(data, hp, seed)`` of one epigenome's
    :class:`chromestore.training.peers.cells.CellData` returning per-repeat lists (see that
    module); a :class:`FanOut` (one task per run of bins, then a collect step); or an
    :class:`Estimator`, a scikit-learn-style ``factory(**hparams)`` fitted on
    ``features(signal, layout)`` and scored with ``predict_proba``.
:class:`PooledModel`
    Trained by its own ``runner`` module (``plan(request, cluster)`` and
    ``run(request, client)``, see :mod:`chromestore.training.request`), e.g. one model over
    several epigenomes.

Every type also carries the model's task, hyper-parameter ``defaults`` (the one place they
are written), ``paper``, ``extras`` (specs, :class:`chromestore.variables.Spec`, of its own
run variables, each named ``<model>_<what>``), its own command-line ``options``
(:class:`ModelOption`), the ``metrics`` it adds to analysis and the report
(:class:`ModelMetric`), its ``scorer`` and its ``export`` codec (:class:`ArrayCodec`).

A ``scorer(weights, hparams, layout)`` returns a function of ``(genes, marks, bins)``
float32 input (transformed, normalised) giving one score per gene; without one, a
:class:`TorchModel` scores with its factory's network and an :class:`ArraysModel` with an
:class:`Estimator` with ``predict_proba`` (:mod:`chromestore.training.predict`). ``layout``
is the store's :class:`chromestore.bins.WindowLayout`.

Hyper-parameters reach a model by name, as written: the option ``--C`` sets
``defaults["C"]``, ``--max-iter`` sets ``defaults["max_iter"]``. So every option of a torch
or arrays model names one of its defaults, and a factory must take every default as a
keyword; an entry that breaks either rule is refused when it is made, not inside a task.

This module imports nothing heavy: ``chromestore train --help`` lists models without it.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from chromestore.training.weights import Codec
    from chromestore.variables import Spec

TASKS = ("classification", "regression")
#: How the report draws a model's metric: ``profile`` a value per bin (one panel of the
#: "which positions matter" figure), ``class_map`` (cell, class, mark, bin) heat maps.
PLOTS = ("profile", "class_map")
#: :attr:`ModelOption.type`: ``str``, ``int``, ``float``, ``path`` (an existing file),
#: ``cells`` (epigenomes, parsed like ``--cells``), ``model`` (a registered model's name).
OPTION_TYPES = ("str", "int", "float", "path", "cells", "model")
#: What an :class:`ArraysModel` is given of each epigenome: ``signal`` (gene, mark, bin), or
#: ``signal_max`` (gene, mark), the max over bins, reduced while the store is read.
READS = ("signal", "signal_max")


class EntryError(ValueError):
    """A model entry (or one of its parts) that would break; the message says what to fix."""


@dataclass(frozen=True)
class ModelOption:
    """A ``chromestore train`` option of one model's own, listed by ``train --model NAME --help``.

    ``name`` is the flag (``--max-iter``); the model receives the value under the name as
    written, ``-`` turned into ``_`` (:attr:`dest`: ``--max-iter`` → ``max_iter``, ``--C`` →
    ``C``). For torch and arrays models a value (not None) overrides the default of that
    name; a pooled model's runner reads it itself. ``type``: one of :data:`OPTION_TYPES`;
    ``flag=True`` for an on/off switch. A ``model`` option names another model, whose own
    options the command then takes as well (``--model pooled --pool NAME``); ``kinds``
    limits the models it lists (empty: every model).
    """

    name: str
    help: str
    flag: bool = False
    type: str = "str"
    default: Any = None
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        dest = self.name[2:].replace("-", "_")
        if not self.name.startswith("--") or not dest.isidentifier() or keyword.iskeyword(dest):
            raise EntryError(
                f"option {self.name!r}: write it as '--' and a name of letters, digits and '-' "
                "that starts with a letter (e.g. --max-iter, --C)"
            )
        if self.type not in OPTION_TYPES:
            raise EntryError(
                f"option {self.name}: type {self.type!r} is not one of {', '.join(OPTION_TYPES)}"
            )

    @property
    def dest(self) -> str:
        """The keyword the model receives it as: the name as written (``--C`` → ``C``,
        ``--cell-stats`` → ``cell_stats``)."""
        return self.name[2:].replace("-", "_")


@dataclass(frozen=True)
class ModelMetric:
    """A reduction of a run that a model adds to ``runs/NAME/metrics`` and the report.

    ``name`` is the metrics variable, ``doc`` its description; ``compute(run)`` gets the
    analysed run (all its models) and returns a DataArray, or None when the run lacks what
    it needs; ``plot`` is one of :data:`PLOTS`, ``title`` and ``label`` its panel's.
    """

    name: str
    compute: Callable[[Any], Any]
    doc: str
    plot: str = "profile"
    title: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if self.plot not in PLOTS:
            raise EntryError(f"metric {self.name!r}: plot {self.plot!r} is not one of {PLOTS}")


@dataclass(frozen=True)
class FanOut:
    """An arrays model's fit of one epigenome split into Dask tasks over bins:
    ``fit(data, bins, hp)`` for each run of ``size`` bins, then ``collect(parts, data, hp)``
    → what a ``fit_cell`` returns."""

    fit: Callable[..., Any]
    collect: Callable[..., Any]
    size: int = 10


@dataclass(frozen=True)
class Estimator:
    """A scikit-learn-style estimator as an arrays model's fit.

    ``factory(**hparams)`` returns an unfitted estimator (its ``random_state``, if it has
    one, is set to the seed of each split repeat); it is fitted on the training genes'
    ``features(signal, layout)`` — ``signal`` (gene, mark, bin) float, ``layout`` the
    store's :class:`chromestore.bins.WindowLayout` — and scores genes with
    ``predict_proba`` (``decision_function`` or ``predict`` where it has none). Without
    ``features``, the marks × bins flattened.
    """

    factory: Callable[..., Any]
    features: Callable[..., Any] | None = None


@dataclass(frozen=True)
class ArrayCodec:
    """How ``chromestore export`` writes a member's weights without pickle:
    ``to_arrays(weights)`` → (``{name: numpy array}``, JSON-able rest), written as
    safetensors and JSON; ``from_arrays(arrays, rest)`` → the weights again, which the
    model's scorer gets. Torch state dicts and plain dicts/lists of arrays need none."""

    to_arrays: Callable[[Any], tuple[Mapping[str, Any], Any]]
    from_arrays: Callable[[Mapping[str, Any], Any], Any]


@dataclass(frozen=True)
class ModelEntry:
    """What every kind of model entry has (see the module docstring); not made itself."""

    #: its kind's name (``torch``, ``arrays``, ``pooled``)
    kind: ClassVar[str] = ""
    #: the codec of :mod:`chromestore.training.weights` its weights are kept with by default
    default_codec: ClassVar[str] = "TORCH"
    name: str
    _: KW_ONLY
    task: str = "classification"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""
    extras: tuple[Spec, ...] = ()
    options: tuple[ModelOption, ...] = ()
    metrics: tuple[ModelMetric, ...] = ()
    scorer: Callable[..., Callable[[Any], Any]] | None = None
    export: ArrayCodec | None = None

    def __post_init__(self) -> None:
        if type(self) is ModelEntry:
            raise EntryError(
                f"model {self.name!r}: make a TorchModel, ArraysModel or PooledModel, "
                "not a ModelEntry"
            )
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise EntryError(f"model {self.name!r}: a model name must be non-empty without '/'")
        if self.task not in TASKS:
            raise self.error(f"unknown task {self.task!r}; use one of {TASKS}")
        for spec in self.extras:
            if not spec.name.startswith(self.prefix):
                raise self.error(f"extra variable {spec.name!r} must start with {self.prefix!r}")
        flags = [o.name for o in self.options]
        if len(set(flags)) != len(flags):
            raise self.error(
                f"options given twice: {sorted({f for f in flags if flags.count(f) > 1})}"
            )
        if self.export is not None and not isinstance(self.export, ArrayCodec):
            raise self.error("export must be an ArrayCodec(to_arrays, from_arrays)")

    def error(self, what: str) -> EntryError:
        return EntryError(f"model {self.name!r}: {what}")

    @property
    def prefix(self) -> str:
        """Prefix of its extra run variables (``svm-bin`` → ``svm_bin_``)."""
        from chromestore.runs.merge import model_prefix

        return model_prefix(self.name)

    @property
    def codec(self) -> Codec:
        """How its weights are kept beside a run (:mod:`chromestore.training.weights`)."""
        from chromestore.training import weights

        return getattr(self, "weights", None) or getattr(weights, self.default_codec)

    def runner_module(self):
        """The module that trains it (``plan`` and ``run``): its kind's, or a pooled model's
        own ``runner``."""
        return importlib.import_module(self.runner)

    def _options_name_defaults(self) -> None:
        """Every option sets a default of the same name (the torch and arrays rule)."""
        for option in self.options:
            if option.dest not in self.defaults:
                raise self.error(
                    f"option {option.name} sets hyper-parameter {option.dest!r}, which is not "
                    f"among its defaults ({', '.join(map(str, self.defaults)) or 'none'}); "
                    f"add defaults[{option.dest!r}]"
                )


def _takes(factory: Callable, keys: Iterable[str]) -> list[str]:
    """The ``keys`` that ``factory`` does not take as keywords ([] when it takes ``**kw`` or
    its signature cannot be read)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    ok = {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return [k for k in keys if k not in ok]


def _check_factory(entry: ModelEntry, factory: Callable, keys: Iterable[str]) -> None:
    if not callable(factory):
        raise entry.error(f"its factory {factory!r} is not callable")
    missing = _takes(factory, keys)
    if missing:
        takes = ", ".join(n for n in inspect.signature(factory).parameters if n != "self")
        raise entry.error(
            f"{getattr(factory, '__name__', factory)} takes no keyword {missing[0]!r}, which its "
            f"defaults or options would pass (hyper-parameters keep the names written; it "
            f"takes: {takes})"
        )


@dataclass(frozen=True)
class TorchModel(ModelEntry):
    """A network trained by the trainer as a stacked ensemble (see the module docstring)."""

    kind: ClassVar[str] = "torch"
    runner: ClassVar[str] = "chromestore.training.trainer"
    factory: Callable[..., Any]
    _: KW_ONLY
    stacked: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._options_name_defaults()
        _check_factory(self, self.factory, ["n_marks", "n_bins", *self.defaults])

    def build(self, **hparams: Any) -> Any:
        """``factory`` called with the defaults overridden by ``hparams``."""
        return self.factory(**{**self.defaults, **hparams})


@dataclass(frozen=True)
class ArraysModel(ModelEntry):
    """A model fitted per epigenome on numpy arrays (see the module docstring)."""

    kind: ClassVar[str] = "arrays"
    runner: ClassVar[str] = "chromestore.training.peers.execute"
    default_codec: ClassVar[str] = "JOBLIB"
    fit: Callable[..., Any] | FanOut | Estimator
    _: KW_ONLY
    reads: str = "signal"
    #: how its fitted weights are kept beside a run; None: joblib
    weights: Codec | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reads not in READS:
            raise self.error(f"reads must be one of {READS}, not {self.reads!r}")
        if not isinstance(self.fit, FanOut | Estimator) and not callable(self.fit):
            raise self.error("fit must be a fit_cell function, a FanOut or an Estimator")
        self._options_name_defaults()
        if isinstance(self.fit, Estimator):
            _check_factory(self, self.fit.factory, self.defaults)

    @property
    def fan_out(self) -> FanOut | None:
        """Its :class:`FanOut`, when its fit is split over bins."""
        return self.fit if isinstance(self.fit, FanOut) else None

    def fit_cell(self, data, hp: Mapping[str, Any], seed: int) -> dict:
        """Its fit of one epigenome (a :class:`FanOut`'s parts one after another)."""
        if isinstance(self.fit, FanOut):
            n_bins, size = data.signal.shape[2], self.fit.size
            parts = [
                self.fit.fit(data, range(b, min(b + size, n_bins)), hp)
                for b in range(0, n_bins, size)
            ]
            return self.fit.collect(parts, data, hp)
        if isinstance(self.fit, Estimator):
            from chromestore.training.peers.cells import fit_estimator

            return fit_estimator(self.fit, data, hp, seed)
        return self.fit(data, hp, seed)


@dataclass(frozen=True)
class PooledModel(ModelEntry):
    """A model trained by its own runner module (see the module docstring)."""

    kind: ClassVar[str] = "pooled"
    runner: str
    _: KW_ONLY
    #: how its weights are kept beside a run; None: torch state dicts
    weights: Codec | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.runner, str) or not self.runner:
            raise self.error("runner must name a module with plan() and run()")


#: The entry type of each kind.
TYPES = {t.kind: t for t in (TorchModel, ArraysModel, PooledModel)}
