"""Where an ingest's files are counted: the small-job rule.

Starting a Dask cluster takes seconds, and a cluster cannot share one file's counting among
its workers; counting 50 MB of reads takes about one. So, unless the user named a cluster
(``--scheduler``, ``--workers``), one pending file or pending files of under
:data:`SMALL_INPUT_BYTES` in all are counted without one: by a forked worker process made
before anything else (:func:`early_reader`), which loads the counting code while this
process plans the ingest and creates the store. :func:`place` applies the rule to a plan.

Light to import (it is imported before the fork): the ingest itself is loaded by the
functions that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chromestore.executors import Forked
    from chromestore.ingest.plan import IngestPlan

#: below this much input, pending files are counted without a cluster (by a forked worker,
#: or in this process) rather than on an embedded one (starting it takes seconds; counting
#: 50 MB of reads, about one)
SMALL_INPUT_BYTES = 50 * 2**20


def counts_in_process(n_files: int, n_bytes: int) -> bool:
    """The small-job rule: one pending file, or pending files of under
    :data:`SMALL_INPUT_BYTES` in all, are counted without a cluster."""
    return n_files <= 1 or n_bytes < SMALL_INPUT_BYTES


def _warm_reader() -> None:
    from chromestore.ingest.reads import warm_up

    warm_up()


def early_reader(has_samples: bool, cluster_asked: bool) -> Forked | None:
    """A forked worker that counts an ingest's files if they turn out few or small, made
    before anything else (a fork of a light process, before any thread), so that it loads
    the counting code while this process plans and creates the store; None where there are
    no files to count, the user asked for a cluster (``cluster_asked``), or fork is unsafe."""
    from chromestore.executors import Forked, can_fork

    if not has_samples or cluster_asked:
        return None
    return Forked(1, warm=_warm_reader) if can_fork() else None


@dataclass(frozen=True)
class Placement:
    """Where a plan's files are counted: ``executor`` (the early reader) or a Dask cluster,
    ``heavy`` as :func:`chromestore.app.session.cluster` takes it; ``dask`` False when the
    plan counts nothing (no Dask at all)."""

    executor: Forked | None
    heavy: bool
    dask: bool = True


def place(plan: IngestPlan, reader: Forked | None) -> Placement:
    """Apply the small-job rule to ``plan``: its files go to ``reader`` (the early reader,
    when there is one) if they are few or small, else to a cluster; a reader not used is
    closed here."""
    if not plan.pending:
        return Placement(None, heavy=False, dask=False)  # nothing to count
    heavy = not counts_in_process(len(plan.pending), plan.input_bytes)
    if reader is not None and not heavy:
        return Placement(reader, heavy=False)  # Dask in this process, counting forked
    if reader is not None:
        reader.close()
    return Placement(None, heavy=heavy)
