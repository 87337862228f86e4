"""Self-contained model folders: weights as safetensors, a JSON spec, a README; no pickle.

``export_model`` writes ``DIR/model.safetensors`` (every array of every member, named
``member<i>/<path>``), ``DIR/model.json`` (the model, its hyper-parameters, marks and their
order, bins, window, bin size, orientation, input transform, normalisation, label rule,
training cells, the store's provenance, chromestore's version and :data:`FORMAT_VERSION`;
the members' non-array values with ``{"__array__": name}`` where arrays were) and
``DIR/README.md``. :func:`load_model` reads it back as a
:class:`chromestore.training.predict.Predictor`.

A member's weights are exported as they are when they are plain dicts/lists of tensors,
arrays and JSON values (torch models); an entry whose weights are other objects gives an
``export`` codec (:class:`chromestore.training.entry.ArrayCodec`: ``to_arrays`` and
``from_arrays``), else export refuses with a message naming the model (no pickle: a
scikit-learn object is not written as it is). A model that comes from a plugin package
names it in ``model.json`` (``plugin``) and in the README: the folder loads only where that
package is installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from chromestore import runs as R
from chromestore.store import StoreLike
from chromestore.training import predict as P
from chromestore.training import registry

FORMAT = "chromestore-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"
#: The orientation every store uses (bins 5'→3' along the gene; minus strand flipped).
ORIENTATION = "5'->3' along the gene (minus-strand genes reversed), bin 0 most upstream"


class ExportError(ValueError):
    """A model cannot be exported, or an exported folder cannot be read."""


def _flatten(obj: Any, path: str, arrays: dict[str, np.ndarray], model: str) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _flatten(v, f"{path}/{k}", arrays, model) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_flatten(v, f"{path}/{i}", arrays, model) for i, v in enumerate(obj)]
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):  # a torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        arrays[path] = np.ascontiguousarray(obj)
        return {"__array__": path}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise ExportError(
        f"model {model!r} keeps its weights as {type(obj).__module__}.{type(obj).__name__}, "
        "which export cannot write without pickle: its registry entry gives no "
        "export=ArrayCodec(to_arrays, from_arrays) to write them as arrays"
    )


def _unflatten(obj: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _unflatten(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, arrays) for v in obj]
    return obj


def spec_of(predictor: P.Predictor) -> dict:
    """The JSON spec of a predictor (without its members)."""
    from importlib.metadata import version

    s = predictor.spec
    return R.jsonable(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "chromestore_version": version("chromestore"),
            "model": predictor.model,
            "task": predictor.task,
            "hyperparameters": predictor.hparams,
            "marks": list(predictor.marks),
            "n_bins": predictor.n_bins,
            "bin_offset": list(predictor.bin_offset),
            "window": s.get("window"),
            "bin_size": s.get("bin_size"),
            "genome": s.get("genome"),
            "orientation": s.get("orientation") or ORIENTATION,
            "input_transform": predictor.transform,
            "normalisation": predictor.normalisation,
            "label_rule": {
                "training_labels": s.get("label_rule"),
                "prediction": "label = score >= 0.5 (P(high expression))"
                if predictor.task == "classification"
                else "none (regression)",
            },
            "training_cells": list(predictor.train_cells),
            "source_run": s.get("run"),
            "split_scheme": s.get("split_scheme"),
            "seed": s.get("seed"),
            "provenance": s.get("provenance"),
            "training_versions": s.get("versions"),
            "n_members": len(predictor.members),
            "plugin": plugin_of(predictor.model),
        },
        nonfinite_as_str=True,
    )


def plugin_of(model: str) -> dict | None:
    """The plugin package model ``model`` comes from (``{"package", "version",
    "entry_point"}``), or None for a built-in model or one registered in this process."""
    listing = registry.source(model)
    if listing is None or not listing.is_plugin:
        return None
    return {
        "package": listing.package,
        "version": listing.version,
        "entry_point": f"{listing.name} = {listing.target}",
    }


def export_predictor(predictor: P.Predictor, out: str | os.PathLike) -> Path:
    """Write ``predictor`` as a model folder at ``out``; returns the folder."""
    from safetensors.numpy import save_file

    entry = registry.get(predictor.model)
    arrays: dict[str, np.ndarray] = {}
    members = []
    for i, w in enumerate(predictor.members):
        if entry.export is not None:
            flat, rest = entry.export.to_arrays(w)
            arrays.update({f"member{i}/{k}": np.ascontiguousarray(v) for k, v in flat.items()})
            members.append({"to_arrays": R.jsonable(rest), "prefix": f"member{i}/"})
        else:
            members.append(_flatten(w, f"member{i}", arrays, predictor.model))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(out / WEIGHTS_FILE))
    spec = {**spec_of(predictor), "members": members}
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n")
    (out / "README.md").write_text(_readme(spec))
    return out


def export_model(
    store: StoreLike,
    run: str,
    out: str | os.PathLike,
    *,
    cell: str | None = None,
    model: str | None = None,
    storage_options: Mapping | None = None,
) -> Path:
    """Export one model of run ``run`` (``cell``: which epigenome's) to folder ``out``."""
    predictor = P.from_run(store, run, model=model, from_cell=cell, storage_options=storage_options)
    return export_predictor(predictor, out)


def load_model(path: str | os.PathLike) -> P.Predictor:
    """A model folder written by :func:`export_model`, ready to ``predict(dataset)``.

    Examples
    --------
    >>> model = chromestore.load_model("dc-E003")  # doctest: +SKIP
    >>> scores = model.predict(chromestore.open_store("mine.zarr"))  # (cell, gene)  # doctest: +SKIP
    """
    from safetensors.numpy import load_file

    path = Path(path)
    spec_path = path / SPEC_FILE
    if not spec_path.exists():
        raise ExportError(f"{path} is not a chromestore model folder (no {SPEC_FILE})")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != FORMAT:
        raise ExportError(f"{spec_path}: format is {spec.get('format')!r}, not {FORMAT!r}")
    version = spec.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportError(
            f"{spec_path}: model format version {version} is newer than this "
            f"chromestore reads ({FORMAT_VERSION}); upgrade chromestore"
        )
    entry = registry.find(spec["model"])
    if entry is None:
        plugin = spec.get("plugin") or {}
        raise ExportError(
            f"{spec_path}: model {spec['model']!r} is not installed"
            + (
                f"; it comes from the plugin package {plugin['package']} "
                f"{plugin.get('version') or ''}: pip install {plugin['package']}"
                if plugin.get("package")
                else " (register it before loading this folder)"
            )
        )
    arrays = load_file(str(path / WEIGHTS_FILE))
    members = []
    for m in spec["members"]:
        if isinstance(m, dict) and "to_arrays" in m and entry.export is not None:
            flat = {
                k.removeprefix(m["prefix"]): v
                for k, v in arrays.items()
                if k.startswith(m["prefix"])
            }
            members.append(entry.export.from_arrays(flat, m["to_arrays"]))
        else:
            members.append(_unflatten(m, arrays))
    return P.Predictor(
        model=spec["model"],
        task=spec["task"],
        marks=list(spec["marks"]),
        bin_offset=list(spec["bin_offset"]),
        transform=spec["input_transform"],
        hparams=dict(spec.get("hyperparameters") or {}),
        members=members,
        train_cells=list(spec.get("training_cells") or []),
        normalisation=spec.get("normalisation"),
        spec={
            "run": spec.get("source_run"),
            "label_rule": spec["label_rule"]["training_labels"],
            "window": spec.get("window"),
            "bin_size": spec.get("bin_size"),
            "genome": spec.get("genome"),
            "provenance": spec.get("provenance"),
            "orientation": spec.get("orientation"),
            "split_scheme": spec.get("split_scheme"),
            "seed": spec.get("seed"),
            "versions": spec.get("training_versions"),
        },
    )


def _readme(spec: dict) -> str:
    cells = ", ".join(spec["training_cells"])
    plugin = spec.get("plugin")
    needs = (
        f"""
The model `{spec["model"]}` comes from the plugin package `{plugin["package"]}`
{plugin["version"] or ""} (entry point `{plugin["entry_point"]}` of `chromestore.models`):
install it where you load this folder (`pip install {plugin["package"]}`), besides chromestore.
"""
        if plugin
        else ""
    )
    return f"""# {spec["model"]} trained on {cells}

Exported by chromestore {spec["chromestore_version"]} (model format {spec["format_version"]})
from run `{spec["source_run"]}`.
{needs}
- `{WEIGHTS_FILE}`: weights ({spec["n_members"]} member(s), scores averaged), safetensors.
- `{SPEC_FILE}`: marks in input order ({", ".join(spec["marks"])}), {spec["n_bins"]} bins of
  {spec["bin_size"]} bp over ±{spec["window"]} bp of the TSS ({spec["genome"]}), oriented
  {spec["orientation"]}; input transform `{spec["input_transform"]}`; normalisation
  `{json.dumps(spec["normalisation"])}`; training labels `{spec["label_rule"]["training_labels"]}`.

Use it:

```python
from chromestore.store.dataset import open_store
model = chromestore.load_model("this-folder")
scores = model.predict(open_store("your.zarr"))  # (cell, gene)
```

or `chromestore predict your.zarr --model-dir this-folder --cells YOURCELL --output scores.csv`.
Scores are {
        "P(high expression); label = score >= 0.5"
        if spec["task"] == "classification"
        else "predicted log(RPKM+1)"
    }.
"""
