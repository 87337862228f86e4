"""Acceptance: DeepChrome trained on the real E003 sample predicts another epigenome's genes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

import chromestore
from chromestore.app.cli import main
from chromestore.ingest import ingest_signal_array, open_or_create
from chromestore.training import export as X
from chromestore.training import predict as P
from chromestore.training.config import TrainConfig
from chromestore.training.trainer import train
from tests.conftest import GENES_BED

RUN = "predict-dc"


@pytest.fixture(scope="module")
def trained(e003_store):
    """DeepChrome on E003's 200 training genes (random thirds over the 600 with signal)."""
    train(
        e003_store,
        RUN,
        ["E003"],
        TrainConfig(split="random", seed=0, epochs=30, split_over="signal"),
        mode="stacked",
        progress=False,
    )
    ds = chromestore.open_store(e003_store)
    has = np.isfinite(ds.signal.sel(cell="E003").isel(mark=0, bin=0).values)
    return e003_store, [str(g) for g in ds.gene.values[has]]


@pytest.fixture(scope="module")
def other(tmp_path_factory, trained):
    """The same 600 genes of another epigenome (E116, simulated signal, its real RPKM)."""
    path = tmp_path_factory.mktemp("other") / "e116.zarr"
    chromestore.simulate(path, cells=["E116"], genes=trained[1], seed=1)
    return path


def test_deepchrome_from_e003_reads_another_epigenomes_marks_better_than_e003s_labels(
    trained, other
):
    store, genes = trained
    model = P.from_run(store, RUN, from_cell="E003")
    scores = P.predict_store(other, model, ["E116"])
    truth = chromestore.compute_labels(chromestore.open_store(other)).label.sel(cell="E116")
    e003 = chromestore.compute_labels(chromestore.open_store(store).sel(gene=genes))
    guess = e003.label.sel(cell="E003").values
    auc_model = roc_auc_score(truth.values, scores.sel(cell="E116").values)
    auc_guess = roc_auc_score(truth.values, guess)
    print(f"E003 → E116: model AUROC {auc_model:.3f}, E003-label guess {auc_guess:.3f}")
    assert np.isfinite(scores.values).all()
    assert auc_model > auc_guess + 0.05
    assert auc_model > 0.8  # measured 0.844 (simulated E116 at its published difficulty)


def test_exported_model_reloads_and_gives_the_same_scores(trained, other, tmp_path):
    store, _ = trained
    out = X.export_model(store, RUN, tmp_path / "dc-E003", cell="E003")
    spec = json.loads((out / "model.json").read_text())
    assert spec["marks"] == list(chromestore.DEFAULT_MARKS)
    assert spec["n_bins"] == 100 and spec["bin_size"] == 100 and spec["window"] == 5000
    assert spec["training_cells"] == ["E003"] and spec["input_transform"] == "raw"
    assert not any(p.suffix in (".pt", ".pkl", ".joblib") for p in out.iterdir())
    loaded = chromestore.load_model(out)
    direct = P.predict_store(other, P.from_run(store, RUN, from_cell="E003"), ["E116"])
    again = loaded.predict(chromestore.open_store(other))
    np.testing.assert_allclose(again.values, direct.values, atol=1e-5)
    # marks are matched by name: a dataset with the marks reversed scores the same
    ds = chromestore.open_store(other)
    flipped = ds.isel(mark=slice(None, None, -1))
    np.testing.assert_allclose(loaded.predict(flipped).values, direct.values, atol=1e-5)


def test_load_model_names_a_missing_mark_a_bin_mismatch_and_a_newer_format(
    trained, other, tmp_path
):
    store, _ = trained
    out = X.export_model(store, RUN, tmp_path / "m", cell="E003")
    model = chromestore.load_model(out)
    ds = chromestore.open_store(other)
    with pytest.raises(P.PredictError, match="lacks mark.*H3K9me3"):
        model.predict(ds.drop_sel(mark="H3K9me3"))
    with pytest.raises(P.PredictError, match="bin layout mismatch"):
        model.predict(ds.isel(bin=slice(0, 50)))
    spec = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps({**spec, "format_version": 99}))
    with pytest.raises(X.ExportError, match="upgrade chromestore"):
        chromestore.load_model(out)


def test_predict_cli_scores_a_store_without_expression(trained, other, tmp_path):
    store, genes = trained
    bare = tmp_path / "bare.zarr"
    open_or_create(bare, GENES_BED)  # genes, no expression ingested
    sig = chromestore.open_store(other).signal.sel(cell="E116").load()
    ingest_signal_array(
        bare,
        "NEW1",
        xr.DataArray(
            sig.values,
            dims=sig.dims,
            coords={"gene": sig.gene.values, "mark": sig.mark.values, "bin": sig.bin.values},
        ),
    )
    assert np.isnan(chromestore.open_store(bare).expression.values).all()
    X.export_model(store, RUN, tmp_path / "dc", cell="E003")
    csv = tmp_path / "scores.csv"
    res = CliRunner().invoke(
        main,
        [
            "--workers",
            "0",
            "predict",
            str(bare),
            "--model-dir",
            str(tmp_path / "dc"),
            "--cells",
            "NEW1",
            "--output",
            str(csv),
        ],
    )
    assert res.exit_code == 0, res.output
    table = pd.read_csv(csv)
    assert list(table.columns) == ["cell", "gene", "score", "label"]
    assert sorted(table.gene) == sorted(genes)  # every gene with signal, no other
    assert (table.label == (table.score >= 0.5)).all()
    kept = chromestore.runs.open_predictions(bare, "dc")
    expected = P.predict_store(other, chromestore.load_model(tmp_path / "dc"), ["E116"])
    np.testing.assert_allclose(
        kept.sel(cell="NEW1", gene=genes).values,
        expected.sel(cell="E116", gene=genes).values,
        atol=1e-5,
    )


def test_predict_cli_with_a_run_writes_runs_predictions(trained, other):
    store, genes = trained
    res = CliRunner().invoke(
        main,
        [
            "--workers",
            "0",
            "predict",
            str(store),
            "--run",
            RUN,
            "--from-cell",
            "E003",
            "--cells",
            "E003",
        ],
    )
    assert res.exit_code == 0, res.output
    # its own epigenome: only the genes it was not fitted with, its test genes
    assert "E003: 200 genes scored by deepchrome from E003" in res.output
    assert "; 400 genes it was fitted with left out" in res.output
    kept = chromestore.runs.open_predictions(store, RUN).sel(cell="E003").values
    run = chromestore.open_run(store, RUN).load()
    test = run.split.values[0] == 2
    assert np.isfinite(kept[test]).all() and np.isnan(kept[~test]).all()
    stored = run.prediction.sel(model="deepchrome", cell="E003", repeat=0).values
    np.testing.assert_allclose(kept[test], stored[test], atol=2e-6)  # the run's own scores


def test_choosing_a_model_in_a_run_of_several_epigenomes_lists_them(tmp_path):
    path = tmp_path / "sim.zarr"
    chromestore.simulate(path, cells=["E003", "E004"], genes=120, seed=0)
    train(
        path,
        "two",
        ["E003", "E004"],
        TrainConfig(split="random", epochs=1),
        mode="stacked",
        progress=False,
    )
    with pytest.raises(
        P.PredictError, match="--from-cell.*deepchrome from E003, deepchrome from E004"
    ):
        P.from_run(path, "two")
    assert P.from_run(path, "two", from_cell="E004").train_cells == ["E004"]
