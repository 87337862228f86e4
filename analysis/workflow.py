"""The whole main job (``chromestore run``, ``make demo``) as a library: simulate → labels and
splits → train → analyse → report.

Stages (each shown as it begins, with how long it took: :class:`chromestore.stages.Stages`):

1. the real E003 sample (``data/samples/deepdiff_E003``: 600 genes of real read
   counts, real RPKM) into ``<store>-e003.zarr``; DeepChrome and the peers trained on
   random thirds of those genes; its own report under ``<report>/e003/`` with the
   explanation of a test-split gene, and E003's DeepChrome scoring a held-out epigenome;
2. the 56 REMC epigenomes simulated into ``<store>`` (real genes and RPKM, simulated
   signal; a seeded sample of genes unless the paper's protocol is asked for);
3. DeepChrome trained for all epigenomes at once into run ``NAME``; ShallowChrome, svm-bin
   and rf-bestbin as Dask tasks into ``NAME-peers``, on the same labels and splits; a
   pooled DeepChrome leaving one epigenome out (``NAME-loeo``);
4. metrics, interpretation maps and ``<report>/index.html``.

:func:`run_all` runs them and returns the summary to print; :func:`check_outputs` refuses,
before anything is written, outputs it may not replace. It strings the core, training and
analysis together, so it lives in the analysis layer; the command line only parses
``chromestore run``'s options into a :class:`RunConfig` and prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chromestore import variables as V
from chromestore.stages import Stages
from chromestore.training.config import DEFAULTS

PEERS = ("shallowchrome", "svm-bin", "rf-bestbin")
#: Gene the report explains when it is a test gene (ShallowChrome's PAX5 example).
EXPLAIN_GENE = "PAX5"
EXPLAIN_CELLS = ("E003", "E116", "E123")  # H1, GM12878, K562
#: The epigenome E003's DeepChrome predicts without having seen it (GM12878).
HELD_OUT = "E116"


@dataclass
class RunConfig:
    """Options of ``chromestore run`` (the demo defaults; :meth:`paper` for the protocol)."""

    store: str = "demo-store.zarr"
    report: str = "demo-report"
    name: str = "demo"
    #: epigenomes to simulate: ``all`` (56), ``N`` or a comma-separated list
    cells: str = "all"
    genes: int | None = 1500  # None: all 19,802
    epochs: int = 12
    patience: int | None = 4
    split: str = "random"
    seed: int = 0
    peers: tuple[str, ...] = PEERS
    peer_hyper: dict = field(
        default_factory=lambda: {
            "svm-bin": {"grid": {"C": [1.0], "gamma": [0.01]}},
            "rf-bestbin": {"trees": [50]},
        }
    )
    interpret: dict = field(
        default_factory=lambda: {"steps": 150, "ig_steps": 16, "max_genes": 100}
    )
    e003: bool = True
    progress: bool = True
    #: replace the stores and report of an earlier run (only what chromestore made)
    overwrite: bool = False

    @classmethod
    def paper(cls, **kw) -> RunConfig:
        """DeepChrome's protocol: all genes, file-order thirds, the trainer's default epochs
        and patience (100 and 10), full SVM/RF grids."""
        base = dict(
            genes=None,
            epochs=DEFAULTS["epochs"],
            patience=DEFAULTS["patience"],
            split="deepchrome",
            peer_hyper={},
            interpret={"steps": 300, "ig_steps": 64, "max_genes": 500},
        )
        return cls(**{**base, **kw})


# --- paths and what may be replaced ---------------------------------------------------
def e003_store_path(store: str) -> str:
    """The real E003 sample's store beside ``store``: ``X.zarr`` → ``X-e003.zarr``."""
    return str(Path(store).with_name(Path(store).stem + "-e003.zarr"))


def held_out_store_path(e003_store: str) -> str:
    """The held-out epigenome's store beside the E003 store: ``X-e003.zarr`` → ``X-e003-E116.zarr``."""
    return str(Path(e003_store).with_name(Path(e003_store).stem + f"-{HELD_OUT}.zarr"))


def check_outputs(cfg: RunConfig) -> None:
    """Refuse up front, before anything is written, outputs that ``run`` may not replace:
    anything that is not a chromestore store or report, and those without ``overwrite``."""
    from chromestore.analysis.report import check_report_dir
    from chromestore.store import safety

    e003 = [e003_store_path(cfg.store), held_out_store_path(e003_store_path(cfg.store))]
    for store in [cfg.store] + (e003 if cfg.e003 else []):
        safety.check(store, cfg.overwrite)
    check_report_dir(Path(cfg.report), cfg.overwrite)


# --- the stages -------------------------------------------------------------------------
def demo_genes(n: int | None, seed: int) -> list[str] | str:
    """``n`` real gene keys (a seeded sample, keeping the explained gene), or "all"."""
    from chromestore.simulation import real_genes

    if n is None:
        return "all"
    keys = real_genes()["gene"].to_numpy(object)
    rng = np.random.default_rng(seed)
    pick = set(rng.choice(len(keys), size=min(n, len(keys)), replace=False).tolist())
    hits = [i for i, k in enumerate(keys) if str(k).endswith(f"_{EXPLAIN_GENE}")]
    pick.update(hits[:1])
    return [str(keys[i]) for i in sorted(pick)]


def build_e003_store(path: str, overwrite: bool = False) -> list[str]:
    """The real E003 sample as a store of all genes (signal for its 600); returns those genes.

    A store already at ``path`` is replaced only with ``overwrite`` (and only if
    chromestore made it: see :mod:`chromestore.store.safety`)."""
    import xarray as xr

    from chromestore import datasets
    from chromestore.formats import read_deepdiff_csv
    from chromestore.ingest import ingest_expression, ingest_signal_array, open_or_create
    from chromestore.store import open_store, safety

    sample = datasets.e003_sample()
    safety.prepare(path, overwrite)
    open_or_create(path, str(datasets.gene_windows()))
    ingest_expression(path, str(datasets.rpkm()), ["E003"])
    parts = [read_deepdiff_csv(sample / f"E003.{s}.csv") for s in ("train", "valid", "test")]
    signal = xr.concat(parts, dim=V.GENE)
    signal.attrs = dict(parts[0].attrs, source=str(sample))
    ingest_signal_array(path, "E003", signal)
    ds = open_store(path)
    has = np.isfinite(ds.signal.sel({V.CELL: "E003"}).isel({V.MARK: 0, V.BIN: 0}).values)
    return [str(g) for g in ds[V.GENE].values[has]]


def train_all(
    store: str,
    name: str,
    cells: list[str],
    cfg: RunConfig,
    stages: Stages,
    *,
    split: str,
    split_over: str,
    genes,
    client,
) -> None:
    """DeepChrome for ``cells`` at once into run ``name``, the peers into ``name-peers``."""
    from chromestore.training.peers.execute import run_peers
    from chromestore.training.trainer import TrainConfig, train

    tc = TrainConfig(
        split=split, seed=cfg.seed, epochs=cfg.epochs, patience=cfg.patience, split_over=split_over
    )
    with stages(f"DeepChrome: {len(cells)} epigenome(s), up to {cfg.epochs} epochs"):
        # auto: stacked on a GPU, else groups handed to the cluster's workers (or a loop here)
        train(store, name, cells, tc, mode="auto", progress=cfg.progress, client=client)
    with stages(f"peers ({', '.join(cfg.peers)}) as Dask tasks"):
        run_peers(
            store,
            f"{name}-peers",
            list(cfg.peers),
            cells,
            genes=genes,
            split_scheme=split,
            seed=cfg.seed,
            hyper=cfg.peer_hyper,
        )


def explain_target(run, gene: str, cells) -> str | None:
    """``gene`` if it is a test gene of some repeat, else the first test gene with a name."""
    keys = [str(g) for g in run[V.GENE].values]
    test = (run["split"].values == V.TEST).any(0)
    ok = test & np.isfinite(run["target"].sel({V.CELL: list(cells)}).values).all(0)
    for i, k in enumerate(keys):
        if k.endswith(f"_{gene}") and ok[i]:
            return k
    idx = np.flatnonzero(ok)
    return keys[idx[0]] if len(idx) else None


def analyse(
    store: str,
    name: str,
    report: str,
    cells_explained,
    cfg: RunConfig,
    stages: Stages,
    client,
    **extra,
):
    """Runs ``name`` and ``name-peers`` analysed together and reported in ``report``;
    returns (metrics, path of index.html)."""
    from chromestore.analysis.analyze import analyze_run
    from chromestore.analysis.explain import explain_gene
    from chromestore.analysis.report import write_report

    names = [name, f"{name}-peers"]
    with stages(f"analysis of runs {', '.join(names)}"):
        run, out = analyze_run(store, names, client=client, interpret_options=cfg.interpret)
        cells = [c for c in cells_explained if c in set(map(str, run[V.CELL].values))]
        explained = []
        gene = explain_target(run, EXPLAIN_GENE, cells) if cells else None
        if gene:
            explained.append(explain_gene(store, run, gene, cells, names=names))
        path = write_report(run, out, report, name=name, explained=explained, **extra)
    return out, path


def predict_held_out(store: str, run: str, genes: list[str], overwrite: bool = False) -> dict:
    """E003's DeepChrome predicts E116 (held out of training: its simulated marks for the
    same genes, no labels used); ``text`` (AUROC against E116's labels and against guessing
    E003's labels) and the ``table`` of scores, for the report."""
    from chromestore.labels import compute_labels
    from chromestore.simulation import simulate
    from chromestore.store import open_store, safety
    from chromestore.training import predict
    from chromestore.training.scoring import auc

    other = held_out_store_path(store)
    safety.prepare(other, overwrite)
    truth = compute_labels(simulate(other, cells=[HELD_OUT], genes=genes, seed=1)).label.values[0]
    scores = predict.predict_store(
        other, predict.from_run(store, run, from_cell="E003"), [HELD_OUT]
    )
    predict.write_predictions(other, run, scores)
    guess = compute_labels(open_store(store).sel({V.GENE: genes}))
    text = (
        f"held-out epigenome {HELD_OUT} (never trained on) predicted by E003's DeepChrome: "
        f"AUROC {auc(truth, scores.values[0]):.3f} (guessing E003's labels: "
        f"{auc(truth, guess.label.values[0]):.3f}); scores in {other}/runs/{run}/predictions"
    )
    return {"text": text, "table": predict.to_table(scores)}


def leave_one_out_table(cfg: RunConfig, stages: Stages, n: int = 4):
    """A pooled DeepChrome over the first ``n`` simulated epigenomes, each held out in turn
    (run ``NAME-loeo``): cross- against within-epigenome test AUROC per epigenome."""
    from chromestore.analysis.metrics import cross_vs_within
    from chromestore.runs import open_run
    from chromestore.store import open_store
    from chromestore.training import pooled

    cells = [str(c) for c in open_store(cfg.store)[V.CELL].values[:n]]
    if len(cells) < 2:
        return None
    with stages(f"pooled DeepChrome, leave one epigenome out over {', '.join(cells)}"):
        cross = pooled.leave_one_out(
            cfg.store, f"{cfg.name}-loeo", cells, split=cfg.split, seed=cfg.seed, epochs=cfg.epochs
        )
    within = pooled.test_auroc(open_run(cfg.store, cfg.name).sel({V.CELL: cells}), "deepchrome")
    return cross_vs_within(pooled.test_auroc(cross), within)


def run_all(cfg: RunConfig, *, client=None, stages: Stages | None = None) -> str:
    """Run every stage (Dask work on ``client``, or in this process when None); return
    the text to print (summary tables and report paths).

    Existing outputs are checked first (:func:`check_outputs`); a store is replaced only
    with ``cfg.overwrite`` and only if chromestore made it. ``stages`` shows the stages
    (default: a line as each begins and ends, on stderr)."""
    from chromestore.analysis import metrics
    from chromestore.simulation import simulate
    from chromestore.store import safety

    check_outputs(cfg)
    stages = stages or Stages("lines")
    t0 = time.perf_counter()
    lines = []
    if cfg.e003:
        e003_store = e003_store_path(cfg.store)
        with stages(f"real E003 sample → {e003_store}"):
            genes = build_e003_store(e003_store, overwrite=cfg.overwrite)
        train_all(
            e003_store,
            "e003",
            ["E003"],
            cfg,
            stages,
            split="random",
            split_over="signal",
            genes=genes,
            client=client,
        )
        with stages(f"E003's DeepChrome predicts a held-out epigenome ({HELD_OUT})"):
            held_out = predict_held_out(e003_store, "e003", genes, cfg.overwrite)
        out, path = analyse(
            e003_store,
            "e003",
            str(Path(cfg.report) / "e003"),
            ["E003"],
            cfg,
            stages,
            client,
            held_out=held_out,
        )
        lines += [
            "real E003 sample (600 genes, test split):",
            metrics.format_table(out),
            f"report: {path}",
            held_out["text"],
            "",
        ]
    with stages(f"simulate {cfg.cells} epigenomes × {cfg.genes or 'all'} genes → {cfg.store}"):
        safety.prepare(cfg.store, cfg.overwrite)
        ds = simulate(
            cfg.store,
            cells=cfg.cells,
            genes=demo_genes(cfg.genes, cfg.seed),
            seed=cfg.seed,
            progress=cfg.progress,
        )
    cells = [str(c) for c in ds[V.CELL].values]
    train_all(
        cfg.store,
        cfg.name,
        cells,
        cfg,
        stages,
        split=cfg.split,
        split_over="all",
        genes=None,
        client=client,
    )
    cross_within = leave_one_out_table(cfg, stages)
    out, path = analyse(
        cfg.store,
        cfg.name,
        cfg.report,
        EXPLAIN_CELLS,
        cfg,
        stages,
        client,
        cross_within=cross_within,
    )
    lines += [
        f"simulated REMC: {out.sizes[V.CELL]} epigenomes, test split:",
        metrics.format_table(out),
        f"report: {Path(path).resolve()}",
        f"total {time.perf_counter() - t0:.0f} s",
    ]
    return "\n".join(lines)
