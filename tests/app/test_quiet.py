"""Normal use is quiet: no warnings, no carriage-return progress in piped output, texts that fit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import chromestore
from chromestore.analysis import metrics as M
from chromestore.analysis.analyze import published_mismatch
from chromestore.analysis.explain import format_explanation
from chromestore.labels import compute_labels


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``chromestore ARGS`` as a user runs it, output piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "chromestore", *args], capture_output=True, text=True
    )


def test_simulate_train_analyze_explain_print_no_warning(tmp_path):
    store = str(tmp_path / "q.zarr")
    steps = [
        (
            "simulate",
            store,
            "--cells",
            "E003,E004",
            "--genes",
            "240",
            "--seed",
            "1",
            "--workers",
            "0",
        ),
        ("labels", store),
        (
            "train",
            store,
            "--split",
            "random",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--run",
            "dc",
            "--workers",
            "0",
        ),
        ("analyze", store, "--run", "dc", "--report", str(tmp_path / "rep"), "--workers", "0"),
    ]
    output = ""
    for args in steps:
        done = _cli(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        output += done.stdout + done.stderr
    gene = str(chromestore.open_store(store).gene_name.values[7])
    done = _cli("explain", store, "--run", "dc", "--cells", "E003,E004", "--gene", gene)
    assert done.returncode == 0, done.stdout + done.stderr
    output += done.stdout + done.stderr
    assert "Warning" not in output and "warn" not in output.lower()
    assert "\r" not in output  # no progress bars when output is piped
    assert "ShallowChrome" not in done.stdout  # the run has no ShallowChrome model
    assert "DeepChrome (repeat 0" in done.stdout or "DeepChrome: no model" in done.stdout
    report = (tmp_path / "rep" / "index.html").read_text()
    assert "svmbin" not in report  # no svm-bin run, no svm-bin file cited
    assert "beats published" not in report and "is simulated" in report


def test_labels_of_a_cell_without_expression_are_quiet_and_nan(tmp_path, small_genes):
    ds = chromestore.create_store(tmp_path / "s.zarr", small_genes, cells=["E003", "E004"])
    expr = np.full((2, len(small_genes)), np.nan, np.float32)
    expr[0] = np.arange(len(small_genes))
    ds = ds.assign(expression=(("cell", "gene"), expr))
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        out = compute_labels(ds).compute()
    assert np.isnan(out.label_threshold.sel(cell="E004").item())
    assert out.label_threshold.sel(cell="E003").item() == pytest.approx(np.median(expr[0]))
    assert not out.label_valid.sel(cell="E004").any()


def _run(n_genes: int, scheme: str, excluded: np.ndarray | None = None) -> xr.Dataset:
    ds = xr.Dataset(
        coords={"gene": np.arange(n_genes), "cell": ["E003"]}, attrs={"split_scheme": scheme}
    )
    if excluded is not None:
        ds["excluded"] = (("cell", "gene"), excluded[None])
    return ds


def test_published_accuracy_is_compared_only_for_the_published_genes_and_split():
    assert published_mismatch(_run(19802, "deepchrome"), simulated=False) == ""
    assert "simulated" in published_mismatch(_run(19802, "deepchrome"), simulated=True)
    assert "random split" in published_mismatch(_run(19802, "random"), simulated=False)
    excluded = np.ones(19802, bool)
    excluded[:600] = False  # the E003 sample: 600 genes with signal
    why = published_mismatch(_run(19802, "deepchrome", excluded), simulated=False)
    assert "covers 600 genes" in why


def test_summary_of_one_epigenome_is_one_row_per_model(rng):
    def metrics(n_cells: int) -> xr.Dataset:
        stats = rng.random((2, n_cells, 1, 3))
        ds = xr.Dataset(
            coords={
                "model": ["a", "b"],
                "cell": [f"E{i:03d}" for i in range(n_cells)],
                "repeat": [0],
            }
        )
        for i, s in enumerate(("auroc", "auprc", "f1")):
            ds[f"stat_{s}"] = (("model", "cell", "repeat"), stats[..., i])
        ds["stat_n_test"] = (("model", "cell", "repeat"), np.full((2, n_cells, 1), 10))
        out = M.summarize(ds)
        out.attrs["stats"] = ["auroc", "auprc", "f1"]
        return out

    one = M.summary_table(metrics(1))
    assert list(one.index) == [("a", "mean"), ("b", "mean")]
    three = M.summary_table(metrics(3))
    assert len(three) == 8 and ("a", "median") in three.index


def test_explain_text_names_only_the_models_the_run_has():
    exp = {
        "gene": "G",
        "marks": ["H3K4me3"],
        "models": ["svm-bin"],
        "cnn_model": "deepchrome",
        "bin_offset": [0],
        "cells": [
            {
                "cell": "E003",
                "label": 1,
                "expression_rpkm": 3.0,
                "shallowchrome": None,
                "integrated_gradients": None,
            }
        ],
    }
    text = format_explanation(exp)
    assert "ShallowChrome: gene not in a test split" not in text
    assert "DeepChrome: no model" not in text
    assert "nothing to explain" in text and "svm-bin" in text
    exp["models"] = ["shallowchrome"]
    assert "ShallowChrome: gene not in a test split" in format_explanation(exp)


ABANDONED_WAIT = """
import asyncio, gc
from distributed.client import AllExit
from chromestore.app import errors

async def wait(exc):
    raise exc

async def main(exc):
    task = asyncio.ensure_future(wait(exc))
    await asyncio.sleep(0.01)  # it ends with exc; nobody retrieves it
    del task
    gc.collect()

errors._quiet_abandoned_coroutines()  # what an interrupted command does
asyncio.run(main(AllExit()))
asyncio.run(main(ValueError("a bug of ours")))
"""


def test_an_interrupt_hides_dasks_abandoned_waits_but_not_other_lost_errors():
    """After Ctrl-C closes the embedded cluster, a ``Client._gather`` wait it ended with
    ``AllExit`` prints nothing; any other unretrieved task exception is still logged."""
    out = subprocess.run([sys.executable, "-c", ABANDONED_WAIT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("Task exception was never retrieved") == 1, out.stderr
    assert "AllExit" not in out.stderr
    assert "ValueError: a bug of ours" in out.stderr
