"""``chromestore train``: fit a registered model and write ``runs/NAME``.

The options every model shares are declared here. A model's own options come from its
registry entry (:class:`chromestore.training.entry.ModelOption`): the command reads
``--model NAME`` (and an own option naming another model, as ``--model pooled --pool
NAME`` does) from the command line before parsing it, imports that model's entry, and takes
its options, listed under ``Options of --model NAME`` by ``train --model NAME --help``.
``train --help`` lists the models from the registry's listing and imports none of them (no
torch, no scikit-learn, no plugin). The model's runner (:mod:`chromestore.training.request`)
says whether it wants a Dask cluster and what to print.
"""

from __future__ import annotations

import click

from chromestore.app import session
from chromestore.training import registry
from chromestore.training.config import DEFAULTS  # the one place of the training defaults
from chromestore.variables import NORMALISE

#: click types of :attr:`ModelOption.type` ("cells" are parsed like ``--cells`` afterwards,
#: "model" is a registered model's name)
TYPES = {
    "str": click.STRING,
    "int": click.INT,
    "float": click.FLOAT,
    "path": click.Path(dir_okay=False),
    "cells": click.STRING,
    "model": click.STRING,
}
#: where the command keeps the entries named on its command line, and their click options
#: (``ctx.meta``)
CHOSEN = "chromestore.train.models"
OWN = "chromestore.train.own-options"
HELP_FLAGS = ("--help", "-h")


def _value(args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``args`` (``--flag V`` or ``--flag=V``; the last one given)."""
    found = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(flag + "="):
            found = arg.partition("=")[2]
    return found


def _entry(name: str):
    try:
        return registry.get(name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None


def choose(args: list[str]) -> list[tuple[str, object]]:
    """``(flag, entry)`` of each model the command line names: ``--model`` (default: the
    registry's), then each model named by one of its ``model`` options (given, or that
    option's default). None are imported for a bare ``--help``."""
    name = _value(args, "--model")
    if name is None and any(a in HELP_FLAGS for a in args):
        return []
    chosen = [("--model", _entry(name or registry.DEFAULT_MODEL))]
    for option in chosen[0][1].options:
        if option.type == "model":
            other = _value(args, option.name) or option.default
            if other and other not in [e.name for _, e in chosen]:
                chosen.append((option.name, _entry(other)))
    return chosen


def _click_option(option) -> click.Option:
    """The click option of a :class:`ModelOption`, named as written (``--C`` → ``C``)."""
    kw = (
        {"is_flag": True, "default": bool(option.default)}
        if option.flag
        else {
            "type": TYPES[option.type],
            "default": option.default,
            "show_default": option.default is not None,
        }
    )
    return click.Option([option.name, option.dest], help=_help(option), **kw)


def _help(option) -> str:
    """Its help; a ``model`` option lists the models it may name (plugins among them)."""
    if option.type != "model":
        return option.help
    names = [
        f"{m.name} (plugin)" if m.is_plugin else m.name
        for m in registry.listings()
        if not option.kinds or m.kind in option.kinds or m.kind is None
    ]
    return f"{option.help} One of: {', '.join(names)}."


def own_options(chosen: list, shared: set[str]) -> list[tuple[object, list[click.Option]]]:
    """``(entry, its click options)`` of each chosen model (:func:`choose`); an option named
    like a shared one, or like one already taken, is that one and is not added again."""
    seen = set(shared)
    out = []
    for _, entry in chosen:
        opts = []
        for option in entry.options:
            if option.dest in seen or option.name in seen:
                continue
            seen |= {option.dest, option.name}
            opts.append(_click_option(option))
        out.append((entry, opts))
    return out


class ModelOptionsCommand(click.Command):
    """A command that also takes the own options of the model(s) its command line names."""

    def _shared(self) -> set[str]:
        return {p.name for p in self.params}

    def _own(self, ctx: click.Context) -> list[tuple[object, list[click.Option]]]:
        if OWN not in ctx.meta:  # made once: click looks its parameters up several times
            ctx.meta[OWN] = own_options(ctx.meta.get(CHOSEN, []), self._shared())
        return ctx.meta[OWN]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[CHOSEN] = choose(args)
        ctx.meta.pop(OWN, None)
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as e:
            owners = [
                entry.name
                for entry in registry.entries()
                if any(o.name == e.option_name for o in entry.options)
            ]
            if not owners:
                raise
            named = " or --model ".join(owners)
            chosen = " with ".join(f"{flag} {entry.name}" for flag, entry in ctx.meta[CHOSEN])
            raise click.UsageError(
                f"{e.option_name} is an option of --model {named}, not of {chosen} "
                "(chromestore train --model NAME --help lists a model's own options)",
                ctx,
            ) from None

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        extra = [opt for _, opts in self._own(ctx) for opt in opts]
        return params[: len(self.params)] + extra + params[len(self.params) :]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own = self._own(ctx)
        theirs = {opt.name for _, opts in own for opt in opts}
        rows = [
            r
            for p in self.get_params(ctx)
            if isinstance(p, click.Option) and p.name not in theirs
            if (r := p.get_help_record(ctx))
        ]
        with formatter.section("Options (every model)"):
            formatter.write_dl(rows)
        with formatter.section("Models (--model)"):
            formatter.write_dl([(m.name, _describe(m)) for m in registry.listings()])
        if not own:
            formatter.write_paragraph()
            formatter.write_text(
                "A model's own options: chromestore train --model NAME --help "
                "(--model pooled --pool NAME: also NAME's own options)."
            )
        for (flag, _), (entry, opts) in zip(ctx.meta.get(CHOSEN, []), own, strict=True):
            records = [r for opt in opts if (r := opt.get_help_record(ctx))]
            if records:
                how = "" if flag == "--model" else f" (named by {flag} of --model {own[0][0].name})"
                with formatter.section(f"Options of --model {entry.name}{how}"):
                    formatter.write_dl(records)


def _describe(listing) -> str:
    """One line about a model of the listing (its module is not imported)."""
    what = listing.summary or "(no description)"
    if listing.is_plugin:
        version = f" {listing.version}" if listing.version else ""
        return f"plugin {listing.package}{version}: {what}"
    return f"{listing.kind}: {what}"


@click.command(cls=ModelOptionsCommand)
@click.argument("store")
@click.option(
    "--model",
    default=DEFAULTS["model"],
    show_default=True,
    help="Registered model (listed below).",
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
    "--normalise",
    type=click.Choice(list(NORMALISE)),
    default=DEFAULTS["normalise"],
    show_default=True,
    help="quantile: record each training epigenome's signal quantiles per mark and map any "
    "epigenome predicted onto them, so the model predicts signal of other units "
    "(fold change, -log10 p, …); none: predict refuses other units.",
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
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace run NAME whole if it exists (a run is never changed otherwise).",
)
@click.option(
    "--add",
    is_flag=True,
    help="Add MODEL to the existing run NAME; only with the same split settings (scheme, "
    "seed, K, genes, label rule) as the run's models.",
)
@session.command_options
@click.pass_context
def train(ctx, store, model, cells, split, seed, run, overwrite, add, **values):
    """Fit MODEL per epigenome (stacked on one device or as Dask tasks); write runs/NAME.

    The options under "Options (every model)" are shared; a model ignores those it has no
    use for. A model's own options are listed by chromestore train --model NAME --help.
    A run is written once, whole, with its weights: an existing NAME is refused unless
    --overwrite (replace it) or --add (add a model with the same split).
    """
    from click.core import ParameterSource

    import chromestore
    from chromestore import runs as R
    from chromestore.executors import local_dask
    from chromestore.labels import require_expression
    from chromestore.training import request as TR

    if overwrite and add:
        raise click.UsageError("give --overwrite or --add, not both")
    existing = "overwrite" if overwrite else "add" if add else "refuse"
    so = session.storage_options(ctx)
    ds = chromestore.open_store(store, so)
    if existing == "refuse" and R.run_kind(store, run, so) is not None:
        session.fail(R.taken_message(store, run, so))  # before any training starts
    have = [str(c) for c in ds["cell"].values]
    settings = {k: values.pop(k) for k in TR.SETTINGS}
    given = frozenset(
        k for k in settings if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT
    )
    options = {}
    for _, entry in ctx.meta[CHOSEN]:
        for option in entry.options:
            if option.dest in values:
                value = values.pop(option.dest)
                if option.type == "cells" and value is not None:
                    value = session.parse_cells(value, have)
                options[option.dest] = value
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
        existing=existing,
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
