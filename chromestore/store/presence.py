"""Which chunks of a store must exist: missing is not NaN.

Zarr reads an absent chunk as its fill value, so a chunk file lost from a store (deleted,
never synced) would read as NaN, as if nothing had been ingested there. A store created by
this version therefore writes every chunk of what it records, even one holding only NaN
(its attrs say ``empty_chunks: "written"``), and every completion flag, true or false.
Then a chunk must exist where the records say data was written:

- ``signal`` / ``peak_max``: every chunk of a cell with any mark of that variable recorded
  complete (a cell is written whole: every gene chunk, all marks);
- ``expression``: every chunk of a cell named in the store's ``expression`` attrs;
- the completion flags and the coordinates: every chunk.

:class:`Required` answers it for one data variable (reads through
:class:`chromestore.store.integrity.CheckedArray` raise :class:`ChunkError` on a missing
one); :mod:`chromestore.store.verify` lists every chunk missing. Stores created before keep
no such promise: their absent chunks may be NaN by design, and only coordinates are checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from chromestore import variables as V

#: the attr of a store that writes every chunk it records (see the module docstring)
EMPTY_CHUNKS = "empty_chunks"
WRITTEN = "written"
#: the data variables with a cell dim, and the flags that say which of their cells are written
RECORDED_BY = {V.signal.name: V.RECORDS_OF["signal"], V.peak_max.name: V.RECORDS_OF["peak_max"]}


def promised(attrs: dict) -> bool:
    """Whether a store (its group attrs) writes every chunk it records."""
    return attrs.get(EMPTY_CHUNKS) == WRITTEN


def expressed_cells(attrs: dict) -> set[str]:
    """The cells whose expression was written (the keys of the ``expression`` attrs)."""
    value = attrs.get("expression") or {}
    if isinstance(value, str):  # as stored: a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            return set()
    return {str(c) for c in value} if isinstance(value, dict) else set()


def chunk_exists(array: zarr.Array, coords: Sequence[int]) -> bool:
    """Whether the chunk ``coords`` of ``array`` is stored (not read: one existence check)."""
    path = array.store_path
    key = array.metadata.encode_chunk_key(tuple(int(c) for c in coords))
    return bool(sync(path.store.exists(f"{path.path}/{key}" if path.path else key)))


class Required:
    """Which chunks of one data variable (``signal``, ``peak_max`` or ``expression``) of a
    store must exist, and why: see the module docstring. Picklable (Dask ships it with the
    arrays it reads); the flags of a cell are read the first time that cell is asked about.
    """

    def __init__(
        self,
        variable: str,
        cells: Sequence[str],
        flags: zarr.Array | None = None,
        expressed: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.variable = variable
        self.cells = tuple(cells)
        self.flags = flags
        self.expressed = frozenset(expressed)
        self._recorded: dict[int, bool] = {}

    @classmethod
    def of(cls, array: zarr.Array, cells: Sequence[str] | None = None) -> Required | None:
        """The rule of ``array`` (a data variable opened from its store), or None where the
        store makes no promise (created before, or another array)."""
        name = array.basename
        if name not in (*RECORDED_BY, V.expression.name):
            return None
        parent = array.path.rsplit("/", 1)[0] if "/" in array.path else ""
        try:
            root = zarr.open_group(store=array.store_path.store, path=parent, mode="r")
            attrs = dict(root.attrs)
            if not promised(attrs):
                return None
            if cells is None:
                cells = [str(c) for c in root[V.CELL][...]]
            if name == V.expression.name:
                return cls(name, cells, expressed=expressed_cells(attrs))
            return cls(name, cells, flags=root[RECORDED_BY[name]])
        except (KeyError, ValueError, FileNotFoundError):
            return None  # not a store's layout: nothing promised

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_recorded"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _recorded={})

    def recorded(self, cell_index: int) -> bool:
        """Whether the cell's data of this variable is recorded written."""
        if cell_index >= len(self.cells):
            return False
        if self.flags is None:
            return self.cells[cell_index] in self.expressed
        if cell_index not in self._recorded:
            try:
                self._recorded[cell_index] = bool(np.any(self.flags[cell_index, :]))
            except Exception:  # a flag chunk that does not read: verify names it
                self._recorded[cell_index] = False
        return self._recorded[cell_index]

    def why(self, coords: Sequence[int]) -> str | None:
        """Why the chunk ``coords`` must exist (None: it may be absent)."""
        ci = int(coords[0])
        if not self.recorded(ci):
            return None
        cell = self.cells[ci]
        if self.flags is None:
            return f"the expression of {cell} is recorded written"
        return f"{cell} has {self.variable} marks recorded complete"


@dataclass(frozen=True)
class Missing:
    """A chunk of a data variable that must exist and does not (see :func:`missing_chunks`)."""

    variable: str
    cell: str
    key: str  # the chunk key, e.g. ``signal/c/0/1/0/0``

    def line(self) -> str:
        return (
            f"chunk {self.key} of {self.variable} (cell {self.cell}) is missing: its values "
            f"are lost, not NaN; re-running `chromestore ingest` with the files of {self.cell} "
            "rewrites it"
        )


def missing_chunks(store: Any, storage_options: dict | None = None) -> list[Missing]:
    """Every chunk of ``signal``, ``peak_max`` and ``expression`` that the store's records
    say was written and that is not stored (one listing per variable; no chunk is read).
    A store that makes no promise (:func:`promised`) has none."""
    from chromestore.store.handle import Store

    handle = Store.of(store, storage_options)
    group = handle.group("r")
    if not promised(dict(group.attrs)):
        return []
    fs, root = handle.fs()
    root = root.rstrip("/")
    cells = [str(c) for c in group[V.CELL][...]]
    out = []
    for name in (*RECORDED_BY, V.expression.name):
        try:
            array = group[name]
        except KeyError:
            continue  # verify names a missing variable
        rule = Required.of(array, cells)
        if rule is None:
            continue
        stored = {p[len(root) + 1 :] for p in fs.find(f"{root}/{name}/c") if not p.endswith("/")}
        for ci in range(min(len(cells), array.shape[0])):
            if not rule.recorded(ci):
                continue
            for rest in np.ndindex(*array.cdata_shape[1:]):
                key = f"{name}/{array.metadata.encode_chunk_key((ci, *rest))}"
                if key not in stored:
                    out.append(Missing(name, cells[ci], key))
    return out
