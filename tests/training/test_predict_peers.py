"""Every classifier predicts another epigenome from its run's weights, and exports as arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import chromestore
from chromestore.training import export as X
from chromestore.training import predict as P
from chromestore.training.peers.execute import run_peers


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    chromestore.simulate(root / "a.zarr", cells=["E003"], genes=300, seed=0)
    chromestore.simulate(root / "b.zarr", cells=["E116"], genes=300, seed=1)
    return root / "a.zarr", root / "b.zarr"


@pytest.mark.parametrize("model", ["shallowchrome", "rf-bestbin", "svm-bin", "attentivechrome"])
def test_a_peer_trained_on_one_epigenome_scores_another_better_than_chance(stores, model):
    a, b = stores
    hyper = {"attentivechrome": {"epochs": 3}, "svm-bin": {"grid": {"C": [1.0], "gamma": [0.1]}}}
    run_peers(
        a,
        f"p-{model}",
        [model],
        cells=["E003"],
        split_scheme="random",
        seed=0,
        hyper={model: hyper[model]} if model in hyper else None,
    )
    scores = P.predict_store(b, P.from_run(a, f"p-{model}", from_cell="E003"), ["E116"])
    truth = chromestore.compute_labels(chromestore.open_store(b)).label.sel(cell="E116").values
    ok = np.isfinite(scores.values[0])
    assert ok.sum() > 250
    assert ((scores.values[0][ok] >= 0) & (scores.values[0][ok] <= 1)).all()
    assert roc_auc_score(truth[ok], scores.values[0][ok]) > 0.7


@pytest.mark.parametrize("model", ["shallowchrome", "svm-bin", "rf-bestbin", "attentivechrome"])
def test_every_peer_exports_as_arrays_and_reloads_to_the_same_scores(stores, tmp_path, model):
    """svm-bin's SVC and rf-bestbin's forest as their parameters, scored by numpy code."""
    a, b = stores
    hyper = {
        "attentivechrome": {"epochs": 2, "ensemble": 2},
        "svm-bin": {"grid": {"C": [1.0], "gamma": [0.1]}},
        "rf-bestbin": {"trees": [20]},
    }
    run_peers(a, f"x-{model}", [model], cells=["E003"], split_scheme="random", seed=0,
              hyper={model: hyper.get(model, {})})  # fmt: skip
    predictor = P.from_run(a, f"x-{model}", from_cell="E003")
    direct = P.predict_store(b, predictor, ["E116"])
    out = X.export_model(a, f"x-{model}", tmp_path / model, cell="E003")
    assert sorted(p.name for p in out.iterdir()) == [
        ".chromestore",
        "README.md",
        "model.json",
        "model.safetensors",
    ]
    again = chromestore.load_model(out).predict(chromestore.open_store(b))
    assert np.isfinite(again.values).sum() > 250
    np.testing.assert_allclose(again.values, direct.values, atol=1e-6)


def test_rf_bestbin_and_svm_bin_arrays_score_as_scikit_learn_did_in_training(stores):
    """The run's stored predictions are scikit-learn's; the arrays kept give them again."""
    from chromestore.training import registry
    from chromestore.training import weights as W
    from chromestore.training.peers.cells import read_cell

    a, _ = stores
    run_peers(a, "p-both", ["svm-bin", "rf-bestbin"], cells=["E003"], split_scheme="random",
              seed=0, hyper={"svm-bin": {"grid": {"C": [1.0], "gamma": [0.1]}},
                             "rf-bestbin": {"trees": [20]}})  # fmt: skip
    run = chromestore.open_run(a, "p-both").load()
    signal = read_cell(a, "E003", slice(None))["signal"]
    ok = np.isfinite(run.prediction.sel(model="rf-bestbin", cell="E003")[0].values)
    rf = W.load_weights(a, "p-both", "rf-bestbin", "E003", 0, registry.get("rf-bestbin"))
    np.testing.assert_allclose(
        rf.predict_proba(signal[ok]),
        run.prediction.sel(model="rf-bestbin", cell="E003")[0].values[ok],
        rtol=0,
        atol=1e-6,
    )
    svm = W.load_weights(a, "p-both", "svm-bin", "E003", 0, registry.get("svm-bin"))
    b = svm["best_bin"]
    z = (np.log1p(np.clip(signal[ok][:, :, b], 0, None)) - svm["log1p_mean"]) / svm["log1p_scale"]
    np.testing.assert_allclose(
        svm["model"].decision_function(z),
        run.prediction.sel(model="svm-bin", cell="E003")[0].values[ok],
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize("cell_stats", [False, True])
def test_regression_model_predicts_log_rpkm_of_an_unseen_epigenome_as_its_run_did(
    tmp_path, cell_stats
):
    from chromestore.training.peers.regression_run import run_regression

    path = tmp_path / "r.zarr"
    chromestore.simulate(path, cells=["E003", "E004", "E116"], genes=300, seed=0)
    run = run_regression(
        path,
        "reg",
        ["E003", "E004"],
        ["E116"],
        use_cell_stats=cell_stats,
        split_scheme="random",
        seed=0,
        epochs=2,
    )
    model = P.from_run(path, "reg")
    assert model.task == "regression" and model.train_cells == ["E003", "E004"]
    scores = P.predict_store(path, model, ["E116"])
    kept = run.prediction.sel(model="deepchrome-regression", cell="E116")[0].values
    test = np.isfinite(kept)
    np.testing.assert_allclose(scores.values[0][test], kept[test], atol=1e-4)
    assert (P.to_table(scores)["label"] == "").all()
