"""The ingest engine: one task per file reads it onto the store's genes, one writer task per
epigenome writes that epigenome's region, and only then is each (cell, mark) recorded.

The same code runs on a Dask cluster, in forked workers and in this process
(:mod:`chromestore.executors`); the reading tasks are :mod:`chromestore.ingest.reads`'s.
What a file holds and how it is read come from its format's registry entry
(:mod:`chromestore.formats`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from chromestore import formats
from chromestore import store as S
from chromestore import variables as V
from chromestore.executors import executor_for
from chromestore.ingest.plan import pending_samples
from chromestore.ingest.progress import PROGRESS_TOPIC, ReadsProgress, report_reads
from chromestore.ingest.reads import Bins, SampleResult, count_sample, store_fingerprint
from chromestore.ingest.report import Done
from chromestore.ingest.samplesheet import Sample
from chromestore.ingest.writes import write_cell
from chromestore.store.dataset import open_store

__all__ = [
    "Bins",
    "SampleReads",
    "SampleResult",
    "Written",
    "count_sample",
    "ingest_samples",
    "record_results",
    "write_results",
]


def _info(r: SampleResult) -> dict:
    units = {"units": r.sample.signal_units} if r.target == V.signal.name else {}
    return {"file": r.sample.path, "format": r.sample.format, **units, **r.stats}


@dataclass
class Written:
    """What the writer of one cell did: the results it wrote, whether it appended the cell,
    and a line per chunk it found corrupt or missing and rewrote."""

    results: list[SampleResult]
    appended: bool = False
    notes: list[str] = field(default_factory=list)


def write_results(store: S.Store, cell: str, results: Sequence[SampleResult]) -> Written:
    """The writer of one cell, once all its files were read: appends the cell if new, writes
    every result's marks in one region write, then records each (cell, mark) completed with
    its provenance, all under the store's lock (:func:`chromestore.store.cells.write_cell`:
    flags cleared first, then data, provenance, flags)."""
    signal = {m: v for r in results if r.target == V.signal.name for m, v in r.values.items()}
    peak = {m: v for r in results if r.target == V.peak_max.name for m, v in r.values.items()}
    records: dict[str, dict[str, dict]] = {}
    for r in results:
        records.setdefault(r.target, {}).update({m: _info(r) for m in r.values})
    done = write_cell(store, cell, signal or None, peak or None, records=records, append=True)
    return Written(list(results), done.appended, done.notes)


def record_results(results: Sequence[SampleResult]) -> list[Done]:
    """What a finished writer did, one :class:`Done` per (cell, mark)."""
    return [
        Done(r.sample.cell, m, r.target, r.sample.path, r.stats) for r in results for m in r.values
    ]


class SampleReads:
    """The files of one ingest: read as soon as the store's bins are known, possibly before
    the store exists (the bins then come from the annotation that will create it), then
    written cell by cell with :meth:`finish` once the store is ready.

    One task per file reads it (on ``ex``: a cluster, forked workers or this process); one
    writer task per cell, depending on that cell's reads, appends the cell if it is new,
    writes the cell's region and then records each (cell, mark) completed, under the store's
    write lock (so other ingests of the same store may run at once). A file that fails
    leaves its cell as it was (a new cell is not appended); the first error is raised after
    the other cells finished. After :meth:`finish`, ``written`` lists the cells written,
    ``appended`` those appended, ``notes`` the chunks found corrupt or missing and rewritten.
    ``aliases`` (file chromosome → annotation chromosome, :mod:`chromestore.genomes`) are
    given to every reader. A context manager: leaving it before :meth:`finish` drops the
    reads.
    """

    def __init__(
        self,
        ex,
        samples: Sequence[Sample],
        bins: Bins,
        progress: bool = False,
        aliases: dict[str, str] | None = None,
    ):
        from tqdm import tqdm

        self.ex, self.samples, self.progress = ex, list(samples), progress
        self.aliases = dict(aliases or {})
        self.bins = bins.with_aliases(self.aliases)
        self.written: list[str] = []
        self.appended: list[str] = []
        self.notes: list[str] = []
        self.bar = tqdm(total=len(self.samples), unit="file", disable=not progress, desc="ingest")
        self.shown = ReadsProgress(self.bar if progress else None)
        self.run = uuid.uuid4().hex  # this ingest's events, should others share the scheduler
        self._stack = ExitStack()
        if progress:
            self._stack.enter_context(ex.subscribe(PROGRESS_TOPIC, self.shown.listener(self.run)))
        self.reads = self._submit_reads(self.bins)

    def _submit_reads(self, bins: Bins) -> list:
        shared = self.ex.share(bins)
        reads = []
        for i, s in enumerate(self.samples):
            tell = functools.partial(report_reads, self.run, i) if self.progress else None
            reads.append(self.ex.submit(count_sample, s, formats.get(s.format), shared, tell))
        return reads

    def finish(self, store: S.Store, ds=None) -> list[Done]:
        """Write what was read into ``store`` (every cell of the samples in it already;
        ``ds``: the store opened, if at hand). Files read on bins other than the store's
        (another ingest created it from another annotation meanwhile) are read again."""
        ds = open_store(store) if ds is None else ds
        if store_fingerprint(ds) != self.bins.fingerprint:
            self.ex.cancel(self.reads)
            self.bins = Bins.from_store(ds).with_aliases(self.aliases)
            self.reads = self._submit_reads(self.bins)
        by_cell: dict[str, list[int]] = {}
        for i, s in enumerate(self.samples):
            by_cell.setdefault(s.cell, []).append(i)
        role = {f.key: i for i, f in enumerate(self.reads)}  # a read: its sample index
        futures = []
        for cell, indices in by_cell.items():
            reads = [self.reads[i] for i in indices]
            futures += [*reads, self.ex.submit(write_results, store, cell, reads)]
            role[futures[-1].key] = cell  # a writer: its cell
        done: list[Done] = []
        errors: list[BaseException] = []
        for f in self.ex.as_completed(futures):
            what = role[f.key]
            if isinstance(what, int):  # a file read
                if f.status == "finished":
                    self.shown.file(what, f.result().stats.get("reads", 0))
                self.bar.update(1)
            elif f.status == "finished":
                written = f.result()
                done += record_results(written.results)
                self.written.append(what)
                self.appended += [what] if written.appended else []
                self.notes += written.notes
            elif f.status == "error":
                errors.append(f.exception())
            else:  # cancelled or lost on a cluster: no exception to raise
                errors.append(
                    RuntimeError(
                        f"the writer of epigenome {what} was {f.status} "
                        "on the cluster; run the ingest again"
                    )
                )
        self.reads = []
        self.close()
        if errors:
            raise errors[0]
        return done

    def close(self) -> None:
        if self.reads:
            self.ex.cancel(self.reads)
            self.reads = []
        self._stack.close()
        self.bar.close()

    def __enter__(self) -> SampleReads:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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

    The files are read (in parallel on ``client``, a ``distributed.Client``, or in this
    process when None) and written as :class:`SampleReads` does: a new cell is appended
    by its writer, once its files were read. Completed (cell, mark) pairs are skipped
    unless ``force``.
    """
    store = S.Store.of(store, storage_options)
    todo = pending_samples(store, samples, force)
    if not todo:
        return []
    ds = open_store(store)
    with SampleReads(executor_for(client), todo, Bins.from_store(ds), progress) as reads:
        return reads.finish(store, ds)
