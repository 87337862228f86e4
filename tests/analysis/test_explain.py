"""`chromestore explain` on a simulated gene: ShallowChrome's pattern from a test-split repeat."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import chromestore
from chromestore import variables as V
from chromestore.app.cli import main as cli_main

CELLS = ["E003", "E116", "E123"]


@pytest.fixture(scope="module")
def peer_store(tmp_path_factory):
    from chromestore.training.peers.execute import run_peers

    path = str(tmp_path_factory.mktemp("explain") / "sim.zarr")
    chromestore.simulate(path, cells=",".join(CELLS), genes=300, seed=3)
    run = run_peers(path, "peers", ["shallowchrome"], split_scheme="random:2", seed=0)
    return path, run


@pytest.fixture(scope="module")
def cnn_store(peer_store):
    """The same store with DeepChrome trained (2 epochs) on the same splits, run ``dc``."""
    from chromestore.training.trainer import TrainConfig, train

    path, _ = peer_store
    train(
        path,
        "dc",
        ",".join(CELLS),
        TrainConfig(split="random:2", seed=0, epochs=2),
        mode="stacked",
        progress=False,
    )
    return path


def _gene_tested_in_repeat1_only(run) -> str:
    split = run.split.values
    idx = np.flatnonzero((split[0] != V.TEST) & (split[1] == V.TEST))
    return str(run.gene.values[idx[0]])


def test_explain__pattern_is_coef_times_feature_from_test_repeat(peer_store):
    from chromestore.analysis.analyze import open_runs
    from chromestore.analysis.explain import explain_gene

    path, _ = peer_store
    run = open_runs(path, ["peers"]).load()
    key = _gene_tested_in_repeat1_only(run)
    symbol = key.split("_", 1)[1]
    exp = explain_gene(path, run, symbol, CELLS, names=["peers"])
    assert exp["gene"] == key and [c["cell"] for c in exp["cells"]] == CELLS
    for c in exp["cells"]:
        sc = c["shallowchrome"]
        assert sc["repeat"] == 1  # the only repeat in which the gene was a test gene
        coef = run.shallowchrome_coef.sel(cell=c["cell"], repeat=1).values
        feat = run.shallowchrome_feature.sel(cell=c["cell"], gene=key).values
        np.testing.assert_allclose([sc["pattern"][m] for m in exp["marks"]], coef * feat, rtol=1e-5)
        # ShallowChrome's pattern + bias is the gene's log-odds of high expression
        log_odds = sum(sc["pattern"].values()) + sc["bias"]
        assert 1 / (1 + np.exp(-log_odds)) == pytest.approx(sc["probability"], abs=1e-5)
        assert c["label"] == int(run.target.sel(cell=c["cell"], gene=key))
        assert c["integrated_gradients"] is None  # no CNN in this run


def test_explain__cli_text_json_and_plot(peer_store, tmp_path):
    path, run = peer_store
    key = _gene_tested_in_repeat1_only(run)
    runner = CliRunner()
    res = runner.invoke(
        cli_main,
        [
            "explain",
            path,
            "--run",
            "peers",
            "--gene",
            key,
            "--cells",
            "E003,E123",
            "--plot",
            str(tmp_path / "g.png"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "ShallowChrome (repeat 1, test gene)" in res.output
    assert res.output.count("H3K4me3") == 2 and (tmp_path / "g.png").stat().st_size > 10_000
    # the file is the report's figure of that explanation, as PNG bytes from the library
    import base64

    from chromestore.analysis import figures
    from chromestore.analysis.analyze import open_runs
    from chromestore.analysis.explain import explain_gene

    exp = explain_gene(path, open_runs(path, ["peers"]), key, ["E003", "E123"], names=["peers"])
    png = (tmp_path / "g.png").read_bytes()
    assert png.startswith(b"\x89PNG") and png == figures.explained_png(exp)
    assert png == base64.b64decode(figures.fig_explained(exp).split(",", 1)[1])
    res = runner.invoke(
        cli_main,
        ["explain", path, "--run", "peers", "--gene", key, "--cells", "E116", "--format", "json"],
    )
    assert res.exit_code == 0, res.output
    exp = json.loads(res.output.strip().splitlines()[-1])
    assert exp["cells"][0]["shallowchrome"]["repeat"] == 1
    res = runner.invoke(
        cli_main, ["explain", path, "--run", "peers", "--gene", key, "--cells", "E999"]
    )
    assert res.exit_code == 1 and "E999" in res.output


def test_analyze__cli_table_json_and_stored_metrics(peer_store, tmp_path):
    from chromestore.analysis.metrics import read_metrics

    path, run = peer_store
    res = CliRunner().invoke(cli_main, ["analyze", path, "--run", "peers", "--format", "json"])
    assert res.exit_code == 0, res.output
    recs = json.loads(res.output[res.output.index("[") :])
    assert len(recs) == 3 and {r["model"] for r in recs} == {"shallowchrome"}
    stored = read_metrics(path, "peers")
    e003 = next(r for r in recs if r["cell"] == "E003")
    assert e003["auroc"] == pytest.approx(
        float(stored.stat_auroc.sel(model="shallowchrome", cell="E003").mean()), abs=1e-6
    )
    # simulated signal: accuracy is never set against DeepChrome's published AUC
    assert "published_auc" not in e003 and stored.attrs["signal"] == "simulated"
    res = CliRunner().invoke(cli_main, ["analyze", path, "--run", "peers"])
    assert res.exit_code == 0 and "shallowchrome    mean" in res.output


def test_explain__cnn_integrated_gradients_of_the_test_repeat_model(cnn_store):
    from chromestore.analysis import cnn, interpret
    from chromestore.analysis.analyze import open_runs
    from chromestore.analysis.explain import explain_gene

    run = open_runs(cnn_store, ["dc", "peers"]).load()
    key = _gene_tested_in_repeat1_only(run)
    exp = explain_gene(cnn_store, run, key, ["E116"], names=["dc", "peers"], ig_steps=128)
    c = exp["cells"][0]
    assert c["deepchrome_repeat"] == 1 and c["shallowchrome"]["repeat"] == 1
    ig = np.asarray(c["integrated_gradients"])
    assert ig.shape == (5, 100)
    # the stored prediction is this model's softmax: the right weights were loaded
    assert 1 / (1 + np.exp(-c["deepchrome_margin"])) == pytest.approx(
        c["deepchrome_probability"], abs=1e-4
    )
    # completeness: attributions add up to margin(x) - margin(zero signal)
    net, transform = cnn.load_cnn(cnn_store, "dc", "deepchrome", "E116", 1)
    zero = float(interpret.margin(net, np.zeros((1, 5, 100), np.float32))[0])
    assert ig.sum() == pytest.approx(c["deepchrome_margin"] - zero, abs=2e-2 + 1e-2 * abs(zero))


def test_analyze__interprets_the_stored_cnns(cnn_store):
    from chromestore.analysis.analyze import analyze_run

    _, out = analyze_run(
        cnn_store, ["dc", "peers"], interpret_options={"steps": 60, "ig_steps": 8, "max_genes": 40}
    )
    assert out.classopt_map.dims == ("cell", "class", "mark", "bin")
    assert out.classopt_map.shape == (3, 2, 5, 100)
    assert float(out.classopt_map.max()) == pytest.approx(1.0)  # each map scaled to max 1
    assert (out.classopt_active_bins.values == (out.classopt_map.values > 0.25).sum(-1)).all()
    assert int(
        out.classopt_pair_count.sel({"class": "high", "mark": "H3K4me3", "mark2": "H3K4me3"})
    ) == int(out.classopt_flagged.sel({"class": "high", "mark": "H3K4me3"}).sum())
    assert np.isfinite(out.integrated_gradients.values).all()
    assert set(map(str, out.model.values)) == {"deepchrome", "shallowchrome"}
