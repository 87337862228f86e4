from __future__ import annotations

import numpy as np
import pytest
import zarr

import chromestore
from chromestore.training.peers import baselines as BL
from chromestore.training.peers import shallowchrome as SC
from chromestore.training.peers.execute import run_peers

SMALL = {"svm-bin": {"grid": {"C": [1.0, 10.0], "gamma": [0.1]}}, "rf-bestbin": {"trees": [10, 30]}}


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("peers") / "sim.zarr"
    chromestore.simulate(path, cells=2, genes=240, seed=0)
    zarr.open_group(path, mode="r+")["signal"][1, 7, 2, 10] = np.nan  # E004, gene 7 incomplete
    return path


@pytest.fixture(scope="module")
def run(sim_store):
    return run_peers(sim_store, "peers", ["shallowchrome", "svm-bin", "rf-bestbin"], hyper=SMALL)


def _cell_data(store, cell):
    ds = chromestore.compute_labels(chromestore.open_store(store))
    ds = chromestore.assign_splits(ds, "random", seed=0)
    return (
        ds.signal.sel(cell=cell).values,
        ds.label.sel(cell=cell).values.astype(int),
        ds.split.values[0],
    )


def test_run_peers__writes_the_shared_run_layout(run, sim_store):
    r = chromestore.open_run(sim_store, "peers").load()
    assert r.prediction.dims == ("model", "cell", "repeat", "gene")
    assert r.prediction.dtype == np.float32 and r.split.dtype == np.int8
    assert r.best_epoch.dtype == np.int16
    assert list(r.model.values.astype(object)) == ["shallowchrome", "svm-bin", "rf-bestbin"]
    assert dict(r.prediction.sizes) == {"model": 3, "cell": 2, "repeat": 1, "gene": 240}
    assert r.attrs["task"] == "classification" and r.attrs["seed"] == 0
    assert r.attrs["shallowchrome_feature"] == ["max over bins of signal"]
    assert set(r.attrs["models"]) == {"shallowchrome", "svm-bin", "rf-bestbin"}
    # the incomplete gene is excluded in E004 only, and never predicted there
    assert r.excluded.sum().item() == 1 and bool(r.excluded.sel(cell="E004")[7])
    assert np.isnan(r.prediction.sel(cell="E004")[:, 0, 7]).all()
    assert np.isfinite(r.prediction.sel(cell="E003")).all()
    # the label target is 0/1 with the median rule: half the genes are positive
    assert r.target.sel(cell="E003").mean().item() == pytest.approx(0.5, abs=0.01)


def test_run_peers__shallowchrome_matches_the_kernel(run, sim_store):
    signal, y, split = _cell_data(sim_store, "E003")
    X = SC.max_signal_features(signal)
    fit = SC.fit_logistic(X[split == 0], y[split == 0])
    np.testing.assert_allclose(run.shallowchrome_coef.sel(cell="E003")[0], fit.coef, rtol=1e-6)
    np.testing.assert_allclose(
        run.shallowchrome_pvalue.sel(cell="E003")[0], fit.pvalue, rtol=1e-5, atol=1e-12
    )
    np.testing.assert_allclose(
        run.prediction.sel(model="shallowchrome", cell="E003")[0], fit.predict_proba(X), rtol=1e-5
    )
    patterns = run.shallowchrome_pattern.sel(cell="E003")[0].values
    np.testing.assert_allclose(patterns, X * fit.coef, rtol=1e-5)


def test_run_peers__svm_bin_tasks_per_bin_match_the_serial_kernel(run, sim_store):
    signal, y, split = _cell_data(sim_store, "E003")
    ref = BL.svm_bin(signal, y, split, grid=SMALL["svm-bin"]["grid"])
    np.testing.assert_allclose(
        run.svm_bin_test_auc_bin.sel(cell="E003")[0], ref.test_auc, rtol=1e-6
    )
    assert run.svm_bin_best_bin.sel(cell="E003").item() == ref.best_bin


def test_run_peers__weights_reload_and_reproduce_predictions(run, sim_store):
    from chromestore.training import registry
    from chromestore.training import weights as W

    def load(model):  # safetensors of the model's arrays (its ArrayCodec), never a pickle
        return W.load_weights(sim_store, "peers", model, "E003", 0, registry.get(model))

    signal, _, _ = _cell_data(sim_store, "E003")
    fit = load("shallowchrome")
    np.testing.assert_allclose(
        fit.predict_proba(SC.max_signal_features(signal)),
        run.prediction.sel(model="shallowchrome", cell="E003")[0],
        rtol=1e-5,
    )
    rf = load("rf-bestbin")
    np.testing.assert_allclose(
        rf.predict_proba(signal), run.prediction.sel(model="rf-bestbin", cell="E003")[0], rtol=1e-6
    )
    assert rf.n_trees == run.rf_bestbin_n_trees.sel(cell="E003").item()
    np.testing.assert_array_equal(rf.bins, run.rf_bestbin_bin.sel(cell="E003")[0])
    svm = load("svm-bin")
    xb = (np.log1p(signal[:, :, svm["best_bin"]]) - svm["log1p_mean"]) / svm["log1p_scale"]
    np.testing.assert_allclose(
        svm["model"].decision_function(xb),
        run.prediction.sel(model="svm-bin", cell="E003")[0],
        rtol=1e-5,
        atol=1e-6,  # float32 features: decision values near 0 differ in the 8th decimal
    )


def test_run_peers__rejects_unknown_model_and_cell(sim_store):
    with pytest.raises(ValueError, match="unknown peer model"):
        run_peers(sim_store, "x", ["nope"])
    with pytest.raises(ValueError, match="not in the store"):
        run_peers(sim_store, "x", ["shallowchrome"], cells=["E999"])


def test_cli_train__runs_a_peer_model_into_the_run_layout(sim_store):
    from click.testing import CliRunner

    from chromestore.app.cli import main

    result = CliRunner().invoke(
        main,
        [
            "train",
            str(sim_store),
            "--model",
            "shallowchrome",
            "--cells",
            "E003",
            "--split",
            "random",
            "--run",
            "cli",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "run cli: shallowchrome on 1 epigenome(s)" in result.output
    run = chromestore.open_run(sim_store, "cli")
    assert list(run.model.values) == ["shallowchrome"]
    assert np.isfinite(run.prediction.sel(cell="E003")).all()
    assert run.attrs["split_scheme"] == "random"


@pytest.mark.parametrize("genes", [slice(None), np.arange(3, 240, 2)])
def test_read_cell_max__reduces_like_the_kernel_on_the_whole_block(sim_store, genes):
    from chromestore.training.peers.cells import read_cell, read_cell_max

    full = read_cell(str(sim_store), "E004", genes)
    red = read_cell_max(str(sim_store), "E004", genes)
    np.testing.assert_array_equal(red["signal_max"], SC.max_signal_features(full["signal"]))
    np.testing.assert_array_equal(red["finite"], np.isfinite(full["signal"]).all(axis=(1, 2)))
    assert red["finite"].sum() == len(red["finite"]) - 1  # gene 7 has a NaN bin
    assert np.isfinite(red["signal_max"]).all()  # ... which the max ignores
    assert red["peak_max"] is None and full["peak_max"] is None
