"""Epigenome names, and the one ``--cells`` selector that every reader of ``--cells`` uses:
the commands, the simulator, the trainer and the peer executor pick the same epigenomes
and refuse the same mistakes with the same words."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import chromestore
from chromestore.app.cli import main
from chromestore.store import means_all, select_cells

HAVE = ["E003", "E004", "E005"]


@pytest.mark.parametrize(
    "value,expected",
    [
        ("all", HAVE),
        (None, HAVE),
        ("", HAVE),
        ("2", ["E003", "E004"]),
        (2, ["E003", "E004"]),
        (np.int64(1), ["E003"]),
        ("E005,E003", ["E005", "E003"]),
        (" E004 , E005 ,", ["E004", "E005"]),
        (["E004"], ["E004"]),
        ("E004", ["E004"]),
    ],
)
def test_select_cells__all_a_count_or_names(value, expected):
    assert select_cells(value, HAVE) == expected


def test_select_cells__without_the_available_ones_all_is_none_and_names_pass():
    assert select_cells("all") is None
    assert select_cells("E009,E010") == ["E009", "E010"]
    assert means_all("all") and means_all(None) and not means_all("E003")


@pytest.mark.parametrize(
    "value,message",
    [
        ("E003,E003", "E003 given twice"),
        ("E009,E003,E010", r"E009, E010 not in the store \(epigenomes there: E003, E004, E005\)"),
        ("0", "0 epigenomes: give a positive number, a list or 'all'"),
        ("4", "4 epigenomes asked for; the store has 3"),
        (",", "no epigenomes named in ','"),
        ("E003/x", "cell name 'E003/x' contains '/'"),
    ],
)
def test_select_cells__each_mistake_has_one_text(value, message):
    with pytest.raises(ValueError, match=message):
        select_cells(value, HAVE)


def test_select_cells__a_count_needs_the_available_epigenomes():
    with pytest.raises(ValueError, match=r"a count \(2\) needs the epigenomes"):
        select_cells("2")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("names") / "s.zarr"
    chromestore.simulate(str(path), cells=2, genes=64, seed=0)
    return str(path)


def test_select_cells__every_reader_of_cells_says_the_same(store):
    from chromestore.training.peers.execute import run_peers
    from chromestore.training.trainer import resolve_cells

    twice = "E003 given twice"
    with pytest.raises(ValueError, match=twice):
        chromestore.simulate(cells="E003,E003", genes=10)
    with pytest.raises(ValueError, match=twice):
        resolve_cells(store, "E003,E003")
    with pytest.raises(ValueError, match=twice):
        run_peers(store, "x", ["shallowchrome"], cells="E003,E003")
    for command in (
        ["train", store, "--run", "x", "--cells", "E003,E003"],
        ["predict", store, "--run", "x", "--cells", "E003,E003"],
        ["simulate", store + "-2", "--cells", "E003,E003"],
    ):
        res = CliRunner().invoke(main, command)
        assert res.exit_code == 2, res.output
        assert f"Invalid value for '--cells': {twice}" in res.output, res.output
    assert resolve_cells(store, "1") == ["E003"]
    assert resolve_cells(store, "all") == ["E003", "E004"]
