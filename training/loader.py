"""Stream mini-batches of ``signal`` from the store's chunks, for many models at once.

A :class:`ChunkLoader` serves ``M`` models, one per (cell, repeat): labels come from
:func:`chromestore.compute_labels`, splits from :func:`chromestore.assign_splits`, and a
gene whose signal has a NaN in a cell is excluded for that cell (and reported). Reads
are chunk-aligned: one ``signal`` chunk (1 cell × ``gene_chunk`` genes × marks × bins)
at a time, never more than the selected cells' chunks, in a background thread that
keeps ``prefetch`` batches ready. Decoded chunks are kept in memory only when all the
selected cells fit in ``memory_budget`` bytes; otherwise every pass streams them again,
so memory stays bounded by about ``(prefetch + 2) × M`` chunks.

Shuffling is chunk-wise: each epoch visits the gene chunks in an order drawn from
``(seed, epoch)`` and shuffles each model's genes within a chunk with a generator drawn
from ``(seed, cell, repeat, epoch, chunk)``. A model's batches therefore depend only on
its own cell and repeat, not on which other models share the loader, so a stacked
ensemble and one model per Dask task see the same batches.
"""

from __future__ import annotations

import os
import queue
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import zarr

from chromestore import variables as V
from chromestore.labels import compute_labels
from chromestore.splits import assign_splits
from chromestore.store.dataset import open_store
from chromestore.store.integrity import CheckedArray
from chromestore.training.config import DEFAULTS

TRANSFORMS = ("raw", "log1p")


def cell_key(cell: str) -> int:
    """A stable integer for a cell id (seeds must not depend on the cell's position)."""
    return zlib.crc32(str(cell).encode())


@dataclass
class Batch:
    """One training step for ``M`` models: each row of ``x`` is one model's own batch."""

    x: np.ndarray  # (M, B, marks, bins) float32
    y: np.ndarray  # (M, B) int64 labels (0 where padding)
    weight: np.ndarray  # (M, B) float32: 1/n_real for real samples, 0 for padding
    active: np.ndarray  # (M,) bool: the model has samples in this step


@dataclass
class EvalBatch:
    x: np.ndarray  # (M, B, marks, bins)
    gene: np.ndarray  # (M, B) int64 gene index in the store, -1 for padding


class ChunkLoader:
    """Mini-batches for the (cell, repeat) models of a store.

    Parameters
    ----------
    store
        Store path or URL.
    cells
        Epigenomes; each gets one model per split repeat.
    split
        Split scheme for :func:`chromestore.assign_splits` (``"random:3"`` …).
    transform
        ``"raw"`` (read counts as in the paper) or ``"log1p"``.
    split_over
        ``"all"``: split all the store's genes (the published protocol);
        ``"signal"``: split only the genes with signal in some selected cell, so each
        split gets its share of them (e.g. thirds of a 600-gene sample); the other
        genes get split code -1.
    zarr_store
        Optional zarr store object to read ``signal`` through (e.g. a wrapper that
        counts reads); defaults to opening ``store``.

    Examples
    --------
    >>> loader = ChunkLoader("sim.zarr", ["E003"], split="random", seed=0)  # doctest: +SKIP
    >>> next(loader.train_batches(epoch=0, batch_size=64)).x.shape  # doctest: +SKIP
    (1, 64, 5, 100)
    """

    def __init__(
        self,
        store: str | os.PathLike,
        cells: Sequence[str],
        *,
        split: str = DEFAULTS["split"],
        seed: int = DEFAULTS["seed"],
        label_rule: str | float = DEFAULTS["label_rule"],
        transform: str = DEFAULTS["transform"],
        storage_options: dict | None = None,
        memory_budget: int = DEFAULTS["memory_budget"],
        prefetch: int = 2,
        zarr_store=None,
        split_over: str = "all",
    ) -> None:
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown input transform {transform!r}; use one of {TRANSFORMS}")
        self.path, self.transform, self.seed, self.prefetch = (
            os.fspath(store),
            transform,
            int(seed),
            prefetch,
        )
        ds = open_store(self.path, storage_options)
        all_cells = [str(c) for c in ds[V.CELL].values.astype(object)]
        missing = [c for c in cells if c not in all_cells]
        if missing:
            raise KeyError(f"cells {missing} are not in the store (cells: {all_cells})")
        self.cells = list(cells)
        self.cell_index = np.array([all_cells.index(c) for c in self.cells])
        self.genes = ds[V.GENE].values.astype(object)
        self.marks = [str(m) for m in ds[V.MARK].values.astype(object)]
        self.n_genes, self.n_marks, self.n_bins = (
            ds.sizes[V.GENE],
            ds.sizes[V.MARK],
            ds.sizes[V.BIN],
        )
        ds = compute_labels(ds, label_rule)
        sub = ds[["label", "label_valid"]].isel({V.CELL: self.cell_index})
        label = sub["label"].values
        valid = sub["label_valid"].values
        self.target = np.where(valid, label.astype(np.float32), np.nan).astype(np.float32)
        group = zarr.open_group(
            zarr_store if zarr_store is not None else self.path,
            mode="r",
            zarr_format=3,
            storage_options=None if zarr_store is not None else storage_options,
        )
        # a chunk that fails its checksum raises ChunkError naming the chunk and the cell
        self.signal = CheckedArray(group[V.signal.name], self.path, all_cells)
        self.gene_chunk = int(self.signal.chunks[1])
        self.n_chunks = -(-self.n_genes // self.gene_chunk)
        cell_bytes = self.n_genes * self.n_marks * self.n_bins * 4
        self._cache: dict[tuple[int, int], np.ndarray] | None = (
            {} if cell_bytes * len(self.cells) <= memory_budget else None
        )
        self.chunk_reads = 0
        self.excluded = self._scan_missing()
        if split_over not in ("all", "signal"):
            raise ValueError(f"split_over must be 'all' or 'signal', not {split_over!r}")
        if split_over == "signal":
            keep = np.flatnonzero(~self.excluded.all(axis=0))
            part = assign_splits(ds.isel({V.GENE: keep}), split, seed=seed)
            codes = part["split"].values.astype(np.int8)
            self.split = np.full((codes.shape[0], self.n_genes), -1, np.int8)
            self.split[:, keep] = codes
            self.split_attrs = dict(part["split"].attrs, split_over="signal")
        else:
            part = assign_splits(ds, split, seed=seed)
            self.split = part["split"].values.astype(np.int8)  # (repeat, gene)
            self.split_attrs = dict(part["split"].attrs, split_over="all")
        self.n_repeats = self.split.shape[0]
        self.models = [(c, r) for c in self.cells for r in range(self.n_repeats)]
        self._index = {}
        for m, (c, r) in enumerate(self.models):
            ci = self.cells.index(c)
            ok = ~self.excluded[ci]
            has_label = ~np.isnan(self.target[ci])
            for code in (V.TRAIN, V.VALID, V.TEST):
                genes = self.split[r] == code
                self._index[m, code, True] = np.flatnonzero(genes & ok & has_label)
                self._index[m, code, False] = np.flatnonzero(genes & ok)

    # --- reading ---------------------------------------------------------------
    def _read(self, ci: int, chunk: int) -> np.ndarray:
        """Chunk ``chunk`` of selected cell ``ci``: (genes, marks, bins), transform applied."""
        if self._cache is not None and (ci, chunk) in self._cache:
            return self._cache[ci, chunk]
        g0 = chunk * self.gene_chunk
        block = np.asarray(self.signal[int(self.cell_index[ci]), g0 : g0 + self.gene_chunk])
        self.chunk_reads += 1
        if self.transform == "log1p":
            block = np.log1p(np.clip(block, 0, None))
        block = block.astype(np.float32, copy=False)
        if self._cache is not None:
            self._cache[ci, chunk] = block
        return block

    def _scan_missing(self) -> np.ndarray:
        out = np.zeros((len(self.cells), self.n_genes), dtype=bool)
        for ci in range(len(self.cells)):
            for j in range(self.n_chunks):
                block = self._read(ci, j)
                g0 = j * self.gene_chunk
                out[ci, g0 : g0 + len(block)] = np.isnan(block).any(axis=(1, 2))
        return out

    # --- facts -------------------------------------------------------------------
    def indices(self, m: int, code: int, labelled: bool = True) -> np.ndarray:
        """Store gene indices of model ``m`` in split ``code`` (labelled genes only)."""
        return self._index[m, code, labelled]

    def n_train(self) -> np.ndarray:
        return np.array([len(self.indices(m, V.TRAIN)) for m in range(len(self.models))])

    def steps_per_epoch(self, batch_size: int) -> int:
        return int(-(-self.n_train().max() // batch_size))

    def exclusion_report(self) -> dict[str, int]:
        """Genes excluded per cell for missing signal."""
        return {c: int(self.excluded[i].sum()) for i, c in enumerate(self.cells)}

    # --- streaming ---------------------------------------------------------------
    def _chunk_rows(self, m: int, j: int, code: int, labelled: bool) -> np.ndarray:
        idx = self.indices(m, code, labelled)
        g0 = j * self.gene_chunk
        lo, hi = np.searchsorted(idx, [g0, g0 + self.gene_chunk])
        return idx[lo:hi]

    def _blocks(self, chunks: Sequence[int]) -> Iterator[tuple[int, list[np.ndarray]]]:
        for j in chunks:
            yield j, [self._read(ci, j) for ci in range(len(self.cells))]

    def _selected(self, models: np.ndarray | None) -> np.ndarray:
        """(M,) bool: the models a stream serves (all by default)."""
        if models is None:
            return np.ones(len(self.models), bool)
        models = np.asarray(models, bool)
        if models.shape != (len(self.models),):
            raise ValueError(f"models must be {len(self.models)} booleans, not {models.shape}")
        return models

    def _train_stream(
        self, epoch: int, batch_size: int, models: np.ndarray | None = None
    ) -> Iterator[Batch]:
        n_models = len(self.models)
        serve = self._selected(models)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_chunks)
        pending_x: list[list[np.ndarray]] = [[] for _ in range(n_models)]
        pending_y: list[list[np.ndarray]] = [[] for _ in range(n_models)]
        count = np.zeros(n_models, dtype=np.int64)
        remaining = np.where(serve, self.n_train(), 0).astype(np.int64)

        def emit(final: bool) -> Iterator[Batch]:
            while True:
                ready = (count >= batch_size) | ((remaining == 0) & (count > 0))
                waiting = (remaining > 0) & (count < batch_size)
                if not ready.any() or (waiting.any() and not final):
                    return
                x = np.zeros((n_models, batch_size, self.n_marks, self.n_bins), np.float32)
                y = np.zeros((n_models, batch_size), np.int64)
                w = np.zeros((n_models, batch_size), np.float32)
                for m in np.flatnonzero(ready):
                    xs, ys = np.concatenate(pending_x[m]), np.concatenate(pending_y[m])
                    k = min(batch_size, len(xs))
                    x[m, :k], y[m, :k], w[m, :k] = xs[:k], ys[:k], 1.0 / k
                    pending_x[m], pending_y[m] = [xs[k:]], [ys[k:]]
                    count[m] -= k
                yield Batch(x, y, w, ready.copy())

        for j, blocks in self._blocks(order):
            g0 = j * self.gene_chunk
            for m, (c, r) in enumerate(self.models):
                if not serve[m]:
                    continue
                rows = self._chunk_rows(m, j, V.TRAIN, True)
                if not len(rows):
                    continue
                rng = np.random.default_rng([self.seed, cell_key(c), r, epoch, int(j)])
                rows = rows[rng.permutation(len(rows))]
                ci = self.cells.index(c)
                pending_x[m].append(blocks[ci][rows - g0])
                pending_y[m].append(self.target[ci, rows].astype(np.int64))
                count[m] += len(rows)
                remaining[m] -= len(rows)
            yield from emit(final=False)
        yield from emit(final=True)

    def _eval_stream(
        self,
        codes: Sequence[int],
        batch_size: int,
        labelled: bool,
        models: np.ndarray | None = None,
    ) -> Iterator[EvalBatch]:
        n_models = len(self.models)
        serve = self._selected(models)
        none = np.zeros(0, np.int64)
        for j, blocks in self._blocks(range(self.n_chunks)):
            g0 = j * self.gene_chunk
            rows = [
                np.sort(np.concatenate([self._chunk_rows(m, j, code, labelled) for code in codes]))
                if serve[m]
                else none
                for m in range(n_models)
            ]
            longest = max(len(r) for r in rows)
            for s in range(0, longest, batch_size):
                width = min(batch_size, longest - s)  # no all-padding columns to evaluate
                x = np.zeros((n_models, width, self.n_marks, self.n_bins), np.float32)
                gene = np.full((n_models, width), -1, np.int64)
                for m, (c, _) in enumerate(self.models):
                    part = rows[m][s : s + batch_size]
                    x[m, : len(part)] = blocks[self.cells.index(c)][part - g0]
                    gene[m, : len(part)] = part
                yield EvalBatch(x, gene)

    def train_batches(
        self, epoch: int, batch_size: int, models: np.ndarray | None = None
    ) -> Iterator[Batch]:
        """Epoch ``epoch``'s shuffled training batches, prefetched in a background thread.

        ``models`` ((M,) bool): serve only these models (e.g. those not stopped early);
        the others get no samples and are never ``active``. A model's batches are the
        same whichever others are served."""
        return _prefetched(self._train_stream(epoch, batch_size, models), self.prefetch)

    def eval_batches(
        self,
        codes: Sequence[int],
        batch_size: int,
        labelled: bool = True,
        models: np.ndarray | None = None,
    ) -> Iterator[EvalBatch]:
        """The genes of splits ``codes`` in store order (no shuffling), prefetched;
        ``models`` ((M,) bool): only these models' genes (the others' rows are padding)."""
        return _prefetched(self._eval_stream(codes, batch_size, labelled, models), self.prefetch)


_DONE = object()


def _prefetched(items: Iterator, depth: int) -> Iterator:
    """Run ``items`` in a daemon thread, ``depth`` items ahead; exceptions re-raised here."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    thread = threading.Thread(target=work, daemon=True, name="chunk-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
