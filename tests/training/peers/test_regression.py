from __future__ import annotations

import numpy as np
import pytest

from chromestore.training.peers.regression import (
    cell_stats,
    cross_epigenome,
    fit_regression,
    kmer_channels,
    kmer_names,
    regression_scores,
    with_cell_stats,
)


@pytest.fixture
def fasta(tmp_path):
    pysam = pytest.importorskip("pysam")
    path = tmp_path / "tiny.fa"
    # chr1: 40 bp; "AAAC" repeats, then a stretch of G, an N and T's
    seq = "AAACAAACAAACAAACAAACGGGGGGGGGNTTTTTTTTTT"
    path.write_text(">chr1\n" + seq + "\n>chr2\nACGTACGTAC\n")
    pysam.faidx(str(path))
    return str(path), seq


def test_cell_stats__are_mean_and_std_over_genes_per_mark_and_bin(rng):
    x = rng.normal(size=(50, 5, 7)).astype(np.float32)
    s = cell_stats(x)
    assert s.shape == (10, 7)
    np.testing.assert_allclose(s[:5], x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s[5:], x.std(0), rtol=1e-5, atol=1e-6)
    full = with_cell_stats(x)
    assert full.shape == (50, 15, 7)
    np.testing.assert_array_equal(full[:, :5], x)
    np.testing.assert_array_equal(full[3, 5:], full[40, 5:])


def test_kmer_channels__count_3mers_per_bin_on_both_strands(fasta):
    path, seq = fasta
    idx = {k: i for i, k in enumerate(kmer_names(3))}
    assert len(idx) == 64
    # + strand gene with TSS at 10, bins [-10, 0) and [0, 10): sequence 0..20
    out = kmer_channels(path, ["chr1"], [10], ["+"], [-10, 0], bin_size=10, k=3)
    assert out.shape == (1, 64, 2)
    counts = out[0] * 10
    first = seq[0:12]  # k-mers starting in bin 0 (positions 0..9) read into bin 1
    for kmer in ("AAA", "AAC", "ACA", "CAA"):
        expected = sum(first[i : i + 3] == kmer for i in range(10))
        assert counts[idx[kmer], 0] == expected
    assert counts[:, 0].sum() == 10 and counts[:, 1].sum() == 8  # 2 k-mers run off the window end
    # - strand gene at TSS 30: 5' bin is [30, 40) read as reverse complement
    rc = kmer_channels(path, ["chr1"], [30], ["-"], [-10, 0], bin_size=10, k=3)[0] * 10
    assert rc[idx["AAA"], 0] == 8  # TTTTTTTTTT → AAAAAAAAAA: 8 AAA k-mers
    # k-mers touching the N count nothing: bin 1 reads N + 9 C's → 7 CCC
    assert rc[:, 1].sum() == 7 and rc[idx["CCC"], 1] == 7
    # a window hanging over both ends of chr2 (10 bp) counts only the k-mers inside it
    edge = kmer_channels(path, ["chr2"], [5], ["+"], [-10, 0], bin_size=10, k=3)[0] * 10
    assert edge[:, 0].sum() == 5 and edge[:, 1].sum() == 3
    assert edge[idx["ACG"], 0] == 2 and edge[idx["CGT"], 1] == 1


def test_fit_regression__learns_a_signal_dependent_target(rng):
    level = rng.gamma(2.0, size=900)
    x = rng.poisson(1 + 5 * level[:, None, None] * np.ones((1, 5, 20))).astype(np.float32)
    x[:, [0, 1, 2, 4]] = rng.poisson(3.0, size=(900, 4, 20))
    y = np.log1p(10 * level)
    split = np.arange(900) % 3
    fit = fit_regression(np.log1p(x), y, split == 0, split == 1, epochs=15, seed=0)
    te = split == 2
    scores = regression_scores(fit.predict(np.log1p(x[te])), y[te])
    assert scores["pearson"] > 0.8
    assert scores["mse"] < np.var(y[te])
    assert fit.best_epoch == int(np.argmin(fit.history_valid_mse))


def test_cross_epigenome__predicts_only_test_genes_of_unseen_cells(rng):
    n_cells, n_genes = 4, 150
    expr = rng.gamma(1.0, 10.0, size=(n_cells, n_genes)).astype(np.float32)
    signal = rng.poisson(1 + np.log1p(expr)[:, :, None, None] * np.ones((1, 1, 5, 20)))
    split = np.arange(n_genes) % 3
    res = cross_epigenome(
        signal, expr, split, [0, 1], [2, 3], use_cell_stats=True, epochs=3, seed=0
    )
    assert res.prediction.shape == (2, n_genes)
    assert np.isfinite(res.prediction[:, split == 2]).all()
    assert np.isnan(res.prediction[:, split != 2]).all()
    assert res.scores["all"]["n"] == 2 * (split == 2).sum()
    assert res.fit.model.net.conv.in_channels == 15


def test_store_kmers__use_the_store_coordinates(fasta):
    import xarray as xr

    from chromestore.training.peers.regression import store_kmers

    path, _ = fasta
    ds = xr.Dataset(
        coords={
            "gene": ["a", "b"],
            "gene_chrom": ("gene", ["chr1", "chr1"]),
            "gene_tss": ("gene", [10, 30]),
            "gene_strand": ("gene", ["+", "-"]),
            "bin_offset": ("bin", [-10, 0]),
        },
        attrs={"bin_size": 10},
    )
    out = store_kmers(ds, path)
    np.testing.assert_array_equal(
        out[0], kmer_channels(path, ["chr1"], [10], ["+"], [-10, 0], 10)[0]
    )
    np.testing.assert_array_equal(
        out[1], kmer_channels(path, ["chr1"], [30], ["-"], [-10, 0], 10)[0]
    )


def test_cli_train__deepchrome_regression_across_epigenomes(tmp_path):
    from click.testing import CliRunner

    import chromestore
    from chromestore.app.cli import main

    store = tmp_path / "sim.zarr"
    chromestore.simulate(store, cells=3, genes=240, seed=0)
    args = [
        "train",
        str(store),
        "--model",
        "deepchrome-regression",
        "--cell-stats",
        "--train-cells",
        "E003,E004",
        "--test-cells",
        "E005",
        "--split",
        "random",
        "--epochs",
        "2",
        "--run",
        "reg",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "E005 (unseen): test MSE" in result.output
    run = chromestore.open_run(store, "reg").load()
    assert run.attrs["task"] == "regression" and run.attrs["test_cells"] == ["E005"]
    assert run.attrs["models"]["deepchrome-regression"]["n_channels"] == 15
    assert run.attrs["models"]["deepchrome-regression"]["transform"] == "log1p"
    test = run.split[0].values == 2
    pred = run.prediction.sel(model="deepchrome-regression", cell="E005")[0].values
    assert np.isfinite(pred[test]).all() and np.isnan(pred[~test]).all()
    target = run.target.sel(cell="E005").values
    mse = float(np.mean((pred[test] - target[test]) ** 2))
    assert run.deepchrome_regression_mse.sel(cell="E005").item() == pytest.approx(mse, rel=1e-5)
    from chromestore.training import weights as W

    saved = W.load_weights(store, "reg", "deepchrome-regression", "E003+E004", 0)
    assert set(saved) == {"state_dict", "mean", "scale"}
    raw = CliRunner().invoke(main, args[:-3] + ["1", "--transform", "raw", "--run", "reg-raw"])
    assert raw.exit_code == 0, raw.output
    attrs = chromestore.open_run(store, "reg-raw").attrs
    assert attrs["models"]["deepchrome-regression"]["transform"] == "raw"


def test_cross_epigenome__cell_stats_follow_the_input_transform(rng):
    signal = rng.poisson(3.0, size=(2, 60, 5, 20)).astype(np.float32)
    expr = rng.gamma(1.0, 10.0, size=(2, 60)).astype(np.float32)
    split = np.arange(60) % 3
    kw = {"use_cell_stats": True, "epochs": 1, "seed": 0}
    raw = cross_epigenome(signal, expr, split, [0], [1], transform="raw", **kw)
    logged = cross_epigenome(signal, expr, split, [0], [1], **kw)
    # the standardisation is fitted on cell 0's samples: its stats channels are constant
    np.testing.assert_allclose(raw.fit.mean[5:10, 0], cell_stats(signal[0])[:5].mean(-1), rtol=1e-5)
    np.testing.assert_allclose(
        logged.fit.mean[5:10, 0], cell_stats(np.log1p(signal[0]))[:5].mean(-1), rtol=1e-5
    )
    with pytest.raises(ValueError, match="transform"):
        cross_epigenome(signal, expr, split, [0], [1], transform="sqrt", epochs=1)


@pytest.mark.slow
def test_cross_epigenome__log1p_alone_beats_raw_counts_with_cell_stats_on_unseen_epigenomes():
    """Train on 5 simulated epigenomes, test on 2 unseen ones (1500 genes, 40 epochs).

    Measured on the simulator at the paper's difficulty (test MSE, seeds 0 / 1 / 2): raw
    counts 1.624 / 1.707 / 1.523 without cell statistics, 1.661 / 1.738 / 1.568 with them (no
    gain); log1p 1.610 / 1.674 / 1.565 without, 1.572 / 1.524 / 1.567 with. On the earlier,
    easier simulator the statistics cut raw counts' MSE from 0.826 to 0.786; that gain is
    gone. What holds at every seed: log1p alone is better than raw counts with statistics.
    """
    import chromestore

    cells = ["E098", "E004", "E003", "E016", "E053", "E070", "E105"]
    ds = chromestore.assign_splits(
        chromestore.simulate(cells=cells, genes=1500, seed=0), "random", seed=0
    )
    signal, expr, split = ds.signal.values, ds.expression.values, ds.split.values[0]
    mse = {
        (transform, cs): cross_epigenome(
            signal,
            expr,
            split,
            range(5),
            [5, 6],
            use_cell_stats=cs,
            seed=0,
            transform=transform,
            epochs=40,
            patience=8,
        ).scores["all"]["mse"]
        for transform, cs in (("log1p", False), ("raw", True))
    }
    print(
        f"cross-epigenome test MSE: log1p {mse['log1p', False]:.3f}, "
        f"raw counts with cell stats {mse['raw', True]:.3f}"
    )
    assert mse["log1p", False] < mse["raw", True]
