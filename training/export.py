"""Self-contained model folders: weights as safetensors, a JSON spec, a README; no pickle.

``export_model`` writes, into a new or empty folder (or one chromestore wrote, with
``overwrite``: :func:`chromestore.store.safety.claim_folder`),

``model.safetensors``
    every array of every member, named ``member<i>/<path>``; its metadata repeat what
    the weights need of their input: the marks in input order, the bin layout (``n_bins``,
    ``bin_offset``, ``window``, ``bin_size``), the orientation, the genome assembly and
    the format version;
``model.json``
    the model, its hyper-parameters, the same layout, input transform, normalisation,
    label rule, training cells, the store's provenance, chromestore's version,
    :data:`FORMAT_VERSION`, the members' structure (``{"__array__": name}`` where arrays
    were) and ``weights_sha256``, the SHA-256 of ``model.safetensors``;
``README.md`` and chromestore's marker file.

:func:`load_model` checks the folder before it trusts it: the checksum, every field of
``model.json`` and its agreement with the weights file's own metadata (an edited
``model.json`` that swaps the marks or changes the bins is refused), then rebuilds the
members and tries each on one input. Every problem is one line naming the file and what
is wrong (:class:`ExportError`), never the text of JSON, safetensors or torch. Predicting
then matches the marks to the store's by name (another order is fed in the model's order;
a missing mark is refused) and checks genome, window, bin size, bin offsets and
orientation against the store (:meth:`chromestore.training.predict.Predictor.align`).

A member's weights are written as they are when they are plain dicts/lists of tensors,
arrays and JSON values (torch models); an entry whose weights are other objects gives an
``export`` codec (:class:`chromestore.training.entry.ArrayCodec`: every built-in
classifier has one), else export refuses with a message naming the model (no pickle: a
scikit-learn object is not written as it is). A model that comes from a plugin package
names it in ``model.json`` (``plugin``) and in the README: the folder loads only where that
package is installed.
"""

from __future__ import annotations

import hashlib
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
from chromestore.training import weights as W

FORMAT = "chromestore-model"
#: 2: ``weights_sha256`` in model.json, the layout in the weights file's metadata;
#: 3: the input too: transform, training signal units, quantile normalisation.
FORMAT_VERSION = 3
#: the versions :func:`load_model` reads (2: its input is not recorded: predicted as is)
READABLE_VERSIONS = (2, 3)
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"
#: The orientation every store uses (bins 5'→3' along the gene; minus strand flipped).
ORIENTATION = "5'->3' along the gene (minus-strand genes reversed), bin 0 most upstream"
#: The kind of output folder an export is (:mod:`chromestore.store.safety`).
KIND = "model"
#: What both files state, compared on loading: model.json's key → the metadata key.
LAYOUT = ("model", "marks", "n_bins", "bin_offset", "window", "bin_size", "genome", "orientation")
#: What both files state of the model's input since format 3, compared the same way.
INPUT = ("input_transform", "signal_units", "quantile_normalisation")


class ExportError(ValueError):
    """A model cannot be exported, or an exported folder cannot be read."""


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
            "signal_units": dict(predictor.units),
            "quantile_normalisation": predictor.quantiles,
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


def _layout_meta(spec: Mapping[str, Any]) -> dict[str, str]:
    """The layout as the weights file's metadata (JSON text per key)."""
    return {f"chromestore.{k}": json.dumps(spec.get(k)) for k in (*LAYOUT, *INPUT)}


def export_predictor(
    predictor: P.Predictor, out: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``predictor`` as a model folder at ``out``; returns the folder.

    ``out`` must be new or empty, or an exported model folder with ``overwrite``
    (:func:`chromestore.store.safety.check_folder`); nothing is written otherwise."""
    from safetensors.numpy import save

    from chromestore.store import safety

    entry = registry.get(predictor.model)
    arrays: dict[str, np.ndarray] = {}
    members = []
    for i, w in enumerate(predictor.members):
        try:
            _, structure = W.to_arrays(w, entry, prefix=f"member{i}/", skops=False, arrays=arrays)
        except W.WeightsFormatError as e:
            raise ExportError(str(e.args[0])) from None
        members.append(structure)
    spec = spec_of(predictor)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **_layout_meta(spec)}
    data = save(arrays, metadata=meta)
    spec = {**spec, "weights_sha256": hashlib.sha256(data).hexdigest(), "members": members}
    out = Path(safety.claim_folder(out, KIND, overwrite))
    (out / WEIGHTS_FILE).write_bytes(data)
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n")
    (out / "README.md").write_text(_readme(spec))
    safety.seal_folder(out, KIND)
    return out


def export_model(
    store: StoreLike,
    run: str,
    out: str | os.PathLike,
    *,
    cell: str | None = None,
    model: str | None = None,
    storage_options: Mapping | None = None,
    overwrite: bool = False,
) -> Path:
    """Export one model of run ``run`` (``cell``: which epigenome's) to folder ``out``."""
    from chromestore.store import safety

    safety.check_folder(out, KIND, overwrite)  # before reading anything
    predictor = P.from_run(store, run, model=model, from_cell=cell, storage_options=storage_options)
    return export_predictor(predictor, out, overwrite=overwrite)


# --- reading a folder back, checked ---------------------------------------------------------
def _fail(path: Path, what: str) -> ExportError:
    return ExportError(f"{path}: {what}")


def _read_spec(path: Path) -> dict:
    spec_path = path / SPEC_FILE
    if not path.is_dir():
        raise _fail(path, "not a chromestore model folder (no such folder)")
    if not spec_path.is_file():
        raise _fail(path, f"not a chromestore model folder (no {SPEC_FILE})")
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _fail(spec_path, "not text (not a model.json written by chromestore)") from None
    except json.JSONDecodeError as e:
        raise _fail(spec_path, f"not valid JSON at line {e.lineno}, column {e.colno}") from None
    if not isinstance(spec, dict):
        raise _fail(spec_path, "not a JSON object")
    if spec.get("format") != FORMAT:
        raise _fail(spec_path, f"format is {spec.get('format')!r}, not {FORMAT!r}")
    version = spec.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(spec_path, f"format_version {version!r} is not a model format version")
    if version > FORMAT_VERSION:
        raise _fail(
            spec_path,
            f"model format version {version} is newer than this chromestore reads "
            f"({FORMAT_VERSION}); upgrade chromestore",
        )
    if version not in READABLE_VERSIONS:
        raise _fail(
            spec_path,
            f"model format version {version} carries no checksum of its weights; export the "
            "model again with this chromestore",
        )
    _check_fields(spec, spec_path)
    return spec


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_fields(spec: dict, where: Path) -> None:
    """Every field a model folder needs, of the right type, and a bin layout that adds up."""

    def need(key: str, ok, what: str) -> Any:
        if key not in spec:
            raise _fail(where, f"lacks {key!r}")
        if not ok(spec[key]):
            raise _fail(where, f"{key!r} is {json.dumps(spec[key])[:60]}, not {what}")
        return spec[key]

    need("model", lambda v: isinstance(v, str) and v, "a model name")
    need("task", lambda v: v in ("classification", "regression"), "classification or regression")
    marks = need(
        "marks",
        lambda v: isinstance(v, list) and v and all(isinstance(m, str) and m for m in v),
        "a list of mark names",
    )
    if len(set(marks)) != len(marks):
        raise _fail(where, f"'marks' names a mark twice: {marks}")
    offsets = need(
        "bin_offset", lambda v: isinstance(v, list) and v and all(map(_is_int, v)), "a list of bp"
    )
    n_bins = need("n_bins", _is_int, "a number of bins")
    window = need("window", lambda v: _is_int(v) and v > 0, "a window in bp")
    bin_size = need("bin_size", lambda v: _is_int(v) and v > 0, "a bin size in bp")
    need("genome", lambda v: v is None or isinstance(v, str), "a genome assembly name")
    need("orientation", lambda v: isinstance(v, str), "an orientation")
    need("input_transform", lambda v: v in P.TRANSFORMS, f"one of {P.TRANSFORMS}")
    need(
        "normalisation",
        lambda v: v is None or (isinstance(v, dict) and v.get("kind") in P.NORMALISATIONS),
        f"null or a normalisation of kind {' or '.join(P.NORMALISATIONS)}",
    )
    if spec["format_version"] >= 3:
        units = need(
            "signal_units",
            lambda v: isinstance(v, dict) and all(isinstance(u, str) for u in v.values()),
            "an object of mark → units",
        )
        if set(units) - set(marks):
            raise _fail(where, f"'signal_units' names marks {sorted(set(units) - set(marks))} "
                        "the model does not read")  # fmt: skip
        need(
            "quantile_normalisation",
            lambda v: v is None or _is_reference(v, len(marks)),
            f"null or a quantile normalisation (levels, reference: {len(marks)} lists of them)",
        )
    need("hyperparameters", lambda v: isinstance(v, dict), "an object")
    need("training_cells", lambda v: isinstance(v, list), "a list of epigenomes")
    need("label_rule", lambda v: isinstance(v, dict) and "training_labels" in v, "an object")
    need("members", lambda v: isinstance(v, list) and v, "a list of members")
    need("weights_sha256", lambda v: isinstance(v, str) and len(v) == 64, "a SHA-256")
    if n_bins != len(offsets):
        raise _fail(where, f"'n_bins' is {n_bins} but 'bin_offset' lists {len(offsets)} bins")
    if 2 * window != n_bins * bin_size:
        raise _fail(
            where,
            f"'window' ±{window} bp, 'bin_size' {bin_size} bp and 'n_bins' {n_bins} contradict "
            f"each other (2 × window = n_bins × bin_size)",
        )
    if offsets != list(range(-window, window, bin_size)):
        raise _fail(
            where,
            f"'bin_offset' ({offsets[0]}, {offsets[1] if len(offsets) > 1 else ''}, …) are not "
            f"bins of {bin_size} bp from -{window} bp",
        )


def _is_reference(v: Any, n_marks: int) -> bool:
    """A quantile normalisation: ``kind`` quantile, ``levels`` L ≥ 2 and a ``reference``
    of one non-decreasing list of L finite numbers per mark."""
    if not (isinstance(v, dict) and v.get("kind") == "quantile" and _is_int(v.get("levels"))):
        return False
    ref, n = v.get("reference"), v["levels"]
    if n < 2 or not isinstance(ref, list) or len(ref) != n_marks:
        return False
    for row in ref:
        if not (isinstance(row, list) and len(row) == n):
            return False
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in row):
            return False
        a = np.asarray(row, np.float64)
        if not (np.isfinite(a).all() and (np.diff(a) >= 0).all()):
            return False
    return True


def _read_weights(path: Path, spec: dict) -> dict[str, np.ndarray]:
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise _fail(path, f"not a chromestore model folder (no {WEIGHTS_FILE})")
    data = weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != spec["weights_sha256"]:
        raise _fail(
            weights,
            f"its SHA-256 is not the weights_sha256 of {SPEC_FILE} (the file changed after "
            "export); not loaded",
        )
    try:
        arrays, meta = W.read_safetensors(data, str(weights))
    except W.WeightsFormatError as e:
        raise ExportError(str(e.args[0])) from None
    if meta.get("format") != FORMAT:
        raise _fail(weights, f"not a chromestore model's weights (format {meta.get('format')!r})")
    for key in (*LAYOUT, *(INPUT if spec["format_version"] >= 3 else ())):
        try:
            theirs = json.loads(meta[f"chromestore.{key}"])
        except (KeyError, ValueError):
            raise _fail(weights, f"its metadata lack the model's {key!r}") from None
        if theirs != spec.get(key):
            raise _fail(
                path / SPEC_FILE,
                f"{key!r} is {json.dumps(spec.get(key))[:60]} but the weights were trained with "
                f"{json.dumps(theirs)[:60]} ({WEIGHTS_FILE}); model.json was edited: not loaded",
            )
    return arrays


def load_model(path: str | os.PathLike) -> P.Predictor:
    """A model folder written by :func:`export_model`, checked, ready to ``predict(dataset)``.

    Examples
    --------
    >>> model = chromestore.load_model("dc-E003")  # doctest: +SKIP
    >>> scores = model.predict(chromestore.open_store("mine.zarr"))  # (cell, gene)  # doctest: +SKIP
    """
    path = Path(path)
    spec = _read_spec(path)
    spec_path = path / SPEC_FILE
    entry = registry.find(spec["model"])
    if entry is None:
        plugin = spec.get("plugin") or {}
        raise ExportError(
            f"{spec_path}: model {spec['model']!r} is not installed"
            + (
                f"; it comes from the plugin package {plugin['package']} "
                f"{plugin.get('version') or ''}: pip install {plugin['package']}"
                if isinstance(plugin, dict) and plugin.get("package")
                else " (register it before loading this folder)"
            )
        )
    if entry.task != spec["task"]:
        raise _fail(
            spec_path, f"'task' is {spec['task']!r}, model {entry.name!r} is a {entry.task}"
        )
    arrays = _read_weights(path, spec)
    weights = str(path / WEIGHTS_FILE)
    members = []
    for i, structure in enumerate(spec["members"]):
        try:
            members.append(W.from_arrays(structure, arrays, entry, weights))
        except W.WeightsFormatError as e:
            raise ExportError(f"{str(e.args[0])} (member {i})") from None
    predictor = P.Predictor(
        model=spec["model"],
        task=spec["task"],
        marks=list(spec["marks"]),
        bin_offset=list(spec["bin_offset"]),
        transform=spec["input_transform"],
        hparams=dict(spec["hyperparameters"]),
        members=members,
        train_cells=[str(c) for c in spec["training_cells"]],
        normalisation=spec.get("normalisation"),
        units=dict(spec.get("signal_units") or {}),
        quantiles=spec.get("quantile_normalisation"),
        source={
            "model": spec["model"],
            "weights_sha256": spec["weights_sha256"],
            "from": f"model folder {path.resolve()}",
        },
        spec={
            "run": spec.get("source_run"),
            "label_rule": spec["label_rule"]["training_labels"],
            "window": spec["window"],
            "bin_size": spec["bin_size"],
            "genome": spec["genome"],
            "provenance": spec.get("provenance"),
            "orientation": spec["orientation"],
            "split_scheme": spec.get("split_scheme"),
            "seed": spec.get("seed"),
            "versions": spec.get("training_versions"),
        },
    )
    _try_members(predictor, weights)
    return predictor


def _try_members(predictor: P.Predictor, weights: str) -> None:
    """Build each member's scorer and score one input of the model's shape, so weights that
    do not fit the model fail here, as one line naming the file."""
    probe = np.zeros((2, len(predictor.marks), predictor.n_bins), np.float32)
    entry, layout = registry.get(predictor.model), predictor.layout
    for i, member in enumerate(predictor.members):
        try:
            scores = np.asarray(P.make_scorer(entry, member, predictor.hparams, layout)(probe))
        except P.PredictError as e:
            raise ExportError(f"{weights}: member {i}: {e.args[0]}") from None
        except Exception as e:  # whatever the model's own code raises on weights that do not fit
            raise ExportError(
                f"{weights}: member {i} does not fit model {predictor.model!r} with "
                f"{len(predictor.marks)} marks × {predictor.n_bins} bins "
                f"({type(e).__name__} while scoring)"
            ) from None
        if scores.shape != (len(probe),):
            raise ExportError(
                f"{weights}: member {i} gives {scores.shape} scores for {len(probe)} genes"
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
- `{WEIGHTS_FILE}`: weights ({spec["n_members"]} member(s), scores averaged), safetensors;
  its metadata repeat the marks and bin layout below.
- `{SPEC_FILE}`: marks in input order ({", ".join(spec["marks"])}), {spec["n_bins"]} bins of
  {spec["bin_size"]} bp over ±{spec["window"]} bp of the TSS ({spec["genome"]}), oriented
  {spec["orientation"]}; input transform `{spec["input_transform"]}`; training signal
  units `{json.dumps(spec["signal_units"])}`; quantile normalisation
  `{
        "per mark, onto its training epigenomes' quantiles"
        if spec["quantile_normalisation"]
        else "none"
    }`; normalisation `{json.dumps(spec["normalisation"])}`; training labels `{
        spec["label_rule"]["training_labels"]
    }`;
  `weights_sha256` of `{WEIGHTS_FILE}` (a changed file is refused).

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
