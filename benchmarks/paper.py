"""The paper's protocol as one benchmark: simulate (or open) 56 × 19,802, train DeepChrome and
its peers with the DeepChrome split and early stopping, analyze, and compare with the papers.

Usage: python benchmarks/paper.py [--store PATH] [--cells all|N] [--genes all|N]
       [--models deepchrome,shallowchrome,...] [--seed 0] [--reuse] [--precision fp32|bf16]

Every stage is the command a user would type (``chromestore simulate``, ``chromestore train
--split deepchrome`` with the default early stopping, ``chromestore analyze --format
json``), run as a child process. Printed: per model the mean test AUROC over epigenomes
beside the published mean (DeepChrome: the mean of its per-epigenome table,
``data/epigenomes.tsv``; AttentiveChrome: 0.81, its paper's mean over the same 56), for
DeepChrome also how many epigenomes lie within 0.05 of their published AUC and the
Spearman correlation with them; the wall time of each stage; the peak proportional set
size (PSS: shared pages divided among their users) of this process and all its children
together, sampled every 0.25 s; and the load average before and after. With ``--reuse`` an
existing store is opened instead of simulated (its runs are replaced). ``--precision bf16``
trains the torch models under bfloat16 autocast (``chromestore train --precision bf16``;
runs ``paper-MODEL-bf16``): the same protocol in other arithmetic, so its AUROCs are not
the fp32 run's.

The simulated signal is drawn from a model calibrated on real E003; the comparison with
the published figures measures how close the simulator's difficulty is to the real data's
(issue "The paper at full scale"), not the models' biology.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "chromestore"]
#: Published mean test AUROCs over the 56 REMC epigenomes, where the papers give one.
PUBLISHED_MEAN = {"attentivechrome": 0.81}
PEERS = ("deepchrome", "attentivechrome", "shallowchrome", "svm-bin", "rf-bestbin")


class PeakPSS:
    """Peak of the summed proportional set size of this process and its children."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def sample() -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            time.sleep(self.interval)

    def __enter__(self) -> PeakPSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(args: list[str], log: Path) -> float:
    """Run one chromestore command; its output goes to ``log``. Returns its wall time."""
    start = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ chromestore {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run([*CLI, *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode:
        sys.exit(f"`chromestore {' '.join(args)}` failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def train_options() -> str:
    return subprocess.run([*CLI, "train", "--help"], capture_output=True, text=True).stdout


def published_deepchrome() -> pd.Series:
    table = pd.read_csv(ROOT / "data" / "epigenomes.tsv", sep="\t", index_col="epigenome")
    return table["deepchrome_test_auc"]


def model_epochs(store: Path, run: str) -> int | None:
    """How many epochs the torch models of ``run`` trained, summed over them (a validation
    AUC is recorded for each); None for the other kinds (fitted in one go)."""
    import chromestore
    from chromestore.training import registry

    ds = chromestore.open_run(str(store), run)
    if "history_valid_auc" not in ds or any(
        registry.get(str(m)).kind != "torch" for m in ds.model.values
    ):
        return None
    return int(np.isfinite(ds.history_valid_auc.values).sum())


def summarise(records: list[dict]) -> pd.DataFrame:
    """Per (model, cell): the test AUROC, averaged over repeats."""
    frame = pd.DataFrame.from_records(records)
    return frame.groupby(["model", "cell"], as_index=False)["auroc"].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="default: a temporary folder")
    parser.add_argument("--cells", default="all")
    parser.add_argument("--genes", default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(PEERS))
    parser.add_argument("--reuse", action="store_true", help="open --store if it exists")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    opts = parser.parse_args()
    models = [m for m in opts.models.split(",") if m]

    work = Path(tempfile.mkdtemp(prefix="chromestore-paper-"))
    store = Path(opts.store) if opts.store else work / "paper.zarr"
    log = work / "commands.log"
    overwrite = ["--overwrite"] if "--overwrite" in train_options() else []
    suffix, precision = "", []
    if opts.precision != "fp32":
        suffix, precision = f"-{opts.precision}", ["--precision", opts.precision]
    load_before = os.getloadavg()
    times: dict[str, float] = {}
    with PeakPSS() as memory:
        if opts.reuse and store.exists():
            times["simulate"] = 0.0
        else:
            if store.exists():
                sys.exit(f"{store} exists: pass --reuse to open it, or choose another --store")
            times["simulate"] = run(
                ["simulate", str(store), "--cells", opts.cells, "--genes", opts.genes,
                 "--seed", str(opts.seed)],
                log,
            )  # fmt: skip
        for model in models:
            times[f"train {model}"] = run(
                ["train", str(store), "--model", model, "--cells", "all", "--split",
                 "deepchrome", "--seed", str(opts.seed), "--run", f"paper-{model}{suffix}",
                 *precision, *overwrite],
                log,
            )  # fmt: skip
        analyze = ["analyze", str(store), "--format", "json", "--no-interpret"]
        for model in models:
            analyze += ["--run", f"paper-{model}{suffix}"]
        start = time.perf_counter()
        out = subprocess.run([*CLI, *analyze], capture_output=True, text=True, cwd=ROOT)
        times["analyze"] = time.perf_counter() - start
        if out.returncode:
            sys.exit(f"analyze failed (exit {out.returncode}):\n{out.stderr}")
    load_after = os.getloadavg()

    results = summarise(json.loads(out.stdout))
    epochs = {m: model_epochs(store, f"paper-{m}{suffix}") for m in models}
    published = published_deepchrome()
    print(
        f"store {store} (cells {opts.cells}, genes {opts.genes}, seed {opts.seed}, "
        f"precision {opts.precision})"
    )
    print(f"{'model':<18}{'epigenomes':>11}{'mean AUROC':>12}{'published':>11}{'diff':>8}")
    for model in models:
        rows = results[results.model == model]
        mean = rows.auroc.mean()
        if model == "deepchrome":  # over the same epigenomes
            paper = published.reindex(rows.cell).mean()
        else:
            paper = PUBLISHED_MEAN.get(model) if len(rows) == len(published) else None
        paper_text = f"{paper:.3f}" if paper is not None else "—"
        diff_text = f"{mean - paper:+.3f}" if paper is not None else ""
        print(f"{model:<18}{len(rows):>11}{mean:>12.3f}{paper_text:>11}{diff_text:>8}")
        if model == "deepchrome":
            ours = rows.set_index("cell").auroc
            theirs = published.reindex(ours.index)
            close = int((np.abs(ours - theirs) <= 0.05).sum())
            rho = spearmanr(ours, theirs).statistic if len(ours) > 2 else float("nan")
            print(
                f"{'':<18}within 0.05 of the published AUROC: {close} of {len(ours)}; "
                f"Spearman with the published: {rho:.2f}; range {ours.min():.3f}–{ours.max():.3f}"
            )
    print("\nwall time per stage:")
    cores = os.cpu_count() or 1
    for stage, seconds in times.items():
        n = epochs.get(stage.removeprefix("train "))
        per = (
            f"  ({n:,} model-epochs, {seconds * cores / n:.2f} s each on one of {cores} cores)"
            if stage.startswith("train ") and n
            else ""
        )
        print(f"  {stage:<24}{seconds:>9.1f} s{per}")
    print(f"  {'total':<24}{sum(times.values()):>9.1f} s ({sum(times.values()) / 60:.1f} min)")
    print(f"peak memory of all processes together (PSS): {memory.peak / 2**30:.2f} GiB")
    print(
        f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f}, on {os.cpu_count()} cores; commands' output: {log}"
    )
    if not opts.store and not opts.keep:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(f"{store}.weights", ignore_errors=True)


if __name__ == "__main__":
    main()
