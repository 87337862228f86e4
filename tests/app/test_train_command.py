"""chromestore train: the command line over training.trainer."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import chromestore
from chromestore.app.cli import main


def test_cli_train__writes_a_run_and_says_what_it_picked(tmp_path):
    store = str(tmp_path / "s.zarr")
    chromestore.simulate(store, cells=2, genes=192, seed=2, gene_chunk=64)
    # --workers 0: no worker pool, so auto on a CPU steps the models in this process
    res = CliRunner().invoke(
        main,
        [
            "train",
            store,
            "--cells",
            "E004",
            "--split",
            "random",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--run",
            "cli",
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    picked = "mode: stacked" if torch.cuda.is_available() else "mode: loop"
    assert picked in res.output and "run cli: 1 epigenome(s)" in res.output
    run = chromestore.open_run(store, "cli")
    assert list(run.cell.values) == ["E004"] and run.sizes["epoch"] == 2
    assert run.attrs["split_scheme"] == "random" and run.attrs["seed"] == 0
    assert np.isfinite(run.history_valid_auc.values).all()
    if not torch.cuda.is_available():
        res = CliRunner().invoke(
            main, ["train", store, "--cells", "E004", "--device", "cuda", "--run", "gpu"]
        )
        assert res.exit_code == 1
        assert "no CUDA GPU is available" in res.output
        assert "gpu" not in chromestore.list_runs(store)


def test_cli_train__auto_on_a_multicore_cpu_trains_in_one_forked_process_per_core(tmp_path):
    from chromestore.training import pool

    if torch.cuda.is_available() or (os.cpu_count() or 1) < 2 or not pool.available():
        pytest.skip("the per-core processes are the rule for a CPU with several cores")
    store = str(tmp_path / "s.zarr")
    chromestore.simulate(store, cells=2, genes=192, seed=2, gene_chunk=64)
    res = CliRunner().invoke(
        main,
        [
            "train",
            store,
            "--split",
            "random",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--run",
            "pool",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mode: percore (CPU only:" in res.output
    run = chromestore.open_run(store, "pool")
    assert run.attrs["mode"] == "percore" and list(run.cell.values) == ["E003", "E004"]
    # each epigenome trained in its own process gives what the loop gives here
    res = CliRunner().invoke(
        main,
        [
            "train",
            store,
            "--split",
            "random",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--run",
            "here",
            "--mode",
            "loop",
        ],
    )
    assert res.exit_code == 0, res.output
    here = chromestore.open_run(store, "here")
    np.testing.assert_allclose(run.prediction.values, here.prediction.values, atol=1e-5)
