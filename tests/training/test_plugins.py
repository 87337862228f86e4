"""Models registered from outside the package train, analyse and report with no edit elsewhere.

A toy ``arrays`` model registered here (mean signal per mark → logistic regression, with
an extra variable, a metric and an option of its own); the README's plugin, installed from
the README's own text through the ``chromestore.models`` entry-point group (trained,
predicted, exported); the rules an entry is checked against when it is made; and a tiny
torch network with no stacked implementation of its own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch import nn

import chromestore
from chromestore import variables as V
from chromestore.app.cli import main
from chromestore.training import registry
from chromestore.training import weights as W
from chromestore.training.entry import (
    ArraysModel,
    EntryError,
    Estimator,
    ModelMetric,
    ModelOption,
    TorchModel,
)
from chromestore.training.scoring import auc
from tests.training.conftest import write_plugin

ROOT = Path(__file__).resolve().parents[2]


# --- a toy model, registered from this test module --------------------------------------
def mean_features(signal: np.ndarray) -> np.ndarray:
    return np.log1p(np.clip(signal, 0, None).mean(axis=2))


def toy_fit(data, hp: dict, seed: int) -> dict:
    """Mean signal per mark → logistic regression; each bin's test AUC as an extra."""
    X = mean_features(data.signal)
    out = {k: [] for k in ("prediction", "valid_auc", "weights", "coef", "bin_auc")}
    for split in data.split:
        tr, va, te = (split == code for code in (V.TRAIN, V.VALID, V.TEST))
        model = LogisticRegression(C=1.0 / hp["l2"]).fit(X[tr], data.y[tr])
        p = model.predict_proba(X)[:, 1]
        out["prediction"].append(p)
        out["valid_auc"].append(auc(data.y[va], p[va]))
        out["weights"].append(model)
        out["coef"].append(model.coef_[0])
        out["bin_auc"].append(
            [auc(data.y[te], data.signal[te, :, b].sum(1)) for b in range(data.signal.shape[2])]
        )
    return out


def toy_curve(run):
    if "toy_mean_bin_auc" not in run:
        return None
    return run["toy_mean_bin_auc"].mean([V.CELL, V.REPEAT]).astype(np.float64)


TOY = ArraysModel(
    "toy-mean",
    toy_fit,
    defaults={"l2": 1.0},
    paper="a test's toy: mean signal per mark, logistic regression",
    extras=(
        V.Spec(
            "toy_mean_coef",
            (V.CELL, V.REPEAT, V.MARK),
            "f",
            "float64",
            "Logistic coefficient of each mark's mean signal.",
            required=False,
        ),
        V.Spec(
            "toy_mean_bin_auc",
            (V.CELL, V.REPEAT, V.BIN),
            "f",
            "float32",
            "Test AUC of each bin's summed signal.",
            required=False,
        ),
    ),
    options=(ModelOption("--l2", "Inverse of the logistic regression's C.", type="float"),),
    metrics=(
        ModelMetric(
            "toy_mean_auc_curve",
            toy_curve,
            "Test AUC of each bin's summed signal, averaged over epigenomes.",
            plot="profile",
            title="toy-mean: AUROC of each bin's signal",
            label="test AUROC",
        ),
    ),
)


@pytest.fixture
def toy():
    registry.register(TOY)
    yield TOY
    registry.unregister(TOY.name)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("plugins") / "s.zarr")
    chromestore.simulate(path, cells=2, genes=192, seed=2, gene_chunk=64)
    return path


def _test_auc(run, model: str, cell: str) -> float:
    y = run.target.sel(cell=cell).values
    p = run.prediction.sel(model=model, cell=cell).isel(repeat=0).values
    keep = (run.split.values[0] == V.TEST) & np.isfinite(y) & np.isfinite(p)
    return roc_auc_score(y[keep].astype(int), p[keep])


def test_toy_model__trains_analyses_and_reports_through_the_cli(toy, store, tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        main, ["train", store, "--model", "toy-mean", "--split", "random", "--run", "toy"]
    )
    assert res.exit_code == 0, res.output
    assert "run toy: toy-mean on 2 epigenome(s)" in res.output
    run = chromestore.open_run(store, "toy").load()
    assert run.attrs["models"]["toy-mean"]["l2"] == 1.0
    # the extra holds the fit: the coefficients of a regression refitted here
    ds = chromestore.assign_splits(
        chromestore.compute_labels(chromestore.open_store(store)), "random", seed=0
    )
    X = mean_features(ds.signal.sel(cell="E004").values)
    tr = ds.split.values[0] == V.TRAIN
    ref = LogisticRegression().fit(X[tr], ds.label.sel(cell="E004").values[tr].astype(int))
    np.testing.assert_allclose(
        run.toy_mean_coef.sel(cell="E004", repeat=0), ref.coef_[0], rtol=1e-6
    )
    saved = W.load_weights(store, "toy", "toy-mean", "E004", 0, registry.get("toy-mean"))
    np.testing.assert_allclose(
        saved.predict_proba(X)[:, 1],
        run.prediction.sel(model="toy-mean", cell="E004", repeat=0),
        rtol=1e-5,
    )

    report = tmp_path / "report"
    res = runner.invoke(
        main, ["analyze", store, "--run", "toy", "--no-interpret", "--report", str(report)]
    )
    assert res.exit_code == 0, res.output
    assert "toy-mean         mean        2" in res.output
    recs = json.loads((report / "data" / "metrics.json").read_text())
    assert {r["model"] for r in recs} == {"toy-mean"}
    for r in recs:
        assert r["auroc"] == pytest.approx(_test_auc(run, "toy-mean", r["cell"]), abs=1e-6)
        assert r["auroc"] > 0.55  # the simulated marks carry the signal (E004: 0.60)
    curve = pd.read_csv(report / "data" / "toy_mean_auc_curve.csv")
    np.testing.assert_allclose(
        curve.toy_mean_auc_curve, run.toy_mean_bin_auc.mean(["cell", "repeat"]), rtol=1e-6
    )
    page = (report / "index.html").read_text()
    assert "toy-mean: AUROC of each bin" in page and page.count("<img ") == 3
    mean_auc = np.mean([r["auroc"] for r in recs])
    assert f"toy-mean<b>{mean_auc:.3f}</b>" in page


def test_toy_model__own_option_sets_its_hyper_parameter_and_is_listed_under_it(toy, store):
    runner = CliRunner()
    help_text = runner.invoke(main, ["train", "--model", "toy-mean", "--help"]).output
    section = help_text[help_text.index("Options of --model toy-mean") :]
    assert "--l2 FLOAT" in section and "--cell-stats" not in section
    assert "toy-mean" in runner.invoke(main, ["train", "--help"]).output  # listed
    res = runner.invoke(
        main,
        [
            "train",
            store,
            "--model",
            "toy-mean",
            "--cells",
            "E003",
            "--split",
            "random",
            "--l2",
            "1e6",
            "--run",
            "strong",
        ],
    )
    assert res.exit_code == 0, res.output
    run = chromestore.open_run(store, "strong")
    assert run.attrs["models"]["toy-mean"]["l2"] == 1e6
    assert np.abs(run.toy_mean_coef.values).max() < 1e-3  # shrunk to nearly nothing
    res = runner.invoke(
        main, ["train", store, "--model", "toy-mean", "--cell-stats", "--run", "bad"]
    )
    assert res.exit_code == 2
    assert "--cell-stats is an option of --model deepchrome-regression" in res.output


def test_entry__rejects_an_extra_without_the_model_prefix():
    with pytest.raises(EntryError, match="'coef' must start with 'toy_bad_'"):
        ArraysModel(
            "toy-bad",
            toy_fit,
            extras=(V.Spec("coef", (V.CELL,), "f", "float64", "x", required=False),),
        )
    assert registry.find("toy-bad") is None


# --- option names as written, and the rules an entry is checked against when made --------
def test_option__reaches_the_model_under_the_name_written():
    assert ModelOption("--C", "c").dest == "C"
    assert ModelOption("--max-iter", "m").dest == "max_iter"
    for bad in ("C", "-C", "--2nd", "--max iter", "--class"):
        with pytest.raises(EntryError, match="write it as '--'"):
            ModelOption(bad, "x")


def test_entry__refuses_an_option_the_factory_would_not_take():
    from sklearn.linear_model import LogisticRegression

    # the trap of the issue: --c reached LogisticRegression as c and failed inside the task
    with pytest.raises(EntryError, match="LogisticRegression takes no keyword 'c'.*takes: .*C"):
        ArraysModel(
            "lr-c",
            Estimator(LogisticRegression),
            defaults={"c": 1.0},
            options=(ModelOption("--c", "x", type="float"),),
        )
    with pytest.raises(EntryError, match="option --C sets hyper-parameter 'C', which is not"):
        ArraysModel(
            "lr-no-default",
            Estimator(LogisticRegression),
            options=(ModelOption("--C", "x", type="float"),),
        )
    with pytest.raises(EntryError, match="TinyCNN takes no keyword 'depth'"):
        TorchModel("tiny-deep", TinyCNN, defaults={"depth": 3})
    ok = ArraysModel(
        "lr-ok",
        Estimator(LogisticRegression),
        defaults={"C": 1.0},
        options=(ModelOption("--C", "x", type="float"),),
    )
    assert ok.fit.factory(**ok.defaults).C == 1.0


# --- the README's plugin, installed from the README's own text ----------------------------
def readme_plugin() -> str:
    """The plugin module of the README's "Adding a model"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Adding a model") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def install_readme_plugin(install, extra_entry_points: str = "") -> Path:
    return install(
        module="chromestore_logistic_mean",
        source=readme_plugin(),
        package="chromestore-logistic-mean",
        summary="logistic regression on each mark's mean signal near the TSS",
        entry_points="[chromestore.models]\nlogistic-mean = chromestore_logistic_mean:ENTRY\n"
        + extra_entry_points,
    )


def test_readme_plugin__trains_with_its_options_predicts_and_exports(
    install, store, tmp_path, monkeypatch
):
    site = install_readme_plugin(install)
    assert "chromestore_logistic_mean" not in sys.modules  # listed, not imported
    listing = registry.source("logistic-mean")
    assert (listing.package, listing.kind) == ("chromestore-logistic-mean", None)
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--help"])
    words = " ".join(res.output.split())
    assert "logistic-mean plugin chromestore-logistic-mean 0.1: logistic regression on" in words
    assert "chromestore_logistic_mean" not in sys.modules
    res = runner.invoke(main, ["train", "--model", "logistic-mean", "--help"])
    assert "--C FLOAT" in res.output and "--max-iter INTEGER" in res.output
    args = ["train", store, "--model", "logistic-mean", "--split", "random", "--run", "lm"]
    res = runner.invoke(main, [*args, "--C", "0.5", "--max-iter", "500"])
    assert res.exit_code == 0, res.output
    run = chromestore.open_run(store, "lm").load()
    assert run.attrs["models"]["logistic-mean"] == {
        "paper": registry.get("logistic-mean").paper,
        "C": 0.5,
        "max_iter": 500,
    }
    assert run.attrs["versions"]["chromestore-logistic-mean"] == "0.1"  # the plugin's package
    # the simulated marks carry the signal: measured E003 0.86, E004 0.55 (64 test genes)
    aucs = {cell: _test_auc(run, "logistic-mean", cell) for cell in ("E003", "E004")}
    assert aucs["E003"] > 0.8 and aucs["E004"] > 0.5, aucs
    # the features saw the layout: each mark's mean over the 40 bins within 2 kb
    module = sys.modules["chromestore_logistic_mean"]
    saved = W.load_weights(store, "lm", "logistic-mean", "E004", 0, registry.get("logistic-mean"))
    signal = chromestore.open_store(store).signal.sel(cell="E004").values
    X = np.log1p(np.clip(signal[:, :, 30:70], 0, None).mean(axis=2))
    np.testing.assert_allclose(
        saved.predict_proba(X)[:, 1],
        run.prediction.sel(model="logistic-mean", cell="E004", repeat=0),
        rtol=1e-5,
    )
    assert module.ENTRY is registry.get("logistic-mean")  # kept by its own ArrayCodec
    # predict from the run, export, load the folder: the same scores
    out = tmp_path / "lm-E004"
    res = runner.invoke(main, ["export", store, "--run", "lm", "--cell", "E004", "--out", str(out)])
    assert res.exit_code == 0, res.output
    spec = json.loads((out / "model.json").read_text())
    assert spec["plugin"] == {
        "package": "chromestore-logistic-mean",
        "version": "0.1",
        "entry_point": "logistic-mean = chromestore_logistic_mean:ENTRY",
    }
    readme = (out / "README.md").read_text()
    assert "plugin package `chromestore-logistic-mean`" in readme
    assert "pip install chromestore-logistic-mean" in readme
    from chromestore.training import export as X
    from chromestore.training import predict as P

    direct = P.predict_store(store, P.from_run(store, "lm", from_cell="E004"), ["E003"])
    again = chromestore.load_model(out).predict(chromestore.open_store(store).sel(cell=["E003"]))
    np.testing.assert_allclose(again.values, direct.values, atol=1e-6)
    assert np.isfinite(direct.values).sum() > 150
    # where the plugin is not installed, the folder says which package to install
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])
    registry._listed, registry._entries = None, {}
    with pytest.raises(X.ExportError, match="comes from the plugin package chromestore-logistic"
                       "-mean 0.1: pip install chromestore-logistic-mean"):  # fmt: skip
        chromestore.load_model(out)


def test_listing__reads_the_entry_points_importlib_metadata_finds(install, tmp_path, monkeypatch):
    from importlib.metadata import entry_points

    install_readme_plugin(install, "second = chromestore_logistic_mean:ENTRY\n")
    egg = tmp_path / "eggs" / "chromestore_egg_model.egg-info"  # a setuptools develop install
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.2\nName: chromestore-egg-model\n"
                                  "Version: 2.0\nSummary: an egg\n\nBody: not a header\n")  # fmt: skip
    (egg / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n[chromestore.models]\n"
                                          "egg-model = chromestore_egg_model:ENTRY\n")  # fmt: skip
    shadowed = tmp_path / "later"  # the same distribution again, later on sys.path: not read
    shadowed.mkdir()
    write_plugin(shadowed, "chromestore_logistic_mean", "", package="chromestore-logistic-mean",
                 summary="shadowed", entry_points="[chromestore.models]\nold = x:y\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path / "eggs"))
    monkeypatch.setattr(sys, "path", [*sys.path, str(shadowed)])
    expected = sorted(
        (ep.name, ep.value, ep.dist.metadata["Name"], ep.dist.version, ep.dist.metadata["Summary"])
        for ep in entry_points(group=registry.GROUP)
    )
    found = sorted((p.name, p.target, p.package, p.version, p.summary) for p in registry._plugins())
    assert found == expected
    assert [f[0] for f in found] == ["egg-model", "logistic-mean", "second"]


def test_a_broken_plugin__warns_once_on_one_line_and_its_use_names_the_cause(install):
    install_readme_plugin(
        install,
        "broken = chromestore_no_such_module:ENTRY\n"
        "not-an-entry = chromestore_logistic_mean:mean_signal\n",
    )
    assert "broken" in registry.names()  # listed from its entry point, not imported yet
    with pytest.warns(registry.PluginWarning) as warned:
        with pytest.raises(
            KeyError,
            match="plugin chromestore-logistic-mean .*did not load: "
            "ModuleNotFoundError: No module named 'chromestore_no_such_module'",
        ):
            registry.get("broken")
        assert registry.find("broken") is None  # no second warning
        assert "logistic-mean" in [e.name for e in registry.entries()]
    assert [str(w.message).count("\n") for w in warned] == [0, 0]
    assert "'broken'" in str(warned[0].message) and "'not-an-entry'" in str(warned[1].message)
    assert "is a function, not a model entry" in str(warned[1].message)
    res = CliRunner().invoke(main, ["train", "s.zarr", "--model", "broken", "--run", "x"])
    assert res.exit_code == 2
    assert "unknown model 'broken': its plugin chromestore-logistic-mean" in res.output
    assert "ModuleNotFoundError: No module named 'chromestore_no_such_module'" in res.output


def test_a_broken_plugin__prints_one_warning_line_from_the_command(tmp_path):
    site = write_plugin(
        tmp_path,
        "chromestore_broken",
        "raise ImportError('needs a library that is not installed')\n",
        package="chromestore-broken",
        summary="a plugin that does not import",
        entry_points="[chromestore.models]\nbroken = chromestore_broken:ENTRY\n",
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    cli = [sys.executable, "-m", "chromestore", "train", "s.zarr", "--model", "broken"]
    res = subprocess.run([*cli, "--run", "x"], capture_output=True, text=True, env=env)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[0] == (
        "<entry point chromestore.models>:0: PluginWarning: chromestore model plugin 'broken' "
        "(chromestore-broken: chromestore_broken:ENTRY) was not loaded: ImportError: needs a "
        "library that is not installed"
    )
    assert lines[-1].startswith("Error: unknown model 'broken': its plugin chromestore-broken")
    assert lines[-1].endswith("did not load: ImportError: needs a library that is not installed")
    assert len([line for line in lines if "PluginWarning" in line]) == 1


# --- a torch network with no stacked implementation ---------------------------------------
class TinyCNN(nn.Module):
    def __init__(
        self, n_marks: int = 5, n_bins: int = 100, width: int = 4, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_marks, width, 5)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, 2)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.conv(torch.log1p(x))).mean(-1)))


def test_stacked_modules__evaluate_each_model_as_it_is():
    from chromestore.training.stacking import StackedModules

    torch.manual_seed(0)
    models = [TinyCNN().eval() for _ in range(3)]
    x = torch.rand(3, 8, 5, 100) * 5
    stacked = StackedModules(models).eval()
    torch.testing.assert_close(stacked(x), torch.stack([m(x[i]) for i, m in enumerate(models)]))
    back = TinyCNN()
    back.load_state_dict(stacked.state_dict_of(1))
    torch.testing.assert_close(back.eval()(x[1]), models[1](x[1]))


def test_torch_plugin__without_a_stacked_module_trains_with_the_trainer(store):
    registry.register(TorchModel("tiny-cnn", TinyCNN, defaults={"width": 4, "dropout": 0.2}))
    try:
        res = CliRunner().invoke(
            main,
            [
                "train",
                store,
                "--model",
                "tiny-cnn",
                "--split",
                "random",
                "--epochs",
                "3",
                "--batch-size",
                "32",
                "--lr",
                "0.01",
                "--run",
                "tiny",
            ],
        )
        assert res.exit_code == 0, res.output
        run = chromestore.open_run(store, "tiny").load()
        assert np.isfinite(run.history_loss.values).all()
        saved = W.load_weights(store, "tiny", "tiny-cnn", "E003", 0)
        net = TinyCNN(width=saved["hparams"]["width"]).eval()
        net.load_state_dict(saved["state_dict"])
        ds = chromestore.open_store(store)
        test = np.flatnonzero(run.split.values[0] == V.TEST)[:5]
        x = torch.from_numpy(ds.signal.sel(cell="E003").isel(gene=test).values)
        np.testing.assert_allclose(
            torch.softmax(net(x), -1)[:, 1].detach().numpy(),
            run.prediction.sel(model="tiny-cnn", cell="E003", repeat=0).values[test],
            rtol=1e-4,
        )
    finally:
        registry.unregister("tiny-cnn")
