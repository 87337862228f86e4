"""Read every chunk of a store back and name each one that fails or is missing
(``chromestore verify``).

One listing of the store finds every array (its ``zarr.json``) and every stored chunk;
then each chunk is read and decoded, which checks its CRC-32C (see
:mod:`chromestore.store.integrity`). Batches of chunks run as Dask tasks on a
``distributed.Client`` when one is given (large stores), else on a few threads here.
Arrays written before checksums existed are read too, and listed as unchecked: a
chunk of theirs that decodes may still hold changed values.

Missing is not NaN: the listing is also checked against what must be there
(:mod:`chromestore.store.presence`): every array of the store's layout and every folder
of the hierarchy has its ``zarr.json``; every coordinate chunk, every completion-flag
chunk and every chunk of what the records say was written exists; every (cell, mark)
recorded complete has its provenance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import zarr

from chromestore import variables as V
from chromestore.store import integrity, presence
from chromestore.store.dataset import CHECKED_VARS, open_store
from chromestore.store.handle import Store, StoreLike

#: chunks per task
BATCH = 64


@dataclass(frozen=True)
class BadChunk:
    """A chunk (or a metadata document) that did not read back."""

    key: str
    where: str  # "cell E004, genes 0–2047" (may be empty)
    problem: str
    missing: bool = False  # not stored (rather than stored and unreadable)

    def line(self) -> str:
        return f"{self.key}" + (f" ({self.where})" if self.where else "") + f": {self.problem}"


@dataclass
class Report:
    """What :func:`verify_store` found."""

    store: str
    arrays: int = 0
    chunks: int = 0
    bytes: int = 0
    bad: list[BadChunk] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # arrays without a checksum

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def missing(self) -> int:
        """How many of ``bad`` are missing (not stored) rather than unreadable."""
        return sum(b.missing for b in self.bad)

    def summary(self) -> str:
        """``3 bad chunks``, ``1 bad chunk, 2 missing``, ``2 missing``: what is wrong."""
        n_bad = len(self.bad) - self.missing
        parts = [f"{n_bad} bad chunk{'s' if n_bad > 1 else ''}"] if n_bad else []
        parts += [f"{self.missing} missing"] if self.missing else []
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """The report as printed by ``chromestore verify``."""
        out = [
            f"{self.store}: {self.arrays} arrays, {self.chunks} chunks "
            f"({_human(self.bytes)}) read back"
        ]
        if self.unchecked:
            out.append(
                f"{len(self.unchecked)} arrays carry no checksum (written before "
                "chromestore stored checksums; a changed value there reads back "
                f"unnoticed): {_short(self.unchecked)}"
            )
        out += [f"{'missing' if b.missing else 'bad'}: {b.line()}" for b in self.bad]
        out.append(self.summary() if self.bad else "every chunk reads back")
        return out


@dataclass(frozen=True)
class _Array:
    path: str  # inside the store, "" for none
    chunks: tuple[tuple[int, ...], ...]  # coordinates of the stored chunks
    bytes: int


def verify_store(
    store: StoreLike, storage_options: dict | None = None, *, client=None, progress: bool = False
) -> Report:
    """Read every chunk of every array in ``store`` (runs included) and report the bad ones.

    Parameters
    ----------
    store
        Store path, URL or :class:`~chromestore.store.Store`.
    client
        A ``distributed.Client``: batches of chunks run as tasks there. None: threads here.
    progress
        Show a progress bar (chunks read).

    Returns
    -------
    Report
        Counts, each bad chunk (key, cell and genes, what is wrong) and the arrays
        without a checksum. Errors reaching the store (missing, no access) are raised.
    """
    from tqdm import tqdm

    handle = Store.of(store, storage_options)
    report = Report(str(handle))
    arrays, cells = _inventory(handle, report)  # (missing ones go into report.bad)
    report.arrays = len(arrays)
    report.bytes = sum(a.bytes for a in arrays)
    tasks = [(a.path, batch) for a in arrays for batch in _batches(a.chunks, BATCH)]
    report.chunks = sum(len(b) for _, b in tasks)
    bar = tqdm(total=report.chunks, unit="chunk", desc="verify", disable=not progress)
    try:
        for n, bad in _run(handle, tasks, cells, client):
            report.bad += bad
            bar.update(n)
    finally:
        bar.close()
    report.bad.sort(key=lambda b: b.key)
    return report


def _run(handle: Store, tasks, cells, client) -> Iterator[tuple[int, list[BadChunk]]]:
    if client is not None:
        from distributed import as_completed

        futures = [
            client.submit(check_chunks, handle, path, batch, cells.get(_parent(path)), pure=False)
            for path, batch in tasks
        ]
        for fut in as_completed(futures):
            yield fut.result()
        return
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        yield from pool.map(
            lambda t: check_chunks(handle, t[0], t[1], cells.get(_parent(t[0]))), tasks
        )


def check_chunks(
    handle: Store, path: str, coords: Sequence[tuple[int, ...]], cells: Sequence[str] | None
) -> tuple[int, list[BadChunk]]:
    """Read the chunks ``coords`` of array ``path``; return how many and the bad ones."""
    array = zarr.open_array(
        handle.child(path).url if path else handle.url,
        mode="r",
        zarr_format=3,
        storage_options=handle.storage_options,
    )
    bad = []
    for c in coords:
        failure = integrity.read_chunk(array, c)
        if failure is not None:
            bad.append(
                BadChunk(
                    integrity.chunk_key(array, c, path),
                    integrity.chunk_where(array, c, cells),
                    integrity.describe_failure(failure),
                )
            )
    return len(coords), bad


def _inventory(handle: Store, report: Report) -> tuple[list[_Array], dict[str, list[str]]]:
    """Every array with its stored chunks (one listing), and the ``cell`` coordinate of each
    group that has one. Unreadable metadata documents go into ``report.bad``."""
    fs, root = handle.fs()
    root = root.rstrip("/")
    if handle.creating():
        raise handle.interrupted()
    if not handle.exists():
        open_store(handle, validate=False)  # raises the StoreError that says why
    files = {
        name[len(root) :].lstrip("/"): (name, info)
        for name, info in fs.find(root, detail=True).items()
    }
    meta: dict[str, dict] = {}
    for rel, (name, _) in files.items():
        if rel == "zarr.json" or rel.endswith("/zarr.json"):
            node = rel[: -len("zarr.json")].rstrip("/")
            try:
                meta[node] = json.loads(fs.cat_file(name))
            except (ValueError, UnicodeDecodeError) as e:
                report.bad.append(BadChunk(rel, "", f"metadata is not valid JSON ({e})"))
    arrays = []
    for node, doc in sorted(meta.items()):
        if doc.get("node_type") != "array":
            continue
        prefix = f"{node}/c" if node else "c"
        ndim = len(doc.get("shape", ()))
        coords, size = [], 0
        for rel, (_, info) in files.items():
            if rel.startswith(prefix) and _is_chunk(rel[len(prefix) :], ndim):
                coords.append(tuple(int(p) for p in rel[len(prefix) :].split("/")[1:]))
                size += int(info.get("size") or 0)
        arrays.append(_Array(node, tuple(sorted(coords)), size))
        if not _doc_has_checksum(doc):
            report.unchecked.append(node)
    cells = {}
    for node in {_parent(a.path) for a in arrays}:
        cell = f"{node}/cell" if node else "cell"
        if cell in meta:
            try:
                cells[node] = [
                    str(c)
                    for c in zarr.open_array(
                        handle.child(cell).url,
                        mode="r",
                        zarr_format=3,
                        storage_options=handle.storage_options,
                    )[:]
                ]
            except Exception as e:
                if integrity.is_access_error(e):
                    raise
                # the cell coordinate itself is bad: its chunks are reported below
    report.bad += _missing(handle, meta, files, arrays, cells.get(""))
    return arrays, cells


def _missing(handle, meta, files, arrays, cells) -> list[BadChunk]:
    """Every ``zarr.json``, chunk and provenance that must be in the store and is not."""
    out = []
    stored = {a.path: set(a.chunks) for a in arrays}
    # every folder of the hierarchy (above a zarr.json or a chunk) has its own zarr.json
    nodes: set[str] = set()
    for rel in files:
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts):
            continue  # a writer's private staging (runs/.NAME.tmp-X): not yet of the store
        if parts[-1] != "zarr.json":
            at = _chunk_at(parts)
            if at is None:
                continue  # not a chunk (a marker, a lock): not ours to judge
            parts = parts[:at] + ["zarr.json"]
        nodes.update("/".join(parts[:i]) for i in range(1, len(parts)))
    root_doc = meta.get("")
    attrs = (root_doc or {}).get("attributes", {})
    if attrs.get("format") == V.FORMAT_NAME:
        version = int(attrs.get("format_version", 0))
        layout = [s.name for s in V.COORDS] + [v for v in CHECKED_VARS if v in V.ALL]
        if version < V.RECORDS_VERSION:
            layout = [n for n in layout if n not in V.RECORDS_OF.values()]
        nodes.update(layout)
    present = {rel[: -len("zarr.json")].rstrip("/") for rel in files if _is_meta(rel)}
    for node in sorted(nodes - present):  # (one that is there but not JSON: reported above)
        what = "variable" if "/" not in node else "node"
        out.append(
            BadChunk(
                f"{node}/zarr.json",
                "",
                f"the metadata of {what} {node!r}; what is under it cannot be read without it",
                missing=True,
            )
        )
    if attrs.get("format") != V.FORMAT_NAME:
        return out
    promised = presence.promised(attrs)
    group = handle.group("r")
    for name, doc in sorted(meta.items()):
        if "/" in name or not name or doc.get("node_type") != "array":
            continue
        array = group[name]
        if name in CHECKED_VARS and not (promised and name in V.RECORDS_OF.values()):
            continue  # data: below; flags: only where every flag is written
        for coords in np.ndindex(*array.cdata_shape):
            if coords not in stored.get(name, ()):
                what = "completion flag" if name in CHECKED_VARS else "coordinate"
                what = "signal units" if name == V.signal_units.name else what
                out.append(_gone(array, coords, cells, f"every {what} chunk is written"))
    if not promised or cells is None:
        return out
    for name in (*presence.RECORDED_BY, V.expression.name):
        if name not in meta:
            continue
        array = group[name]
        rule = presence.Required.of(array, cells)
        if rule is None:
            continue
        for ci in range(min(len(cells), array.shape[0])):
            for coords in np.ndindex(*array.cdata_shape[1:]):
                key = (ci, *coords)
                why = rule.why(key)
                if why and key not in stored.get(name, ()):
                    out.append(_gone(array, key, cells, why))
    out += _missing_provenance(handle, meta, cells)
    return out


def _is_meta(rel: str) -> bool:
    return rel == "zarr.json" or rel.endswith("/zarr.json")


def _chunk_at(parts: list[str]) -> int | None:
    """Where the ``c`` of a chunk key is in a path's ``parts`` (None: not a chunk)."""
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "c" and all(p.split(".")[0].isdigit() for p in parts[i + 1 :]):
            return i
    return None


def _gone(array, coords, cells, why: str) -> BadChunk:
    return BadChunk(
        integrity.chunk_key(array, coords),
        integrity.chunk_where(array, coords, cells),
        f"{why}, so it must be there (it would read as NaN, or empty)",
        missing=True,
    )


def _missing_provenance(handle, meta, cells) -> list[BadChunk]:
    """``records/CELL/MARK`` of every (cell, mark) recorded complete, with its target's
    provenance."""
    out = []
    group = handle.group("r")
    marks = [str(m) for m in group[V.MARK][...]] if V.MARK in meta else []
    for target, flags_name in V.RECORDS_OF.items():
        if flags_name not in meta:
            continue
        try:
            done = np.asarray(group[flags_name][...], dtype=bool)
        except Exception as e:
            if integrity.is_access_error(e):
                raise
            continue  # a bad flag chunk: reported as such
        for i, j in zip(*np.nonzero(done), strict=True):
            if i >= len(cells) or j >= len(marks):
                continue
            node = f"{V.RECORDS_GROUP}/{cells[i]}/{marks[j]}"
            if target not in (meta.get(node) or {}).get("attributes", {}):
                out.append(
                    BadChunk(
                        f"{node}/zarr.json",
                        f"cell {cells[i]}, mark {marks[j]}",
                        f"the {target} provenance of a (cell, mark) recorded complete",
                        missing=True,
                    )
                )
    return out


def _doc_has_checksum(doc: dict) -> bool:
    for codec in doc.get("codecs", []):
        name = codec.get("name") if isinstance(codec, dict) else codec
        if name == "crc32c" or (name == "zstd" and codec.get("configuration", {}).get("checksum")):
            return True
    return False


def _is_chunk(rest: str, ndim: int) -> bool:
    """Whether ``rest`` (what follows ``ARRAY/c``) is a chunk key of an ``ndim`` array."""
    parts = rest.split("/")
    return parts[0] == "" and len(parts) == ndim + 1 and all(p.isdigit() for p in parts[1:])


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _batches(items: Sequence, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield list(items[i : i + n])


def _short(names: Sequence[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f", … ({len(names)})" if len(names) > n else "")


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
