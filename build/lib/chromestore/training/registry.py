"""Models by name, so every model plugs into the same trainer, loader and run layout.

Registering a model is one call::

    register("deepchrome", DeepChrome, kind="torch", stacked=StackedDeepChrome.from_models,
             paper="Singh et al. 2016", defaults={"dropout": 0.5})

The interface a model must implement depends on its ``kind``:

``"torch"``
    ``factory(n_marks=5, n_bins=100, **hparams)`` returns an ``nn.Module`` whose
    ``forward(x)`` maps ``(B, marks, bins)`` float32 to logits ``(B, 2)``
    (classification; softmax cross-entropy) or ``(B, 1)`` (regression). The trainer
    fits it with Adam from streamed batches. ``stacked(models)`` (optional) returns a
    module evaluating ``M`` copies at once, ``forward(x (M, B, marks, bins),
    dropout_masks)`` → ``(M, B, 2)``, with ``state_dict_of(i)`` giving model ``i``
    back; without it the trainer fits the models one after another.
``"arrays"``
    ``factory(**hparams)`` returns an sklearn-style estimator with ``fit(X, y)`` and
    ``predict_proba(X)`` (or ``predict``) on in-memory arrays (``features(x)`` turns
    the ``(genes, marks, bins)`` block into ``X``; default: flatten). Run by the peer
    executor (:mod:`chromestore.training.peers.execute`), which writes the same run layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("torch", "arrays")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and what to record about it."""

    name: str
    factory: Callable[..., Any]
    kind: str = "torch"
    stacked: Callable[..., Any] | None = None
    features: Callable[..., Any] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    task: str = "classification"

    def build(self, **hparams: Any) -> Any:
        return self.factory(**{**self.defaults, **hparams})


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, factory: Callable[..., Any], *, kind: str = "torch",
             replace: bool = False, **meta: Any) -> ModelEntry:
    """Register ``factory`` under ``name`` (see the module docstring for the interface)."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {KINDS}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"model {name!r} is already registered")
    entry = ModelEntry(name=name, factory=factory, kind=kind, **meta)
    _REGISTRY[name] = entry
    return entry


def get(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(_REGISTRY)


def _register_builtin() -> None:
    from chromestore.training.models import DeepChrome, StackedDeepChrome

    register(
        "deepchrome", DeepChrome, kind="torch", stacked=StackedDeepChrome.from_models,
        defaults={"dropout": 0.5}, paper="Singh et al. 2016, DeepChrome (Bioinformatics)",
    )


_register_builtin()


# --- peer models (issue 6), run by training.peers.execute -----------------------
def _register_peers() -> None:
    from chromestore.training.peers import register_peers

    register_peers(register)


_register_peers()
