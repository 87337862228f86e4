"""``chromestore predict`` and ``chromestore export``: apply a trained model to any epigenome.

``predict`` scores every gene with signal in ``--cells`` with one model of a run (or an
exported folder) and keeps the scores at ``runs/NAME/predictions``; ``--output`` also
writes ``cell,gene,score,label``. ``export`` writes a run's model as a self-contained
folder (:mod:`chromestore.training.export`). The store needs no expression for either.
"""

from __future__ import annotations

import click

from chromestore.app import session


@click.command()
@click.argument("store")
@click.option("--run", "run", default=None, help="Run whose model predicts (runs/NAME).")
@click.option(
    "--from-cell",
    default=None,
    help="Which epigenome's model, in a run of one model per epigenome.",
)
@click.option("--model", "model", default=None, help="Which model, in a run of several.")
@click.option(
    "--model-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="An exported model folder instead of --run.",
)
@click.option(
    "--name",
    default=None,
    help="With --model-dir: write to runs/NAME/predictions (default: the folder's name).",
)
@click.option("--cells", required=True, help="Epigenomes to score: all or E003,E123,…")
@click.option(
    "--output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write cell,gene,score,label to this CSV.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace predictions of another model already kept under the run name.",
)
@session.command_options
@click.pass_context
def predict(ctx, store, run, from_cell, model, model_dir, name, cells, output, overwrite):
    """Score every gene with signal in CELLS: P(high expression), or log RPKM for regression.

    An epigenome the model was trained on is scored only on the genes it was not fitted
    with (its test genes). The scores are kept at runs/NAME/predictions: the run predicted
    from (--run), or a run holding only predictions (--model-dir, NAME from --name). The
    same model's scores for other epigenomes join them; another model's are refused unless
    --overwrite.
    """
    from pathlib import Path

    import chromestore
    from chromestore import runs as R
    from chromestore.training import export as X
    from chromestore.training import predict as P

    if (run is None) == (model_dir is None):
        raise click.UsageError("give exactly one of --run NAME or --model-dir DIR")
    so = session.storage_options(ctx)
    have = [str(c) for c in chromestore.open_store(store, so)["cell"].values]
    chosen = session.parse_cells(cells, have) or have
    try:
        if model_dir is not None:
            predictor = X.load_model(model_dir)
            target = name or Path(model_dir).resolve().name
        else:
            predictor = P.from_run(store, run, model=model, from_cell=from_cell, storage_options=so)
            target = name or run
        R.check_predictions_target(store, target, predictor.source, overwrite, so)
        with session.cluster(ctx, heavy=False) as client:
            scores = P.predict_store(store, predictor, chosen, client, so)
    except (P.PredictError, X.ExportError) as e:
        session.fail(str(e))
    url = P.write_predictions(
        store,
        target,
        scores,
        so,
        predictor=predictor,
        existing="overwrite" if overwrite else "refuse",
    )
    cross = predictor.cross_assembly(chromestore.open_store(store, so))
    table = P.to_table(scores, cross.ids(scores["gene"].values) if cross else None)
    if cross is not None:
        click.echo(cross.line())
    if output:
        table.to_csv(output, index=False)
    for cell in chosen:
        rows = table[table["cell"] == cell]
        high = int((rows["label"] == 1).sum()) if predictor.task == "classification" else 0
        own = predictor.fitted_mask(cell, scores["gene"].values, store)
        left = (
            f"; {int(own.all(axis=0).sum())} genes it was fitted with left out"
            if own is not None
            else ""
        )
        click.echo(
            f"{cell}: {len(rows)} genes scored by {predictor.model} from "
            f"{'+'.join(predictor.train_cells)}"
            + (f", {high} predicted high" if predictor.task == "classification" else "")
            + left
        )
    click.echo(f"scores → {url}" + (f" and {output}" if output else ""))


@click.command()
@click.argument("store")
@click.option("--run", "run", required=True, help="Run holding the model.")
@click.option("--cell", default=None, help="Which epigenome's model (per-epigenome runs).")
@click.option("--model", "model", default=None, help="Which model, in a run of several.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write (safetensors weights, model.json, README.md): new or empty.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a model folder chromestore exported there."
)
@session.command_options
@click.pass_context
def export(ctx, store, run, cell, model, out, overwrite):
    """Write one model of a run as a self-contained folder for chromestore.load_model."""
    from chromestore.training import export as X
    from chromestore.training import predict as P

    try:
        path = X.export_model(
            store,
            run,
            out,
            cell=cell,
            model=model,
            storage_options=session.storage_options(ctx),
            overwrite=overwrite,
        )
    except (P.PredictError, X.ExportError) as e:
        session.fail(str(e))
    click.echo(f"exported → {path}")


COMMANDS = (predict, export)
