"""Metric reductions of a run equal scikit-learn/scipy on the raw predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats as sps
from sklearn import metrics as skm

from chromestore import runs as R
from chromestore import variables as V
from chromestore.analysis import metrics as M


def make_run(
    rng: np.random.Generator,
    models=("deepchrome", "shallowchrome"),
    cells=("E003", "E004", "E005"),
    repeats: int = 3,
    genes: int = 240,
    task: str = "classification",
) -> xr.Dataset:
    """A hand-made run in the layout every model writes (runs/NAME)."""
    n_m, n_c = len(models), len(cells)
    if task == "classification":
        target = (rng.random((n_c, genes)) < 0.5).astype(np.float32)
    else:
        target = rng.gamma(2.0, 1.5, (n_c, genes)).astype(np.float32)
    split = np.stack([rng.permutation(np.arange(genes) % 3) for _ in range(repeats)]).astype(
        np.int8
    )
    noise = rng.normal(0, 1.0, (n_m, n_c, repeats, genes))
    signal = target[None, :, None, :] * 1.5 + noise
    pred = 1 / (1 + np.exp(-signal)) if task == "classification" else signal
    pred = pred.astype(np.float32)
    pred[:, :, split == V.TRAIN] = np.nan  # (repeat, gene) mask broadcast per model, cell
    # excluded genes keep a finite prediction here, so the test sees the mask is honoured
    excluded = rng.random((n_c, genes)) < 0.05
    epochs = 4
    return xr.Dataset(
        {
            "prediction": ((V.MODEL, V.CELL, V.REPEAT, V.GENE), pred),
            "target": ((V.CELL, V.GENE), target),
            "split": ((V.REPEAT, V.GENE), split),
            "excluded": ((V.CELL, V.GENE), excluded),
            "history_loss": (
                (V.MODEL, V.CELL, V.REPEAT, "epoch"),
                rng.random((n_m, n_c, repeats, epochs)).astype(np.float32),
            ),
            "best_epoch": ((V.MODEL, V.CELL, V.REPEAT), np.ones((n_m, n_c, repeats), np.int16)),
        },
        coords={
            V.MODEL: list(models),
            V.CELL: list(cells),
            V.REPEAT: np.arange(repeats),
            V.GENE: [f"ENSG{i:011d}_G{i}" for i in range(genes)],
        },
        attrs={"task": task, "models": {m: {} for m in models}, "seed": 0},
    )


def _expected(run, m, c, r):
    sel = run.sel({V.MODEL: m, V.CELL: c, V.REPEAT: r})
    keep = (sel.split.values == V.TEST) & np.isfinite(sel.prediction.values) & ~sel.excluded.values
    return sel.target.values[keep], sel.prediction.values[keep].astype(np.float64)


def test_metrics__classification_equal_sklearn(rng):
    run = make_run(rng)
    out = M.compute_metrics(run)
    assert out.stat_auroc.dims == (V.MODEL, V.CELL, V.REPEAT)
    for m in run.model.values:
        for c in run.cell.values:
            for r in run.repeat.values:
                y, p = _expected(run, m, c, r)
                got = out.sel({V.MODEL: m, V.CELL: c, V.REPEAT: r})
                assert int(got.stat_n_test) == len(y) and 60 < len(y) < 80
                assert got.stat_auroc.item() == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
                assert got.stat_auprc.item() == pytest.approx(
                    skm.average_precision_score(y, p), abs=1e-12
                )
                assert got.stat_f1.item() == pytest.approx(skm.f1_score(y, p >= 0.5), abs=1e-12)
    # noise at this level gives AUROC well above chance but not perfect
    assert 0.75 < float(out.stat_auroc.mean()) < 0.95


def test_metrics__regression_equal_scipy(rng):
    run = make_run(rng, task="regression", repeats=2)
    out = M.compute_metrics(run)
    assert "stat_auroc" not in out and "published_auc" not in out
    y, p = _expected(run, "shallowchrome", "E004", 1)
    got = out.sel({V.MODEL: "shallowchrome", V.CELL: "E004", V.REPEAT: 1})
    assert got.stat_mse.item() == pytest.approx(np.mean((y - p) ** 2), rel=1e-9)
    assert got.stat_pearson.item() == pytest.approx(sps.pearsonr(y, p).statistic, rel=1e-9)
    assert got.stat_spearman.item() == pytest.approx(sps.spearmanr(y, p).statistic, rel=1e-9)


def test_metrics__summary_rows_and_published_comparison(rng):
    run = make_run(rng)
    pub = pd.Series({"E003": 0.77, "E004": 0.99, "E005": 0.5})
    out = M.compute_metrics(run, published=pub)
    per_cell = out.stat_auroc.mean(V.REPEAT)
    for m in run.model.values:
        row = out.stat_summary.sel({V.MODEL: m, V.STAT: "auroc"})
        vals = per_cell.sel({V.MODEL: m}).values
        assert row.sel(summary="mean").item() == pytest.approx(vals.mean())
        assert row.sel(summary="median").item() == pytest.approx(np.median(vals))
        assert row.sel(summary="min").item() == pytest.approx(vals.min())
        assert row.sel(summary="max").item() == pytest.approx(vals.max())
        diff = vals - pub.to_numpy()
        np.testing.assert_allclose(out.auroc_vs_published.sel({V.MODEL: m}), diff)
        assert int(out.n_beats_published.sel({V.MODEL: m})) == int((diff > 0).sum())
    # AUROC ≈ 0.85: beats 0.5 and 0.77, never 0.99
    assert out.n_beats_published.values.tolist() == [2, 2]
    table = M.summary_table(out)
    assert table.loc[("deepchrome", "mean"), "beats_published"] == "2/3"
    assert "deepchrome" in M.format_table(out)


def test_metrics__published_table_is_the_56_epigenomes():
    pub = M.read_published()
    assert len(pub) == 56 and pub["E003"] == pytest.approx(0.77)
    assert pub.mean() == pytest.approx(0.80, abs=0.01)


def test_metrics__records_one_per_model_and_cell(rng):
    run = make_run(rng)
    recs = M.records(M.compute_metrics(run))
    assert len(recs) == 6
    r0 = recs[0]
    assert (r0["model"], r0["cell"]) == ("deepchrome", "E003")
    assert r0["auroc"] == pytest.approx(
        float(
            np.mean([skm.roc_auc_score(*_expected(run, "deepchrome", "E003", r)) for r in range(3)])
        ),
        abs=1e-6,
    )
    assert r0["published_auc"] == pytest.approx(0.77)


def test_metrics__distributed_client_gives_same_result(rng):
    from chromestore.app.cluster import connect

    run = make_run(rng, repeats=1, cells=("E003", "E004"))
    local = M.compute_metrics(run)
    with connect(workers=1, quiet=True) as client:
        remote = M.compute_metrics(run, client=client)
    xr.testing.assert_identical(local, remote)


def test_metrics__roundtrip_through_run_group(rng, tmp_path):
    run = make_run(rng)
    out = M.compute_metrics(run)
    store = tmp_path / "s.zarr"
    R.write_run(store, "r1", run.assign(history_valid_auc=run.history_loss))
    M.write_metrics(out, store, "r1")
    back = M.read_metrics(store, "r1")
    np.testing.assert_array_equal(back.stat_auroc.values, out.stat_auroc.values)
    assert [str(m) for m in back.model.values] == ["deepchrome", "shallowchrome"]
    assert back.attrs["stats"] == ["auroc", "auprc", "f1"]
