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
"""

from __future__ import annotations

import asyncio

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
    """``(codecs, chunk spec, buffer prototype)`` of an array of one-element chunks whose
    codecs all have a synchronous form (one array → bytes codec first, then bytes → bytes
    ones: what chromestore writes), else ``None``."""
    from zarr.abc.codec import ArrayBytesCodec, SupportsSyncCodec
    from zarr.core.buffer import default_buffer_prototype

    metadata = array.metadata
    if metadata.zarr_format != 3 or any(int(c) != 1 for c in array.chunks):
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
    from zarr.core.sync import sync

    found = _codecs(array) if array.size else None
    if found is None:
        return None
    codecs, spec, prototype = found
    metadata = array.metadata
    store_path = array.store_path
    coords = list(np.ndindex(*array.shape))
    keys = [metadata.encode_chunk_key(c) for c in coords]
    prefix = f"{store_path.path}/" if store_path.path else ""

    async def fetch():
        return await asyncio.gather(
            *(store_path.store.get(prefix + key, prototype) for key in keys)
        )

    blobs = sync(fetch())
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


def write_pairs(array: zarr.Array, values: dict[tuple[int, ...], object]) -> bool:
    """Write the chunks of ``values`` (chunk coordinates → the one value each holds), every
    one stored (a false flag too), encoded by the array's own codecs and put concurrently.
    ``False``, with nothing written, where the array is not of the one-element-chunk form
    this path encodes; the caller then writes through Zarr. Storage errors are raised."""
    from zarr.core.sync import sync

    try:  # encoded first, all of them: anything unexpected, and Zarr writes instead
        blobs = _encode(array, values)
    except Exception:
        return False
    if blobs is None:
        return False
    store_path = array.store_path
    prefix = f"{store_path.path}/" if store_path.path else ""

    async def put():
        await asyncio.gather(*(store_path.store.set(prefix + k, b) for k, b in blobs.items()))

    sync(put())
    return True


def _encode(array: zarr.Array, values: dict[tuple[int, ...], object]) -> dict | None:
    """Chunk key → stored bytes of each of ``values``, or ``None`` (see :func:`write_pairs`)."""
    found = _codecs(array)
    if found is None:
        return None
    codecs, spec, prototype = found
    blobs = {}
    for coord, value in values.items():
        chunk = np.full((1,) * array.ndim, value, dtype=array.dtype)
        data = codecs[0]._encode_sync(prototype.nd_buffer.from_numpy_array(chunk), spec)
        for codec in codecs[1:]:  # zstd, then the checksum
            data = codec._encode_sync(data, spec)
        if data is None:
            return None
        blobs[array.metadata.encode_chunk_key(tuple(int(c) for c in coord))] = data
    return blobs
