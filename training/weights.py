"""How fitted models are kept beside a run: one codec per kind of object, written atomically.

``STORE.weights/NAME/<model>/<cell>/<repeat>.<ext>`` (a folder beside the store, outside its
Zarr hierarchy; paths from :mod:`chromestore.runs`) holds what a model's entry says (:attr:`chromestore.training.registry.ModelEntry.weights`):

:data:`TORCH`
    ``torch.save`` of state dicts and plain values (tensors, numbers, strings, lists,
    dicts), read back with ``torch.load(weights_only=True)``: no pickled code runs on load.
:data:`JOBLIB`
    ``joblib`` pickles of scikit-learn estimators (load only runs you wrote yourself).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chromestore import runs as R
from chromestore.store import Store, StoreLike


@dataclass(frozen=True)
class Codec:
    """Turns a fitted model into bytes and back; ``ext`` names its files."""

    name: str
    ext: str
    dump: Callable[[Any], bytes]
    load: Callable[[bytes], Any]


def _torch_dump(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _torch_load(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _joblib_dump(obj: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def _joblib_load(data: bytes) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))


TORCH = Codec("torch", "pt", _torch_dump, _torch_load)
JOBLIB = Codec("joblib", "joblib", _joblib_dump, _joblib_load)


def write_bytes(target: Store, data: bytes) -> str:
    """Write ``data`` at ``target`` through a temporary file, so readers never see half a file."""
    fs, path = target.fs()
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = path + ".tmp"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)
    return target.url


def read_bytes(target: Store) -> bytes | None:
    """The bytes at ``target``, or None when there is no file."""
    fs, path = target.fs()
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return f.read()


def save_weights(
    store: StoreLike,
    run: str,
    model: str,
    cell: str,
    repeat: int,
    obj: Any,
    codec: Codec,
    storage_options: Mapping | None = None,
) -> str:
    """Write one fitted model of a run; returns its URL."""
    target = R.weights_store(store, run, model, cell, repeat, codec.ext, storage_options)
    return write_bytes(target, codec.dump(obj))


def load_weights(
    store: StoreLike,
    run: str,
    model: str,
    cell: str,
    repeat: int,
    codec: Codec,
    storage_options: Mapping | None = None,
) -> Any:
    """One fitted model of a run, as :func:`save_weights` wrote it."""
    target = R.weights_store(store, run, model, cell, repeat, codec.ext, storage_options)
    data = read_bytes(target)
    if data is None:
        raise FileNotFoundError(f"no weights at {target.url}")
    return codec.load(data)


def has_weights(
    store: StoreLike, run: str, model: str, storage_options: Mapping | None = None
) -> bool:
    """Whether run ``run`` keeps any weights of ``model``."""
    fs, path = R.weights_store(store, run, model, storage_options=storage_options).fs()
    return fs.exists(path)
