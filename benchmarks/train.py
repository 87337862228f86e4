"""Training speed of 56 DeepChrome models: compute-only paths, and end to end vs a plain script.

Compute only (default): samples/s of training steps (forward + backward + Adam) for
``--models`` DeepChrome models at batch ``--batch``, in one run:

(a) a plain PyTorch loop over the models (``nn.Module`` + ``torch.optim.Adam`` each), with
    all intra-op threads, and with bfloat16 autocast,
(b) the stacked ensemble (:class:`chromestore.training.models.StackedDeepChrome` + ``MaskedAdam``),
    with all intra-op threads and with one,
(c) ``--workers`` local Dask worker processes (1 thread each), each training its share of
    the models: stacked, and one model at a time (what ``chromestore train`` does on CPU);

plus the achieved GFLOP/s (3 × forward FLOPs per sample) against a measured float32
matmul peak. Inputs are batches of Poisson counts held in memory.

End to end (``--e2e``): builds a simulated store (56 epigenomes × 2,048 genes) if absent,
then times the plain script (:mod:`benchmarks.plain_deepchrome`: reads the store into
memory, loops over the epigenomes, validation AUROC every epoch, best-epoch test AUROC)
against ``chromestore train STORE --cells all --epochs 5`` as a command (its start-up,
worker pool, loader, checkpoints and run writing included), compares the mean test
AUROCs and prints where chromestore's time went. It also times starting and closing the
local worker pool alone.

Every report carries the load average (1 min) before and after; a speed ratio is printed
only when both were below the core count, else it says why it is withheld.

    python benchmarks/train.py                 # compute only: 56 models, batch 128
    python benchmarks/train.py --e2e           # end to end (about 1–2 minutes on 2 quiet cores)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from chromestore.training.models import DeepChrome, StackedDeepChrome, flops_per_sample
from chromestore.training.trainer import MaskedAdam


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def _data(m: int, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.poisson(torch.full((m, b, 5, 100), 2.0), generator=g)
    y = torch.randint(0, 2, (m, b), generator=g)
    return x, y


def bench_loop(m: int, b: int, steps: int, threads: int | None = None, bf16: bool = False) -> float:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    models = [DeepChrome() for _ in range(m)]
    opts = [torch.optim.Adam(x.parameters(), lr=1e-3) for x in models]
    x, y = _data(m, b)

    def step():
        for i, net in enumerate(models):
            opts[i].zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(x[i])
            F.cross_entropy(logits.float(), y[i]).backward()
            opts[i].step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return m * b * steps / (time.perf_counter() - t)


def bench_stacked(m: int, b: int, steps: int, threads: int | None = None) -> float:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = StackedDeepChrome.from_models([DeepChrome() for _ in range(m)])
    opt = MaskedAdam(list(net.parameters()), 1e-3, m)
    x, y = _data(m, b)
    active = torch.ones(m, dtype=torch.bool)

    def step():
        masks = (torch.rand(m, b, net.n_flat) >= 0.5).float() * 2
        logits = net(x, masks)
        F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), reduction="sum").div(b).backward()
        opt.step(active)

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return m * b * steps / (time.perf_counter() - t)


def bench_distributed(m: int, b: int, steps: int, workers: int, fn=bench_stacked) -> float:
    """``fn`` (a per-worker benchmark) on each worker's share of the models, all at once."""
    from chromestore.app.cluster import connect

    shares = [len(s) for s in np.array_split(np.arange(m), workers)]
    with connect(workers=workers, quiet=True) as client:
        client.run(torch.set_num_threads, 1)
        # warm the workers (imports), then time all shares running at once
        client.gather([client.submit(fn, 1, b, 1, 1, pure=False) for _ in range(workers)])
        t = time.perf_counter()
        futs = [client.submit(fn, k, b, steps, 1, pure=False) for k in shares]
        client.gather(futs)
        return m * b * steps / (time.perf_counter() - t)


# --- load and ratios -----------------------------------------------------------------------
def load_avg() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def ratio_text(ratio: float, loads: tuple[float, ...], cores: int) -> str:
    """``1.32×``, or why the ratio is withheld (a load at or above the core count)."""
    worst = max(loads)
    if worst >= cores:
        return f"ratio withheld: load {worst:.2f} ≥ {cores} cores"
    return f"{ratio:.2f}×"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=56)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--genes", type=int, default=6601, help="training genes per model (epoch)")
    p.add_argument(
        "--e2e",
        action="store_true",
        help="end to end: plain script vs chromestore train (builds --store)",
    )
    p.add_argument(
        "--store",
        default="/tmp/chromestore-bench-56x2048.zarr",
        help="simulated store of the end-to-end run (made when absent)",
    )
    p.add_argument("--cells", type=int, default=56, help="epigenomes simulated")
    p.add_argument(
        "--simulate-genes",
        type=int,
        default=2048,
        help="genes of the store simulated when --store does not exist",
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument(
        "--bf16",
        action="store_true",
        help="with --e2e: also chromestore train --precision bf16 (time and AUROC)",
    )
    a = p.parse_args()
    if a.e2e:
        end_to_end(a.store, a.cells, a.simulate_genes, a.epochs, a.batch, a.bf16)
    else:
        compute_only(a)


def compute_only(a: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    before = load_avg()
    peak = matmul_peak()
    flop = 3 * flops_per_sample()
    print(
        f"torch {torch.__version__}, {threads} threads, {cores} cores; {a.models} models × "
        f"batch {a.batch}, {a.steps} timed steps each; matmul peak {peak:.1f} GFLOP/s; "
        f"{flop / 1e6:.2f} MFLOP per training sample; load {before:.2f}"
    )
    res = {}
    res["loop"] = bench_loop(a.models, a.batch, a.steps, threads)
    res["loop bf16"] = bench_loop(a.models, a.batch, a.steps, threads, bf16=True)
    res[f"stacked {threads}t"] = bench_stacked(a.models, a.batch, a.steps, threads)
    if threads > 1:
        res["stacked 1t"] = bench_stacked(a.models, a.batch, a.steps, 1)
    torch.set_num_threads(threads)
    res[f"{a.workers}w stacked"] = bench_distributed(a.models, a.batch, a.steps, a.workers)
    res[f"{a.workers}w loop"] = bench_distributed(a.models, a.batch, a.steps, a.workers, bench_loop)
    after = load_avg()
    base = res["loop"]
    print(
        f"{'path':<14} {'samples/s':>10} {'vs loop':>8} {'GFLOP/s':>8} {'of peak':>8} "
        f"{'epoch (s)':>10}"
    )
    for name, sps in res.items():
        gf = sps * flop / 1e9
        epoch = a.models * a.genes / sps
        print(
            f"{name:<14} {sps:>10.0f} {ratio_text(sps / base, (before, after), cores):>8} "
            f"{gf:>8.1f} {gf / peak:>7.0%} {epoch:>10.0f}"
        )
    print(f"load average: {before:.2f} before, {after:.2f} after ({cores} cores)")


def _chromestore_cli() -> list[str]:
    exe = Path(sys.executable).with_name("chromestore")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "chromestore"]


def _test_aurocs(store: str, run: str) -> np.ndarray:
    """Each epigenome's test AUROC of the run's DeepChrome (chromestore's own metrics)."""
    import chromestore
    from chromestore.analysis.metrics import compute_metrics

    metrics = compute_metrics(chromestore.open_run(store, run), published=None)
    return metrics.stat_auroc.sel(model="deepchrome", repeat=0).values


def _timed_train(cmd: list[str], store: str, run: str) -> tuple[float, np.ndarray, object]:
    """Run ``chromestore train`` (``cmd``, writing ``run``) as a command: its wall seconds,
    test AUROCs and the finished process; the run is removed afterwards."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[1:3])} … failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    aucs = _test_aurocs(store, run)
    shutil.rmtree(Path(store) / "runs" / run, ignore_errors=True)
    return wall, aucs, proc


def _torch_threads(_=None) -> int:
    import torch as t

    return t.get_num_threads()


def pool_start_seconds(workers: int) -> dict[str, float]:
    """Starting ``workers`` processes that can run torch, then closing them: a Dask
    LocalCluster (what ``--mode distributed`` starts) and forked processes (``percore``)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from chromestore.app.cluster import connect

    out = {}
    t = time.perf_counter()
    with connect(workers=workers, quiet=True) as client:
        client.run(_torch_threads)
    out["Dask LocalCluster"] = time.perf_counter() - t
    t = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
        list(ex.map(_torch_threads, range(workers)))
    out["forked processes"] = time.perf_counter() - t
    return out


def end_to_end(
    store: str, n_cells: int, n_genes: int, epochs: int, batch: int, bf16: bool = False
) -> None:
    import chromestore

    cores = os.cpu_count() or 1
    if not chromestore.store.exists(store):
        t = time.perf_counter()
        chromestore.simulate(store, cells=n_cells, genes=n_genes, seed=0)
        print(
            f"simulated {n_cells} epigenomes × {n_genes} genes in "
            f"{time.perf_counter() - t:.0f} s: {store}"
        )
    n_cells = chromestore.open_store(store).sizes["cell"]
    print(
        f"end to end: {n_cells} epigenomes × {n_genes} genes, deepchrome split, {epochs} "
        f"epochs, batch {batch}, validation AUROC every epoch, best-epoch test AUROC; "
        f"torch {torch.__version__}, {cores} cores"
    )
    loads = [load_avg()]
    out = Path(store).with_suffix(".plain.json")
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("plain_deepchrome.py")),
            store,
            "--epochs",
            str(epochs),
            "--batch",
            str(batch),
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    plain_wall = time.perf_counter() - t
    plain = json.loads(out.read_text())
    plain["test_auroc"] = np.array(plain["test_auroc"])
    loads.append(load_avg())
    run = f"bench-e2e-{os.getpid()}"
    cmd = [
        *_chromestore_cli(),
        "train",
        store,
        "--cells",
        "all",
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch),
    ]
    cli, ours, proc = _timed_train([*cmd, "--run", run, "--progress"], store, run)
    loads.append(load_avg())
    pool = pool_start_seconds(cores)
    loads.append(load_avg())
    mode = next((ln for ln in proc.stdout.splitlines() if ln.startswith("mode:")), "mode: ?")
    timing = next(
        (ln for ln in proc.stderr.splitlines() if ln.startswith("time in groups")),
        "time in groups: not reported",
    )
    print(
        f"  plain script       {plain_wall:>6.1f} s  mean test AUROC "
        f"{plain['test_auroc'].mean():.4f}   (load {loads[0]:.2f} → {loads[1]:.2f}; "
        f"{plain['seconds']:.1f} s after its imports)"
    )
    print(
        f"  chromestore train  {cli:>6.1f} s  mean test AUROC {np.nanmean(ours):.4f}   "
        f"(load {loads[1]:.2f} → {loads[2]:.2f})"
    )
    print(f"    {mode}")
    print(f"    {timing}")
    print(
        f"    {cores} worker processes, start + torch + close: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in pool.items())
        + f" (load {loads[3]:.2f})"
    )
    print(
        f"  speed-up (both as commands, imports included): {ratio_text(plain_wall / cli, tuple(loads[:3]), cores)}; "
        f"AUROC difference (chromestore − plain) "
        f"{np.nanmean(ours) - plain['test_auroc'].mean():+.4f}"
    )
    if bf16:
        run16 = f"{run}-bf16"
        wall16, ours16, _ = _timed_train(
            [*cmd, "--run", run16, "--precision", "bf16"], store, run16
        )
        loads.append(load_avg())
        print(
            f"  chromestore train --precision bf16  {wall16:>6.1f} s  mean test AUROC "
            f"{np.nanmean(ours16):.4f} (load → {loads[-1]:.2f}); vs plain "
            f"{ratio_text(plain_wall / wall16, (loads[1], loads[-1]), cores)}, vs fp32 "
            f"{ratio_text(cli / wall16, (loads[1], loads[-1]), cores)}; AUROC − fp32 "
            f"{np.nanmean(ours16) - np.nanmean(ours):+.4f}"
        )


if __name__ == "__main__":
    main()
