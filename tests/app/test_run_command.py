"""`chromestore run` end to end on a small size (slow: trains every model twice)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

MODELS = {"deepchrome", "shallowchrome", "svm-bin", "rf-bestbin"}


def test_run__real_e003_and_simulated_reports_show_every_model(tmp_path):
    from chromestore.analysis.workflow import RunConfig, run_all
    from chromestore.app.cluster import connect

    cfg = RunConfig(
        store=str(tmp_path / "sim.zarr"),
        report=str(tmp_path / "report"),
        cells="E003,E116,E123",
        genes=300,
        epochs=2,
        progress=False,
        interpret={"steps": 30, "ig_steps": 8, "max_genes": 30},
    )
    with connect(workers=2, quiet=True) as client:
        text = run_all(cfg, client=client)
    assert text.count("report: ") == 2
    for model in MODELS:
        assert f"{model:<16} mean        3" in text  # 3 simulated epigenomes per model
        assert f"{model:<16} mean        1" in text  # the real E003 sample
    e003 = tmp_path / "report" / "e003"
    recs = json.loads((e003 / "data" / "metrics.json").read_text())
    assert {r["model"] for r in recs} == MODELS
    assert all(r["n_test"] == 200 for r in recs)  # random thirds of the 600 real genes
    explained = json.loads((e003 / "data" / "explained_genes.json").read_text())
    cell = explained[0]["cells"][0]
    assert cell["shallowchrome"] is not None and cell["integrated_gradients"] is not None
    page = (tmp_path / "report" / "index.html").read_text()
    assert page.count("<img ") >= 8
    assert "Cross- against within-epigenome AUROC" in page
    table = (tmp_path / "report" / "data" / "cross_vs_within.csv").read_text().splitlines()
    assert table[0] == "cell,within_auroc,cross_auroc,cross_minus_within" and len(table) == 4
    assert "held-out epigenome E116" in text
    e003_page = (e003 / "index.html").read_text()
    assert "Prediction for an epigenome held out of training" in e003_page
    scores = (e003 / "data" / "held_out_predictions.csv").read_text().splitlines()
    assert scores[0] == "cell,gene,score,label" and len(scores) == 601
