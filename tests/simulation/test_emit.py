"""Emitted files: reads inside their bins, and emit → ``chromestore ingest`` round trips."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from chromestore import variables as V
from chromestore.app.cli import main
from chromestore.simulation import cell_depth, real_rpkm, simulate
from chromestore.simulation.emit import (
    READ_LEN,
    emit,
    overlapping_genes,
    peak_threshold,
    reads_from_counts,
)
from chromestore.store import open_store
from chromestore.store.records import completed
from tests.emit_oracle import expected_ingest


def test_reads_from_counts__each_read_inside_its_bin():
    counts = np.array([[0, 1, 2], [7, 0, 64]])
    starts = np.array([[1000, 1100, 1200], [5000, 5100, 5200]])
    which, start, minus = reads_from_counts(counts, starts)
    np.testing.assert_array_equal(np.bincount(which, minlength=6), counts.ravel())
    bin_start = starts.ravel()[which]
    assert (start >= bin_start).all() and (start + READ_LEN <= bin_start + 100).all()
    assert minus.sum() == sum(c // 2 for c in counts.ravel())


@pytest.fixture(scope="module")
def sim():
    return simulate(cells=["E003", "E112"], genes=80, seed=3).load()


@pytest.fixture(scope="module")
def overlapping(sim):
    ov = overlapping_genes(sim)
    assert ov.any() and (~ov).sum() > 50  # both kinds are exercised
    return ov


def _ingest(tmp_path, sim, sheet):
    bed = tmp_path / "genes.bed"
    window = 2 * int(sim.attrs["window"])
    strands = dict(
        zip(sim.gene.values.astype(object), sim.gene_strand.values.astype(object), strict=True)
    )
    with open(bed, "w") as fh:
        for g, c, t in zip(
            sim.gene.values.astype(object),
            sim.gene_chrom.values.astype(object),
            sim.gene_tss.values,
            strict=True,
        ):
            fh.write(f"{c}\t{t - window}\t{t + window}\t{g}\t0\t{strands[g]}\n")
    store = tmp_path / "roundtrip.zarr"
    out = CliRunner().invoke(
        main,
        [
            "--workers",
            "0",
            "ingest",
            str(store),
            "--genes",
            str(bed),
            "--samples",
            str(sheet),
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    ds = open_store(store)
    assert ds.gene.values.astype(object).tolist() == sim.gene.values.astype(object).tolist()
    return ds


@pytest.mark.parametrize("fmt", ["tagalign", "deepchrome-csv"])
def test_emit_ingest__counts_come_back_exactly(tmp_path, sim, overlapping, fmt):
    sheet = emit(sim, tmp_path / "files", fmt)
    got = _ingest(tmp_path, sim, sheet)
    assert completed(got) == {(c, m) for c in ("E003", "E112") for m in V.DEFAULT_MARKS}
    want = sim.signal.sel(cell=got.cell.values)
    mine = ~overlapping if fmt == "tagalign" else np.ones_like(overlapping)
    np.testing.assert_array_equal(got.signal.values[:, mine], want.values[:, mine])
    if fmt == "tagalign":  # shared stretches of overlapping windows hold both genes' reads
        assert (got.signal.values >= want.values).all()
        assert (got.signal.values[:, overlapping] > want.values[:, overlapping]).any()
        for cell in ("E003", "E112"):
            for mark in V.DEFAULT_MARKS:
                np.testing.assert_array_equal(
                    got.signal.sel(cell=cell, mark=mark).values,
                    expected_ingest(sim, cell, mark, fmt),
                )


def test_emit_ingest__bigwig_means_to_float_precision(tmp_path, sim, overlapping):
    sheet = emit(sim, tmp_path / "files", "bigwig")
    got = _ingest(tmp_path, sim, sheet)
    want = sim.signal.sel(cell=got.cell.values).values
    np.testing.assert_allclose(
        got.signal.values[:, ~overlapping], want[:, ~overlapping], rtol=1e-6, atol=1e-5
    )
    for mark in V.DEFAULT_MARKS:
        np.testing.assert_allclose(
            got.signal.sel(cell="E112", mark=mark).values,
            expected_ingest(sim, "E112", mark, "bigwig"),
            rtol=1e-6,
            atol=1e-4,
        )


def test_emit_ingest__narrowpeak_gives_peak_max_of_called_peaks(tmp_path, sim, overlapping):
    sheet = emit(sim, tmp_path / "files", "narrowpeak")
    got = _ingest(tmp_path, sim, sheet)
    for cell in ("E003", "E112"):
        for mark in V.DEFAULT_MARKS:
            pm = got.peak_max.sel(cell=cell, mark=mark).values
            np.testing.assert_array_equal(pm, expected_ingest(sim, cell, mark, "narrowpeak"))
            # a lone window has a peak exactly when one of its bins reaches the threshold
            depth = cell_depth(cell, 0)
            threshold, _ = peak_threshold(mark, depth)
            hot = (sim.signal.sel(cell=cell, mark=mark).values >= threshold).any(axis=1)
            np.testing.assert_array_equal((pm > 0)[~overlapping], hot[~overlapping])
    assert (got.peak_max.sel(mark="H3K4me3").values > 0).mean() > 0.2


@pytest.mark.parametrize("fmt", ["tagalign", "bigwig", "narrowpeak"])
def test_emit_ingest__minus_strand_bins_map_back_5_to_3(tmp_path, fmt):
    ds = simulate(cells="E004", genes=40, seed=1).load()
    strand = np.where(np.arange(40) % 3 == 0, "-", "+").astype(object)
    ds = ds.assign_coords(gene_strand=("gene", strand))
    ov = overlapping_genes(ds)
    got = _ingest(tmp_path, ds, emit(ds, tmp_path / "files", fmt))
    for mark in V.DEFAULT_MARKS:
        want = expected_ingest(ds, "E004", mark, fmt)
        var = "peak_max" if fmt == "narrowpeak" else "signal"
        have = got[var].sel(cell="E004", mark=mark).values
        np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-4)
        if fmt != "narrowpeak":
            sim = ds.signal.sel(cell="E004", mark=mark).values
            np.testing.assert_allclose(have[~ov], sim[~ov], rtol=1e-6, atol=1e-4)
            # the minus-strand genes' profiles are not symmetric, so a flip would show
            assert (sim[strand == "-"] != sim[strand == "-"][:, ::-1]).any()


def test_cli_simulate_emit__same_draw_as_library(tmp_path):
    out = CliRunner().invoke(
        main,
        [
            "--workers",
            "0",
            "simulate",
            "--emit",
            str(tmp_path / "csv"),
            "--format",
            "deepchrome-csv",
            "--cells",
            "E005",
            "--genes",
            "30",
            "--seed",
            "2",
        ],
    )
    assert out.exit_code == 0, out.output
    sheet = (tmp_path / "csv" / "samplesheet.csv").read_text().splitlines()
    assert sheet == ["cell,mark,format,path", "E005,,deepchrome-csv,E005"]
    from chromestore.formats.csv import read_deepchrome_csv

    signal, labels = read_deepchrome_csv(tmp_path / "csv" / "E005")
    ref = simulate(cells="E005", genes=30, seed=2)
    np.testing.assert_array_equal(signal.values, ref.signal.values[0])
    assert labels.split.values.tolist().count("train") == 10
    median = np.median(real_rpkm()["E005"].to_numpy())  # over all 19,802 genes
    np.testing.assert_array_equal(labels.values == 1, ref.expression.values[0] > median)
