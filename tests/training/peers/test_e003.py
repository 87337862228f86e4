"""Acceptance on the real E003 sample: 600 genes, random thirds (seed 0), median labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from chromestore.formats import read_deepdiff_csv
from chromestore.training.peers.execute import run_peers

E003 = Path(__file__).resolve().parents[3] / "data" / "samples" / "deepdiff_E003"


@pytest.fixture(scope="module")
def sample_genes():
    parts = [read_deepdiff_csv(E003 / f"E003.{s}.csv") for s in ("train", "valid", "test")]
    return [str(g) for p in parts for g in p.gene.values]


def _test_auc(run, model):
    test = (run.split[0] == 2).values
    pred = run.prediction.sel(model=model, cell="E003")[0].values
    target = run.target.sel(cell="E003").values
    return roc_auc_score(target[test], pred[test])


def test_e003__shallowchrome_and_rf_bestbin_reach_their_test_auc(e003_store, sample_genes):
    run = run_peers(
        e003_store,
        "e003-fast",
        ["shallowchrome", "rf-bestbin"],
        cells=["E003"],
        genes=sample_genes,
        split_scheme="random",
        seed=0,
    )
    assert np.bincount(run.split[0].values).tolist() == [200, 200, 200]
    assert not run.excluded.any()
    auc_sc = _test_auc(run, "shallowchrome")
    auc_rf = _test_auc(run, "rf-bestbin")
    print(f"E003 test AUC: shallowchrome {auc_sc:.3f}, rf-bestbin {auc_rf:.3f}")
    assert auc_sc >= 0.80
    assert auc_rf >= 0.70
    # H3K4me3 (promoter mark) has the strongest positive effect in ShallowChrome
    coef = run.shallowchrome_coef.sel(cell="E003")[0]
    z = coef / run.shallowchrome_stderr.sel(cell="E003")[0]
    assert str(z.idxmax().item()) == "H3K4me3"


@pytest.mark.slow
def test_e003__svm_bin_best_bin_reaches_075(e003_store, sample_genes):
    run = run_peers(
        e003_store,
        "e003-svm",
        ["svm-bin"],
        cells=["E003"],
        genes=sample_genes,
        split_scheme="random",
        seed=0,
    )
    per_bin = run.svm_bin_test_auc_bin.sel(cell="E003")[0].values
    print(
        f"E003 svm-bin: validation-chosen bin {_test_auc(run, 'svm-bin'):.3f}, "
        f"best bin {per_bin.max():.3f}, mean {per_bin.mean():.3f}"
    )
    assert per_bin.max() >= 0.75
    assert _test_auc(run, "svm-bin") == pytest.approx(
        per_bin[run.svm_bin_best_bin.sel(cell="E003").item()]
    )


@pytest.mark.slow
def test_e003__attentivechrome_reaches_078(e003_store, sample_genes):
    # defaults: an ensemble of 5 seeds, each kept at its best validation epoch, averaged
    # (0.785; a single model scored 0.774 here, 0.759-0.805 over the five members' seeds:
    # too much variance for 200 training genes); the configuration was chosen on
    # validation AUC only.
    run = run_peers(
        e003_store,
        "e003-att",
        ["attentivechrome"],
        cells=["E003"],
        genes=sample_genes,
        split_scheme="random",
        seed=0,
    )
    auc = _test_auc(run, "attentivechrome")
    valid = run.attentivechrome_valid_auc.sel(cell="E003")[0].item()
    print(f"E003 attentivechrome test AUC {auc:.3f} (ensemble validation AUC {valid:.3f})")
    assert run.attrs["models"]["attentivechrome"]["ensemble"] == 5
    att = run.attentivechrome_attention_mark.sel(cell="E003")[0]
    np.testing.assert_allclose(att.sum("mark"), 1.0, rtol=1e-5)
    assert auc >= 0.78
