"""``chromestore train``: fit a registered model and write ``runs/NAME``.

The options every model shares are declared here; a model's own options come from its
registry entry (:class:`chromestore.training.registry.ModelOption`), are parsed like the
others and listed under ``Options of --model NAME`` in ``--help``. The model's runner
(:mod:`chromestore.training.request`) says whether it wants a Dask cluster and what to print.
"""

from __future__ import annotations

import click

from chromestore.app import session
from chromestore.training.config import DEFAULTS  # the one place of the training defaults

#: click types of :attr:`ModelOption.type` ("cells" are parsed like ``--cells`` afterwards)
TYPES = {
    "str": click.STRING,
    "int": click.INT,
    "float": click.FLOAT,
    "path": click.Path(dir_okay=False),
    "cells": click.STRING,
}


def _model_options(shared: set[str]) -> dict[str, tuple[click.Option, list]]:
    """Each model option's flag → (its click option, the entries that declare it).

    An option named like a shared one is the shared one and is not added again.
    """
    from chromestore.training import registry

    out: dict[str, tuple[click.Option, list]] = {}
    for entry in registry.entries():
        for opt in entry.options:
            if opt.dest in shared:
                continue
            if opt.name not in out:
                kw = (
                    {"is_flag": True, "default": bool(opt.default)}
                    if opt.flag
                    else {"type": TYPES.get(opt.type, click.STRING), "default": opt.default}
                )
                out[opt.name] = (click.Option([opt.name], help=opt.help, **kw), [])
            out[opt.name][1].append(entry)
    return out


class ModelOptionsCommand(click.Command):
    """A command that also takes every registered model's own options, listed per model."""

    def _shared(self) -> set[str]:
        return {p.name for p in self.params}

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        extra = [opt for opt, _ in _model_options(self._shared()).values()]
        return params[: len(self.params)] + extra + params[len(self.params) :]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from chromestore.training import registry

        own = _model_options(self._shared())
        theirs = {opt.name for opt, _ in own.values()}
        rows = [
            r
            for p in self.get_params(ctx)
            if isinstance(p, click.Option) and p.name not in theirs
            if (r := p.get_help_record(ctx))
        ]
        with formatter.section("Options (every model)"):
            formatter.write_dl(rows)
        with formatter.section("Models (--model)"):
            formatter.write_dl(
                [
                    (e.name, f"{e.kind}, {e.task}. {e.paper}".rstrip(". ") + ".")
                    for e in registry.entries()
                ]
            )
        for entry in registry.entries():
            records = [own[o.name][0].get_help_record(ctx) for o in entry.options if o.name in own]
            if records:
                with formatter.section(f"Options of --model {entry.name}"):
                    formatter.write_dl(records)


@click.command(cls=ModelOptionsCommand)
@click.argument("store")
@click.option(
    "--model", default=DEFAULTS["model"], show_default=True, help="Registered model (listed below)."
)
@click.option("--cells", default="all", show_default=True, help="all or E003,E123,…")
@click.option(
    "--split",
    default=DEFAULTS["split"],
    show_default=True,
    help="deepchrome, random[:K] or chromosome.",
)
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True)
@click.option("--epochs", type=int, default=DEFAULTS["epochs"], show_default=True)
@click.option(
    "--patience",
    type=int,
    default=DEFAULTS["patience"],
    show_default=True,
    help="Stop a model after this many epochs without a better validation AUC.",
)
@click.option("--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True)
@click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True)
@click.option(
    "--transform",
    type=click.Choice(["raw", "log1p"]),
    default=DEFAULTS["transform"],
    show_default=True,
    help="Input transform (raw counts as in the paper).",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "stacked", "loop", "percore", "distributed"]),
    default=DEFAULTS["mode"],
    show_default=True,
    help="auto: stacked on a GPU; on CPU percore (distributed with --scheduler or "
    "--workers N, loop with --workers 0). stacked: one batched ensemble here; loop: "
    "the models stepped one by one here; percore: one forked single-threaded "
    "process per core; distributed: groups of epigenomes as Dask tasks.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default=DEFAULTS["precision"],
    show_default=True,
    help="bf16: bfloat16 autocast (CPUs with avx512_bf16, GPUs).",
)
@click.option("--device", default=DEFAULTS["device"], show_default=True, help="auto, cpu or cuda.")
@click.option(
    "--group-size",
    type=int,
    default=DEFAULTS["group_size"],
    show_default=True,
    help="Epigenomes per Dask task (distributed mode); 0: groups that shrink as the "
    "work runs out (one stacked group per GPU worker).",
)
@click.option("--run", "run", required=True, help="Run name: results go to runs/NAME.")
@session.command_options
@click.pass_context
def train(ctx, store, model, cells, split, seed, run, **values):
    """Fit MODEL per epigenome (stacked on one device or as Dask tasks); write runs/NAME.

    The options of every model apply to all (a model ignores those it has no use for);
    a model's own options are listed under it.
    """
    from click.core import ParameterSource

    import chromestore
    from chromestore.executors import local_dask
    from chromestore.labels import require_expression
    from chromestore.training import registry
    from chromestore.training import request as TR

    entry = registry.get(model)
    so = session.storage_options(ctx)
    ds = chromestore.open_store(store, so)
    have = [str(c) for c in ds["cell"].values]
    settings = {k: values.pop(k) for k in TR.SETTINGS}
    given = frozenset(
        k for k in settings if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT
    )
    own = {o.dest: o for o in entry.options}
    options = {}
    for dest, value in values.items():
        if dest in own:
            options[dest] = session.parse_cells(value, have) if own[dest].type == "cells" else value
        elif ctx.get_parameter_source(dest) is not ParameterSource.DEFAULT:
            owners = [e.name for e in registry.entries() if any(o.dest == dest for o in e.options)]
            raise click.UsageError(
                f"--{dest.replace('_', '-')} is an option of "
                f"--model {' or '.join(owners)}, not of --model {model}"
            )
    req = TR.TrainRequest(
        store=store,
        run=run,
        model=model,
        cells=session.parse_cells(cells, have) or have,
        split=split,
        seed=seed,
        settings=settings,
        given=given,
        options=options,
        storage_options=so,
        progress=session.progress(ctx),
    )
    with local_dask():
        require_expression(ds, req.cells, store)
        # a local pool of workers may be started unless --workers 0 said no
        req = req.with_settings(local_pool=session.wants_cluster(ctx, heavy=True))
        req, heavy = TR.plan(req, session.wants_cluster(ctx, heavy=False))
        if heavy is None:
            click.echo(TR.run(req))
            return
    with session.cluster(ctx, heavy=heavy) as client:
        click.echo(TR.run(req, client))


COMMANDS = (train,)
