"""Models registered from outside the package train, analyse and report with no edit elsewhere.

A toy ``arrays`` model registered here (mean signal per mark → logistic regression, with
an extra variable, a metric and an option of its own), a plugin loaded through the
``chromestore.models`` entry-point group from a dist-info on ``sys.path``, and a tiny
torch network with no stacked implementation of its own.
"""

from __future__ import annotations

import json
import textwrap

import joblib
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
from chromestore.training.registry import ModelEntry, ModelMetric, ModelOption
from chromestore.training.scoring import auc


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


TOY = ModelEntry(
    "toy-mean",
    kind="arrays",
    fit_cell=toy_fit,
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
    saved = joblib.load(f"{store}.weights/toy/toy-mean/E004/0.joblib")
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
    help_text = runner.invoke(main, ["train", "--help"]).output
    section = help_text[help_text.index("Options of --model toy-mean") :]
    assert "--l2 FLOAT" in section and "--cell-stats" not in section
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


def test_register__rejects_an_extra_without_the_model_prefix():
    bad = ModelEntry(
        "toy-bad",
        kind="arrays",
        fit_cell=toy_fit,
        extras=(V.Spec("coef", (V.CELL,), "f", "float64", "x", required=False),),
    )
    with pytest.raises(ValueError, match="'coef' must start with 'toy_bad_'"):
        registry.register(bad)
    assert registry.find("toy-bad") is None


# --- a plugin through the chromestore.models entry-point group ----------------------------
PLUGIN = '''
    """A chromestore model plugin: logistic regression on each mark's mean signal."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from chromestore.training.registry import ModelEntry, ModelOption


    def mean_signal(signal):
        """(gene, mark, bin) → (gene, mark): log1p of each mark's mean over the bins."""
        return np.log1p(np.clip(signal, 0, None).mean(axis=2))


    ENTRY = ModelEntry(
        "logistic-mean", LogisticRegression, kind="arrays", features=mean_signal,
        defaults={"C": 1.0, "max_iter": 1000},
        paper="logistic regression on each mark's mean signal",
        options=(ModelOption("--max-iter", "Iterations of the lbfgs solver.", type="int"),),
    )
'''


@pytest.fixture
def fresh_registry():
    """The registry as on first use (built-ins and plugins not yet loaded); restored after."""
    saved, loaded = dict(registry._REGISTRY), registry._loaded
    registry._REGISTRY.clear()
    registry._loaded = False
    yield registry
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    registry._loaded = loaded


def _install_plugin(root, entry_points: str) -> None:
    (root / "chromestore_logistic_mean.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "chromestore_logistic_mean-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: chromestore-logistic-mean\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_plugin__loads_from_the_entry_point_group_and_trains(
    fresh_registry, tmp_path, monkeypatch, store
):
    _install_plugin(
        tmp_path,
        """
        [chromestore.models]
        logistic-mean = chromestore_logistic_mean:ENTRY
        broken = chromestore_no_such_module:ENTRY
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(registry.PluginWarning, match="plugin 'broken'.*ModuleNotFoundError"):
        entry = registry.get("logistic-mean")  # the first lookup loads built-ins and plugins
    assert entry.kind == "arrays" and "deepchrome" in registry.names()
    assert "broken" not in registry.names()
    res = CliRunner().invoke(
        main,
        [
            "train",
            store,
            "--model",
            "logistic-mean",
            "--split",
            "random",
            "--max-iter",
            "500",
            "--run",
            "plugin",
        ],
    )
    assert res.exit_code == 0, res.output
    run = chromestore.open_run(store, "plugin").load()
    assert run.attrs["models"]["logistic-mean"]["max_iter"] == 500
    for cell in ("E003", "E004"):
        assert _test_auc(run, "logistic-mean", cell) > 0.55  # E004 measured 0.60


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
    registry.register("tiny-cnn", TinyCNN, kind="torch", defaults={"width": 4, "dropout": 0.2})
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
        saved = torch.load(f"{store}.weights/tiny/tiny-cnn/E003/0.pt", weights_only=True)
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
