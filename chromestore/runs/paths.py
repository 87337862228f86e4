"""Where a run's parts live: ``runs/NAME`` in the store, weights and checkpoints beside it.

A run is the Zarr group ``runs/NAME`` (:func:`run_store`), with its reductions at
``runs/NAME/metrics`` (:func:`metrics_store`) and a model's scores at
``runs/NAME/predictions`` (:func:`predictions_store`). Weights and checkpoints are plain
files, so they live beside the store in ``STORE.weights/NAME`` (:func:`run_files_store`;
the weights in a folder per commit that the run's records name, see
:mod:`chromestore.runs.files`; ``.checkpoints/<model>/<tag>.safetensors``,
:func:`checkpoint_store`), not in its Zarr hierarchy, where zarr would warn "Object at
weights is not recognized". Every path is a :class:`chromestore.store.Store` handle.
"""

from __future__ import annotations

from collections.abc import Mapping

from chromestore.store.handle import Store, StoreLike, run_files_root

RUNS = "runs"
CHECKPOINTS = ".checkpoints"
METRICS = "metrics"
PREDICTIONS = "predictions"


class RunError(KeyError):
    """A run does not exist (or cannot be written) in a store."""


# --- where things live ------------------------------------------------------------
def run_store(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """The handle of run ``name``'s group (weights, checkpoints and metrics are children)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid run name {name!r} (a non-empty name without '/')")
    return Store.of(store, storage_options).child(RUNS, name)


def run_path(store: StoreLike, name: str) -> str:
    """URL of run ``name``'s group."""
    return run_store(store, name).url


def run_files_store(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """``STORE.weights/NAME``: the plain files of run ``name`` (outside the Zarr hierarchy)."""
    run_store(store, name)  # validates the name
    return run_files_root(store, storage_options).child(name)


def checkpoint_store(
    store: StoreLike, name: str, model: str, tag: str, storage_options: Mapping | None = None
) -> Store:
    """``STORE.weights/NAME/.checkpoints/<model>/<tag>.safetensors``: a group's last finished
    epoch."""
    return run_files_store(store, name, storage_options).child(
        CHECKPOINTS, model, f"{tag}.safetensors"
    )


def metrics_group(name: str) -> str:
    """The Zarr group of a run's reductions, relative to the store."""
    return f"{RUNS}/{name}/{METRICS}"


def metrics_store(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """``runs/NAME/metrics``: what analysis reduced the run to."""
    return run_store(store, name, storage_options).child(METRICS)


def predictions_store(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """``runs/NAME/predictions``: a model's scores for epigenomes (``chromestore predict``)."""
    return run_store(store, name, storage_options).child(PREDICTIONS)


def ensure_runs_group(store: StoreLike, storage_options: Mapping | None = None) -> None:
    """Make ``runs/`` a real Zarr group, so readers of the store see a group, not a folder.

    Several workers may call this at once: one that loses the race to create the group
    finds it there, which is all it wanted.
    """
    from zarr.errors import ContainsGroupError

    runs = Store.of(store, storage_options).child(RUNS)
    try:
        runs.group(mode="a")
    except ContainsGroupError:
        runs.group(mode="r")
