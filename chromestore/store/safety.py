"""Replacing a store safely: nothing deletes a path that chromestore did not create.

A path may receive a new store when nothing is there (or an empty folder). An existing
store is replaced only when asked (``overwrite``) and only when it is one: its root
``zarr.json`` is a group whose attrs say ``format: chromestore``, and every entry beside
that ``zarr.json`` is a Zarr node (a folder with its own ``zarr.json``). Anything else at
the path (a file, a folder of notes, another program's Zarr store) is refused, and
nothing is changed. :func:`refuse_occupied` is the same rule for every new store
(:func:`chromestore.create_store`): nothing there, or an empty folder.

Output folders (a report, emitted files, an exported model) follow the same rule
(:func:`check_folder`, :func:`claim_folder`): chromestore writes into a new or empty folder,
or replaces, when asked, one that carries its marker file (:data:`MARKER`), which names
what kind of output it is and every entry chromestore wrote there.
"""

from __future__ import annotations

import json
import os

from chromestore import variables as V
from chromestore.errors import StoreError
from chromestore.store.handle import CREATING, Store, StoreLike, drop_run_files


def describe(store: StoreLike, storage_options: dict | None = None) -> str:
    """What is at ``store``: ``"nothing"``, ``"empty"`` (an empty folder), ``"store"`` (a
    chromestore store and nothing else), ``"creating"`` (an object store's creation that
    was interrupted: its ``creating`` marker and Zarr nodes) or a phrase saying what else is
    there."""
    handle = Store.of(store, storage_options)
    fs, root = handle.fs()
    root = root.rstrip("/") or "/"
    if not fs.exists(root):
        return "nothing"
    if not fs.isdir(root):
        return "a file"
    entries = [e.rstrip("/") for e in fs.ls(root, detail=False)]
    if not entries:
        return "empty"
    names = sorted(os.path.basename(e) for e in entries)
    if CREATING in names and all(
        n in (CREATING, "zarr.json") or fs.exists(f"{root}/{n}/zarr.json") for n in names
    ):
        return "creating"
    if "zarr.json" not in names:
        return f"a folder holding {_short(names)}"
    try:
        doc = json.loads(fs.cat_file(f"{root}/zarr.json"))
    except (ValueError, UnicodeDecodeError):
        return "a folder whose zarr.json is not valid JSON"
    attrs = doc.get("attributes") or {}
    if doc.get("node_type") != "group" or attrs.get("format") != V.FORMAT_NAME:
        return (
            f"a Zarr {doc.get('node_type', 'node')} not made by chromestore (no "
            f"format={V.FORMAT_NAME!r} attribute)"
        )
    foreign = [
        os.path.basename(e)
        for e in entries
        if os.path.basename(e) != "zarr.json" and not fs.exists(f"{e}/zarr.json")
    ]
    if foreign:
        return f"a chromestore store with other files in it: {_short(sorted(foreign))}"
    return "store"


def check(
    store: StoreLike,
    overwrite: bool,
    storage_options: dict | None = None,
    *,
    option: str = "--overwrite",
) -> bool:
    """Whether a new store may be written at ``store``; raise :class:`StoreError` if not.

    Returns True when an existing store is there (it will be replaced), False when the
    path is free. Refuses anything that is not a chromestore store, and a store unless
    ``overwrite``.
    """
    handle = Store.of(store, storage_options)
    there = describe(handle)
    if there in ("nothing", "empty"):
        return False
    if there == "creating" and not overwrite:
        raise StoreError(
            f"{handle}: an interrupted creation: delete {handle} or re-run with {option}"
        )
    if there not in ("store", "creating"):
        raise StoreError(
            f"{handle}: exists and is not a chromestore store ({there}); "
            "nothing was changed: choose another path"
        )
    if not overwrite:
        raise StoreError(
            f"{handle}: a chromestore store is already there; pass {option} to replace it"
        )
    return True


def remove_store(store: StoreLike, storage_options: dict | None = None) -> None:
    """Delete the chromestore store at ``store`` (checked again just before deleting)."""
    handle = Store.of(store, storage_options)
    if check(handle, overwrite=True):
        fs, root = handle.fs()
        fs.rm(root.rstrip("/"), recursive=True)
        drop_run_files(handle)  # its runs' weights and checkpoints (STORE.weights)


def prepare(store: StoreLike, overwrite: bool, storage_options: dict | None = None) -> None:
    """Make ``store`` free for a new store: remove a chromestore store there when
    ``overwrite``; refuse anything else (see :func:`check`)."""
    if check(store, overwrite, storage_options):
        remove_store(store, storage_options)


def missing_bucket(handle: Store) -> str | None:
    """The bucket of an object-store URL when it does not exist (None otherwise)."""
    fs, root = handle.fs()
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if not protocols & {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}:
        return None
    bucket = root.strip("/").split("/")[0]
    return None if fs.exists(bucket) else bucket


def refuse_missing_bucket(handle: Store) -> None:
    """Raise :class:`StoreError` where ``handle`` is on an object store whose bucket does
    not exist."""
    bucket = missing_bucket(handle)
    if bucket:
        raise StoreError(
            f"{handle}: the bucket {bucket!r} does not exist; create it first or fix the URL"
        )


def refuse_occupied(handle: Store) -> None:
    """Raise :class:`StoreError` unless ``handle`` is free for a new store: nothing there,
    or an empty folder (and, on an object store, the bucket exists)."""
    refuse_missing_bucket(handle)
    fs, root = handle.fs()
    if not fs.exists(root):
        return
    if not fs.isdir(root):
        raise StoreError(f"{handle}: a file is there, not a store; choose another path")
    entries = fs.ls(root, detail=False)
    if entries:
        shown = ", ".join(sorted(os.path.basename(e.rstrip("/")) for e in entries)[:3])
        raise StoreError(
            f"{handle}: the folder is not empty and holds no chromestore store "
            f"({shown}{', …' if len(entries) > 3 else ''}); choose another path"
        )


def _short(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", …" if len(names) > n else "")


# --- output folders: reports, emitted files, exported models ------------------------------
#: The file chromestore leaves in every output folder it writes (``--report``, ``--emit``,
#: ``--out``): what kind of folder it is and the entries chromestore wrote there.
MARKER = ".chromestore"


def _marker(path: str) -> dict | None:
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("made_by") == "chromestore" else None


def describe_folder(path: str | os.PathLike, kind: str) -> str:
    """What is at an output folder: ``"nothing"``, ``"empty"``, ``"ours"`` (a folder of this
    ``kind`` that chromestore wrote, nothing else in it) or a phrase saying what is there."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return "nothing"
    if not os.path.isdir(path) or os.path.islink(path):
        return "a file"
    names = sorted(os.listdir(path))
    if not names:
        return "empty"
    doc = _marker(path)
    if doc is None:
        return f"a folder chromestore did not write, holding {_short(names)}"
    if doc.get("kind") != kind:
        return f"a folder of chromestore's {doc.get('kind')!r} output, not a {kind}"
    written = doc.get("files")
    if written is not None:
        foreign = [n for n in names if n != MARKER and n not in set(written)]
        if foreign:
            return f"a chromestore {kind} with other files added: {_short(foreign)}"
    return "ours"


def check_folder(
    path: str | os.PathLike, kind: str, overwrite: bool, *, option: str = "--overwrite"
) -> bool:
    """Whether chromestore may write its ``kind`` of output (``report``, ``emit``,
    ``model``) into folder ``path``; raise :class:`StoreError` (one line, nothing changed)
    if not.

    A new or empty folder may be written. One that chromestore wrote (its :data:`MARKER`
    says so and names every entry there) is replaced only with ``overwrite``; anything
    else (a file, a folder of the user's, another kind of output) is refused. Returns True
    when an earlier output will be replaced."""
    there = describe_folder(path, kind)
    if there in ("nothing", "empty"):
        return False
    if there != "ours":
        raise StoreError(
            f"{os.fspath(path)}: exists and is not a chromestore {kind} folder ({there}); "
            "nothing was changed: choose a new or empty folder"
        )
    if not overwrite:
        raise StoreError(
            f"{os.fspath(path)}: a chromestore {kind} is already there; pass {option} to "
            "replace it, or choose a new folder"
        )
    return True


def claim_folder(path: str | os.PathLike, kind: str, overwrite: bool, **kw) -> str:
    """Make ``path`` ready for chromestore's ``kind`` of output (:func:`check_folder`): an
    earlier output there is deleted (only what its marker names), the folder created, and
    a marker written that says chromestore is writing it. :func:`seal_folder` records
    what was written once it is done."""
    import shutil

    path = os.fspath(path)
    if check_folder(path, kind, overwrite, **kw):
        for name in os.listdir(path):
            entry = os.path.join(path, name)
            if os.path.isdir(entry) and not os.path.islink(entry):
                shutil.rmtree(entry)
            else:
                os.remove(entry)
    os.makedirs(path, exist_ok=True)
    _write_marker(path, kind, None)
    return path


def seal_folder(path: str | os.PathLike, kind: str) -> None:
    """Record every entry now in ``path`` as chromestore's ``kind`` output (its marker)."""
    path = os.fspath(path)
    _write_marker(path, kind, sorted(n for n in os.listdir(path) if n != MARKER))


def adopt_folder(path: str | os.PathLike, kind: str, entries: list[str]) -> None:
    """Mark an output that chromestore wrote before its folders carried :data:`MARKER`: of
    what is there, only ``entries`` (those such an output holds) count as chromestore's."""
    path = os.fspath(path)
    _write_marker(path, kind, sorted(e for e in entries if os.path.lexists(os.path.join(path, e))))


def _write_marker(path: str, kind: str, files: list[str] | None) -> None:
    doc = {"made_by": "chromestore", "kind": kind, "files": files}
    tmp = os.path.join(path, f"{MARKER}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.write("\n")
    os.replace(tmp, os.path.join(path, MARKER))
