"""The simulator: valid, real expression, deterministic, chunk-independent, calibrated."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import chromestore
from chromestore import variables as V
from chromestore.app.cli import main
from chromestore.expression import align_expression, read_rpkm
from chromestore.simulation import (
    TSS_BINS,
    calibration,
    calibration_report,
    cell_depth,
    format_report,
    published_auc,
)
from chromestore.simulation.report import (
    CROSS_TOLERANCE,
    KEY_FIGURES,
    cross_mark_report,
    epigenome_table,
    format_cross_mark,
    format_epigenome_table,
    real_down_up_by_strand,
    run_test_auroc,
)
from chromestore.store import open_store, records
from chromestore.store.records import completed
from tests.conftest import RPKM


@pytest.fixture(scope="module")
def small():
    return chromestore.simulate(cells=3, genes=500, seed=0)


def test_simulate__small_is_valid_lazy_and_integer_counts(small):
    chromestore.validate(small)
    assert dict(small.sizes) == {"cell": 3, "gene": 500, "mark": 5, "bin": 100}
    assert small.signal.chunks is not None  # dask-backed
    assert small[V.CELL].values.astype(object).tolist() == ["E003", "E004", "E005"]
    sig = small.signal.values
    assert sig.dtype == np.float32
    assert np.isfinite(sig).all() and (sig >= 0).all()
    np.testing.assert_array_equal(sig, np.round(sig))
    assert completed(small) == {(c, m) for c in ("E003", "E004", "E005") for m in V.DEFAULT_MARKS}


def test_simulate__expression_is_the_real_rpkm(small, real_genes):
    want = align_expression(
        read_rpkm(RPKM), real_genes["gene_id"].iloc[:500].to_numpy(object), ["E003", "E004", "E005"]
    ).values
    np.testing.assert_array_equal(small.expression.values, want)
    assert small.gene.values.astype(object).tolist() == real_genes["gene"].iloc[:500].tolist()
    labels = chromestore.compute_labels(small).label.values
    assert labels.any() and not labels.all()


def test_simulate__same_seed_same_values_other_seed_differs(small):
    again = chromestore.simulate(cells=3, genes=500, seed=0).signal.values
    np.testing.assert_array_equal(again, small.signal.values)
    other = chromestore.simulate(cells=3, genes=500, seed=1).signal.values
    assert (other != small.signal.values).mean() > 0.3


@pytest.mark.parametrize("gene_chunk", [37, 256, 500])
def test_simulate__chunking_and_subsets_give_one_shot_values(small, gene_chunk):
    full = small.signal.values
    chunked = chromestore.simulate(cells=3, genes=500, gene_chunk=gene_chunk)
    np.testing.assert_array_equal(chunked.signal.values, full)
    # chunk by chunk, one block at a time
    parts = [
        chunked.signal.isel(gene=slice(lo, lo + gene_chunk)).values
        for lo in range(0, 500, gene_chunk)
    ]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), full)
    # a subset of cells (other order) and of genes
    sub = chromestore.simulate(cells=["E005", "E003"], genes=300, gene_chunk=gene_chunk)
    np.testing.assert_array_equal(sub.signal.values, full[[2, 0], :300])
    keys = small.gene.values.astype(object)[[499, 3, 250]].tolist()
    picked = chromestore.simulate(cells="E004", genes=keys)
    np.testing.assert_array_equal(picked.signal.values[0], full[1, [499, 3, 250]])


def test_simulate__store_validates_and_equals_in_memory(small, tmp_path):
    path = tmp_path / "sim.zarr"
    ds = chromestore.simulate(path, cells=3, genes=500, gene_chunk=128)
    ds = open_store(path)
    np.testing.assert_array_equal(ds.signal.values, small.signal.values)
    np.testing.assert_array_equal(ds.expression.values, small.expression.values)
    assert ds.signal.encoding["chunks"] == (1, 128, 5, 100)
    assert completed(ds) == completed(small)
    prov = records.provenance(ds)[("E004", "H3K4me3")]
    assert prov["format"] == "simulated" and prov["seed"] == 0
    assert prov["depth"] == pytest.approx(cell_depth("E004", 0))
    assert np.isnan(ds.peak_max.values).all()


def test_simulate__bad_arguments_are_clear():
    with pytest.raises(ValueError, match="E999 not in the real RPKM table"):
        chromestore.simulate(cells=["E999"], genes=10)
    with pytest.raises(ValueError, match="genes must be between"):
        chromestore.simulate(cells=1, genes=0)
    with pytest.raises(ValueError, match="unknown gene key"):
        chromestore.simulate(cells=1, genes=["ENSG_NOPE"])


def test_calibration__real_figures_are_the_documented_ones():
    report = calibration_report(seed=0)
    real = report["real"]
    assert real["H3K4me3", "ratio"] == pytest.approx(3.3, abs=0.05)
    assert real["H3K27me3", "ratio"] == pytest.approx(0.43, abs=0.01)
    assert real["H3K4me3", "auc"] == pytest.approx(0.845, abs=0.005)
    assert calibration().n_genes == 600


def test_calibration__simulated_e003_within_25_percent_of_real():
    report = calibration_report(seed=0)
    bad = []
    for (mark, stat), row in report.iterrows():
        if stat == "auc":
            ok = abs(row.simulated - row.real) <= 0.05
        else:
            ok = abs(row.simulated - row.real) <= 0.25 * abs(row.real)
        if not ok:
            bad.append(f"{mark} {stat}: real {row.real:.3f}, simulated {row.simulated:.3f}")
    assert not bad, "\n".join(bad)
    # the shapes the issue names
    sim = chromestore.simulate(cells="E003", genes=2048).signal.isel(cell=0)
    prof = sim.mean("gene").to_pandas()  # mark × bin
    assert prof.loc["H3K4me3"].idxmax() in range(40, 60)  # peaks at the TSS
    k36 = prof.loc["H3K36me3"]
    assert k36.iloc[60:].mean() > k36.iloc[40:60].mean()  # rises downstream


def _key_figures_ok(report) -> bool:
    """The strand issue's figures: H3K36me3 downstream/upstream within 25 % of the real,
    H3K27me3 high/low in the ±500 bp within 0.15."""
    k36, k27 = report.loc[("H3K36me3", "down_up")], report.loc[("H3K27me3", "ratio")]
    return (
        abs(k36.simulated - k36.real) <= 0.25 * k36.real and abs(k27.simulated - k27.real) <= 0.15
    )


def test_calibration__oriented_e003_shape_along_the_gene_is_reproduced():
    report = calibration_report(seed=0)
    real = report["real"]
    # the real sample read 5'→3': H3K36me3 rises into the gene body, H3K4me1 flanks the TSS
    assert real["H3K36me3", "down_up"] == pytest.approx(1.446, abs=0.005)
    assert real["H3K4me1", "flank_tss"] == pytest.approx(1.363, abs=0.005)
    assert real["H3K9me3", "ratio"] == pytest.approx(0.727, abs=0.005)
    by_strand = real_down_up_by_strand()
    assert by_strand["+"] > 1.2 and by_strand["-"] > 1.2
    assert _key_figures_ok(report)
    for key in KEY_FIGURES:
        assert report.loc[key, "ok"], key
    # most seeds of 0-9 too (9 of 10 when measured: seed 9 has H3K27me3 high/low 0.59)
    passing = [seed for seed in range(10) if _key_figures_ok(calibration_report(seed))]
    assert len(passing) >= 8, passing


def test_calibration__marks_are_as_correlated_and_redundant_as_in_real_e003():
    """The issue's cross-mark figures on E003's 600 real genes: the marks' ±1 kb log counts
    are correlated (mean |r| within 0.1 of the real 0.39, against 0.06 when marks were
    drawn independently) and, in a logistic regression, the other marks add to H3K4me3
    what they add in real data (within 0.02 of the real +0.015, against +0.035)."""
    report = cross_mark_report(seed=0)
    real = report["real"]
    assert real["mean_abs_corr"] == pytest.approx(0.390, abs=0.005)
    assert real["auc_H3K4me3"] == pytest.approx(0.849, abs=0.005)
    assert real["auc_gain"] == pytest.approx(0.015, abs=0.005)
    assert real["high_inactive"] == pytest.approx(0.073, abs=0.005)  # contradicting genes
    assert real["low_active"] == pytest.approx(0.430, abs=0.005)
    assert report["ok"].all(), report
    assert dict(report["tolerance"]) == CROSS_TOLERANCE
    # most seeds of 0-9 too (10 of 10 for the correlation, 9 of 10 for the gain, measured)
    reports = [cross_mark_report(seed) for seed in range(1, 10)]
    corr = [r.loc["mean_abs_corr", "ok"] for r in reports]
    gain = [r.loc["auc_gain", "ok"] for r in reports]
    assert sum(corr) >= 7 and sum(gain) >= 7, (corr, gain)


def test_calibration__report_prints_tolerances_and_the_strand_check():
    text = format_report(calibration_report(seed=0))
    assert "bins 5'→3'" in text
    assert "real H3K36me3 downstream/upstream: 1.59 on + genes, 1.32 on - genes" in text
    assert re.search(r"H3K36me3  down_up +1\.446 +\d\.\d{3} +\d\.\d{3} +±25%  yes", text)
    assert re.search(r"H3K4me3   auc .* ±0\.05  yes", text)
    assert text.splitlines()[-1] == "45 of 45 figures within tolerance"
    cross = format_cross_mark(cross_mark_report(seed=0)).splitlines()
    assert re.fullmatch(r"auc_gain +0\.015 +-?0\.0\d\d +±0\.02  yes", cross[5]), cross[5]
    assert cross[-1] == "6 of 6 cross-mark figures within tolerance"


def test_simulate__harder_epigenomes_are_harder():
    ds = chromestore.simulate(cells="all", genes=1024, seed=0)
    ds = chromestore.compute_labels(ds)
    tss = ds.signal.sel(mark="H3K4me3").isel(bin=TSS_BINS).sum("bin").values
    labels = ds.label.values
    sim_auc = np.array([roc_auc_score(labels[i], tss[i]) for i in range(ds.sizes["cell"])])
    paper = published_auc().loc[ds.cell.values.astype(object)].to_numpy()
    rho = spearmanr(sim_auc, paper).statistic
    assert rho > 0.7, rho
    cells = pd.Series(sim_auc, index=ds.cell.values.astype(object))
    assert cells[["E117", "E123"]].min() > cells[["E112", "E084"]].max()


def test_simulate__depth_differs_by_cell_and_scales_counts():
    depths = {c: cell_depth(c, 0) for c in ("E003", "E004", "E005", "E006")}
    assert depths["E003"] == 1.0
    assert len(set(depths.values())) == 4
    ds = chromestore.simulate(cells=list(depths), genes=2048)
    totals = ds.signal.sel(mark="H3K9me3").sum(["gene", "bin"]).values
    ratio = totals / totals[0]
    np.testing.assert_allclose(ratio, list(depths.values()), rtol=0.1)


def test_cli_simulate__calibration_and_store(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["simulate", "--calibration"])
    assert out.exit_code == 0, out.output
    assert "H3K4me3   auc" in out.output and "sim/real" in out.output
    store = tmp_path / "cli.zarr"
    out = runner.invoke(
        main, ["--workers", "0", "simulate", str(store), "--cells", "E003,E112", "--genes", "300"]
    )
    assert out.exit_code == 0, out.output
    ds = open_store(store)
    ref = chromestore.simulate(cells=["E003", "E112"], genes=300)
    np.testing.assert_array_equal(ds.signal.values, ref.signal.values)
    out = runner.invoke(main, ["simulate"])
    assert out.exit_code == 1 and "--calibration" in out.output


def test_epigenome_table__hard_epigenome_below_easy_one_with_their_published_aucs():
    table = epigenome_table(["E112", "E123"], seed=0)
    assert table.index.tolist() == ["E112", "E123"]
    assert table["published"].tolist() == [0.69, 0.92]
    assert 0.5 < table.loc["E112", "simulated"] < table.loc["E123", "simulated"] < 1
    np.testing.assert_allclose(table["diff"], table["simulated"] - table["published"])
    assert table.loc["E112", "snr_weight"] < table.loc["E123", "snr_weight"]
    text = format_epigenome_table(table, "test")
    assert text.splitlines()[1].split() == ["cell", "published", "simulated", "diff", "w"]
    close = int((table["diff"].abs() <= 0.05).sum())
    assert re.search(rf"; {close} of 2 within 0\.05 of their published AUC; Spearman 1\.00$", text)


def test_run_test_auroc__reads_a_runs_test_split(tmp_path):
    from sklearn.metrics import roc_auc_score

    from chromestore.runs import create_run_dataset, write_run

    path = tmp_path / "sim.zarr"
    ds = chromestore.compute_labels(chromestore.simulate(path, cells=["E003", "E123"], genes=90))
    target = ds.label.values.astype(np.float32)
    rng = np.random.default_rng(0)
    prediction = (target + rng.normal(0, 0.8, target.shape)).astype(np.float32)
    split = np.tile(np.repeat([0, 1, 2], 30), (2, 1)).astype(np.int8)  # 2 repeats
    prediction = np.stack([prediction, prediction[:, ::-1]], axis=1)[None]  # model, cell, repeat
    run = create_run_dataset(
        models=["deepchrome"],
        cells=["E003", "E123"],
        genes=ds.gene.values,
        prediction=prediction,
        target=target,
        split=split,
        history_loss=np.zeros((1, 2, 2, 1)),
        history_valid_auc=np.zeros((1, 2, 2, 1)),
        best_epoch=np.zeros((1, 2, 2), dtype=np.int16),
        excluded=np.zeros((2, 90), bool),
        attrs={"task": "classification", "models": {"deepchrome": {}}},
    )
    write_run(path, "fake", run)
    got = run_test_auroc(path, "fake")
    for i, cell in enumerate(["E003", "E123"]):
        want = np.mean([roc_auc_score(target[i, 60:], prediction[0, i, r, 60:]) for r in range(2)])
        assert got[cell] == pytest.approx(want)
    table = epigenome_table(store=path, run="fake")
    assert table.loc["E123", "published"] == 0.92 and table["simulated"].equals(got)


def test_cli_simulate__calibration_full_table_and_its_errors(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["simulate", "--calibration", "--full", "--cells", "E112,E123"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "6 of 6 cross-mark figures within tolerance" in lines
    assert any(re.fullmatch(r"E112 +0\.690 +0\.\d{3} +[+-]0\.\d{3} +\d\.\d\d", x) for x in lines)
    assert "logistic regression on each gene's stretch totals" in out.output
    assert re.search(r"of 2 within 0\.05 of their published AUC; Spearman 1\.00", lines[-1])
    out = runner.invoke(main, ["simulate", "--full"])
    assert out.exit_code == 1 and "--full goes with --calibration" in out.output
    out = runner.invoke(main, ["simulate", "--calibration", "--full", "--run", "dc"])
    assert out.exit_code == 1 and "give the simulated STORE" in out.output
