"""A second plugin written from the README alone: gradient boosting on per-mark read sums.

``tests/training/plugin_hgb_sums.py``, installed as the package ``chromestore-hgb-sums``
(entry point ``hgb-sums``), with options spelled ``--max-iter`` and ``--C``: it trains,
analyses, reports, predicts, pools, and is refused export with the reason the README gives;
``chromestore train --help`` lists it without importing it, torch or scikit-learn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

import chromestore
from chromestore import variables as V
from chromestore.app.cli import main
from tests.training.conftest import hgb_plugin

ROOT = Path(__file__).resolve().parents[2]
CELLS = "E003,E004,E116"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("hgb") / "s.zarr")
    chromestore.simulate(path, cells=CELLS.split(","), genes=256, seed=3, gene_chunk=64)
    return path


def cli(*args: str, code: int = 0) -> str:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == code, res.output
    return res.output


def words(text: str) -> str:
    return " ".join(text.split())


def test_hgb_plugin__trains_analyses_reports_predicts_and_is_refused_export(
    install, store, tmp_path
):
    install(writer=hgb_plugin)
    out = cli("train", store, "--model", "hgb-sums", "--split", "random", "--run", "hgb",
              "--max-iter", "40", "--C", "0.5")  # fmt: skip
    assert "run hgb: hgb-sums on 3 epigenome(s)" in out
    run = chromestore.open_run(store, "hgb").load()
    assert run.attrs["models"]["hgb-sums"]["max_iter"] == 40
    assert run.attrs["models"]["hgb-sums"]["C"] == 0.5
    # --C reached the factory as C: the trees' L2 penalty is 1 / C
    fitted = joblib.load(f"{store}.weights/hgb/hgb-sums/E004/0.joblib")
    assert (fitted.max_iter, fitted.l2_regularization, fitted.random_state) == (40, 2.0, 0)
    # the features saw the layout: bins 40..59 are the ±1 kb of 100 bins of 100 bp
    signal = np.clip(chromestore.open_store(store).signal.sel(cell="E004").values, 0, None)
    near = np.log1p(signal[:, :, 40:60].sum(2))
    rest = np.log1p(signal.sum(2) - signal[:, :, 40:60].sum(2))
    np.testing.assert_allclose(
        fitted.predict_proba(np.concatenate([near, rest], 1))[:, 1],
        run.prediction.sel(model="hgb-sums", cell="E004", repeat=0),
        rtol=1e-5,
    )

    report = tmp_path / "report"
    out = cli("analyze", store, "--run", "hgb", "--no-interpret", "--report", str(report))
    recs = json.loads((report / "data" / "metrics.json").read_text())
    assert {r["model"] for r in recs} == {"hgb-sums"} and len(recs) == 3
    for r in recs:
        y = run.target.sel(cell=r["cell"]).values
        p = run.prediction.sel(model="hgb-sums", cell=r["cell"]).isel(repeat=0).values
        keep = (run.split.values[0] == V.TEST) & np.isfinite(y) & np.isfinite(p)
        assert r["auroc"] == pytest.approx(roc_auc_score(y[keep], p[keep]), abs=1e-6)
        assert r["auroc"] > 0.65
    assert "hgb-sums" in (report / "index.html").read_text()

    table = tmp_path / "e116.csv"
    out = cli("predict", store, "--run", "hgb", "--from-cell", "E003", "--cells", "E116",
              "--output", str(table))  # fmt: skip
    assert "E116: 256 genes scored by hgb-sums from E003" in out
    scores = pd.read_csv(table)
    truth = chromestore.compute_labels(chromestore.open_store(store)).label.sel(cell="E116")
    y = truth.sel(gene=scores.gene.values).values.astype(int)
    assert scores.score.between(0, 1).all() and roc_auc_score(y, scores.score) > 0.65

    out = cli("export", store, "--run", "hgb", "--cell", "E003", "--out",
              str(tmp_path / "hgb-E003"), code=1)  # fmt: skip
    reason = (
        "which export cannot write without pickle: its registry entry gives no "
        "export=ArrayCodec(to_arrays, from_arrays) to write them as arrays"
    )
    assert "error: model 'hgb-sums' keeps its weights as sklearn.ensemble." in out
    assert reason in words(out) and reason in words((ROOT / "README.md").read_text())
    assert not (tmp_path / "hgb-E003").exists()


def test_hgb_plugin__is_pooled_with_its_own_options(install, store):
    install(writer=hgb_plugin)
    help_text = words(cli("train", "--model", "pooled", "--help"))
    assert "attentivechrome, hgb-sums (plugin)." in help_text
    help_text = cli("train", "--model", "pooled", "--pool", "hgb-sums", "--help")
    section = help_text[help_text.index("Options of --model hgb-sums") :]
    assert "--max-iter INTEGER" in section and "--C FLOAT" in section
    out = cli("train", store, "--model", "pooled", "--pool", "hgb-sums", "--cells", "E003,E004",
              "--test-cells", "E116", "--split", "random", "--max-iter", "30", "--C", "2",
              "--run", "hgbp")  # fmt: skip
    assert "run hgbp: hgb-sums-pooled over 2 epigenome(s)" in out
    run = chromestore.open_run(store, "hgbp")
    info = run.attrs["models"]["hgb-sums-pooled"]
    assert (info["max_iter"], info["C"], info["base_model"]) == (30, 2.0, "hgb-sums")
    aurocs = [float(line.rsplit(": ", 1)[1]) for line in out.splitlines() if "E1" in line]
    assert len(aurocs) == 1 and aurocs[0] > 0.65  # E116, never trained on
    out = cli("predict", store, "--run", "hgbp", "--cells", "E116")
    assert "E116: 256 genes scored by hgb-sums from E003+E004" in out
    # another model's own options are refused, naming whose they are
    out = cli("train", store, "--model", "pooled", "--pool", "hgb-sums", "--cell-stats",
              "--run", "x", code=2)  # fmt: skip
    assert (
        "--cell-stats is an option of --model deepchrome-regression, not of --model pooled "
        "with --pool hgb-sums" in words(out)
    )


HELP_IMPORTS = """
import sys, time
from chromestore.app.cli import main
t0 = time.perf_counter()
try:
    main(["train", "--help"])
except SystemExit:
    pass
print("seconds", time.perf_counter() - t0)
print("imported", [m for m in ("torch", "sklearn", "chromestore_hgb_sums") if m in sys.modules])
"""


@pytest.mark.parametrize("with_plugin", [False, True])
def test_train_help__imports_neither_torch_nor_sklearn_nor_a_plugin(tmp_path, with_plugin):
    env = dict(os.environ)
    if with_plugin:
        env["PYTHONPATH"] = str(hgb_plugin(tmp_path))
    res = subprocess.run(
        [sys.executable, "-c", HELP_IMPORTS], capture_output=True, text=True, env=env, check=True
    )
    assert "imported []" in res.stdout, res.stdout
    listed = "hgb-sums plugin chromestore-hgb-sums 0.1: gradient boosting on per-mark read sums"
    assert (listed in words(res.stdout)) is with_plugin
    assert "deepchrome torch: CNN on marks × bins" in words(res.stdout)
