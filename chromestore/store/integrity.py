"""Chunks that prove they are intact: a CRC-32C checksum on every chunk, and reads that
name the chunk that fails.

Every array a store writes is compressed with zstd and then checksummed with Zarr v3's
``crc32c`` codec (:func:`compressors`): the last four bytes of each stored chunk are the
CRC-32C of the bytes before them, so a flipped bit anywhere in the chunk makes the read
fail instead of returning changed values. Stores written before this carry no checksum
and still open (:func:`has_checksum` tells them apart).

A failed read is turned into :class:`chromestore.errors.ChunkError`, naming the store,
the variable, the chunk key, the cell and the gene range: :class:`CheckedArray` does it
for every read through :func:`chromestore.open_store` (Dask computes included) and for
readers of the raw Zarr arrays (the training loader), and it raises one too where a chunk
that must exist (:mod:`chromestore.store.presence`) is missing, instead of reading NaN;
``chromestore verify`` reads every chunk (:mod:`chromestore.store.verify`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from chromestore.errors import ChunkError
from chromestore.store.pair_chunks import read_whole
from chromestore.store.presence import Required, chunk_exists

CHECKSUM_MISMATCH = "Stored and computed checksum do not match"
#: Exception modules whose errors mean "could not reach the bytes", never "bad bytes".
_ACCESS_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "gcsfs", "urllib3")


def compressors(level: int = 3) -> list:
    """zstd at ``level``, then the CRC-32C checksum (the ``compressors`` of every variable)."""
    return [zarr.codecs.ZstdCodec(level=level), zarr.codecs.Crc32cCodec()]


def checksummed(ds) -> dict:
    """A ``to_zarr`` encoding giving every variable and coordinate of ``ds`` the
    :func:`compressors` (zstd + CRC-32C), for what is written beside the store's own
    arrays (runs, predictions, metrics)."""
    return {name: {"compressors": compressors()} for name in ds.variables}


def write_checksummed(ds, target) -> None:
    """Write ``ds`` as a new Zarr group at ``target`` (a :class:`chromestore.store.Store`;
    refused if one is there), every chunk checksummed (:func:`checksummed`), unconsolidated
    (its writer swaps it into place)."""
    ds.to_zarr(
        target.url,
        mode="w-",
        zarr_format=3,
        consolidated=False,
        encoding=checksummed(ds),
        storage_options=target.storage_options,
    )


def has_checksum(codecs) -> bool:
    """Whether chunks encoded by ``codecs`` (a Zarr array, or its codecs or compressors)
    carry a checksum: crc32c, or zstd's own."""
    if isinstance(codecs, zarr.Array):
        codecs = codecs.metadata.codecs
    for codec in codecs:
        if isinstance(codec, zarr.codecs.Crc32cCodec):
            return True
        if isinstance(codec, zarr.codecs.ZstdCodec) and codec.checksum:
            return True
    return False


def is_access_error(e: BaseException) -> bool:
    """An error of reaching the bytes (file system, network, credentials), not of the bytes."""
    if isinstance(e, OSError | MemoryError | KeyboardInterrupt):
        return True
    return type(e).__module__.split(".")[0] in _ACCESS_MODULES


def describe_failure(e: BaseException) -> str:
    """What a failed decode says about the chunk, in a few words."""
    if isinstance(e, ChunkError):
        return str(e)
    if CHECKSUM_MISMATCH in str(e):
        return "checksum mismatch (the stored bytes changed after they were written)"
    return f"does not decode ({type(e).__name__}: {e})"


def chunk_key(array: zarr.Array, coords: Sequence[int], path: str | None = None) -> str:
    """``variable/c/i/j/…``: the chunk's key inside the store (``path``: the array's path
    there, when it was opened on its own)."""
    path = array.path if path is None else path
    key = array.metadata.encode_chunk_key(tuple(coords))
    return f"{path}/{key}" if path else key


def chunk_where(array: zarr.Array, coords: Sequence[int], cells: Sequence[str] | None) -> str:
    """Which cell and gene range a chunk holds, e.g. ``cell E004, genes 0–2047``."""
    dims = array.metadata.dimension_names or ()
    parts = []
    for dim, c, size, n in zip(dims, coords, array.chunks, array.shape, strict=False):
        if dim == "cell":
            idx = c * size
            name = cells[idx] if cells is not None and idx < len(cells) else f"#{idx}"
            parts.append(f"cell {name}" if size == 1 else f"cells from {name}")
        elif dim == "gene":
            parts.append(f"genes {c * size}–{min(n, (c + 1) * size) - 1}")
    return ", ".join(parts)


def read_chunk(array: zarr.Array, coords: Sequence[int]) -> BaseException | None:
    """Read and decode one chunk; return the decode error (None when it reads back).

    Errors of reaching the bytes (see :func:`is_access_error`) are raised, not returned.
    """
    try:
        array.get_block_selection(tuple(coords))
    except Exception as e:
        if is_access_error(e):
            raise
        return e
    return None


def chunk_error(
    store: str,
    array: zarr.Array,
    coords: Sequence[int],
    cells: Sequence[str] | None,
    e: BaseException,
) -> ChunkError:
    """The :class:`ChunkError` of a chunk that failed with ``e``."""
    where = chunk_where(array, coords, cells)
    return ChunkError(
        f"{store}: chunk {chunk_key(array, coords)} of variable {array.basename!r}"
        + (f" ({where})" if where else "")
        + f" is corrupt: {describe_failure(e)}; `chromestore verify {store}` checks every chunk"
    )


def missing_chunk_error(
    store: str,
    array: zarr.Array,
    coords: Sequence[int],
    cells: Sequence[str] | None,
    why: str,
    fix: str = "`chromestore ingest --force` of that cell rewrites it",
) -> ChunkError:
    """The :class:`ChunkError` of a chunk that must exist (``why``) and does not."""
    where = chunk_where(array, coords, cells)
    return ChunkError(
        f"{store}: chunk {chunk_key(array, coords)} of variable {array.basename!r}"
        + (f" ({where})" if where else "")
        + f" is missing, though {why}: its values are lost, not NaN; {fix}; "
        f"`chromestore verify {store}` lists every missing chunk"
    )


def _chunk_ranges(key: Any, array: zarr.Array) -> list[range] | None:
    """Chunk indices along each dim that a key of slices and integers touches (missing
    trailing dims: all); None for other keys (fancy indexing)."""
    if not isinstance(key, tuple):
        key = (key,)
    if len(key) > array.ndim:
        return None
    key = key + (slice(None),) * (array.ndim - len(key))
    out = []
    for k, n, size in zip(key, array.shape, array.chunks, strict=True):
        if isinstance(k, int | np.integer):
            i = int(k) % n if n else 0
            out.append(range(i // size, i // size + 1))
        elif isinstance(k, slice):
            start, stop, _ = k.indices(n)
            out.append(range(start // size, max(start // size, math.ceil(stop / size))))
        else:
            return None
    return out


class CheckedArray:
    """A Zarr array for Dask (``da.from_array``) or direct indexing whose failed reads
    raise :class:`ChunkError` naming the chunk.

    Parameters
    ----------
    array
        The Zarr array.
    store
        The store's URL, for messages.
    cells
        Cell ids in store order (to name the cell of a failed chunk); None: indices.
    required
        Which chunks must exist (:class:`chromestore.store.presence.Required`); ``"auto"``:
        the rule of the array's store, if it makes one. A read that meets NaN checks that
        the chunks it covers, where required, are there.
    """

    def __init__(
        self,
        array: zarr.Array,
        store: str,
        cells: Sequence[str] | None = None,
        required: Required | str | None = "auto",
    ):
        self.array = array
        self.store = store
        self.cells = None if cells is None else tuple(cells)
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim
        self.chunks = array.chunks
        self.required = Required.of(array, self.cells) if required == "auto" else required

    def __getitem__(self, key):
        try:
            out = self.array[key]
        except Exception as e:
            if is_access_error(e):
                raise
            raise self._locate(key, e) from e
        if self.required is not None and _has_nan(out):
            self._check_present(key)
        return out

    def _check_present(self, key) -> None:
        """Raise :class:`ChunkError` for the first chunk under ``key`` that must exist and
        is missing (it read as NaN)."""
        ranges = _chunk_ranges(key, self.array)
        if ranges is None:
            ranges = [range(n) for n in self.array.cdata_shape]
        for coords in itertools.product(*ranges):
            why = self.required.why(coords)
            if why and not chunk_exists(self.array, coords):
                raise missing_chunk_error(self.store, self.array, coords, self.cells, why)

    def __len__(self) -> int:
        return self.shape[0]

    def _locate(self, key, e: BaseException) -> BaseException:
        """The ChunkError of the first chunk under ``key`` that fails on its own (else ``e``)."""
        ranges = _chunk_ranges(key, self.array)
        if ranges is None:
            ranges = [range(n) for n in self.array.cdata_shape]
        for coords in itertools.product(*ranges):
            failure = read_chunk(self.array, coords)
            if failure is not None:
                return chunk_error(self.store, self.array, coords, self.cells, failure)
        return e


def _has_nan(values) -> bool:
    values = np.asarray(values)
    return values.dtype.kind == "f" and bool(np.isnan(values).any())


#: the encoding key under which a checked variable keeps the whole array it reads
WHOLE = "chromestore_whole"


class _Whole:
    """What :func:`whole_values` needs of a checked variable: the name of the Dask array
    :func:`checked_variables` made and the :class:`CheckedArray` it reads. Copies of the
    variable's encoding share it (it holds an open Zarr array, not data)."""

    def __init__(self, name: str, array: CheckedArray) -> None:
        self.name = name
        self.array = array

    def __copy__(self) -> _Whole:
        return self

    def __deepcopy__(self, memo) -> _Whole:
        return self


def whole_values(variable) -> np.ndarray | None:
    """The values of a variable that :func:`checked_variables` made, read with one Zarr
    call (its chunks fetched and decoded concurrently) instead of one Dask task per chunk:
    the (cell, mark) flags and units have one chunk per pair, 280 of them for 56
    epigenomes. The same checks as a Dask read (:class:`CheckedArray`). ``None`` where
    the variable is no longer the whole array it was opened as (sliced, replaced,
    computed): the caller reads it as usual then."""
    whole = variable.encoding.get(WHOLE)
    data = variable.data
    if not isinstance(whole, _Whole) or getattr(data, "name", None) != whole.name:
        return None
    if tuple(data.shape) != tuple(whole.array.shape):
        return None
    fast = read_whole(whole.array.array)  # None: a chunk missing or at fault, or another form
    return np.asarray(whole.array[...] if fast is None else fast)


def checked_variables(
    ds, group: zarr.Group | Mapping[str, zarr.Array], store: str, names: Sequence[str]
):
    """``ds`` with the Dask arrays of ``names`` reading through :class:`CheckedArray`
    (same chunks, dtype, attrs and encoding; nothing is read; :func:`whole_values` reads
    one whole at once)."""
    import dask.array as da

    cells = [str(c) for c in ds["cell"].values] if "cell" in ds.variables else None
    replaced = {}
    for name in names:
        if name not in ds.data_vars or not isinstance(ds[name].data, da.Array):
            continue
        old = ds[name].data
        wrapped = CheckedArray(group[name], store, cells)
        new = da.from_array(
            wrapped,
            chunks=old.chunks,
            name=old.name,
            meta=np.empty((0,) * old.ndim, dtype=old.dtype),
        )
        replaced[name] = ds[name].copy(data=new)
        replaced[name].encoding[WHOLE] = _Whole(new.name, wrapped)
    return ds.assign(replaced) if replaced else ds
