"""``chromestore train``: fit a registered model per epigenome and write ``runs/NAME``."""

from __future__ import annotations

import click
import numpy as np

from chromestore.app import session


@click.command()
@click.argument("store")
@click.option("--model", default="deepchrome", show_default=True, help="Registered model.")
@click.option("--cells", default="all", show_default=True, help="all or E003,E123,…")
@click.option("--split", default="deepchrome", show_default=True,
              help="deepchrome, random[:K] or chromosome.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=100, show_default=True)
@click.option("--patience", type=int, default=10, show_default=True,
              help="Stop a model after this many epochs without a better validation AUC.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--transform", type=click.Choice(["raw", "log1p"]), default="raw",
              show_default=True, help="Input transform (raw counts as in the paper).")
@click.option("--mode", type=click.Choice(["auto", "stacked", "distributed"]), default="auto",
              show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--group-size", type=int, default=0, show_default=True,
              help="Epigenomes per Dask task (distributed mode); 0: one stacked group per worker.")
@click.option("--run", "run", required=True, help="Run name: results go to runs/NAME.")
@click.option("--cell-stats", is_flag=True,
              help="deepchrome-regression: append each epigenome's per-mark, per-bin mean and "
              "std over genes as channels (5 → 15).")
@click.option("--fasta", default=None, type=click.Path(dir_okay=False),
              help="deepchrome-regression: genome FASTA; adds 3-mer counts per bin (64 channels).")
@click.option("--train-cells", default=None,
              help="deepchrome-regression: epigenomes to train one model on (E003,E004,…).")
@click.option("--test-cells", default=None,
              help="deepchrome-regression: unseen epigenomes to evaluate it on.")
@session.command_options
@click.pass_context
def train(ctx, store, model, cells, split, seed, epochs, patience, batch_size, lr, transform,
          mode, device, group_size, run, cell_stats=False, fasta=None,
          train_cells=None, test_cells=None):
    """Fit MODEL per epigenome (stacked on one device or as Dask tasks); write runs/NAME."""
    from click.core import ParameterSource

    import chromestore
    from chromestore.labels import require_expression
    from chromestore.training import registry

    so = session.storage_options(ctx)
    ds = chromestore.open_store(store, so)
    have = [str(c) for c in ds["cell"].values]
    cell_list = session.parse_cells(cells, have) or have
    require_expression(ds, cell_list, store)
    if registry.get(model).kind == "arrays":  # peer models (issue 6): chromestore.training.peers
        given = {k: v for k, v in (("epochs", epochs), ("patience", patience),
                                   ("batch_size", batch_size), ("lr", lr))
                 if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}
        regression = {"cell_stats": cell_stats, "fasta": fasta,
                      "train_cells": session.parse_cells(train_cells, have),
                      "test_cells": session.parse_cells(test_cells, have),
                      # deepchrome-regression: log1p unless --transform is given
                      "transform": transform if ctx.get_parameter_source("transform")
                      is not ParameterSource.DEFAULT else None}
        if model == "deepchrome-regression":
            click.echo(_regression(store, run, cell_list, split, seed, given, regression, so))
            return
        with session.cluster(ctx, heavy=False):
            click.echo(_peers(store, run, model, cell_list, split, seed, given, so))
        return
    from chromestore.training.trainer import TrainConfig, pick_mode
    from chromestore.training.trainer import train as fit

    config = TrainConfig(model=model, split=split, seed=seed, epochs=epochs,
                         patience=patience or None, batch_size=batch_size, lr=lr,
                         transform=transform)
    mode, why = pick_mode(mode, device, session.wants_cluster(ctx, heavy=False))
    with session.cluster(ctx, heavy=mode == "distributed") as client:
        ds = fit(store, run, cell_list, config, mode=mode, device=device, storage_options=so,
                 group_size=group_size, client=client, progress=session.progress(ctx))
    best = ds.history_valid_auc.max("epoch").mean("repeat").sel(model=model).values
    click.echo(f"mode: {mode} ({why})")
    click.echo(f"run {run}: {ds.sizes['cell']} epigenome(s), mode {ds.attrs['mode']} on "
               f"{ds.attrs['device']}, {ds.attrs['wall_seconds'][model]:.1f} s; best validation "
               f"AUC mean {np.nanmean(best):.4f} (min {np.nanmin(best):.4f}, "
               f"max {np.nanmax(best):.4f}); open with chromestore.open_run({store!r}, {run!r})")


def _peers(store, run, model, cells, split, seed, hyper, storage_options) -> str:
    """A peer model as Dask tasks; the summary line."""
    from chromestore.training.peers.execute import run_peers

    if model != "attentivechrome":  # epochs, lr, ... mean nothing to the scikit-learn peers
        hyper = {}
    ds = run_peers(store, run, [model], cells, split_scheme=split, seed=seed,
                   hyper={model: hyper or {}}, storage_options=storage_options)
    valid = ds.history_valid_auc.max("epoch").mean("repeat").sel(model=model).values
    return (f"run {run}: {model} on {ds.sizes['cell']} epigenome(s), "
            f"{ds.attrs['wall_seconds'][model]:.1f} s; best validation AUC mean "
            f"{np.nanmean(valid):.4f} (min {np.nanmin(valid):.4f}, max {np.nanmax(valid):.4f}); "
            f"open with chromestore.open_run({store!r}, {run!r})")


def _regression(store, run, cells, split, seed, hyper, opts, storage_options) -> str:
    """``--model deepchrome-regression [--cell-stats] [--fasta FA] [--train-cells --test-cells]``."""
    from chromestore import variables as V
    from chromestore.training.peers.regression import run_regression

    train = opts.get("train_cells") or cells
    test = opts.get("test_cells") or []
    out = run_regression(store, run, train, test, use_cell_stats=opts.get("cell_stats", False),
                         fasta=opts.get("fasta"), split_scheme=split, seed=seed,
                         transform=opts.get("transform") or "log1p",
                         storage_options=storage_options, **(hyper or {}))
    p = "deepchrome_regression_"
    lines = [f"run {run}: deepchrome-regression trained on {len(train)} epigenome(s) "
             f"({out.attrs['models']['deepchrome-regression']['n_channels']} "
             f"channels), {out.attrs['wall_seconds']['deepchrome-regression']:.1f} s"]
    for c in out[V.CELL].values:
        seen = "unseen" if bool(out[p + "unseen"].sel({V.CELL: c})) else "seen"
        lines.append(f"  {c} ({seen}): test MSE {float(out[p + 'mse'].sel({V.CELL: c})):.4f}, "
                     f"Pearson {float(out[p + 'pearson'].sel({V.CELL: c})):.4f}, "
                     f"Spearman {float(out[p + 'spearman'].sel({V.CELL: c})):.4f}")
    return "\n".join(lines)


COMMANDS = (train,)
