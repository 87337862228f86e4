"""Training throughput of 56 DeepChrome models: per-model loop vs stacked vs Dask workers.

Measures samples/s of training steps (forward + backward + Adam) for ``--models``
DeepChrome models at batch ``--batch``, three ways, in one run:

(a) a plain PyTorch loop over the models (``nn.Module`` + ``torch.optim.Adam`` each),
(b) the stacked ensemble (:class:`chromestore.training.models.StackedDeepChrome` + ``MaskedAdam``),
    with all intra-op threads and with one,
(c) the stacked ensemble split over ``--workers`` local Dask worker processes
    (1 thread each), each worker training its share of the models;

plus the achieved GFLOP/s (3 × forward FLOPs per sample) against a measured float32
matmul peak. Inputs are batches of Poisson counts held in memory, so the figures are
the compute path only (the loader's streaming runs in a background thread beside it).
With ``--store`` (a simulated store, made with ``--simulate-genes N`` if absent) it also
times one epoch end to end from the store's chunks (loader scan, streamed training
batches, validation pass, best-epoch prediction): stacked in-process and distributed on
local workers.

    python benchmarks/train.py                       # 56 models, batch 128
    python benchmarks/train.py --store /tmp/bsim.zarr --simulate-genes 2048
"""

from __future__ import annotations

import argparse
import time

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


def bench_loop(m: int, b: int, steps: int) -> float:
    torch.manual_seed(0)
    models = [DeepChrome() for _ in range(m)]
    opts = [torch.optim.Adam(x.parameters(), lr=1e-3) for x in models]
    x, y = _data(m, b)

    def step():
        for i, net in enumerate(models):
            opts[i].zero_grad()
            F.cross_entropy(net(x[i]), y[i]).backward()
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


def bench_distributed(m: int, b: int, steps: int, workers: int) -> float:
    from chromestore.app.cluster import connect

    shares = [len(s) for s in np.array_split(np.arange(m), workers)]
    with connect(workers=workers, quiet=True) as client:
        client.run(torch.set_num_threads, 1)
        # warm the workers (imports), then time all shares running at once
        client.gather([client.submit(bench_stacked, 1, b, 1, 1, pure=False)
                       for _ in range(workers)])
        t = time.perf_counter()
        futs = [client.submit(bench_stacked, k, b, steps, 1, pure=False) for k in shares]
        client.gather(futs)
        return m * b * steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=56)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--genes", type=int, default=6601, help="training genes per model (epoch)")
    p.add_argument("--store", default=None, help="simulated store for the end-to-end epoch")
    p.add_argument("--simulate-genes", type=int, default=2048,
                   help="genes of the store simulated when --store does not exist")
    a = p.parse_args()
    threads = torch.get_num_threads()
    peak = matmul_peak()
    flop = 3 * flops_per_sample()
    print(f"torch {torch.__version__}, {threads} threads; {a.models} models × batch {a.batch}, "
          f"{a.steps} timed steps each; matmul peak {peak:.1f} GFLOP/s; "
          f"{flop / 1e6:.2f} MFLOP per training sample")
    res = {}
    res["loop"] = bench_loop(a.models, a.batch, a.steps)
    res[f"stacked {threads}t"] = bench_stacked(a.models, a.batch, a.steps, threads)
    if threads > 1:
        res["stacked 1t"] = bench_stacked(a.models, a.batch, a.steps, 1)
    torch.set_num_threads(threads)
    res["distributed"] = bench_distributed(a.models, a.batch, a.steps, a.workers)
    base = res["loop"]
    print(f"{'path':<12} {'samples/s':>10} {'vs loop':>8} {'GFLOP/s':>8} {'of peak':>8} "
          f"{'epoch (s)':>10}")
    for name, sps in res.items():
        gf = sps * flop / 1e9
        epoch = a.models * a.genes / sps
        print(f"{name:<12} {sps:>10.0f} {sps / base:>7.2f}× {gf:>8.1f} {gf / peak:>7.0%} "
              f"{epoch:>10.0f}")
    if a.store:
        end_to_end(a.store, a.models, a.simulate_genes, a.batch, a.workers, base)


def end_to_end(store: str, n_cells: int, n_genes: int, batch: int, workers: int,
               loop_sps: float) -> None:
    import chromestore
    from chromestore.app.cluster import connect
    from chromestore.training.trainer import TrainConfig, train

    if not chromestore.store.exists(store):
        t = time.perf_counter()
        chromestore.simulate(store, cells=n_cells, genes=n_genes, seed=0)
        print(f"simulated {n_cells} epigenomes × {n_genes} genes in "
              f"{time.perf_counter() - t:.0f} s: {store}")
    ds = chromestore.open_store(store)
    cells = [str(c) for c in ds.cell.values.astype(object)][:n_cells]
    cfg = TrainConfig(split="deepchrome", epochs=1, patience=None, batch_size=batch)
    n_train = chromestore.split_sizes(ds.sizes["gene"])[0]
    print(f"one epoch from the store: {len(cells)} epigenomes × {n_train} training genes "
          f"(+ validation pass and final valid/test prediction), deepchrome split")
    rows = {}
    t = time.perf_counter()
    train(store, "bench-stacked", cells, cfg, mode="stacked", device="cpu", progress=False)
    rows["stacked"] = time.perf_counter() - t
    with connect(workers=workers, quiet=True) as client:
        t = time.perf_counter()
        train(store, "bench-dist", cells, cfg, mode="distributed", device="cpu",
              progress=False, client=client)
        rows["distributed"] = time.perf_counter() - t
    for name, sec in rows.items():
        sps = len(cells) * n_train / sec
        print(f"  {name:<12} {sec:>7.1f} s  {sps:>8.0f} training samples/s end to end  "
              f"({sps / loop_sps:.2f}× the loop's compute-only rate)")


if __name__ == "__main__":
    main()
