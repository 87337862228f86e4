"""A run's plain files beside the store: weights in folders that one commit made, checked by
the checksums the run records.

``STORE.weights/NAME/`` holds

``<dir>/<model>/<cell>/<repeat>.safetensors``
    the weights of one commit of run ``NAME`` (``<dir>`` is ``w-<id>``); the run's attrs
    name, for every weights file it owns, the folder it lies in and its SHA-256
    (:data:`RECORD`, ``{"deepchrome/E003/0.safetensors": {"dir": "w-1a2b…", "sha256": …,
    "bytes": …}}``), so a reader opens exactly the files of the run it opened, and a file
    that changed afterwards is refused;
``.tmp-<id>/``
    a writer's new weights before its commit (:func:`new_staging`): private to that
    writer, invisible to readers, renamed to ``w-<id>`` when the run that names it is
    written (:func:`promote`);
``.checkpoints/<model>/<tag>.safetensors``
    the last finished epoch of an interrupted training, to resume it.

A commit writes the new run, which names its weights folder, and swaps it in; only then is
a folder that no run names any more deleted (:func:`collect_garbage`, under the run's
lock). A crash at any instant thus leaves the run that was there with the weights it
names. :func:`verify_run_files` checks every run's files against its records
(``chromestore verify``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from chromestore.runs.paths import CHECKPOINTS, RunError, run_files_store
from chromestore.store.handle import Store, StoreLike

#: The run attribute that records its weights files (path → folder, SHA-256, size).
RECORD = "weights"
#: Extension of a weights file (safetensors: arrays and a JSON header, no code).
EXT = "safetensors"
#: Prefix of a writer's private folder, and of a committed one.
STAGING, COMMITTED = ".tmp-", "w-"


class WeightsError(RunError):
    """A run's weights file is missing, changed or unreadable; the message names the file."""


def weights_key(model: str, cell: str, repeat: int) -> str:
    """``<model>/<cell>/<repeat>.safetensors``: a weights file's path inside its folder."""
    return f"{model}/{cell}/{int(repeat)}.{EXT}"


def record_of(attrs: Mapping[str, Any]) -> dict[str, dict]:
    """The weights record of a run's attrs (empty for a run without weights)."""
    record = attrs.get(RECORD) or {}
    return dict(record) if isinstance(record, Mapping) else {}


def new_staging(store: StoreLike, name: str, storage_options: Mapping | None = None) -> Store:
    """A new private folder for a writer's weights, ``STORE.weights/NAME/.tmp-<id>``."""
    return run_files_store(store, name, storage_options).child(f"{STAGING}{uuid.uuid4().hex}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ls(fs, path: str) -> list[str]:
    try:
        return [e.rstrip("/") for e in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return []


def staged_files(staging: Store) -> dict[str, dict]:
    """``{key: {"sha256", "bytes"}}`` of every file in a staging folder."""
    fs, root = staging.fs()
    root = root.rstrip("/")
    if not fs.exists(root):
        return {}
    out = {}
    for path in sorted(fs.find(root)):
        with fs.open(path, "rb") as f:
            data = f.read()
        out[path[len(root) + 1 :]] = {"sha256": sha256(data), "bytes": len(data)}
    return out


def promote(staging: Store) -> str:
    """Rename a staging folder to a committed one (``.tmp-<id>`` → ``w-<id>``); its name.

    Nothing names the new folder yet: until the run that does is swapped in, it is garbage
    that :func:`collect_garbage` removes."""
    fs, root = staging.fs()
    root = root.rstrip("/")
    parent, base = root.rsplit("/", 1)
    name = COMMITTED + base.removeprefix(STAGING)
    if fs.exists(root):
        fs.mv(root, f"{parent}/{name}", recursive=True)
    return name


def collect_garbage(
    store: StoreLike,
    name: str,
    keep: Iterable[str],
    storage_options: Mapping | None = None,
    *,
    staging: bool = True,
) -> list[str]:
    """Delete the folders of ``STORE.weights/NAME`` that no run names (not in ``keep``):
    committed folders of replaced runs and, with ``staging``, the staging folders of
    writers that died. Call it holding the run's lock (a live writer holds it too).
    Returns what was deleted."""
    fs, root = run_files_store(store, name, storage_options).fs()
    keep = set(keep)
    gone = []
    for entry in _ls(fs, root):
        base = entry.rsplit("/", 1)[-1]
        if (base.startswith(COMMITTED) and base not in keep) or (
            staging and base.startswith(STAGING)
        ):
            fs.rm(entry, recursive=True)
            gone.append(base)
    return gone


def drop_checkpoints(
    store: StoreLike, name: str, models: Iterable[str], storage_options: Mapping | None = None
) -> None:
    """Delete the checkpoints of ``models`` (their training is committed: nothing to resume)."""
    fs, root = run_files_store(store, name, storage_options).child(CHECKPOINTS).fs()
    for model in models:
        path = f"{root.rstrip('/')}/{model}"
        if fs.exists(path):
            fs.rm(path, recursive=True)
    if fs.exists(root) and not _ls(fs, root):
        fs.rm(root, recursive=True)


def drop_run_files(store: StoreLike, name: str, storage_options: Mapping | None = None) -> None:
    """Delete ``STORE.weights/NAME`` whole (its run is gone)."""
    fs, root = run_files_store(store, name, storage_options).fs()
    if fs.exists(root):
        fs.rm(root, recursive=True)


def weights_file(
    store: StoreLike,
    name: str,
    key: str,
    attrs: Mapping[str, Any],
    storage_options: Mapping | None = None,
) -> tuple[Store, dict] | None:
    """The file of weights ``key`` that run ``name`` (its ``attrs``) names, and its record
    entry; None when the run keeps no such weights."""
    entry = record_of(attrs).get(key)
    if entry is None:
        return None
    return run_files_store(store, name, storage_options).child(entry["dir"], key), entry


def read_checked(target: Store, entry: Mapping[str, Any]) -> bytes:
    """The bytes of a weights file, refused (:class:`WeightsError`, naming the file) when it
    is missing or its SHA-256 is not the one the run recorded."""
    fs, path = target.fs()
    try:
        with fs.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise WeightsError(
            f"{target.url}: the weights file the run names is missing (the run was replaced "
            "while it was read, or the file was deleted); run the command again"
        ) from None
    if sha256(data) != entry.get("sha256"):
        raise WeightsError(
            f"{target.url}: the file changed after the run was written (its SHA-256 is not "
            "the one the run records); it is not loaded: retrain the run"
        )
    return data


def has_weights(attrs: Mapping[str, Any], model: str) -> bool:
    """Whether a run (its ``attrs``) keeps weights of ``model``."""
    return any(k.startswith(f"{model}/") for k in record_of(attrs))


def verify_run_files(
    store: StoreLike, runs: Mapping[str, Mapping[str, Any]], storage_options: Mapping | None = None
) -> tuple[list[str], list[str]]:
    """Check each run's weights files against its record: ``(problems, notes)``.

    ``runs`` maps a run's name to its attrs. A problem is a file missing or changed; a note
    a run written before weights were recorded (nothing to check)."""
    problems, notes = [], []
    for name, attrs in runs.items():
        record = record_of(attrs)
        if not record:
            if attrs.get("run_format") is None and attrs.get("kind") != "predictions":
                notes.append(f"run {name}: written before weights carried checksums (unchecked)")
            continue
        for key, entry in sorted(record.items()):
            target = run_files_store(store, name, storage_options).child(entry["dir"], key)
            try:
                read_checked(target, entry)
            except WeightsError as e:
                problems.append(str(e.args[0]))
    return problems, notes
