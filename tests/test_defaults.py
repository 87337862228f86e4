"""Defaults in one place each: the store's layout in ``chromestore.store.layout``, training's
in ``chromestore.training.config.DEFAULTS``; every signature and option takes them from there
(and ``--help`` shows them)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import click
import pytest

from chromestore.app.cli import main
from chromestore.store import layout
from chromestore.training.config import DEFAULTS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
#: parameter name → the layout default it must take
LAYOUT = {
    "window": "DEFAULT_WINDOW",
    "bin_size": "DEFAULT_BIN_SIZE",
    "genome": "DEFAULT_GENOME",
    "gene_chunk": "DEFAULT_GENE_CHUNK",
}


def _literal_layout_defaults(path: Path) -> list[str]:
    """``name=<literal>`` defaults (other than None) of layout parameters in the functions of
    ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = list(
            zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
        )
        pairs += [
            (a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
        ]
        for arg, default in pairs:
            # None means "not given: read off the data" (e.g. WindowLayout.from_offsets)
            if (
                arg.arg in LAYOUT
                and isinstance(default, ast.Constant)
                and default.value is not None
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {arg.arg}={default.value!r}")
    return found


def test_layout_defaults__no_signature_repeats_a_literal():
    paths = [p for d in ("chromestore", "training", "analysis") for p in (ROOT / d).rglob("*.py")]
    bad = [hit for p in sorted(paths) for hit in _literal_layout_defaults(p)]
    assert not bad, "use chromestore.store.layout's defaults:\n" + "\n".join(bad)


def _params(command: str) -> dict[str, click.Parameter]:
    cmd = main.commands[command]
    ctx = click.Context(cmd, info_name=command)
    return {p.name: p for p in cmd.get_params(ctx)}


@pytest.mark.parametrize("command", ["ingest", "simulate"])
def test_layout_defaults__the_commands_options_are_the_layouts(command):
    params = _params(command)
    shown = [name for name in LAYOUT if name in params]
    assert "gene_chunk" in shown
    for name in shown:
        if name == "genome" and params[name].default is None:  # an existing store's own
            assert f"default {layout.DEFAULT_GENOME}" in params[name].help
            continue
        assert params[name].default == getattr(layout, LAYOUT[name]), name


def test_layout_defaults__library_signatures_are_the_layouts():
    from chromestore.ingest import open_or_create, plan_ingest
    from chromestore.simulation import simulate
    from chromestore.store import create_store, template

    for fn in (create_store, template, open_or_create, plan_ingest, simulate):
        params = inspect.signature(fn).parameters
        for name, constant in LAYOUT.items():
            if name not in params:
                continue
            if name == "genome" and params[name].default is None:  # an existing store's own
                assert f"{layout.DEFAULT_GENOME} by default" in inspect.getdoc(fn), fn.__name__
                continue
            assert params[name].default == getattr(layout, constant), (fn.__name__, name)


def test_training_defaults__config_request_trainer_and_cli_agree():
    from chromestore.training import request, trainer

    config = TrainConfig()
    assert {k: getattr(config, k) for k in DEFAULTS if hasattr(config, k)} == {
        k: v for k, v in DEFAULTS.items() if hasattr(config, k)
    }
    assert request.SETTINGS == {k: DEFAULTS[k] for k in request.SETTINGS}
    req = request.TrainRequest(store="s", run="r", model="deepchrome", cells=["E003"])
    assert (req.split, req.seed) == (DEFAULTS["split"], DEFAULTS["seed"])
    sig = inspect.signature(trainer.train).parameters
    assert {k: sig[k].default for k in ("mode", "device", "group_size")} == {
        k: DEFAULTS[k] for k in ("mode", "device", "group_size")
    }
    from chromestore.training.loader import ChunkLoader

    sig = inspect.signature(ChunkLoader).parameters
    keys = ("split", "seed", "label_rule", "transform", "memory_budget")
    assert {k: sig[k].default for k in keys} == {k: DEFAULTS[k] for k in keys}
    params = _params("train")
    shared = [*request.SETTINGS, "model", "split", "seed"]
    assert {k: params[k].default for k in shared} == {k: DEFAULTS[k] for k in shared}


def test_training_defaults__train_help_shows_them():
    from click.testing import CliRunner

    text = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    for flag, key in [("--epochs", "epochs"), ("--patience", "patience"), ("--lr", "lr")]:
        assert f"{flag} " in text and f"[default: {DEFAULTS[key]}]" in text
    assert "[default: 100]" in text and "[default: 0.001]" in text  # DeepChrome's protocol
