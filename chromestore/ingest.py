"""Ingestion into the store: gene annotation (creates the store) and expression matrices.

Signal formats (reads, bigWig, peaks, CSV datasets) are added by the samplesheet
engine; this module owns store creation and ``expression``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from chromestore import store as S
from chromestore import variables as V
from chromestore.expression import Alignment, align_expression, read_rpkm
from chromestore.genes import read_genes


@dataclass
class IngestReport:
    created: bool = False
    cells_added: list[str] = field(default_factory=list)
    expression: Alignment | None = None
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        out = []
        if self.created:
            out.append("created a new store")
        if self.cells_added:
            out.append(f"added {len(self.cells_added)} epigenomes: {_short(self.cells_added)}")
        if self.expression is not None:
            out.append(self.expression.summary())
            if self.expression.missing_genes:
                out.append(
                    "genes without expression: " + _short(self.expression.missing_genes)
                )
        return "\n".join(out + self.lines)


def _short(items: Sequence[str], n: int = 8) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", … ({len(items)} in all)" if len(items) > n else "")


def open_or_create(
    path: str | os.PathLike,
    genes: str | os.PathLike | None,
    *,
    marks: Sequence[str] = V.DEFAULT_MARKS,
    window: int = 5000,
    bin_size: int = 100,
    genome: str = "hg19",
    gene_chunk: int = S.DEFAULT_GENE_CHUNK,
    storage_options: dict | None = None,
) -> tuple[xr.Dataset, bool]:
    """Open the store at ``path``, creating it from the ``genes`` annotation if absent.

    An existing store must have been built with the same window and bin size.
    """
    if S.exists(path, storage_options):
        ds = S.open_store(path, storage_options)
        for key, want in (("window", window), ("bin_size", bin_size)):
            if int(ds.attrs[key]) != int(want):
                raise S.StoreError(
                    f"{os.fspath(path)}: store has {key}={ds.attrs[key]}, not {want}; "
                    "use the store's settings or a new store"
                )
        return ds, False
    if genes is None:
        raise S.StoreError(f"{os.fspath(path)}: no store here; pass --genes to create one")
    table = read_genes(genes)
    ds = S.create_store(
        path,
        table,
        marks=marks,
        window=window,
        bin_size=bin_size,
        chunks={V.GENE: gene_chunk},
        genome=genome,
        storage_options=storage_options,
    )
    S.update_attrs(path, storage_options, genes_source=os.fspath(genes))
    return ds, True


def ingest_expression(
    path: str | os.PathLike,
    matrix_path: str | os.PathLike | pd.DataFrame,
    cells: Sequence[str] | None = None,
    storage_options: dict | None = None,
) -> tuple[Alignment, list[str]]:
    """Fill ``expression`` from an RPKM matrix for ``cells`` (default: every column).

    Cells not yet in the store are appended. The matrix is parsed and joined fully
    before anything is written, so a bad file leaves the store untouched.
    Returns the join report and the cells that were appended.
    """
    if isinstance(matrix_path, pd.DataFrame):
        matrix, matrix_path = matrix_path, matrix_path.attrs.get("source", "<DataFrame>")
    else:
        matrix = read_rpkm(matrix_path)
    if cells is None:
        cells = list(matrix.columns)
    absent = [c for c in cells if c not in matrix.columns]
    if absent:
        raise KeyError(f"{os.fspath(matrix_path)}: no column for epigenome(s) {absent}")
    ds = S.open_store(path, storage_options)
    aligned = align_expression(matrix, ds[V.gene_id.name].values, list(cells))
    added = S.add_cells(path, cells, storage_options)
    ds = S.open_store(path, storage_options)
    index = [S.cell_index(ds, c) for c in cells]
    order = np.argsort(index)
    # Write contiguous runs of cells in one region each.
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and index[order[stop]] == index[order[stop - 1]] + 1:
            stop += 1
        rows = order[start:stop]
        lo = index[rows[0]]
        part = xr.Dataset(
            {V.expression.name: (V.expression.dims, aligned.values[rows])}
        ).chunk({V.CELL: 1, V.GENE: ds.attrs["gene_chunk"]})
        S.write_region(
            path,
            part,
            {V.CELL: slice(lo, lo + len(rows)), V.GENE: slice(None)},
            storage_options,
        )
        start = stop
    S.update_attrs(
        path,
        storage_options,
        expression={
            c: {
                "source": os.fspath(matrix_path),
                "genes_matched": int(aligned.values.shape[1] - len(aligned.missing_genes)),
                "genes_missing": len(aligned.missing_genes),
            }
            for c in cells
        },
    )
    return aligned, added


# --- signal: aligning arrays onto the store and writing one cell ------------------


@dataclass
class Aligned:
    """Per-gene values reindexed onto the store's genes, with what did not match."""

    values: np.ndarray  # (store gene, ...) float32, NaN for store genes without data
    matched: int  # store genes that received values
    unmatched: list[str]  # source genes that match no store gene


def align_genes(ds: xr.Dataset, source: xr.DataArray) -> Aligned:
    """Reindex ``source`` (gene first) onto the store's genes.

    ``source.attrs["gene_key"]`` says which store coordinate its gene labels are:
    ``"gene"`` (``ENSGID_SYMBOL``, the default) or ``"gene_id"`` (an Ensembl id, which
    fills every store gene with that id: REMC repeats 7 ids under two symbols).
    """
    key = source.attrs.get("gene_key", V.GENE)
    store_keys = pd.Index(ds[key].values.astype(object))
    labels = pd.Index(source[V.GENE].values.astype(object))
    if labels.has_duplicates:
        raise ValueError(f"{source.attrs.get('source', 'input')}: duplicate genes")
    pos = labels.get_indexer(store_keys)
    have = pos >= 0
    values = np.full((len(store_keys),) + source.shape[1:], np.nan, dtype=np.float32)
    values[have] = source.values[pos[have]]
    unmatched = [str(g) for g in labels[~labels.isin(store_keys)]]
    return Aligned(values, int(have.sum()), unmatched)


def write_cell(
    path: str | os.PathLike,
    cell: str,
    signal: dict[str, np.ndarray] | None = None,
    peak_max: dict[str, np.ndarray] | None = None,
    storage_options: dict | None = None,
) -> None:
    """Write the given marks of one cell: ``signal[mark]`` (gene, bin), ``peak_max[mark]`` (gene).

    The store's chunks hold all marks of a cell, so the cell's current values are read,
    the given marks replaced and the cell's region written back whole: callers must
    serialise the writes of one cell (the engine runs one writer per cell). Other marks
    and other cells are left as they were.
    """
    ds = S.open_store(path, storage_options)
    ci = S.cell_index(ds, cell)
    marks = [str(m) for m in ds[V.MARK].values]
    chunk = {V.CELL: 1, V.GENE: int(ds.attrs["gene_chunk"])}
    for name, given in ((V.signal.name, signal), (V.peak_max.name, peak_max)):
        if not given:
            continue
        unknown = sorted(set(given) - set(marks))
        if unknown:
            raise S.StoreError(f"{os.fspath(path)}: marks {unknown} are not in the store ({marks})")
        current = ds[name].isel({V.CELL: ci}).values.copy()
        for mark, values in given.items():
            current[:, marks.index(mark)] = values
        part = xr.Dataset({name: (ds[name].dims, current[None])}).chunk(chunk)
        S.write_region(path, part, {V.CELL: slice(ci, ci + 1)}, storage_options)


def ingest_signal_array(
    path: str | os.PathLike,
    cell: str,
    source: xr.DataArray,
    storage_options: dict | None = None,
    info: dict | None = None,
) -> Aligned:
    """Write binned counts (gene, mark, bin) of one cell, e.g. from a CSV reader.

    Wider windows are centre-cropped to the store's bins; the cell is appended if
    new; each mark is recorded completed after the write. Store genes absent from
    ``source`` stay NaN; source genes absent from the store are returned as unmatched.
    """
    from chromestore.formats.csv import centre_crop

    ds = S.open_store(path, storage_options)
    source = centre_crop(source, ds.sizes[V.BIN])
    aligned = align_genes(ds, source.transpose(V.GENE, V.MARK, V.BIN))
    S.add_cells(path, [cell], storage_options)
    marks = [str(m) for m in source[V.MARK].values]
    write_cell(
        path, cell, {m: aligned.values[:, i] for i, m in enumerate(marks)},
        storage_options=storage_options,
    )
    for m in marks:
        S.mark_completed(
            path, cell, m,
            {
                "source": source.attrs.get("source"),
                "format": source.attrs.get("format"),
                "genes_matched": aligned.matched,
                "genes_unmatched": len(aligned.unmatched),
                **(info or {}),
            },
            storage_options,
        )
    return aligned


# --- samplesheets ----------------------------------------------------------------

#: format → (store variable it fills, needs a mark)
FORMATS = {
    "tagalign": ("signal", True),
    "bed": ("signal", True),
    "bam": ("signal", True),
    "bigwig": ("signal", True),
    "narrowpeak": ("peak_max", True),
    "broadpeak": ("peak_max", True),
    "gappedpeak": ("peak_max", True),
    "deepchrome-csv": ("signal", False),
    "deepdiff-csv": ("signal", False),
}
_SUFFIXES = (
    (".tagalign", "tagalign"), (".bed", "bed"), (".bam", "bam"), (".bw", "bigwig"),
    (".bigwig", "bigwig"), (".narrowpeak", "narrowpeak"), (".broadpeak", "broadpeak"),
    (".gappedpeak", "gappedpeak"),
)
SAMPLE_COLUMNS = ("cell", "mark", "format", "path")


@dataclass(frozen=True)
class Sample:
    """One samplesheet row: a file of one cell (and one mark, or all marks for CSV datasets)."""

    cell: str
    mark: str  # "" for formats that carry all marks
    format: str
    path: str
    line: int = 0

    @property
    def target(self) -> str:
        return FORMATS[self.format][0]


def infer_format(path: str) -> str | None:
    name = os.path.basename(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return None


def read_samplesheet(path: str | os.PathLike, marks: Sequence[str] = V.DEFAULT_MARKS) -> list[Sample]:
    """Read and validate a samplesheet CSV (header ``cell,mark,format,path``).

    Paths are relative to the samplesheet's folder; an empty format is inferred from
    the file name. Every file must exist. Errors name the samplesheet and line.
    """
    import csv

    from chromestore import names
    from chromestore.errors import InputError
    from chromestore.textio import open_text

    path = os.fspath(path)
    base = os.path.dirname(os.path.abspath(path))
    out: list[Sample] = []
    seen: dict[tuple[str, str, str], int] = {}
    with open_text(path) as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip().lower() for c in rows[0]] != list(SAMPLE_COLUMNS):
        raise InputError(path, 1, f"expected the header {','.join(SAMPLE_COLUMNS)}")
    for lineno, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 4:
            raise InputError(path, lineno, f"expected 4 columns, found {len(row)}")
        cell, mark, fmt, file = (x.strip() for x in row)
        if names.problem(cell):
            raise InputError(path, lineno, names.problem(cell))
        full = file if os.path.isabs(file) else os.path.join(base, file)
        fmt = fmt.lower() or infer_format(file) or ""
        if fmt not in FORMATS:
            raise InputError(
                path, lineno,
                f"unknown format {row[2].strip() or file!r} (known: {', '.join(FORMATS)})",
            )
        target, needs_mark = FORMATS[fmt]
        if needs_mark and not mark:
            raise InputError(path, lineno, f"format {fmt} needs a mark")
        if mark and mark not in marks:
            raise InputError(path, lineno, f"mark {mark!r} is not in the store ({', '.join(marks)})")
        if not os.path.exists(full):
            raise InputError(full, None, f"file not found (samplesheet {path}, line {lineno})")
        for m in [mark] if mark else marks:
            key = (cell, m, target)
            if key in seen:
                raise InputError(
                    path, lineno, f"duplicate ({cell}, {m}) for {target}, first on line {seen[key]}"
                )
            seen[key] = lineno
        out.append(Sample(cell, mark, fmt, full, lineno))
    return out


# --- the engine: count per file in parallel, one writer per cell --------------------


@dataclass
class GeneKeys:
    """The store's gene labels, enough to align CSV datasets on workers."""

    gene: np.ndarray
    gene_id: np.ndarray
    n_bins: int


@dataclass
class SampleResult:
    sample: Sample
    values: dict[str, np.ndarray]  # mark → (gene, bin) signal or (gene,) peak_max
    stats: dict


#: Dask worker event topic for reads counted so far in a file: ``(run, sample index, reads)``
PROGRESS_TOPIC = "chromestore-ingest-reads"


def worker_progress(run: str, index: int, n_reads: int) -> None:
    """``count_bed``'s progress callback inside a Dask task: one worker event per block,
    which the client (``ingest_samples``) subscribes to. A no-op outside a worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    worker.log_event(PROGRESS_TOPIC, (run, index, int(n_reads)))


class ReadsProgress:
    """Reads counted so far across files, from per-block reports (possibly arriving
    after their file finished) and per-file totals; shown on a tqdm bar's postfix."""

    def __init__(self, bar=None):
        import threading

        self.bar = bar
        self.live: dict[int, int] = {}
        self.final: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def reads(self) -> int:
        keys = self.live.keys() | self.final.keys()
        return sum(max(self.live.get(k, 0), self.final.get(k, 0)) for k in keys)

    def block(self, index: int, n_reads: int) -> None:
        with self._lock:
            self.live[index] = self.live.get(index, 0) + int(n_reads)
            self._show()

    def file(self, index: int, n_reads: int) -> None:
        with self._lock:
            self.final[index] = int(n_reads)
            self._show()

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.reads:,} reads")


def count_sample(sample: Sample, layout, keys: GeneKeys, progress=None) -> SampleResult:
    """Read one file into per-mark arrays aligned on the store's genes (no store access).

    ``progress(n_reads)`` is called as BED/tagAlign reads are counted (per block)."""
    import time

    from chromestore import counting
    from chromestore.formats import bam, bigwig, csv, peaks

    fmt = sample.format
    if fmt in ("tagalign", "bed"):
        values, stats = counting.count_bed(sample.path, layout, counting.BLOCK_BYTES, progress)
    elif fmt == "bam":
        values, stats = bam.count_bam(sample.path, layout)
    elif fmt == "bigwig":
        values, stats = bigwig.mean_bigwig(sample.path, layout)
    elif fmt in peaks.PEAK_LAYOUTS:
        values, stats = peaks.peak_max(sample.path, fmt, layout)
    else:
        t0 = time.perf_counter()
        if fmt == "deepdiff-csv":
            arr = csv.read_deepdiff_csv(sample.path)
        else:
            arr = csv.read_deepchrome_csv(sample.path)[0]
        arr = csv.centre_crop(arr, keys.n_bins, sample.path)
        ref = xr.Dataset(coords={V.GENE: keys.gene, V.gene_id.name: (V.GENE, keys.gene_id)})
        aligned = align_genes(ref, arr.transpose(V.GENE, V.MARK, V.BIN))
        marks = [str(m) for m in arr[V.MARK].values]
        out = {m: aligned.values[:, i] for i, m in enumerate(marks)}
        if sample.mark:
            out = {sample.mark: out[sample.mark]}
        stats = {
            "genes_matched": aligned.matched,
            "genes_unmatched": len(aligned.unmatched),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        return SampleResult(sample, out, stats)
    return SampleResult(sample, {sample.mark: values}, stats.as_dict())


def write_results(path: str, cell: str, results: Sequence[SampleResult], storage_options=None):
    """The single writer of one cell: writes every result's marks in one region write."""
    signal = {m: v for r in results if r.sample.target == "signal" for m, v in r.values.items()}
    peak = {m: v for r in results if r.sample.target == "peak_max" for m, v in r.values.items()}
    write_cell(path, cell, signal or None, peak or None, storage_options)
    return list(results)


@dataclass
class Done:
    """What one (cell, mark, target) ingestion did, for the summary."""

    cell: str
    mark: str
    target: str
    file: str
    stats: dict

    def line(self) -> str:
        s = self.stats
        if "reads" not in s:
            return (f"  {self.cell:<6} {self.mark:<9} {self.target:<8} genes matched "
                    f"{s.get('genes_matched')}, unmatched {s.get('genes_unmatched')}, "
                    f"{s.get('seconds', 0):.2f} s  {os.path.basename(self.file)}")
        skipped = s.get("skipped_chromosomes", {})
        sk = ", ".join(f"{k} {v}" for k, v in list(skipped.items())[:4])
        sk += " …" if len(skipped) > 4 else ""
        return (f"  {self.cell:<6} {self.mark:<9} {self.target:<8} {s['reads']:>11,} seen "
                f"{s['reads_in_windows']:>11,} in windows {s.get('skipped_reads', 0):>9,} skipped"
                f"{' (' + sk + ')' if sk else ''}  {s.get('seconds', 0):.2f} s  "
                f"{os.path.basename(self.file)}")


def _completed_keys(attrs: dict) -> set[tuple[str, str, str]]:
    out = {(c, m, "signal") for c, m in S.completed(attrs)}
    out |= {(*k.split("/", 1), "peak_max") for k in attrs.get("peak_max_completed", {})}
    return out  # type: ignore[return-value]


def pending_samples(path, samples: Sequence[Sample], force: bool = False, storage_options=None):
    """The samples with work left: not every (cell, mark) of theirs recorded completed."""
    if force:
        return list(samples)
    attrs = S.read_attrs(path, storage_options)
    done = _completed_keys(attrs)
    marks = [str(m) for m in S.open_store(path, storage_options)[V.MARK].values]
    return [
        s for s in samples
        if any((s.cell, m, s.target) not in done for m in ([s.mark] if s.mark else marks))
    ]


def _record(path, results: Sequence[SampleResult], storage_options) -> list[Done]:
    done = []
    for r in results:
        for m in r.values:
            info = {"file": r.sample.path, "format": r.sample.format, **r.stats}
            if r.sample.target == "signal":
                S.mark_completed(path, r.sample.cell, m, info, storage_options)
            else:
                key = f"{r.sample.cell}/{m}"
                S.update_attrs(
                    path, storage_options,
                    peak_max_completed={key: S._now()}, peak_max_provenance={key: info},
                )
            done.append(Done(r.sample.cell, m, r.sample.target, r.sample.path, r.stats))
    return done


def ingest_samples(
    path: str | os.PathLike,
    samples: Sequence[Sample],
    *,
    client=None,
    force: bool = False,
    progress: bool = False,
    storage_options: dict | None = None,
) -> list[Done]:
    """Ingest samplesheet rows into an existing store; returns what was done.

    New cells are appended first (the template, NaN, written once). Then one task per
    file counts its reads (in parallel on ``client``, a ``distributed.Client``, or in
    this process when None) and one writer task per cell, depending on that cell's
    count tasks, writes the cell's region; each (cell, mark) is recorded completed by
    this process only after its writer finished. Completed (cell, mark) pairs are
    skipped unless ``force``. A file that fails leaves its cell unwritten; the first
    error is raised after the other cells finished.
    """
    from tqdm import tqdm

    from chromestore.counting import BinLayout

    path = os.fspath(path)
    todo = pending_samples(path, samples, force, storage_options)
    if not todo:
        return []
    S.add_cells(path, [s.cell for s in todo], storage_options)
    ds = S.open_store(path, storage_options)
    layout = BinLayout.from_store(ds)
    keys = GeneKeys(ds[V.GENE].values.astype(object), ds[V.gene_id.name].values.astype(object),
                    ds.sizes[V.BIN])
    by_cell: dict[str, list[Sample]] = {}
    for s in todo:
        by_cell.setdefault(s.cell, []).append(s)
    bar = tqdm(total=len(todo), unit="file", disable=not progress, desc="ingest")
    done: list[Done] = []
    errors: list[BaseException] = []
    shown = ReadsProgress(bar if progress else None)
    index = {id(s): i for i, s in enumerate(todo)}

    def tick(result: SampleResult, i: int):
        shown.file(i, result.stats.get("reads", 0))
        bar.update(1)

    if client is None:
        for cell, cell_samples in by_cell.items():
            try:
                results = []
                for s in cell_samples:
                    results.append(count_sample(
                        s, layout, keys, functools.partial(shown.block, index[id(s)])))
                    tick(results[-1], index[id(s)])
                write_results(path, cell, results, storage_options)
            except Exception as e:  # the cell stays unwritten; others go on
                errors.append(e)
                continue
            done += _record(path, results, storage_options)
    else:
        import uuid

        from distributed import as_completed

        run = uuid.uuid4().hex  # this ingest's events, should others share the scheduler

        def on_event(event):
            r, i, n = event[1]
            if r == run:
                shown.block(i, n)

        if progress:  # reads counted within files, reported by the workers per block
            client.subscribe_topic(PROGRESS_TOPIC, on_event)
        layout_f, keys_f = client.scatter([layout, keys], broadcast=True)
        counts = []
        file_of = {}  # future key → sample index
        writers = {}
        for cell, cell_samples in by_cell.items():
            fs = [client.submit(count_sample, s, layout_f, keys_f,
                                functools.partial(worker_progress, run, index[id(s)])
                                if progress else None, pure=False)
                  for s in cell_samples]
            file_of.update((f.key, index[id(s)]) for f, s in zip(fs, cell_samples, strict=True))
            counts += fs
            writers[client.submit(write_results, path, cell, fs, storage_options,
                                  pure=False)] = cell
        for f in as_completed(counts):
            if f.status == "finished":
                tick(f.result(), file_of[f.key])
            else:
                bar.update(1)
        for f in as_completed(list(writers)):
            if f.status == "finished":
                done += _record(path, f.result(), storage_options)
            else:
                errors.append(f.exception())
        if progress:
            client.unsubscribe_topic(PROGRESS_TOPIC)
    bar.close()
    if errors:
        raise errors[0]
    return done


def run_ingest(
    path: str | os.PathLike,
    genes: str | os.PathLike | None = None,
    samples: str | os.PathLike | None = None,
    expression: str | os.PathLike | None = None,
    *,
    cells: Sequence[str] | None = None,
    window: int = 5000,
    bin_size: int = 100,
    genome: str = "hg19",
    gene_chunk: int = S.DEFAULT_GENE_CHUNK,
    force: bool = False,
    client=None,
    progress: bool = False,
    storage_options: dict | None = None,
) -> IngestReport:
    """What ``chromestore ingest`` does: create the store if absent, then a samplesheet
    and an RPKM matrix. Every input is parsed and validated before the first write.

    Signal files are counted as tasks on ``client`` (a ``distributed.Client``), or in
    this process when it is None.
    """
    import time

    t0 = time.perf_counter()
    report = IngestReport()
    marks = (
        [str(m) for m in S.open_store(path, storage_options)[V.MARK].values]
        if S.exists(path, storage_options) else list(V.DEFAULT_MARKS)
    )
    sheet = read_samplesheet(samples, marks) if samples else []
    matrix = read_rpkm(expression) if expression else None
    _, report.created = open_or_create(
        path, genes, window=window, bin_size=bin_size, genome=genome,
        gene_chunk=gene_chunk, storage_options=storage_options,
    )
    if matrix is not None:
        if cells is None and sheet:
            have = [str(c) for c in S.open_store(path, storage_options)[V.CELL].values]
            wanted = list(dict.fromkeys(have + [s.cell for s in sheet]))
            absent = [c for c in wanted if c not in matrix.columns]
            cells = [c for c in wanted if c in matrix.columns]
            if absent:
                report.lines.append(f"epigenomes without a column in {expression}: {_short(absent)}")
        report.expression, added = ingest_expression(path, matrix, cells, storage_options)
        report.cells_added += added
    if sheet:
        todo = pending_samples(path, sheet, force, storage_options)
        skipped = len(sheet) - len(todo)
        if skipped:
            report.lines.append(f"{skipped} of {len(sheet)} files already ingested (skipped; "
                                "--force redoes them)")
        if todo:
            before = {str(c) for c in S.open_store(path, storage_options)[V.CELL].values}
            done = ingest_samples(path, todo, client=client, force=True,
                                  progress=progress, storage_options=storage_options)
            report.cells_added += sorted({s.cell for s in todo} - before)
            report.lines.append(f"ingested {len(done)} (cell, mark) in "
                                f"{time.perf_counter() - t0:.1f} s:")
            report.lines += [d.line() for d in done]
    return report
