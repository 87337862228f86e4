"""Time and peak memory to simulate the full REMC-scale store (56 × 19,802 × 5 × 100);
with ``--cli``, the ``chromestore simulate`` command against an earlier revision's.

Usage: python benchmarks/simulate.py [--cells all|N] [--genes all|N] [--workers 2]
       [--threads] [--out DIR]
       python benchmarks/simulate.py --cli [--cells 56] [--genes 1500] [--baseline REV]
       [--repeats 3]

Default: writes the store with ``chromestore.simulate(path, ...)`` on an embedded Dask
LocalCluster (``--workers`` processes, one thread each; ``--threads`` uses Dask's
in-process threads instead) and samples the resident memory of this process and all
its children every 50 ms. Prints the wall time, the peak of the summed RSS, the dense
size of ``signal`` (float32) for comparison, the store's size on disk, and a check
that a re-simulated slice equals what the store holds.

``--cli``: runs ``chromestore simulate STORE --cells C --genes G`` as a command, as a
user types it, alternately from this checkout and from revision ``--baseline`` (a git
revision of this repository, extracted to a temporary folder and run with the same
``.venv``), ``--repeats`` times each after one unmeasured run of each (numba compiles
and caches its kernels on first use), every run into a store of its own in a temporary
folder (``--out``: under that folder), all removed at the end: on this project's ext4
machine, files created just after ~1,300 were deleted cost several times more system time
(a store removed before each run took 2.3–4.1 s of system time a run, growing run by run,
against 1.0 s in fresh folders), which is a property of the file system, not of either
revision; prints every wall time and CPU time (user + system
of the command and its worker processes), the medians, their ratios and the load average
before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import psutil


class PeakRSS:
    """Peak of the summed resident memory of this process and its children, and the CPU
    seconds they used (last sample of each process)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
                t = proc.cpu_times()
                self.cpu[proc.pid] = t.user + t.system
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __enter__(self):
        self.baseline = self._sample()
        self.cpu_start = dict(self.cpu)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu_seconds(self) -> float:
        return sum(t - self.cpu_start.get(pid, 0.0) for pid, t in self.cpu.items())


def _arg(value: str):
    return int(value) if value.isdigit() else value


def _extract(rev: str, into: str) -> str:
    """Revision ``rev`` of this repository as a plain source tree importable as
    ``chromestore`` (its ``training``, ``analysis`` and ``data`` folders linked where the
    installed package has them)."""
    import subprocess
    import tarfile

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tree = os.path.join(into, "baseline")
    os.makedirs(tree)
    archive = os.path.join(into, "baseline.tar")
    subprocess.run(["git", "-C", repo, "archive", "-o", archive, rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    for name, folder in (("training", "training"), ("analysis", "analysis"), ("_data", "data")):
        os.symlink(os.path.join(tree, folder), os.path.join(tree, "chromestore", name))
    return tree


def _time_cli(args: list[str], cwd: str, pythonpath: str | None) -> tuple[float, float]:
    """Wall time and CPU seconds (user + system, the command and every process it
    waited for) of one run of the command (``args`` names a store that does not exist)."""
    import resource
    import subprocess
    import sys

    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "chromestore", *args],
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def cli(args) -> None:
    """``chromestore simulate`` from this checkout and from ``args.baseline``, alternately."""
    root = tempfile.mkdtemp(prefix="chromestore-simcli-", dir=args.out)
    try:
        tree = _extract(args.baseline, root)
        runs_done = itertools.count()

        def command():  # a new store each run, all removed at the end: see the docstring
            return [
                "simulate",
                f"s{next(runs_done)}.zarr",
                "--cells",
                args.cells,
                "--genes",
                args.genes,
            ]

        load0 = os.getloadavg()
        runs: dict[str, list[tuple[float, float]]] = {
            "this checkout": [],
            f"baseline {args.baseline}": [],
        }
        paths = {"this checkout": None, f"baseline {args.baseline}": tree}
        for path in paths.values():  # warm: numba compiles and caches the kernels once
            _time_cli(command(), root, path)
        for _ in range(args.repeats):
            for name, path in paths.items():
                runs[name].append(_time_cli(command(), root, path))
        load1 = os.getloadavg()
        shown = ["simulate", "STORE", "--cells", args.cells, "--genes", args.genes]
        print(f"chromestore {' '.join(shown)} ({os.cpu_count()} cores, stores under {root})")
        for name, times in runs.items():
            walls, cpus = zip(*times, strict=True)
            print(
                f"  {name:<24} wall median {np.median(walls):6.2f} s "
                f"({', '.join(f'{t:.2f}' for t in walls)}); CPU median {np.median(cpus):6.2f} s "
                f"({', '.join(f'{t:.2f}' for t in cpus)})"
            )
        (new_wall, new_cpu), (old_wall, old_cpu) = (
            np.median(np.asarray(t), axis=0) for t in runs.values()
        )
        print(
            f"  ratio baseline / this checkout: wall {old_wall / new_wall:.1f}x, "
            f"CPU {old_cpu / new_cpu:.1f}x (CPU seconds do not depend on the other load)"
        )
        print(
            f"  load average (1, 5, 15 min) before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
            f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cli", action="store_true", help="time the command against --baseline")
    p.add_argument("--baseline", default="1d7d1fc", help="git revision to compare with (--cli)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each (--cli)")
    p.add_argument("--cells", default=None, help="default: all (56 with --cli)")
    p.add_argument("--genes", default=None, help="default: all (1500 with --cli)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", action="store_true", help="Dask threads, no LocalCluster")
    p.add_argument("--out", default=None, help="folder for the store (default: a temp dir)")
    args = p.parse_args()
    if args.cli:
        args.cells, args.genes = args.cells or "56", args.genes or "1500"
        cli(args)
        return
    args.cells, args.genes = args.cells or "all", args.genes or "all"

    from chromestore.app.cluster import connect
    from chromestore.simulation import simulate
    from chromestore.store import size_on_disk

    root = args.out or tempfile.mkdtemp(prefix="chromestore-sim-")
    path = os.path.join(root, "simulated.zarr")
    shutil.rmtree(path, ignore_errors=True)
    cluster = (
        contextlib.nullcontext() if args.threads else connect(workers=args.workers, quiet=True)
    )
    with cluster:
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            ds = simulate(path, _arg(args.cells), _arg(args.genes), seed=0)
            wall = time.perf_counter() - t0
    n = ds.sizes
    dense = n["cell"] * n["gene"] * n["mark"] * n["bin"] * 4
    print(
        f"simulate {n['cell']} epigenomes × {n['gene']} genes × {n['mark']} marks × "
        f"{n['bin']} bins on {'threads' if args.threads else f'{args.workers} workers'} "
        f"({os.cpu_count()} cores)"
    )
    print(f"  wall time            {wall:8.1f} s  ({wall / n['cell']:.2f} s per epigenome)")
    print(f"  values per second    {dense / 4 / wall / 1e6:8.1f} M")
    print(
        f"  CPU time (all procs) {mem.cpu_seconds:8.1f} s  (wall if the cores were ours alone: "
        f"~{mem.cpu_seconds / (1 if args.threads else args.workers):.0f} s; load average "
        f"during the run {os.getloadavg()[1]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"  peak RSS (all procs) {mem.peak / 2**30:8.2f} GiB "
        f"(baseline before the run {mem.baseline / 2**30:.2f} GiB)"
    )
    print(f"  dense signal size    {dense / 2**30:8.2f} GiB (float32)")
    print(f"  store on disk        {size_on_disk(path) / 2**30:8.2f} GiB")
    last = ds["cell"].values.astype(object)[-1]
    check = simulate(cells=[last], genes=list(ds.gene.values.astype(object)[-300:]))
    same = np.array_equal(
        ds.signal.sel(cell=[last]).isel(gene=slice(-300, None)).values, check.signal.values
    )
    print(f"  re-simulated slice equals the store: {same}")
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
