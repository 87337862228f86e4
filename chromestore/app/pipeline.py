"""``chromestore run``: the whole main job, simulate → labels/splits → train → analyse → report.

Stages (each prints what it does and how long it took):

1. the real E003 sample (``data/samples/deepdiff_E003``: 600 genes of real read
   counts, real RPKM) into ``<store>-e003.zarr``; DeepChrome and the peers trained on
   random thirds of those genes; its own report under ``<report>/e003/`` with the
   explanation of a test-split gene;
2. the 56 REMC epigenomes simulated into ``<store>`` (real genes and RPKM, simulated
   signal; a seeded sample of genes unless ``full``);
3. DeepChrome trained for all epigenomes at once (one stacked ensemble), into run
   ``NAME``; ShallowChrome, svm-bin and rf-bestbin as Dask tasks into ``NAME-peers``,
   on the same labels and splits;
4. metrics, interpretation maps and ``<report>/index.html``; the summary table is printed.

Part of the app layer: it alone strings the core, training and analysis together.
Training and analysis code are imported inside the functions, so ``chromestore --help``
stays fast.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from chromestore.app import session

PEERS = ("shallowchrome", "svm-bin", "rf-bestbin")
#: Gene the report explains when it is a test gene (ShallowChrome's PAX5 example).
EXPLAIN_GENE = "PAX5"
EXPLAIN_CELLS = ("E003", "E116", "E123")  # H1, GM12878, K562
#: how a report's index.html begins (analysis/report.py), to recognise an earlier report
REPORT_TITLE = "<title>chromestore report"


@dataclass
class RunConfig:
    """Options of ``chromestore run`` (the demo defaults; :meth:`paper` for the protocol)."""

    store: str = "demo-store.zarr"
    report: str = "demo-report"
    name: str = "demo"
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
        """DeepChrome's protocol: all genes, file-order thirds, 100 epochs (patience 10)."""
        base = dict(
            genes=None,
            epochs=100,
            patience=10,
            split="deepchrome",
            peer_hyper={},
            interpret={"steps": 300, "ig_steps": 64, "max_genes": 500},
        )
        return cls(**{**base, **kw})


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Stage:
    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self):
        self.t0 = time.perf_counter()
        _say(f"==> {self.title}")
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            _say(f"    done in {time.perf_counter() - self.t0:.0f} s")


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

    from chromestore import datasets, open_store
    from chromestore.formats import read_deepdiff_csv
    from chromestore.ingest import ingest_expression, ingest_signal_array, open_or_create
    from chromestore.store import safety as replace

    sample = datasets.e003_sample()
    replace.prepare(path, overwrite)
    open_or_create(path, str(datasets.gene_windows()))
    ingest_expression(path, str(datasets.rpkm()), ["E003"])
    parts = [read_deepdiff_csv(sample / f"E003.{s}.csv") for s in ("train", "valid", "test")]
    signal = xr.concat(parts, dim="gene")
    signal.attrs = dict(parts[0].attrs, source=str(sample))
    ingest_signal_array(path, "E003", signal)
    ds = open_store(path)
    has = np.isfinite(ds.signal.sel(cell="E003").isel(mark=0, bin=0).values)
    return [str(g) for g in ds.gene.values[has]]


def _train_all(
    store: str, name: str, cells, cfg: RunConfig, *, split: str, split_over: str, genes, client
) -> None:
    from chromestore.training.peers.execute import run_peers
    from chromestore.training.trainer import TrainConfig, train

    tc = TrainConfig(
        split=split, seed=cfg.seed, epochs=cfg.epochs, patience=cfg.patience, split_over=split_over
    )
    n = "all" if cells == "all" else len(cells.split(",") if isinstance(cells, str) else cells)
    with _Stage(f"DeepChrome: {n} epigenome(s), up to {cfg.epochs} epochs"):
        # auto: stacked on a GPU, else groups handed to the cluster's workers (or a loop here)
        train(
            store,
            name,
            cells if isinstance(cells, str) else ",".join(cells),
            tc,
            mode="auto",
            progress=cfg.progress,
            client=client,
        )
    with _Stage(f"peers ({', '.join(cfg.peers)}) as Dask tasks"):
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


def _explain_target(run, gene: str, cells) -> str | None:
    """``gene`` if it is a test gene of some repeat, else the first test gene with a name."""
    from chromestore import variables as V

    keys = [str(g) for g in run[V.GENE].values]
    test = (run["split"].values == V.TEST).any(0)
    ok = test & np.isfinite(run["target"].sel({V.CELL: list(cells)}).values).all(0)
    for i, k in enumerate(keys):
        if k.endswith(f"_{gene}") and ok[i]:
            return k
    idx = np.flatnonzero(ok)
    return keys[idx[0]] if len(idx) else None


def _analyse(store: str, name: str, report: str, cells_explained, cfg: RunConfig, client, **extra):
    from chromestore.analysis.analyze import analyze_run
    from chromestore.analysis.explain import explain_gene
    from chromestore.analysis.report import write_report

    names = [name, f"{name}-peers"]
    with _Stage(f"analysis of runs {', '.join(names)}"):
        run, out = analyze_run(store, names, client=client, interpret_options=cfg.interpret)
        cells = [c for c in cells_explained if c in set(map(str, run.cell.values))]
        explained = []
        gene = _explain_target(run, EXPLAIN_GENE, cells) if cells else None
        if gene:
            explained.append(explain_gene(store, run, gene, cells, names=names))
        path = write_report(run, out, report, name=name, explained=explained, **extra)
    return out, path


def e003_store_path(store: str) -> str:
    """The real E003 sample's store beside ``store``: ``X.zarr`` → ``X-e003.zarr``."""
    return str(Path(store).with_name(Path(store).stem + "-e003.zarr"))


def check_outputs(cfg: RunConfig) -> None:
    """Refuse up front, before anything is written, outputs that ``run`` may not replace:
    anything that is not a chromestore store or report, and those without ``overwrite``."""
    from chromestore.store import safety as replace

    e003 = [e003_store_path(cfg.store), held_out_store_path(e003_store_path(cfg.store))]
    for store in [cfg.store] + (e003 if cfg.e003 else []):
        replace.check(store, cfg.overwrite)
    _check_report_dir(Path(cfg.report), cfg.overwrite)


def _check_report_dir(path: Path, overwrite: bool) -> None:
    from chromestore.errors import StoreError

    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    index = path / "index.html"
    if not (path.is_dir() and index.is_file() and REPORT_TITLE in index.read_text()[:2000]):
        raise StoreError(
            f"{path}: the report folder exists and holds no chromestore report; "
            "nothing was changed: choose another --report folder"
        )
    if not overwrite:
        raise StoreError(
            f"{path}: a chromestore report is already there; pass --overwrite to replace it"
        )


def held_out_store_path(e003_store: str) -> str:
    """The held-out epigenome's store beside the E003 store: ``X-e003.zarr`` → ``X-e003-E116.zarr``."""
    return str(Path(e003_store).with_name(Path(e003_store).stem + "-E116.zarr"))


def predict_held_out(store: str, run: str, genes: list[str], overwrite: bool = False) -> dict:
    """E003's DeepChrome predicts E116 (held out of training: its simulated marks for the
    same genes, no labels used); ``text`` (AUROC against E116's labels and against guessing
    E003's labels) and the ``table`` of scores, for the report."""
    import chromestore
    from chromestore.simulation import simulate
    from chromestore.store import safety as replace
    from chromestore.training import predict as P
    from chromestore.training.scoring import auc

    other = held_out_store_path(store)
    replace.prepare(other, overwrite)
    truth = chromestore.compute_labels(
        simulate(other, cells=["E116"], genes=genes, seed=1)
    ).label.values[0]
    scores = P.predict_store(other, P.from_run(store, run, from_cell="E003"), ["E116"])
    P.write_predictions(other, run, scores)
    guess = chromestore.compute_labels(chromestore.open_store(store).sel(gene=genes))
    text = (
        f"held-out epigenome E116 (never trained on) predicted by E003's DeepChrome: "
        f"AUROC {auc(truth, scores.values[0]):.3f} (guessing E003's labels: "
        f"{auc(truth, guess.label.values[0]):.3f}); scores in {other}/runs/{run}/predictions"
    )
    return {"text": text, "table": P.to_table(scores)}


def leave_one_out_table(cfg: RunConfig, n: int = 4):
    """A pooled DeepChrome over the first ``n`` simulated epigenomes, each held out in turn
    (run ``NAME-loeo``): cross- against within-epigenome test AUROC per epigenome."""
    import chromestore
    from chromestore.analysis.metrics import cross_vs_within
    from chromestore.training import pooled

    cells = [str(c) for c in chromestore.open_store(cfg.store).cell.values[:n]]
    if len(cells) < 2:
        return None
    with _Stage(f"pooled DeepChrome, leave one epigenome out over {', '.join(cells)}"):
        cross = pooled.leave_one_out(
            cfg.store, f"{cfg.name}-loeo", cells, split=cfg.split, seed=cfg.seed, epochs=cfg.epochs
        )
    within = pooled.test_auroc(
        chromestore.open_run(cfg.store, cfg.name).sel(cell=cells), "deepchrome"
    )
    return cross_vs_within(pooled.test_auroc(cross), within)


def run_all(cfg: RunConfig, *, client=None) -> str:
    """Run every stage (Dask work on ``client``, or in this process when None); return
    the text to print (summary tables and report paths).

    Existing outputs are checked first (:func:`check_outputs`); a store is replaced only
    with ``cfg.overwrite`` and only if chromestore made it."""
    from chromestore.analysis import metrics as M
    from chromestore.simulation import simulate
    from chromestore.store import safety as replace

    check_outputs(cfg)
    t0 = time.perf_counter()
    lines = []
    if cfg.e003:
        e003_store = e003_store_path(cfg.store)
        with _Stage(f"real E003 sample → {e003_store}"):
            genes = build_e003_store(e003_store, overwrite=cfg.overwrite)
        _train_all(
            e003_store,
            "e003",
            ["E003"],
            cfg,
            split="random",
            split_over="signal",
            genes=genes,
            client=client,
        )
        with _Stage("E003's DeepChrome predicts a held-out epigenome (E116)"):
            held_out = predict_held_out(e003_store, "e003", genes, cfg.overwrite)
        out, path = _analyse(
            e003_store,
            "e003",
            str(Path(cfg.report) / "e003"),
            ["E003"],
            cfg,
            client,
            held_out=held_out,
        )
        lines += [
            "real E003 sample (600 genes, test split):",
            M.format_table(out),
            f"report: {path}",
            held_out["text"],
            "",
        ]
    with _Stage(f"simulate {cfg.cells} epigenomes × {cfg.genes or 'all'} genes → {cfg.store}"):
        replace.prepare(cfg.store, cfg.overwrite)
        simulate(
            cfg.store,
            cells=cfg.cells,
            genes=demo_genes(cfg.genes, cfg.seed),
            seed=cfg.seed,
            progress=cfg.progress,
        )
    _train_all(
        cfg.store,
        cfg.name,
        cfg.cells,
        cfg,
        split=cfg.split,
        split_over="all",
        genes=None,
        client=client,
    )
    cross_within = leave_one_out_table(cfg)
    out, path = _analyse(
        cfg.store, cfg.name, cfg.report, EXPLAIN_CELLS, cfg, client, cross_within=cross_within
    )
    n_cells = out.sizes["cell"]
    lines += [
        f"simulated REMC: {n_cells} epigenomes, test split:",
        M.format_table(out),
        f"report: {Path(path).resolve()}",
        f"total {time.perf_counter() - t0:.0f} s",
    ]
    return "\n".join(lines)


@click.command("run")
@click.argument("store", default="demo-store.zarr")
@click.option(
    "--report",
    "report_dir",
    default="demo-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Report directory (index.html).",
)
@click.option("--name", default="demo", show_default=True, help="Run name (runs/NAME).")
@click.option(
    "--cells",
    default="all",
    show_default=True,
    help="Epigenomes to simulate: all (56), N, or a comma-separated list.",
)
@click.option(
    "--genes",
    type=int,
    default=None,
    help="Genes to simulate (a seeded sample; default 1500, --full: all 19,802).",
)
@click.option("--epochs", type=int, default=None, help="Max epochs (default 12, --full: 100).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--full",
    is_flag=True,
    help="The paper's protocol: all genes, DeepChrome's "
    "file-order split, 100 epochs with patience 10, full SVM/RF grids.",
)
@click.option(
    "--e003/--no-e003",
    default=True,
    show_default=True,
    help="Also train and report on the real E003 sample.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace STORE, its -e003 sibling and the "
    "report of an earlier run. Only what chromestore made is replaced; anything "
    "else at those paths is refused, with or without this flag.",
)
@session.command_options
@click.pass_context
def run_cmd(ctx, store, report_dir, name, cells, genes, epochs, seed, full, e003, overwrite):
    """The whole job: simulate, label, split, train DeepChrome and peers, analyse, report."""
    from chromestore.simulation import real_rpkm

    picked = session.parse_cells(cells, list(real_rpkm().columns))
    kw = dict(
        store=store,
        report=report_dir,
        name=name,
        seed=seed,
        e003=e003,
        overwrite=overwrite,
        cells="all" if picked is None else ",".join(picked),
        progress=session.progress(ctx),
    )
    if genes is not None:
        kw["genes"] = genes
    if epochs is not None:
        kw["epochs"] = epochs
    cfg = RunConfig.paper(**kw) if full else RunConfig(**kw)
    check_outputs(cfg)  # before a cluster starts
    with session.cluster(ctx, heavy=True) as client:
        click.echo(run_all(cfg, client=client))


COMMANDS = (run_cmd,)
