"""One training request, whatever the model: what ``chromestore train`` hands the model's runner.

The app builds a :class:`TrainRequest` from its options; :func:`plan` asks the runner of
the model's kind (:attr:`chromestore.training.registry.ModelEntry.runner_module`) whether
it wants a Dask cluster, the app opens one if so, and :func:`run` trains and returns the
text to print. A runner module has two functions:

``plan(request, cluster) -> (request, heavy)``
    ``cluster``: whether the user asked for one; ``heavy``: ``True``/``False`` as the
    app's cluster rule takes it, ``None`` when the runner uses no cluster.
``run(request, client) -> str``
    Train, write ``runs/NAME`` and return the summary to print.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from chromestore.training import registry
from chromestore.training.config import DEFAULTS

#: The options every model shares, with their defaults (the trainer's own:
#: :data:`chromestore.training.config.DEFAULTS`).
SETTINGS = {
    k: DEFAULTS[k]
    for k in (
        "epochs",
        "patience",
        "batch_size",
        "lr",
        "transform",
        "mode",
        "device",
        "group_size",
        "precision",
        "normalise",
    )
}


@dataclass(frozen=True)
class TrainRequest:
    """A model, the epigenomes and split to train it on, and the options given."""

    store: str
    run: str
    model: str
    cells: list[str]
    split: str = DEFAULTS["split"]
    seed: int = DEFAULTS["seed"]
    settings: Mapping[str, Any] = field(default_factory=lambda: dict(SETTINGS))
    given: frozenset[str] = frozenset()
    options: Mapping[str, Any] = field(default_factory=dict)
    storage_options: Mapping | None = None
    progress: bool = False
    #: when run ``run`` exists: ``refuse``, ``overwrite`` (replace it whole) or ``add`` (its
    #: models join the run's; every split-defining setting must be identical)
    existing: str = "refuse"

    @property
    def entry(self) -> registry.ModelEntry:
        return registry.get(self.model)

    def setting(self, key: str) -> Any:
        return self.settings.get(key, SETTINGS.get(key))

    def hyper(self, keys: Iterable[str]) -> dict[str, Any]:
        """The shared options the user gave that name one of ``keys`` (a model's defaults)."""
        keys = set(keys)
        return {k: self.settings[k] for k in sorted(self.given) if k in keys}

    def hyperparameters(self) -> dict[str, Any]:
        """What overrides the model's defaults: the shared options given that name one of
        them, and the model's own options that have a value."""
        own = {k: v for k, v in self.options.items() if v is not None}
        return {**self.hyper(self.entry.defaults), **own}

    def with_settings(self, **settings: Any) -> TrainRequest:
        return replace(self, settings={**self.settings, **settings})


def plan(request: TrainRequest, cluster: bool) -> tuple[TrainRequest, bool | None]:
    """Ask the model's runner what it needs; see the module docstring."""
    return request.entry.runner_module().plan(request, cluster)


def run(request: TrainRequest, client=None) -> str:
    """Train with the model's runner; the summary text."""
    return request.entry.runner_module().run(request, client)


def validation_summary(ds, request: TrainRequest, head: str) -> str:
    """``run NAME: HEAD, N s; best validation AUC mean …``: one line about a classifier's run."""
    best = ds.history_valid_auc.max("epoch").mean("repeat").sel(model=request.model).values
    return (
        f"run {request.run}: {head}, {ds.attrs['wall_seconds'][request.model]:.1f} s; "
        f"best validation AUC mean {np.nanmean(best):.4f} (min {np.nanmin(best):.4f}, "
        f"max {np.nanmax(best):.4f}); open with "
        f"chromestore.open_run({request.store!r}, {request.run!r})"
    )
