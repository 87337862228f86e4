"""How fitted models and checkpoints are kept: safetensors files, never a pickle.

One fitted member (a torch state dict with its settings, a dict of arrays, a list of state
dicts, a fitted object) is one safetensors file: every array under a name, and in the
header's metadata (:data:`FORMAT`, :data:`VERSION`) the member's structure as JSON, with
``{"__array__": name}`` (numpy) or ``{"__tensor__": name}`` (torch) where arrays were. Reading
one runs no code of the file's: the header is JSON, the arrays are raw numbers.

Objects that are not plain values reach the file in one of two ways:

- the model entry's ``export=ArrayCodec(to_arrays, from_arrays)``
  (:class:`chromestore.training.entry.ArrayCodec`), used for the whole member: the
  built-ins' (ShallowChrome's logistic fit, svm-bin's SVC, rf-bestbin's forest) keep
  their fitted parameters as arrays and score them with chromestore's own numpy code;
- a scikit-learn estimator of a plugin without a codec: skops' format
  (``skops.io``), stored as one byte array and loaded trusting only scikit-learn's own
  types (a file naming any other type is refused, never loaded).

Anything else is refused when it is written, naming the model and the type. Every read
error is one line naming the file (:class:`WeightsFormatError`), never the text of
safetensors, torch or skops.

A run's weights files are written into its writer's private folder
(:meth:`chromestore.runs.RunWriter.weights_target`) and read back through the run's
records, which give each file's folder and SHA-256 (:func:`load_weights`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from chromestore import runs as R
from chromestore.runs.files import WeightsError
from chromestore.store import Store, StoreLike

#: The metadata keys of every file: its format name and version, and the structure.
FORMAT = "chromestore-weights"
VERSION = 1
STRUCTURE = "structure"
#: Where a plugin's scikit-learn estimator lies in a file (skops' bytes, as uint8).
SKOPS = "__skops__"


class WeightsFormatError(WeightsError):
    """A weights or checkpoint file that cannot be read (or an object that cannot be
    written) as chromestore's format; the message names the file and what is wrong."""


# --- objects ↔ arrays + structure ----------------------------------------------------------
def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def _is_sklearn(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "sklearn"


def to_arrays(
    obj: Any,
    entry=None,
    *,
    prefix: str = "",
    skops: bool = True,
    arrays: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], Any]:
    """``obj`` as named arrays and a JSON structure that names them.

    ``entry``: a model entry whose ``export`` codec, if any, converts the whole object;
    ``skops``: whether a scikit-learn estimator without a codec may be kept with skops
    (run weights; an exported folder holds arrays only). Raises
    :class:`WeightsFormatError` for an object it cannot write.
    """
    arrays = {} if arrays is None else arrays
    codec = getattr(entry, "export", None)
    if codec is not None:
        flat, rest = codec.to_arrays(obj)
        names = []
        for k, v in flat.items():
            arrays[f"{prefix}{k}"] = np.ascontiguousarray(np.asarray(v))
            names.append(f"{prefix}{k}")
        return arrays, {"__codec__": R.jsonable(rest), "__arrays__": names, "__prefix__": prefix}
    model = getattr(entry, "name", None)
    return arrays, _flatten(obj, prefix.rstrip("/"), arrays, model, skops)


def _flatten(obj: Any, path: str, arrays: dict, model: str | None, skops: bool) -> Any:
    if isinstance(obj, Mapping):
        if any(not isinstance(k, str) for k in obj):
            return {"__dict__": [[_key(k), _flatten(v, f"{path}/{_key(k)}", arrays, model, skops)]
                                 for k, v in obj.items()]}  # fmt: skip
        return {k: _flatten(v, f"{path}/{k}", arrays, model, skops) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        out = [_flatten(v, f"{path}/{i}", arrays, model, skops) for i, v in enumerate(obj)]
        return out if isinstance(obj, list) else {"__tuple__": out}
    if _is_tensor(obj):
        arrays[path] = np.ascontiguousarray(obj.detach().cpu().numpy())
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise WeightsFormatError(
                f"model {model!r}: array {path!r} has dtype {obj.dtype}, which weights files "
                "do not hold (numbers and booleans only)"
            )
        arrays[path] = np.ascontiguousarray(obj)
        return {"__array__": path}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if skops and _is_sklearn(obj):
        import skops.io

        arrays[path] = np.frombuffer(skops.io.dumps(obj), dtype=np.uint8).copy()
        return {SKOPS: path}
    raise WeightsFormatError(
        f"model {model!r} keeps its weights as {type(obj).__module__}.{type(obj).__name__}, "
        f"which {'chromestore' if skops else 'export'} cannot write without pickle: its "
        "registry entry gives no export=ArrayCodec(to_arrays, from_arrays) to write them as "
        "arrays"
    )


def _key(k: Any) -> Any:
    return k.item() if isinstance(k, np.generic) else k


def from_arrays(
    structure: Any, arrays: Mapping[str, np.ndarray], entry=None, where: str = ""
) -> Any:
    """The object :func:`to_arrays` wrote, from its structure and arrays."""
    if isinstance(structure, dict) and "__codec__" in structure:
        codec = getattr(entry, "export", None)
        if codec is None:
            raise WeightsFormatError(
                f"{where}: written with model {getattr(entry, 'name', '?')!r}'s export codec, "
                "which this model has not"
            )
        prefix = structure.get("__prefix__", "")
        flat = {n.removeprefix(prefix): _array(arrays, n, where) for n in structure["__arrays__"]}
        try:
            return codec.from_arrays(flat, structure["__codec__"])
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise WeightsFormatError(
                f"{where}: model {entry.name!r} cannot rebuild its weights from the file "
                f"({type(e).__name__}: {_short(e)})"
            ) from None
    return _unflatten(structure, arrays, where)


def _unflatten(obj: Any, arrays: Mapping[str, np.ndarray], where: str) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return _array(arrays, obj["__array__"], where)
        if set(obj) == {"__tensor__"}:
            import torch

            return torch.from_numpy(_array(arrays, obj["__tensor__"], where).copy())
        if set(obj) == {SKOPS}:
            return _skops(_array(arrays, obj[SKOPS], where), where)
        if set(obj) == {"__tuple__"}:
            return tuple(_unflatten(v, arrays, where) for v in obj["__tuple__"])
        if set(obj) == {"__dict__"}:
            return {k: _unflatten(v, arrays, where) for k, v in obj["__dict__"]}
        return {k: _unflatten(v, arrays, where) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, arrays, where) for v in obj]
    return obj


def _array(arrays: Mapping[str, np.ndarray], name: str, where: str) -> np.ndarray:
    if not isinstance(name, str) or name not in arrays:
        raise WeightsFormatError(f"{where}: lacks the array {name!r} that its structure names")
    return arrays[name]


def _skops(data: np.ndarray, where: str) -> Any:
    """A scikit-learn estimator from skops bytes, trusting only scikit-learn's own types."""
    import skops.io

    raw = np.asarray(data, np.uint8).tobytes()
    try:
        untrusted = skops.io.get_untrusted_types(data=raw)
    except Exception as e:
        raise WeightsFormatError(
            f"{where}: the estimator inside is not readable ({type(e).__name__})"
        ) from None
    foreign = [t for t in untrusted if t.split(".")[0] != "sklearn"]
    if foreign:
        raise WeightsFormatError(
            f"{where}: names types chromestore does not trust ({', '.join(foreign[:3])}); "
            "not loaded"
        )
    try:
        return skops.io.loads(raw, trusted=untrusted)
    except Exception as e:
        raise WeightsFormatError(
            f"{where}: the estimator inside is not readable ({type(e).__name__})"
        ) from None


def _short(e: BaseException, n: int = 80) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return text[:n]


# --- bytes ---------------------------------------------------------------------------------
def dumps(obj: Any, entry=None, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """``obj`` as the bytes of one safetensors file (see the module docstring)."""
    from safetensors.numpy import save

    arrays, structure = to_arrays(obj, entry)
    meta = {
        "format": FORMAT,
        "format_version": str(VERSION),
        STRUCTURE: json.dumps(structure),
        **(metadata or {}),
    }
    return save(arrays, metadata=meta)


def read_safetensors(data: bytes, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and metadata of safetensors bytes; one line naming ``where`` if they are not
    a safetensors file."""
    if len(data) < 8:
        raise WeightsFormatError(f"{where}: not a safetensors file (only {len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n <= 1 or n > len(data) - 8 or data[8:9] != b"{":
        raise WeightsFormatError(f"{where}: not a safetensors file (no JSON header at its start)")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        raise WeightsFormatError(
            f"{where}: not a safetensors file (its header is not JSON)"
        ) from None
    if not isinstance(header, dict):
        raise WeightsFormatError(f"{where}: not a safetensors file (its header is not a map)")
    from safetensors.numpy import load

    try:
        arrays = load(data)
    except Exception:
        raise WeightsFormatError(
            f"{where}: a damaged safetensors file (its arrays do not match its header)"
        ) from None
    meta = header.get("__metadata__") or {}
    return arrays, {str(k): str(v) for k, v in meta.items()}


def loads(data: bytes, entry=None, where: str = "<weights>") -> Any:
    """The object :func:`dumps` wrote; :class:`WeightsFormatError` naming ``where`` for
    anything else (a pickle, another program's file, a damaged one)."""
    arrays, meta = read_safetensors(data, where)
    if meta.get("format") != FORMAT:
        raise WeightsFormatError(f"{where}: not a chromestore weights file (format "
                                 f"{meta.get('format')!r})")  # fmt: skip
    if not meta.get("format_version", "").isdigit() or int(meta["format_version"]) > VERSION:
        raise WeightsFormatError(
            f"{where}: weights format version {meta.get('format_version')!r} is newer than this "
            f"chromestore reads ({VERSION}); upgrade chromestore"
        )
    try:
        structure = json.loads(meta[STRUCTURE])
    except (KeyError, ValueError):
        raise WeightsFormatError(f"{where}: its structure (header metadata) is not JSON") from None
    return from_arrays(structure, arrays, entry, where)


# --- files -----------------------------------------------------------------------------------
def write_bytes(target: Store, data: bytes) -> str:
    """Write ``data`` at ``target`` through a temporary file of its own, so a reader never sees
    half a file."""
    fs, path = target.fs()
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
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


def save(target: Store, obj: Any, entry=None) -> str:
    """Write one fitted member at ``target`` (a writer's private folder); its URL."""
    return write_bytes(target, dumps(obj, entry))


def load_weights(
    store: StoreLike,
    run: str,
    model: str,
    cell: str,
    repeat: int,
    entry=None,
    storage_options: Mapping | None = None,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> Any:
    """One fitted member of run ``run``: the file its records name, checked against their
    SHA-256 (``attrs``: the run's, when already read). ``FileNotFoundError`` when the run
    keeps no such member; :class:`chromestore.runs.WeightsError` (one line naming the file)
    when the file is missing, changed or not chromestore's format."""
    store = Store.of(store, storage_options)
    if attrs is None:
        attrs = R.run_store(store, run).attrs()
    found = R.weights_file(store, run, R.weights_key(model, cell, repeat), attrs)
    if found is None:
        raise FileNotFoundError(f"run {run!r} keeps no weights of {model} {cell} repeat {repeat}")
    target, record = found
    return loads(R.read_checked(target, record), entry, target.url)


def has_weights(
    store: StoreLike, run: str, model: str, storage_options: Mapping | None = None
) -> bool:
    """Whether run ``run`` keeps any weights of ``model``."""
    handle = R.run_store(store, run, storage_options)
    return handle.exists() and R.has_weights(handle.attrs(), model)


def weights_digest(store: StoreLike, run: str, model: str, key: str, attrs: Mapping) -> str:
    """One SHA-256 over the recorded checksums of a model's members (``key``: its cell or
    pooled key): what identifies the model its predictions came from."""
    import hashlib

    record = R.record_of(attrs)
    parts = sorted((k, v["sha256"]) for k, v in record.items() if k.startswith(f"{model}/{key}/"))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
