"""Every classifier predicts another epigenome from its run's weights; ShallowChrome exports."""

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


def test_shallowchrome_exports_as_arrays_and_reloads_to_the_same_scores(stores, tmp_path):
    a, b = stores
    run_peers(a, "p-sc", ["shallowchrome"], cells=["E003"], split_scheme="random", seed=0)
    direct = P.predict_store(b, P.from_run(a, "p-sc", from_cell="E003"), ["E116"])
    out = X.export_model(a, "p-sc", tmp_path / "sc", cell="E003")
    again = chromestore.load_model(out).predict(chromestore.open_store(b))
    np.testing.assert_allclose(again.values, direct.values, atol=1e-6)


def test_exporting_a_scikit_learn_forest_refuses_naming_pickle(stores, tmp_path):
    a, _ = stores
    run_peers(a, "p-rf", ["rf-bestbin"], cells=["E003"], split_scheme="random", seed=0)
    with pytest.raises(X.ExportError, match="rf-bestbin.*without pickle"):
        X.export_model(a, "p-rf", tmp_path / "rf", cell="E003")


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
