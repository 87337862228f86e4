"""Arrays of one chunk per (cell, mark) pair, read whole at once.

The completion flags (``signal_completed``, ``peak_max_completed``) and ``signal_units``
keep one chunk per pair, so that two writers never touch the same object
(:mod:`chromestore.store.records`): 280 chunks for 56 epigenomes. Zarr reads each chunk
through its asynchronous pipeline, handing every fetch and every decompression to a
thread, ~1 ms per chunk; a store opened for a command reads these arrays several times.
:func:`read_whole` fetches every chunk in one concurrent call and decodes them here with
the array's own codecs (their synchronous form): the same bytes, the same decoding, the
same checksum check, a fifth of the time.

Only what it can answer exactly is answered: a chunk missing, a checksum that does not
match, a codec without a synchronous form, any failure at all returns ``None``, and the
caller reads through Zarr as before (which names the chunk at fault:
:class:`chromestore.store.integrity.CheckedArray`).

The same parts serve every chunk written outside Zarr's pipeline
(:mod:`chromestore.store.region_chunks`, :mod:`chromestore.store.records`): the
synchronous codecs of an array (:func:`sync_codecs`), one chunk encoded with them
(:func:`encode_chunk`), its key (:func:`chunk_key`), and many keys fetched or put at once
(:func:`get_all`, :func:`put_all`).
"""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import zarr


def read_whole(array: zarr.Array) -> np.ndarray | None:
    """The values of ``array`` (chunks of one element each), or ``None`` where this fast
    path cannot read it exactly as Zarr would (see the module docstring)."""
    try:
        return _read(array)
    except Exception:  # anything unexpected: Zarr's own read decides, and names the fault
        return None


def _codecs(array: zarr.Array):
    """:func:`sync_codecs` of an array of one-element chunks, else ``None``."""
    if any(int(c) != 1 for c in array.chunks):
        return None
    return sync_codecs(array)


def sync_codecs(array: zarr.Array):
    """``(codecs, chunk spec, buffer prototype)`` of a Zarr v3 array whose codecs all have
    a synchronous form (one array → bytes codec first, then bytes → bytes ones: what
    chromestore writes), else ``None``."""
    from zarr.abc.codec import ArrayBytesCodec, SupportsSyncCodec
    from zarr.core.buffer import default_buffer_prototype

    metadata = array.metadata
    if metadata.zarr_format != 3:
        return None
    codecs = list(metadata.codecs)
    if not all(isinstance(c, SupportsSyncCodec) for c in codecs):
        return None
    if not isinstance(codecs[0], ArrayBytesCodec) or any(
        isinstance(c, ArrayBytesCodec) for c in codecs[1:]
    ):
        return None  # array-to-array codecs (transpose, ...) are not written by chromestore
    prototype = default_buffer_prototype()
    return codecs, metadata.get_chunk_spec((0,) * array.ndim, array.config, prototype), prototype


def _read(array: zarr.Array) -> np.ndarray | None:

    found = _codecs(array) if array.size else None
    if found is None:
        return None
    codecs, spec, prototype = found
    coords = list(np.ndindex(*array.shape))
    keys = [chunk_key(array, c) for c in coords]
    blobs = get_all(array.store_path.store, keys, prototype)
    if any(blob is None for blob in blobs):  # a missing chunk: Zarr reads its fill value
        return None
    out = np.empty(array.shape, dtype=array.dtype)
    for coord, blob in zip(coords, blobs, strict=True):
        data = blob
        for codec in reversed(codecs[1:]):  # bytes → bytes (checksum, then zstd)
            data = codec._decode_sync(data, spec)
        value = codecs[0]._decode_sync(data, spec).as_numpy_array()
        out[coord] = value.reshape(()) if value.size == 1 else value
    return out


def chunk_key(array: zarr.Array, coord: tuple[int, ...]) -> str:
    """The key of chunk ``coord`` of ``array`` in the array's store."""
    key = array.metadata.encode_chunk_key(tuple(int(c) for c in coord))
    path = array.store_path.path
    return f"{path}/{key}" if path else key


def encode_chunk(found, values: np.ndarray):
    """``values`` (a whole chunk) as stored, by the codecs of ``found`` (:func:`sync_codecs`):
    array → bytes, then bytes → bytes (zstd, then the checksum)."""
    codecs, spec, prototype = found
    data = codecs[0]._encode_sync(prototype.nd_buffer.from_numpy_array(values), spec)
    for codec in codecs[1:]:
        data = codec._encode_sync(data, spec)
    return data


def write_pairs(array: zarr.Array, values: dict[tuple[int, ...], object]) -> bool:
    """Write the chunks of ``values`` (chunk coordinates → the one value each holds), every
    one stored (a false flag too), encoded by the array's own codecs and put concurrently.
    ``False``, with nothing written, where the array is not of the one-element-chunk form
    this path encodes; the caller then writes through Zarr. Storage errors are raised."""

    try:  # encoded first, all of them: anything unexpected, and Zarr writes instead
        blobs = _encode(array, values)
    except Exception:
        return False
    if blobs is None:
        return False
    put_all(array.store_path.store, blobs)
    return True


def get_all(store, keys: list[str], prototype) -> list:
    """The Zarr buffer of each of ``keys`` in the Zarr ``store`` (``None``: no such key): on
    a local one, file after file in this thread, as Zarr's ``LocalStore`` reads them;
    elsewhere in one concurrent call (see :func:`put_all`)."""
    from zarr.core.sync import sync
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore):
        blobs = []
        for key in keys:
            try:
                blobs.append(prototype.buffer.from_bytes((store.root / key).read_bytes()))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                blobs.append(None)
        return blobs

    async def fetch():
        return await asyncio.gather(*(store.get(key, prototype) for key in keys))

    return sync(fetch())


def put_all(store, blobs: dict) -> None:
    """Put every ``blobs`` (key → Zarr buffer) into the Zarr ``store``: on a local one,
    file after file in this thread, each as Zarr's ``LocalStore`` writes it (a temporary
    file beside it, renamed over it: a reader or a kill sees the old bytes or the new ones);
    elsewhere in one concurrent call. (Zarr hands every local write to a thread: for
    one-element chunks, ~0.35 ms a file against ~0.1 ms.)"""
    from zarr.core.sync import sync
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore) and not store.read_only:
        made = set()
        for key, blob in blobs.items():
            path = store.root / key
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            partial = path.with_suffix(f".{uuid.uuid4().hex}.partial")
            try:
                with partial.open("wb") as fh:
                    fh.write(blob.as_buffer_like())
                partial.replace(path)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        return

    async def put():
        await asyncio.gather(*(store.set(key, blob) for key, blob in blobs.items()))

    sync(put())


def _encode(array: zarr.Array, values: dict[tuple[int, ...], object]) -> dict | None:
    """Store key → stored bytes of each of ``values``, or ``None`` (see :func:`write_pairs`)."""
    found = _codecs(array)
    if found is None:
        return None
    blobs = {}
    for coord, value in values.items():
        data = encode_chunk(found, np.full((1,) * array.ndim, value, dtype=array.dtype))
        if data is None:
            return None
        blobs[chunk_key(array, coord)] = data
    return blobs


def merge_group_attrs(group: zarr.Group, levels: list[dict[str, dict]]) -> bool:
    """Merge attributes into the Zarr v3 groups of ``levels`` (each a dict of group path,
    relative to ``group``, → attributes to merge; parents in an
    earlier level than their children), creating the groups that are missing, as
    ``group.update_attributes`` would: every group's ``zarr.json`` fetched at once
    (:func:`get_all`), merged here, then each level's put at once (:func:`put_all`), after
    the level before. The bytes are Zarr's own (``GroupMetadata``). ``False``, with nothing
    written, where a path holds anything but a plain Zarr v3 group (an array, consolidated
    metadata, a file that does not parse): the caller then goes through Zarr. The caller
    holds the store's write lock (a read and a write of one group are not atomic)."""
    import json
    import posixpath

    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.group import GroupMetadata

    store = group.store_path.store
    root = group.store_path.path
    prototype = default_buffer_prototype()
    keys = [posixpath.join(root, path, "zarr.json") for level in levels for path in level]

    found = dict(zip(keys, get_all(store, keys, prototype), strict=True))
    writes: list[dict[str, object]] = []
    for level in levels:
        puts = {}
        for path, attrs in level.items():
            key = posixpath.join(root, path, "zarr.json")
            blob = found[key]
            merged: dict = {}
            if blob is not None:
                try:
                    meta = json.loads(blob.to_bytes())
                except ValueError:
                    return False
                if set(meta) != {"attributes", "zarr_format", "node_type"} or (
                    meta["zarr_format"],
                    meta["node_type"],
                ) != (3, "group"):
                    return False
                merged = dict(meta["attributes"])
                if not attrs:
                    continue  # there, and nothing to merge
            merged.update(attrs)
            meta = GroupMetadata(attributes=merged, zarr_format=3)
            puts[key] = meta.to_buffer_dict(prototype)["zarr.json"]
        writes.append(puts)

    for puts in writes:  # parents before their children
        put_all(store, puts)
    return True
