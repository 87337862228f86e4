"""``chromestore ingest`` as a library: plan (parse and check everything), then run.

:func:`plan_ingest` (:mod:`chromestore.ingest_plan`) writes nothing and says which files
have work left, so the caller can choose where to count them; :func:`run_plan` creates the
store if absent, fills ``expression`` (:mod:`chromestore.ingest_tables`) and ingests the
pending samplesheet rows (:mod:`chromestore.ingest_engine`); :func:`run_ingest` does both.
The names of those modules that callers use are importable from here too.
"""

from __future__ import annotations

import os
import time

from chromestore import store as S
from chromestore import variables as V
from chromestore.cell_writes import align_genes, ingest_signal_array, write_cell
from chromestore.formats import infer_format
from chromestore.ingest_engine import count_sample, ingest_samples
from chromestore.ingest_plan import IngestPlan, pending_samples, plan_ingest
from chromestore.ingest_progress import PROGRESS_TOPIC, ReadsProgress
from chromestore.ingest_report import Done, IngestReport, short_list
from chromestore.ingest_tables import ingest_expression, open_or_create
from chromestore.samplesheet import SAMPLE_COLUMNS, Sample, read_samplesheet

__all__ = [
    "PROGRESS_TOPIC",
    "SAMPLE_COLUMNS",
    "Done",
    "IngestPlan",
    "IngestReport",
    "ReadsProgress",
    "Sample",
    "align_genes",
    "count_sample",
    "infer_format",
    "ingest_expression",
    "ingest_samples",
    "ingest_signal_array",
    "open_or_create",
    "pending_samples",
    "plan_ingest",
    "read_samplesheet",
    "run_ingest",
    "run_plan",
    "write_cell",
]


def run_plan(plan: IngestPlan, *, client=None, progress: bool = False) -> IngestReport:
    """Carry out a plan: create the store if absent, fill ``expression``, then ingest the
    pending samplesheet rows, their files read as tasks on ``client`` (a
    ``distributed.Client``) or in this process when it is None."""
    t0 = time.perf_counter()
    store = plan.store
    report = IngestReport()
    _, report.created = open_or_create(store, plan.genes, **plan.settings)
    cells = plan.cells
    if plan.matrix is not None:
        if cells is None and plan.sheet:
            have = [str(c) for c in store.open()[V.CELL].values]
            wanted = list(dict.fromkeys(have + [s.cell for s in plan.sheet]))
            absent = [c for c in wanted if c not in plan.matrix.columns]
            cells = [c for c in wanted if c in plan.matrix.columns]
            if absent:
                report.lines.append(f"epigenomes without a column in {plan.expression}: "
                                    f"{short_list(absent)}")
        report.expression, added = ingest_expression(store, plan.matrix, cells)
        report.cells_added += added
    if plan.sheet:
        skipped = len(plan.sheet) - len(plan.pending)
        if skipped:
            report.lines.append(f"{skipped} of {len(plan.sheet)} files already ingested "
                                "(skipped; --force redoes them)")
        if plan.pending:
            # the cells this ingest added (another ingest may add some of them at once)
            report.cells_added += sorted(S.add_cells(store, [s.cell for s in plan.pending]))
            done = ingest_samples(store, plan.pending, client=client, force=True,
                                  progress=progress)
            report.lines.append(f"ingested {len(done)} (cell, mark) in "
                                f"{time.perf_counter() - t0:.1f} s:")
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
