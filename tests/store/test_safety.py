"""The store never loses data it did not create, and every error is one line.

- `chromestore run` refuses a path that is not a chromestore store (its -e003 sibling and
  the report folder too) and replaces a store only with --overwrite;
- a store path that is a file, a folder of other files, a read-only store, a cell named
  `E003/x`, a store without expression for `train`, an unexpected error: one line, exit 1;
- Ctrl-C: exit 130, one line, nothing recorded complete that was not written;
- Dask worker tracebacks never reach the terminal before the one-line error.

Each test that refuses something checks that the bytes on disk did not change.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

import chromestore
from chromestore.analysis import workflow
from chromestore.app.cli import main
from chromestore.app.errors import EXIT_INTERRUPTED, ErrorHandlingGroup
from chromestore.errors import StoreError
from chromestore.simulation import simulate
from chromestore.store import records
from chromestore.store import safety as replace
from tests.conftest import GENES_BED, RPKM
from tests.snapshots import snapshot


def _one_error_line(res) -> str:
    """The output of a failed command: exactly one line, ``error: …``; returns it."""
    text = res.output if hasattr(res, "output") else res.stderr
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert "Traceback" not in text, text
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], text
    return errors[0]


def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chromestore.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("safety") / "sim.zarr"
    simulate(str(path), cells=2, genes=120, seed=3, gene_chunk=64)
    return path


@pytest.fixture
def notes(tmp_path) -> Path:
    """A user's folder of notes, the kind `chromestore run mine/` once deleted."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("three years of lab notes\n")
    (mine / "plots").mkdir()
    (mine / "plots" / "fig1.svg").write_text("<svg/>")
    return mine


# --- chromestore run: what it may replace ----------------------------------------------------


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_run__refuses_a_folder_that_is_not_a_store_and_changes_nothing(notes, overwrite):
    before = snapshot(notes.parent)
    res = CliRunner().invoke(
        main,
        ["run", str(notes), "--report", str(notes.parent / "rep"), "--workers", "0", *overwrite],
    )
    assert res.exit_code == 1
    line = _one_error_line(res)
    assert line == (
        f"error: {notes}: exists and is not a chromestore store (a folder holding "
        "notes.txt, plots); nothing was changed: choose another path"
    )
    assert snapshot(notes.parent) == before  # no sibling, no report, notes intact


def test_run__refuses_a_user_folder_where_the_e003_store_would_go(tmp_path, notes):
    sibling = tmp_path / "demo-e003.zarr"
    notes.rename(sibling)
    before = snapshot(tmp_path)
    res = CliRunner().invoke(
        main,
        [
            "run",
            str(tmp_path / "demo.zarr"),
            "--report",
            str(tmp_path / "rep"),
            "--overwrite",
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 1
    assert f"error: {sibling}: exists and is not a chromestore store" in _one_error_line(res)
    assert snapshot(tmp_path) == before


def test_run__refuses_a_report_folder_that_holds_no_report(tmp_path, notes):
    before = snapshot(tmp_path)
    res = CliRunner().invoke(
        main, ["run", str(tmp_path / "new.zarr"), "--report", str(notes), "--workers", "0"]
    )
    assert res.exit_code == 1
    assert _one_error_line(res) == (
        f"error: {notes}: exists and is not a chromestore report folder (a folder "
        "chromestore did not write, holding notes.txt, plots); nothing was changed: choose "
        "a new or empty folder"
    )
    assert snapshot(tmp_path) == before


def test_run__existing_store_needs_overwrite_then_one_cell_runs_through(sim_store, tmp_path):
    store = tmp_path / "demo.zarr"
    shutil.copytree(sim_store, store)
    before = snapshot(store)
    args = [
        "run",
        str(store),
        "--report",
        str(tmp_path / "rep"),
        "--no-e003",
        "--cells",
        "1",
        "--genes",
        "200",
        "--epochs",
        "1",
        "--workers",
        "0",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    assert _one_error_line(res) == (
        f"error: {store}: a chromestore store is already there; pass --overwrite to replace it"
    )
    assert snapshot(store) == before
    res = CliRunner().invoke(main, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    ds = chromestore.open_store(store)
    # the new store (1 cell, 200 genes and PAX5), not the old one (2 cells, 120 genes)
    assert ds.sizes["cell"] == 1 and ds.sizes["gene"] == len(workflow.demo_genes(200, 0)) == 201
    assert (tmp_path / "rep" / "index.html").is_file()
    assert "simulated REMC: 1 epigenomes, test split:" in res.output
    # the report is chromestore's now: replaced with --overwrite, refused without
    again = CliRunner().invoke(main, [*args[:1], str(tmp_path / "other.zarr"), *args[2:]])
    assert again.exit_code == 1
    assert "a chromestore report is already there; pass --overwrite" in _one_error_line(again)


def test_e003_store__replaced_only_with_overwrite(tmp_path):
    path = str(tmp_path / "x-e003.zarr")
    genes = workflow.build_e003_store(path)
    assert len(genes) == 600
    (tmp_path / "x-e003.zarr" / "expression" / "zarr.json").touch()  # still a store
    before = snapshot(tmp_path)
    with pytest.raises(StoreError, match="a chromestore store is already there; pass --overwrite"):
        workflow.build_e003_store(path)
    assert snapshot(tmp_path) == before
    assert workflow.build_e003_store(path, overwrite=True) == genes
    assert chromestore.open_store(path).sizes["cell"] == 1


def test_replace__what_counts_as_a_chromestore_store(tmp_path, sim_store):
    assert replace.describe(tmp_path / "absent") == "nothing"
    (tmp_path / "empty").mkdir()
    assert replace.describe(tmp_path / "empty") == "empty"
    (tmp_path / "f.txt").write_text("x")
    assert replace.describe(tmp_path / "f.txt") == "a file"
    store = tmp_path / "s.zarr"
    shutil.copytree(sim_store, store)
    assert replace.describe(store) == "store"
    # a Zarr group another program made
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["format"] = "theirs"
    assert "not made by chromestore" in replace.describe(tmp_path / "other.zarr")
    # a chromestore store that someone put their own files into
    (store / "notes.txt").write_text("mine")
    before = snapshot(store)
    assert replace.describe(store) == "a chromestore store with other files in it: notes.txt"
    with pytest.raises(StoreError, match="exists and is not a chromestore store"):
        replace.remove_store(store)
    assert snapshot(store) == before
    (store / "notes.txt").unlink()
    replace.remove_store(store)
    assert not store.exists()


# --- one line for each error a user can cause ----------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "{p}", "--genes", str(GENES_BED), "--expression", str(RPKM), "--cells", "E003"],
        ["simulate", "{p}", "--cells", "1", "--genes", "50", "--workers", "0"],
        ["info", "{p}"],
        ["verify", "{p}"],
        ["labels", "{p}"],
    ],
)
def test_store_path_is_a_file__one_line_and_file_unchanged(tmp_path, command):
    path = tmp_path / "store.txt"
    path.write_text("not a store\n")
    res = CliRunner().invoke(main, [a.replace("{p}", str(path)) for a in command])
    assert res.exit_code == 1
    line = _one_error_line(res)
    assert line.startswith(f"error: {path}: ")
    assert "a file is there, not a store" in line or "no chromestore store here" in line
    assert path.read_text() == "not a store\n"


def test_new_store_in_a_folder_of_other_files__refused(notes):
    before = snapshot(notes)
    res = CliRunner().invoke(main, ["ingest", str(notes), "--genes", str(GENES_BED)])
    assert res.exit_code == 1
    assert _one_error_line(res) == (
        f"error: {notes}: the folder is not empty and holds no "
        "chromestore store (notes.txt, plots); choose another path"
    )
    assert snapshot(notes) == before


def _without_root_powers() -> None:
    """preexec_fn: drop the capabilities that let root write where permissions say no
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from the bounding set."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_read_only_store__one_line_and_bytes_unchanged(sim_store, tmp_path):
    store = tmp_path / "ro.zarr"
    shutil.copytree(sim_store, store)
    for p in [store, *store.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        before = snapshot(store)
        res = _cli(
            ["ingest", str(store), "--expression", str(RPKM), "--cells", "E003,E116"],
            preexec_fn=_without_root_powers if os.geteuid() == 0 else None,
        )
        assert res.returncode == 1
        line = _one_error_line(res)
        assert line.startswith(f"error: {store}") and ".partial" not in line
        assert line.endswith(
            ": permission denied; the store or folder is read-only for this "
            "user (check its permissions, or write to a copy)"
        )
        assert snapshot(store) == before
    finally:
        for p in [store, *store.rglob("*")]:
            p.chmod(0o755)


@pytest.mark.parametrize(
    "name,why",
    [
        ("E003/x", "contains '/'"),
        ("../E003", "contains '/'"),
        (".hidden", "must start with a letter or a digit"),
        ("E 003", "contains ' '"),
    ],
)
def test_cell_names__refused_up_front_everywhere_they_enter(tmp_path, sim_store, name, why):
    # --cells
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            str(tmp_path / "a.zarr"),
            "--genes",
            str(GENES_BED),
            "--expression",
            str(RPKM),
            "--cells",
            name,
        ],
    )
    assert res.exit_code == 2 and f"cell name {name!r} {why}" in res.output
    assert not (tmp_path / "a.zarr").exists()
    # a samplesheet: file and line named, no store created
    sheet = tmp_path / "sheet.csv"
    (tmp_path / "r.bed").write_text("chr1\t10\t20\tN\t0\t+\n")
    sheet.write_text(f"cell,mark,format,path\n{name},H3K4me3,bed,r.bed\n")
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            str(tmp_path / "b.zarr"),
            "--genes",
            str(GENES_BED),
            "--samples",
            str(sheet),
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 1
    assert _one_error_line(res) == f"error: {sheet}, line 2: cell name {name!r} {why}" + (
        "; use letters, digits and . _ + - only" if "contains" in why else ""
    )
    assert not (tmp_path / "b.zarr").exists()
    # an RPKM header
    rpkm = tmp_path / "rpkm.tsv"
    rpkm.write_text(f"gene_id\tE003\t{name}\nENSG00000000003\t1.0\t2.0\n")
    res = CliRunner().invoke(
        main,
        ["ingest", str(tmp_path / "c.zarr"), "--genes", str(GENES_BED), "--expression", str(rpkm)],
    )
    assert res.exit_code == 1
    assert _one_error_line(res).startswith(f"error: {rpkm}, line 1: cell name {name!r} {why}")
    assert not (tmp_path / "c.zarr").exists()
    # the library: a store never takes such a cell
    store = tmp_path / "s.zarr"
    shutil.copytree(sim_store, store)
    before = snapshot(store)
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        chromestore.add_cells(store, [name])
    assert snapshot(store) == before


def test_train_without_expression__says_to_add_expression(tmp_path):
    store = tmp_path / "noexpr.zarr"
    res = CliRunner().invoke(main, ["ingest", str(store), "--genes", str(GENES_BED)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["train", str(store), "--run", "x", "--workers", "0"])
    assert res.exit_code == 1
    assert _one_error_line(res) == (
        f"error: {store}: no epigenomes in the store yet; add them with `chromestore ingest "
        f"{store} --expression RPKM.tsv` (and --samples SHEET for their signal)"
    )
    chromestore.add_cells(store, ["E003", "E116"])
    before = snapshot(store)
    for model in ("deepchrome", "shallowchrome"):
        res = CliRunner().invoke(
            main, ["train", str(store), "--model", model, "--run", "x", "--workers", "0"]
        )
        assert res.exit_code == 1
        assert _one_error_line(res) == (
            f"error: {store}: no expression for E003, E116; labels come from it, so training "
            f"needs it: add it with `chromestore ingest {store} --expression RPKM.tsv`"
        )
    assert snapshot(store) == before


def test_unexpected_error__one_line_naming_it_and_traceback_on_request(monkeypatch):
    @click.group(cls=ErrorHandlingGroup)
    def cli():
        pass

    @cli.command()
    def bug():
        return len(None)

    res = CliRunner().invoke(cli, ["bug"])
    assert res.exit_code == 1
    line = _one_error_line(res)
    assert line.startswith("error: unexpected TypeError: object of type 'NoneType' has no len()")
    assert "CHROMESTORE_TRACEBACK=1" in line
    monkeypatch.setenv("CHROMESTORE_TRACEBACK", "1")
    res = CliRunner().invoke(cli, ["bug"])
    assert isinstance(res.exception, TypeError)


# --- Ctrl-C and Dask workers -----------------------------------------------------------------


def _interrupt(store: Path, workers: str) -> tuple[subprocess.CompletedProcess, float]:
    """Start a long `simulate`, press Ctrl-C (SIGINT to its whole process group, as a
    terminal does) once the store exists; return the finished process and its delay."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chromestore.app.cli",
            "simulate",
            str(store),
            "--cells",
            "all",
            "--genes",
            "all",
            "--workers",
            workers,
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (store / "zarr.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, out, err
        ), time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("workers", ["0", pytest.param("2", marks=pytest.mark.cluster)])
@pytest.mark.timeout(300)
def test_ctrl_c__exit_130_one_line_and_only_written_cells_recorded(tmp_path, workers):
    store = tmp_path / "big.zarr"
    res, delay = _interrupt(store, workers)
    assert res.returncode == EXIT_INTERRUPTED, res.stderr[-3000:]
    assert _one_error_line(res) == "error: interrupted"
    assert delay < 60
    ds = chromestore.open_store(store)
    assert ds.sizes["cell"] == 56
    done = records.completed(ds)
    cells = sorted({c for c, _ in done})
    assert len(cells) < 56  # it was stopped, not finished
    for cell in cells:  # every (cell, mark) recorded complete was written in full
        assert {m for c, m in done if c == cell} == set(chromestore.DEFAULT_MARKS)
        assert np.isfinite(ds.signal.sel(cell=cell).values).all()
    assert CliRunner().invoke(main, ["verify", str(store)]).exit_code == 0


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_dask_worker_errors__only_the_one_line_reaches_the_terminal(tmp_path):
    (tmp_path / "bad.tagAlign").write_text("chr1\t100\tnotanumber\tN\t1000\t+\n")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("cell,mark,format,path\nE003,H3K4me3,tagalign,bad.tagAlign\n")
    res = _cli(
        [
            "ingest",
            str(tmp_path / "s.zarr"),
            "--genes",
            str(GENES_BED),
            "--samples",
            str(sheet),
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    assert res.returncode == 1
    assert _one_error_line(res) == (
        f"error: {tmp_path / 'bad.tagAlign'}, line 1: end is not a non-negative integer"
    )
    assert "Compute Failed" not in res.stderr and "distributed.worker" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 2  # the dashboard line, the error
