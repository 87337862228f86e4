"""The command line is a thin layer: every command has --help and prints real numbers."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chromestore.app.cli import main
from tests.conftest import GENES_BED, RPKM


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "s.zarr"
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            str(path),
            "--genes",
            str(GENES_BED),
            "--expression",
            str(RPKM),
            "--cells",
            "E003,E116",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "added 2 epigenomes: E003, E116" in res.output
    assert "19802/19802 genes matched" in res.output
    return path


@pytest.mark.parametrize("command", ["info", "query", "ingest", "labels", "upgrade"])
def test_every_command_has_help(command):
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output


def test_global_options_in_help():
    res = CliRunner().invoke(main, ["--help"])
    assert "--scheduler" in res.output and "--workers" in res.output


def test_info__json(built):
    res = CliRunner().invoke(main, ["info", str(built), "--format", "json"])
    facts = json.loads(res.output)
    assert facts["dims"] == {"cell": 2, "gene": 19802, "mark": 5, "bin": 100}
    assert facts["cells"] == ["E003", "E116"] and facts["expression_cells"] == ["E003", "E116"]
    assert facts["chunks"]["signal"] == {"cell": 1, "gene": 2048, "mark": 5, "bin": 100}
    assert facts["size_bytes"] > 0
    assert facts["signal_completed"] == {"E003": [], "E116": []}


def test_info__text(built):
    res = CliRunner().invoke(main, ["info", str(built)])
    assert "dims: cell=2, gene=19802, mark=5, bin=100" in res.output
    assert "chunks signal: cell 1 × gene 2048 × mark 5 × bin 100" in res.output


def test_labels__summary_per_epigenome(built):
    res = CliRunner().invoke(main, ["labels", str(built), "--format", "json"])
    rows = json.loads(res.output)
    assert [r["cell"] for r in rows] == ["E003", "E116"]
    assert all(r["genes"] == 19802 and r["positives"] in (9900, 9901) for r in rows)


def test_query__by_symbol_prints_mark_by_bin(built):
    res = CliRunner().invoke(main, ["query", str(built), "--gene", "TSPAN6", "--cell", "E003"])
    assert res.exit_code == 0, res.output
    assert "ENSG00000000003_TSPAN6  chrX:99894988 (-)" in res.output  # TSPAN6 is on -
    assert "expression 43.985 RPKM" in res.output
    assert sum(line.strip().startswith("H3K") for line in res.output.splitlines()) == 5


def test_query__ambiguous_ensembl_id_is_an_error(built):
    res = CliRunner().invoke(main, ["query", str(built), "--gene", "ENSG00000062370"])
    assert res.exit_code == 1
    assert "matches 2 genes" in res.output and "use the full key" in res.output


def test_ingest__bad_expression_leaves_no_store(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("gene_id\tE003\nENSG00000000003\tx\n")
    res = CliRunner().invoke(
        main,
        ["ingest", str(tmp_path / "s.zarr"), "--genes", str(GENES_BED), "--expression", str(bad)],
    )
    assert res.exit_code == 1 and "bad.tsv, line 2: column E003: 'x' is not a number" in res.output
    assert not (tmp_path / "s.zarr").exists()


def test_output_piped_into_a_reader_that_stops__quiet_exit_141(built):
    """``chromestore info STORE | head -1``: the reader goes away, the command says nothing
    (not "cannot reach the object store") and exits as a shell reports SIGPIPE."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "chromestore", "info", str(built)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""
