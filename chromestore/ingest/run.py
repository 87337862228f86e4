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

from chromestore import store as S
from chromestore import variables as V
from chromestore.executors import executor_for
from chromestore.genes import read_genes
from chromestore.ingest.engine import Bins, SampleReads
from chromestore.ingest.plan import IngestPlan, plan_ingest
from chromestore.ingest.report import IngestReport, short_list
from chromestore.ingest.tables import ingest_expression, open_or_create


def _expression_cells(plan: IngestPlan, have: list[str]) -> tuple[list[str] | None, list[str]]:
    """The RPKM columns to take (None: every column), and the epigenomes of the
    samplesheet that have none."""
    if plan.cells is not None or not plan.sheet:
        return plan.cells, []
    wanted = list(dict.fromkeys(have + [s.cell for s in plan.sheet]))
    columns = set(plan.matrix.columns)
    return [c for c in wanted if c in columns], [c for c in wanted if c not in columns]


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
            bins = Bins.from_genes(table, plan.settings["window"], plan.settings["bin_size"])
        reads = SampleReads(ex, plan.pending, bins, progress)
    with reads:
        initial = []  # the cells of a new store (no cell appends after its creation)
        if plan.matrix is not None:
            initial = _expression_cells(plan, [])[0] or list(plan.matrix.columns)
        initial = list(dict.fromkeys(initial + [s.cell for s in plan.pending]))
        ds, report.created = open_or_create(
            store, plan.genes, table=table, cells=initial, **plan.settings
        )
        if report.created:
            report.cells_added += initial
        if plan.matrix is not None:
            cells, absent = _expression_cells(plan, [str(c) for c in ds[V.CELL].values])
            if absent:
                report.lines.append(
                    f"epigenomes without a column in {plan.expression}: {short_list(absent)}"
                )
            report.expression, added = ingest_expression(store, plan.matrix, cells)
            report.cells_added += added
        if plan.sheet:
            skipped = len(plan.sheet) - len(plan.pending)
            if skipped:
                report.lines.append(
                    f"{skipped} of {len(plan.sheet)} files already ingested "
                    "(skipped; --force redoes them)"
                )
        if plan.pending:
            missing = [s.cell for s in plan.pending if s.cell not in ds.indexes[V.CELL]]
            if missing:  # the cells this ingest added (another may add some of them at once)
                report.cells_added += sorted(S.add_cells(store, missing))
            done = reads.finish(store, ds)
            report.lines.append(
                f"ingested {len(done)} (cell, mark) in {time.perf_counter() - t0:.1f} s:"
            )
            report.lines += [d.line() for d in done]
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
    ``gene_chunk``, ``force``, ``storage_options``). Signal files are counted as tasks on
    ``client`` (a ``distributed.Client``), or in this process when it is None.
    """
    plan = plan_ingest(path, genes, samples, expression, **options)
    return run_plan(plan, client=client, progress=progress)
