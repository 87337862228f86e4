"""The app layer: options where users type them, one cluster rule, one --cells parser,
errors that list the valid choices, and a fast `--help`."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import chromestore
from chromestore.app import session
from chromestore.app.cli import main


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "s.zarr"
    chromestore.simulate(str(path), cells=2, genes=128, seed=1, gene_chunk=64)
    return path


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options__work_before_and_after_the_subcommand(small_store, where):
    opts = ["--workers", "0", "--storage-options", "{}", "--no-progress"]
    args = (
        opts + ["info", str(small_store), "--format", "json"]
        if where == "before"
        else ["info", str(small_store), "--format", "json"] + opts
    )
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["cells"] == ["E003", "E004"]


def test_storage_options__bad_json_names_the_option(small_store):
    res = CliRunner().invoke(main, ["info", str(small_store), "--storage-options", "{bad"])
    assert res.exit_code == 2
    assert "--storage-options" in res.output and "not valid JSON" in res.output


def test_query__unknown_cell_or_mark_lists_the_choices(small_store):
    res = CliRunner().invoke(
        main, ["query", str(small_store), "--gene", "TSPAN6", "--cell", "E999"]
    )
    assert res.exit_code == 1
    assert "cell E999 not in the store (cells there: E003, E004)" in res.output
    res = CliRunner().invoke(
        main, ["query", str(small_store), "--gene", "TSPAN6", "--mark", "H3K27ac"]
    )
    assert res.exit_code == 1
    assert "mark H3K27ac not in the store (marks there: H3K27me3, H3K36me3" in res.output


def test_info__lists_runs_and_peak_completion(small_store):
    res = CliRunner().invoke(
        main,
        ["train", str(small_store), "--model", "shallowchrome", "--run", "sc", "--split", "random"],
    )
    assert res.exit_code == 0, res.output
    facts = json.loads(
        CliRunner().invoke(main, ["info", str(small_store), "--format", "json"]).output
    )
    assert [(r["name"], r["models"], r["cells"]) for r in facts["runs"]] == [
        ("sc", ["shallowchrome"], ["E003", "E004"])
    ]
    assert facts["peaks_completed"] == {"E003": [], "E004": []}
    text = CliRunner().invoke(main, ["info", str(small_store)]).output
    assert "runs: 1" in text and "sc: shallowchrome on E003, E004" in text
    assert "peaks: none ingested" in text


@pytest.mark.parametrize(
    "value,expected",
    [
        ("all", None),
        (None, None),
        ("E004", ["E004"]),
        ("E004,E003", ["E004", "E003"]),
        ("1", ["E003"]),
        (" E003 , E004 ", ["E003", "E004"]),
    ],
)
def test_parse_cells__the_one_parser(value, expected):
    assert session.parse_cells(value, ["E003", "E004"]) == expected


@pytest.mark.parametrize(
    "value,message",
    [
        ("E003,E003", "E003 given twice"),
        ("E009", "E009 not in the store"),
        ("0", "positive number"),
        (",", "no epigenomes named"),
    ],
)
def test_parse_cells__bad_values_say_what_is_wrong(value, message):
    with pytest.raises(click.BadParameter, match=message):
        session.parse_cells(value, ["E003", "E004"])


@pytest.mark.parametrize(
    "opts,heavy,expected",
    [
        ({}, False, False),
        ({}, True, True),
        ({"workers": 0}, True, False),
        ({"workers": 2}, False, True),
        ({"scheduler": "tcp://127.0.0.1:1"}, False, True),
    ],
)
def test_cluster_rule__scheduler_workers_and_heavy(opts, heavy, expected, monkeypatch):
    monkeypatch.delenv(session.ENV_SCHEDULER, raising=False)
    ctx = click.Context(main, obj=dict(opts))
    assert session.wants_cluster(ctx, heavy=heavy) is expected


def test_help__loads_no_heavy_library():
    """`chromestore --help` imports neither torch, xarray, dask nor zarr."""
    code = (
        "import sys\nfrom chromestore.app.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'xarray', 'dask', 'zarr', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Commands:" in res.stdout and "ingest" in res.stdout
