"""DeepChrome on one CUDA GPU: per-model loop vs stacked ensemble, and the paper's protocol end to end.

Run by ``benchmarks/gpu.sh`` (which checks for a GPU first). Prints, in one run:

1. samples/s of training steps for ``--models`` DeepChrome models at batch 128 on the
   GPU: a plain per-model loop (``nn.Module`` + ``torch.optim.Adam`` each) against the
   stacked ensemble (:class:`chromestore.training.models.StackedDeepChrome` +
   ``MaskedAdam``), fp32 and bf16 autocast; the target is stacked ≥ 20× the loop;
2. the peak GPU memory of each;
3. end to end, ``chromestore.training.trainer.train`` in the default ``auto`` mode
   (stacked on the GPU) on ``--cells`` simulated epigenomes × all 19,802 genes with the
   paper's protocol (deepchrome split, batch 128, up to ``--epochs`` epochs, patience 10),
   its wall time, per-stage time and mean test AUROC.

    python benchmarks/gpu.py --store /tmp/gpu-56x19802.zarr
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

from chromestore.training.models import DeepChrome, StackedDeepChrome
from chromestore.training.optim import MaskedAdam


def _sync() -> None:
    torch.cuda.synchronize()


def bench(kind: str, m: int, b: int, steps: int, bf16: bool = False) -> tuple[float, float]:
    """(samples/s, peak GiB) of ``steps`` timed training steps of ``m`` models."""
    dev = torch.device("cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    x = torch.poisson(torch.full((m, b, 5, 100), 2.0)).to(dev)
    y = torch.randint(0, 2, (m, b)).to(dev)
    cast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)
    if kind == "loop":
        models = [DeepChrome().to(dev) for _ in range(m)]
        opts = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in models]

        def step():
            for i, net in enumerate(models):
                opts[i].zero_grad()
                with cast:
                    logits = net(x[i])
                F.cross_entropy(logits.float(), y[i]).backward()
                opts[i].step()
    else:
        net = StackedDeepChrome.from_models([DeepChrome() for _ in range(m)]).to(dev)
        opt = MaskedAdam(list(net.parameters()), 1e-3, m)
        active = torch.ones(m, dtype=torch.bool, device=dev)

        def step():
            masks = (torch.rand(m, b, net.n_flat, device=dev) >= 0.5).float() * 2
            with cast:
                logits = net(x, masks)
            F.cross_entropy(logits.float().reshape(-1, 2), y.reshape(-1), reduction="sum").div(
                b
            ).backward()
            opt.step(active)

    for _ in range(3):
        step()
    _sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync()
    return m * b * steps / (time.perf_counter() - t), torch.cuda.max_memory_allocated() / 2**30


def end_to_end(store: str, n_cells: int, epochs: int) -> None:
    import chromestore
    from chromestore.analysis.metrics import compute_metrics
    from chromestore.training.trainer import TrainConfig, train

    if not chromestore.store.exists(store):
        t = time.perf_counter()
        chromestore.simulate(store, cells=n_cells, genes="all", seed=0)
        print(f"simulated {n_cells} epigenomes × all genes in {time.perf_counter() - t:.0f} s")
    ds = chromestore.open_store(store)
    # 56 × 19,802 genes of signal are 2.2 GB: keep them in memory, not streamed every epoch
    cfg = TrainConfig(
        split="deepchrome", epochs=epochs, patience=10, batch_size=128, memory_budget=16 << 30
    )
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    run = train(
        store, f"gpu-e2e-{os.getpid()}", "all", cfg, mode="auto", device="auto", progress=True
    )
    wall = time.perf_counter() - t
    metrics = compute_metrics(run, published=None)
    aucs = metrics.stat_auroc.sel(model="deepchrome", repeat=0).values
    print(
        f"end to end: {ds.sizes['cell']} epigenomes × {ds.sizes['gene']} genes, mode "
        f"{run.attrs['mode']} on {run.attrs['device']}, up to {epochs} epochs (patience 10): "
        f"{wall:.1f} s; best epochs {np.percentile(run.best_epoch.values, [0, 50, 100])}; "
        f"mean test AUROC {np.nanmean(aucs):.4f}; peak GPU memory "
        f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=56)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--store", default="/tmp/chromestore-gpu-56x19802.zarr")
    p.add_argument("--cells", type=int, default=56)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--skip-e2e", action="store_true")
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit(f"no CUDA GPU visible to torch {torch.__version__}: nothing to measure")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    rows = {}
    for kind in ("loop", "stacked"):
        for bf16 in (False, True):
            steps = max(2, a.steps // 5) if kind == "loop" else a.steps
            rows[f"{kind}{' bf16' if bf16 else ''}"] = bench(kind, a.models, a.batch, steps, bf16)
    base = rows["loop"][0]
    print(f"{'path':<14} {'samples/s':>10} {'vs loop':>8} {'peak GiB':>9}")
    for name, (sps, gib) in rows.items():
        print(f"{name:<14} {sps:>10.0f} {sps / base:>7.1f}× {gib:>9.2f}")
    ok = rows["stacked"][0] / base >= 20
    print(
        f"stacked vs loop: {rows['stacked'][0] / base:.1f}× (target ≥ 20×: "
        f"{'met' if ok else 'NOT met'})"
    )
    if not a.skip_e2e:
        end_to_end(a.store, a.cells, a.epochs)


if __name__ == "__main__":
    main()
