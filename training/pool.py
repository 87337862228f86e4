"""Train on every core of this machine: forked worker processes, one thread each.

On a CPU, two processes of one thread each step small models faster than one process of
two threads (OpenMP's barriers cost more than these matmuls gain), and a forked process
starts in a tenth of a second where a Dask worker has to import torch again (seconds,
on a short run a large share of the whole; measured in benchmarks/train.py). So the
``percore`` mode forks one process per core and hands them contiguous groups of
epigenomes, each fitted with :func:`chromestore.training.ensemble.fit_group` (the loader
reads a group's data once). The groups shrink as the work runs out (guided scheduling:
each takes about a ``2 × cores``-th of what is left), so a core slowed by anything else
on the machine takes fewer groups and all cores finish within about one epigenome's
time, at one store opening per group. It needs the ``fork`` start method (Linux);
:func:`available` says whether it is there.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from chromestore.training.config import TrainConfig, usable_cores


def available() -> bool:
    """Whether worker processes can be forked here."""
    return "fork" in mp.get_all_start_methods()


def groups(cells: Sequence[str], workers: int) -> list[list[str]]:
    """``cells`` in at most ``workers`` contiguous groups of near-equal size."""
    n = max(1, min(workers, len(cells)))
    return [list(part) for part in np.array_split(np.array(cells, dtype=object), n) if len(part)]


def guided_groups(cells: Sequence[str], workers: int) -> list[list[str]]:
    """``cells`` in contiguous groups, largest first, each about ``1 / (2 × workers)`` of
    the cells not yet grouped (at least one): what :func:`fit_per_core` hands out. One
    worker gets one group."""
    cells = list(cells)
    if workers <= 1:
        return [cells] if cells else []
    out, start = [], 0
    while start < len(cells):
        size = max(1, -(-(len(cells) - start) // (2 * workers)))
        out.append(cells[start : start + size])
        start += size
    return out


def _fit(store, cells, config, run, storage_options, weights_to):
    from chromestore.executors import local_dask
    from chromestore.training.ensemble import fit_group

    # Dask's thread pool of the parent has no threads in a fork (it would wait forever);
    # this process has one thread to give anyway.
    with local_dask(threads=False):
        return fit_group(
            store, cells, config, run, "cpu", storage_options, threads=1, weights_to=weights_to
        )


def fit_per_core(
    store: str,
    cells: Sequence[str],
    config: TrainConfig,
    run: str | None,
    storage_options: dict | None = None,
    workers: int | None = None,
    on_done: Callable[[dict], None] | None = None,
    weights_to=None,
) -> list[dict]:
    """Fit ``cells`` in one forked single-threaded process per core (``workers``), which
    take :func:`guided_groups` as they finish; the groups' results in the order of
    ``cells``. ``weights_to``: the run writer's folder for the weights (see
    :func:`chromestore.training.ensemble.fit_group`)."""
    if not available():
        raise RuntimeError("the percore mode needs the 'fork' start method; use --mode loop")
    n = max(1, min(workers or usable_cores(), len(cells)))
    parts = guided_groups(cells, n)
    with ProcessPoolExecutor(n, mp_context=mp.get_context("fork")) as ex:
        futures = [
            ex.submit(_fit, store, g, config, run, storage_options, weights_to) for g in parts
        ]
        return gather(futures, as_completed, cells, on_done)


def gather(
    futures,
    completed: Callable,
    cells: Sequence[str],
    on_done: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Group results as ``completed(futures)`` yields them (``on_done`` called on each),
    returned in the order of ``cells``; for process pools and Dask alike."""
    results = []
    for fut in completed(futures):
        res = fut.result()
        results.append(res)
        if on_done:
            on_done(res)
    order = {c: i for i, c in enumerate(cells)}
    return sorted(results, key=lambda r: order[r["cells"][0]])
