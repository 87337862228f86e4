"""``chromestore ingest`` as a library: plan (parse and check everything), then run.

:func:`plan_ingest` (:mod:`chromestore.ingest.plan`) writes nothing and says which files
have work left, so the caller can choose where to count them; :func:`run_plan` starts
reading those files, creates the store if absent meanwhile, fills ``expression``
(:mod:`chromestore.ingest.tables`) and writes what was read
(:mod:`chromestore.ingest.engine`); :func:`run_ingest` does both.

"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext

import numpy as np

from chromestore import store as S
from chromestore import variables as V
from chromestore.executors import executor_for
from chromestore.expression import Alignment
from chromestore.genes import read_genes
from chromestore.ingest.engine import Bins, SampleReads
from chromestore.ingest.plan import IngestPlan, plan_ingest
from chromestore.ingest.report import IngestReport, short_list
from chromestore.ingest.tables import ingest_expression, open_or_create


def _expression_cells(plan: IngestPlan, have: list[str]) -> tuple[list[str], list[str]]:
    """The RPKM columns to take, and the epigenomes of the samplesheet that have none."""
    columns = list(plan.matrix.columns)
    if plan.cells is not None:
        return list(plan.cells), []
    if not plan.sheet:
        return columns, []
    wanted = list(dict.fromkeys(have + [s.cell for s in plan.sheet]))
    present = set(columns)
    return [c for c in wanted if c in present], [c for c in wanted if c not in present]


def _joined(parts: list[Alignment]) -> Alignment | None:
    """One join report of several :func:`ingest_expression` calls (the same matrix)."""
    if len(parts) <= 1:
        return parts[0] if parts else None
    return Alignment(
        np.concatenate([p.values for p in parts]),
        [c for p in parts for c in p.cells],
        parts[0].missing_genes,
        parts[0].unused_rows,
    )


def run_plan(
    plan: IngestPlan, *, client=None, executor=None, progress: bool = False
) -> IngestReport:
    """Carry out a plan: create the store if absent, fill ``expression``, then ingest the
    pending samplesheet rows.

    The files are read from the start, while the store is created and the expression
    written: on the bins of the store as planned, or those of the annotation that creates
    it (read again should the store turn out otherwise). They are read as tasks on
    ``executor`` (:mod:`chromestore.executors`), by default on ``client`` (a
    ``distributed.Client``) or in this process when it is None.

    An epigenome that is not in the store yet and has files to read is added only once its
    files were read (by its writer, under the store's lock), and its expression written
    after that: a file that fails leaves the store without it. A new store is created with
    the other epigenomes of the expression matrix.
    """
    t0 = time.perf_counter()
    store = plan.store
    report = IngestReport()
    ex = executor or executor_for(client)
    table = None
    reads = nullcontext()
    if plan.pending:
        if plan.dataset is not None:
            bins = Bins.from_store(plan.dataset)
        else:
            table = read_genes(plan.genes)
            bins = Bins.from_genes(
                table, plan.settings["window"], plan.settings["bin_size"], plan.settings["genome"]
            )
        reads = SampleReads(ex, plan.pending, bins, progress, plan.aliases)
    with reads:
        waiting = {s.cell for s in plan.pending}  # added by their writers, once read
        initial = []  # the cells of a new store (no cell appends after its creation)
        if plan.matrix is not None:
            initial = [c for c in _expression_cells(plan, [])[0] if c not in waiting]
        ds, report.created = open_or_create(
            store, plan.genes, table=table, cells=initial, **plan.settings
        )
        if report.created:
            report.cells_added += initial
        have = [str(c) for c in ds[V.CELL].values]
        later: list[str] = []
        joins = []
        if plan.matrix is not None:
            cells, absent = _expression_cells(plan, have)
            if absent:
                report.lines.append(
                    f"epigenomes without a column in {plan.expression}: {short_list(absent)}"
                )
            later = [c for c in cells if c in waiting and c not in have]
            now = [c for c in cells if c not in later]
            if now:
                joined, added = ingest_expression(store, plan.matrix, now)
                joins.append(joined)
                report.cells_added += added
        if plan.sheet:
            skipped = len(plan.sheet) - len(plan.pending)
            if skipped:
                report.lines.append(
                    f"{skipped} of {len(plan.sheet)} files already ingested "
                    "(skipped; --force redoes them)"
                )
        if plan.pending:

            def added_cells() -> None:  # their expression, once their files were written
                report.cells_added.extend(reads.appended)
                written = [c for c in later if c in reads.written]
                if written:
                    joins.append(ingest_expression(store, plan.matrix, written)[0])

            try:
                done = reads.finish(store, ds)
            except Exception:  # the cells that were written keep their expression
                added_cells()
                raise
            added_cells()
            report.lines.append(
                f"ingested {len(done)} (cell, mark) in {time.perf_counter() - t0:.1f} s:"
            )
            report.lines += [d.line() for d in done]
            report.lines += reads.notes
        report.expression = _joined(joins)
    return report


def run_ingest(
    path: S.StoreLike,
    genes: str | os.PathLike | None = None,
    samples: str | os.PathLike | None = None,
    expression: str | os.PathLike | None = None,
    *,
    client=None,
    progress: bool = False,
    **options,
) -> IngestReport:
    """What ``chromestore ingest`` does: create the store if absent, then a samplesheet
    and an RPKM matrix. Every input is parsed and validated before the first write.

    ``options`` are :func:`plan_ingest`'s (``cells``, ``window``, ``bin_size``, ``genome``,
    ``gene_chunk``, ``force``, ``storage_options``, ``chrom_alias``). Signal files are counted as tasks on
    ``client`` (a ``distributed.Client``), or in this process when it is None.
    """
    plan = plan_ingest(path, genes, samples, expression, **options)
    return run_plan(plan, client=client, progress=progress)
