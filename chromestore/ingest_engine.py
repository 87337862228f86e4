"""The ingest engine: one task per file reads it onto the store's genes, one writer task per
epigenome writes that epigenome's region, and only then is each (cell, mark) recorded.

The same code runs on a Dask cluster and in this process (:mod:`chromestore.executors`).
What a file holds and how it is read come from its format's registry entry
(:mod:`chromestore.formats`).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from chromestore import formats
from chromestore import store as S
from chromestore import variables as V
from chromestore.cell_writes import GeneKeys, per_mark, write_cell
from chromestore.executors import executor_for
from chromestore.ingest_plan import pending_samples
from chromestore.ingest_progress import PROGRESS_TOPIC, ReadsProgress, report_reads
from chromestore.ingest_report import Done
from chromestore.samplesheet import Sample


@dataclass
class SampleResult:
    sample: Sample
    target: str  # the store variable filled
    values: dict[str, np.ndarray]  # mark → (gene, bin) signal or (gene,) peak_max
    stats: dict


def count_sample(sample: Sample, entry: formats.FormatEntry, layout, keys: GeneKeys,
                 progress=None) -> SampleResult:
    """Read one file with its format's reader, onto the store's genes (no store access).

    ``progress(n_reads)`` is passed to the reader (BED/tagAlign report per block)."""
    t0 = time.perf_counter()
    values, stats = entry.read(sample.path, formats.ReadRequest(sample.mark, layout, progress))
    out, aligned = per_mark(values, keys, entry.target, sample.mark, sample.path, entry.name)
    stats = {**aligned, **stats}
    stats.setdefault("seconds", round(time.perf_counter() - t0, 3))
    return SampleResult(sample, entry.target, out, stats)


def _info(r: SampleResult) -> dict:
    return {"file": r.sample.path, "format": r.sample.format, **r.stats}


def write_results(store: S.Store, cell: str, results: Sequence[SampleResult]
                  ) -> list[SampleResult]:
    """The writer of one cell: writes every result's marks in one region write, then
    records each (cell, mark) completed with its provenance, all under the store's lock."""
    signal = {m: v for r in results if r.target == V.signal.name for m, v in r.values.items()}
    peak = {m: v for r in results if r.target == V.peak_max.name for m, v in r.values.items()}
    records: dict[str, dict[str, dict]] = {}
    for r in results:
        records.setdefault(r.target, {}).update({m: _info(r) for m in r.values})
    write_cell(store, cell, signal or None, peak or None, records=records)
    return list(results)


def record_results(results: Sequence[SampleResult]) -> list[Done]:
    """What a finished writer did, one :class:`Done` per (cell, mark)."""
    return [Done(r.sample.cell, m, r.target, r.sample.path, r.stats)
            for r in results for m in r.values]


def ingest_samples(
    store: S.StoreLike,
    samples: Sequence[Sample],
    *,
    client=None,
    force: bool = False,
    progress: bool = False,
    storage_options: dict | None = None,
) -> list[Done]:
    """Ingest samplesheet rows into an existing store; returns what was done.

    New cells are appended first (the template, NaN, written once). Then one task per
    file reads it (in parallel on ``client``, a ``distributed.Client``, or in this
    process when None) and one writer task per cell, depending on that cell's read
    tasks, writes the cell's region and then records each (cell, mark) completed, under
    the store's write lock (so other ingests of the same store may run at once). Completed (cell, mark) pairs are skipped
    unless ``force``. A file that fails leaves its cell unwritten; the first error is
    raised after the other cells finished.
    """
    from tqdm import tqdm

    from chromestore.counting import BinLayout

    store = S.Store.of(store, storage_options)
    todo = pending_samples(store, samples, force)
    if not todo:
        return []
    S.add_cells(store, [s.cell for s in todo])
    ds = store.open()
    ex = executor_for(client)
    layout, keys = ex.share(BinLayout.from_store(ds)), ex.share(GeneKeys.from_store(ds))
    by_cell: dict[str, list[int]] = {}
    for i, s in enumerate(todo):
        by_cell.setdefault(s.cell, []).append(i)
    bar = tqdm(total=len(todo), unit="file", disable=not progress, desc="ingest")
    shown = ReadsProgress(bar if progress else None)
    run = uuid.uuid4().hex  # this ingest's events, should others share the scheduler
    role = {}  # future key → sample index (a read) or cell (a writer)
    futures = []
    done: list[Done] = []
    errors: list[BaseException] = []
    with ex.subscribe(PROGRESS_TOPIC, shown.listener(run)) if progress else nullcontext():
        for cell, indices in by_cell.items():
            reads = []
            for i in indices:
                tell = functools.partial(report_reads, run, i) if progress else None
                reads.append(ex.submit(count_sample, todo[i], formats.get(todo[i].format),
                                       layout, keys, tell))
                role[reads[-1].key] = i
            futures += [*reads, ex.submit(write_results, store, cell, reads)]
            role[futures[-1].key] = cell
        for f in ex.as_completed(futures):
            what = role[f.key]
            if isinstance(what, int):  # a file read
                if f.status == "finished":
                    shown.file(what, f.result().stats.get("reads", 0))
                bar.update(1)
            elif f.status == "finished":
                done += record_results(f.result())
            else:
                errors.append(f.exception())
    bar.close()
    if errors:
        raise errors[0]
    return done
