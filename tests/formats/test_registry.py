"""The format registry: a format added from outside the package ingests with no edit
elsewhere (registered in process, or through a ``chromestore.formats`` entry point), the
README's table is the registry's, and the engine runs the same in process as on Dask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore import formats, open_store
from chromestore.app.cli import main
from chromestore.errors import InputError
from chromestore.store import records
from tests import toy_format
from tests.conftest import ROOT, sheet, store_digest, write_counts


def _ingest(*args) -> str:
    res = CliRunner().invoke(main, ["ingest", *map(str, args), "--no-progress"])
    assert res.exit_code == 0, res.output
    return res.output


def test_toy_format_registered_by_a_test__ingests_exact_values(tmp_path, genes40, counts_tsv, rng):
    bed, table = genes40
    chosen = list(table.gene.iloc[5:15])
    want = write_counts(tmp_path / "e3.counts.tsv", chosen + ["ENSG99999999999_NOPE"], rng)
    rows = [
        ("E003", "H3K4me3", "counts-tsv", "e3.counts.tsv"),  # named
        ("E003", "H3K9me3", "", "e3.counts.tsv"),
    ]  # inferred from the suffix
    store = tmp_path / "s.zarr"
    out = _ingest(store, "--genes", bed, "--samples", sheet(tmp_path, rows))
    assert "ingested 2 (cell, mark)" in out and "genes matched 10, unmatched 1" in out
    ds = open_store(store)
    for mark in ("H3K4me3", "H3K9me3"):
        got = ds.signal.sel(cell="E003", mark=mark).values
        np.testing.assert_array_equal(got[5:15], want[:10])
        assert np.isnan(got[:5]).all() and np.isnan(got[15:]).all()
        prov = records.provenance(ds)[("E003", mark)]
        assert (
            prov["format"],
            prov["genes_matched"],
            prov["genes_unmatched"],
            prov["genes_in_file"],
        ) == ("counts-tsv", 10, 1, 11)
    assert records.completed(ds) == {("E003", "H3K4me3"), ("E003", "H3K9me3")}
    assert np.isnan(ds.signal.sel(cell="E003", mark="H3K27me3").values).all()


def test_toy_format__bad_line_names_file_and_line_and_store_is_untouched(
    tmp_path, genes40, counts_tsv, rng
):
    bed, table = genes40
    store = tmp_path / "s.zarr"
    write_counts(tmp_path / "good.counts.tsv", list(table.gene.iloc[:3]), rng)
    _ingest(
        store,
        "--genes",
        bed,
        "--samples",
        sheet(tmp_path, [("E003", "H3K4me3", "", "good.counts.tsv")], "good.csv"),
    )
    bad = tmp_path / "bad.counts.tsv"
    bad.write_text(f"{table.gene[0]}\t1\t3\n{table.gene[0]}\t2\tmany\n")
    before = store_digest(store)
    # a good file of the same cell in the same run is not written either
    rows = [("E003", "H3K27me3", "", "bad.counts.tsv"), ("E003", "H3K9me3", "", "good.counts.tsv")]
    res = CliRunner().invoke(
        main, ["ingest", str(store), "--samples", str(sheet(tmp_path, rows)), "--no-progress"]
    )
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        f"error: {bad}, line 2: count 'many' is not a number"
    )
    assert store_digest(store) == before
    assert records.completed(open_store(store)) == {("E003", "H3K4me3")}


def _plugin_path(tmp_path: Path) -> Path:
    """A folder holding the dist-info of a distribution whose entry points name the toy
    format, a module that does not exist and something that is not a FormatEntry."""
    info = tmp_path / "site" / "toy_plugin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[chromestore.formats]\ncounts-tsv = toy_format:COUNTS_TSV\n"
        "missing = no_such_module_here:ENTRY\nnot-an-entry = toy_format:read_counts_tsv\n"
    )
    return info.parent


def _run_cli(tmp_path, *args) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(_plugin_path(tmp_path)), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.run(
        [sys.executable, "-m", "chromestore.app.cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_toy_format_from_an_entry_point__ingests_and_broken_plugins_are_one_line_each(
    tmp_path, genes40, rng
):
    bed, table = genes40
    want = write_counts(tmp_path / "x.counts.tsv", list(table.gene.iloc[:4]), rng)
    store = tmp_path / "s.zarr"
    # no --workers: a small job, counted in this process (no cluster line on stderr)
    res = _run_cli(
        tmp_path,
        "ingest",
        store,
        "--genes",
        bed,
        "--samples",
        sheet(tmp_path, [("E005", "H3K36me3", "", "x.counts.tsv")]),
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(
        open_store(store).signal.sel(cell="E005", mark="H3K36me3").values[:4], want
    )
    warned = [line for line in res.stderr.splitlines() if "FormatPluginWarning" in line]
    assert len(warned) == 2 and len(res.stderr.splitlines()) == 2, res.stderr
    assert "'missing' (no_such_module_here:ENTRY) skipped: ModuleNotFoundError" in warned[0]
    assert "'not-an-entry' (toy_format:read_counts_tsv) skipped: TypeError" in warned[1]
    help_ = _run_cli(tmp_path, "ingest", "--help")
    assert "counts-tsv" in help_.stdout and "(*.counts.tsv)" in help_.stdout


def test_ingest_help__lists_every_registered_format(counts_tsv):
    res = CliRunner().invoke(main, ["ingest", "--help"])
    listed = [
        line.split()[0]
        for line in res.output.split("Formats")[1].splitlines()[1:]
        if line.startswith("  ") and not line.startswith("   ")
    ]
    assert listed == formats.names() and "counts-tsv" in listed


# --- the registry -----------------------------------------------------------------------


def test_readme__formats_table_is_the_registry_table():
    text = (ROOT / "README.md").read_text()
    begin, end = "<!-- formats:begin -->\n", "<!-- formats:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    between = text.split(begin)[1].split(end)[0]
    assert between == "\n" + formats.markdown_table(formats.builtin_entries()) + "\n"
    assert len(between.strip().splitlines()) == 2 + len(formats.builtin_entries())


def test_infer_format__longest_suffix_wins_and_gz_is_ignored(counts_tsv):
    assert formats.infer_format("dir/E003.tagAlign.gz") == "tagalign"
    assert formats.infer_format("A.BW") == "bigwig"
    assert formats.infer_format("x.counts.tsv.gz") == "counts-tsv"
    assert formats.infer_format("x.tsv") is None and formats.infer_format("x.gz") is None


def test_register__a_taken_name_or_suffix_is_refused(counts_tsv):
    with pytest.raises(ValueError, match="'counts-tsv' is already registered"):
        formats.register(toy_format.COUNTS_TSV)
    clash = formats.FormatEntry("reads2", (".tagAlign",), "signal", toy_format.read_counts_tsv, "x")
    with pytest.raises(ValueError, match=r"suffix \.tagalign is already format 'tagalign'"):
        formats.register(clash)
    assert "reads2" not in formats.names()
    with pytest.raises(ValueError, match="target 'peaks'"):
        formats.FormatEntry("p", (), "peaks", toy_format.read_counts_tsv, "x")


def test_reader_giving_the_wrong_shape__error_names_the_format(tmp_path, genes40):
    bed, _ = genes40
    store = tmp_path / "s.zarr"
    _ingest(store, "--genes", bed)
    entry = formats.register(
        formats.FormatEntry(
            "short-reader", (), "signal", lambda path, request: (np.zeros((3, 100)), {}), "x"
        )
    )
    try:
        (tmp_path / "f").write_text("")
        with pytest.raises(
            ValueError, match=r"format short-reader: its reader gave shape \(3, 100\)"
        ):
            from chromestore.ingest import run_ingest

            run_ingest(store, samples=sheet(tmp_path, [("E003", "H3K4me3", "short-reader", "f")]))
    finally:
        formats.unregister(entry.name)
    assert records.completed(open_store(store)) == set()


def test_samplesheet__unknown_format_lists_registered_ones(tmp_path, counts_tsv):
    from chromestore.ingest.samplesheet import read_samplesheet

    (tmp_path / "a.wig").write_text("")
    with pytest.raises(
        InputError,
        match=r"line 2: unknown format 'a.wig' \(known: tagalign, "
        r"bed, .*, deepdiff-csv, rsem-genes, counts-tsv\)",
    ):
        read_samplesheet(sheet(tmp_path, [("E003", "H3K4me3", "", "a.wig")]))
    assert (
        read_samplesheet(sheet(tmp_path, [("E003", "", "deepdiff-csv", "a.wig")]))[0].target
        == "signal"
    )
