"""runs/NAME: write, reopen, merge models, keep weights and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import chromestore
from chromestore import runs as R
from chromestore.runs import write as RW


def _run(model: str, cells=("E003", "E004"), n_genes: int = 6, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n_c, n_e = len(cells), 4
    split = np.array([[0, 0, 1, 1, 2, 2]], np.int8)
    pred = rng.random((1, n_c, 1, n_genes)).astype(np.float32)
    pred[..., split[0] == 0] = np.nan
    hist = rng.random((1, n_c, 1, n_e)).astype(np.float32)
    hist[..., 3] = np.nan
    return xr.Dataset(
        {
            "prediction": (("model", "cell", "repeat", "gene"), pred),
            "target": (("cell", "gene"), rng.integers(0, 2, (n_c, n_genes)).astype(np.float32)),
            "split": (("repeat", "gene"), split),
            "history_loss": (("model", "cell", "repeat", "epoch"), hist),
            "history_valid_auc": (("model", "cell", "repeat", "epoch"), hist * 0.5),
            "best_epoch": (("model", "cell", "repeat"), np.full((1, n_c, 1), 2, np.int16)),
            "excluded": (("cell", "gene"), np.zeros((n_c, n_genes), bool)),
        },
        coords={
            "model": [model],
            "cell": list(cells),
            "repeat": [0],
            "gene": [f"G{i}" for i in range(n_genes)],
            "epoch": np.arange(n_e),
        },
        attrs={
            "task": "classification",
            "models": {model: {"lr": 0.001}},
            "seed": 0,
            "wall_seconds": {model: 1.5},
            "split_scheme": "deepchrome",
            "mode": "stacked",
        },
    )


def test_open_run__round_trip(tmp_path):
    store = str(tmp_path / "s.zarr")
    ds = _run("deepchrome")
    R.write_run(store, "a", ds)
    back = chromestore.open_run(store, "a").load()
    assert chromestore.list_runs(store) == ["a"]
    for name in ds.data_vars:
        np.testing.assert_array_equal(back[name].values, ds[name].values)
        assert back[name].dtype == ds[name].dtype
    assert list(back.cell.values) == ["E003", "E004"] and back.cell.dtype == object
    assert back.attrs["models"] == {"deepchrome": {"lr": 0.001}}


def test_write_run__merges_models_and_keeps_child_folders(tmp_path):
    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    weights = tmp_path / "s.zarr.weights" / "a" / "deepchrome" / "E003"
    weights.mkdir(parents=True)
    (weights / "0.pt").write_bytes(b"w")
    R.write_run(store, "a", _run("shallowchrome", cells=("E004",), seed=1))
    back = chromestore.open_run(store, "a").load()
    assert list(back.model.values) == ["deepchrome", "shallowchrome"]
    assert list(back.cell.values) == ["E003", "E004"]
    sc = back.prediction.sel(model="shallowchrome")
    assert np.isnan(sc.sel(cell="E003")).all()
    np.testing.assert_array_equal(
        sc.sel(cell="E004").values, _run("shallowchrome", ("E004",), seed=1).prediction.values[0, 0]
    )
    np.testing.assert_array_equal(
        back.prediction.sel(model="deepchrome").values, _run("deepchrome").prediction.values[0]
    )
    assert back.best_epoch.dtype == np.int16
    assert set(back.attrs["wall_seconds"]) == {"deepchrome", "shallowchrome"}
    assert (weights / "0.pt").read_bytes() == b"w"
    # rewriting a model replaces it
    R.write_run(store, "a", _run("deepchrome", seed=5))
    back = chromestore.open_run(store, "a").load()
    assert back.sizes["model"] == 2
    np.testing.assert_array_equal(
        back.prediction.sel(model="deepchrome").values,
        _run("deepchrome", seed=5).prediction.values[0],
    )


def test_open_run__missing_run_names_what_exists(tmp_path):
    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    with pytest.raises(KeyError, match="runs: \\['a'\\]"):
        chromestore.open_run(store, "b")


def test_write_run__crash_before_swap_leaves_old_run_readable(tmp_path, monkeypatch):
    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))

    def crash(new, run):
        raise KeyboardInterrupt("killed while the new run is written beside the old")

    monkeypatch.setattr(RW, "_swap_in", crash)
    with pytest.raises(KeyboardInterrupt):
        R.write_run(store, "a", _run("deepchrome", seed=7))
    np.testing.assert_array_equal(
        chromestore.open_run(store, "a").prediction.values, _run("deepchrome").prediction.values
    )
    assert chromestore.list_runs(store) == ["a"]  # the half-written one is not a run
    monkeypatch.undo()
    R.write_run(store, "a", _run("deepchrome", seed=7))  # the next write clears the leftover
    np.testing.assert_array_equal(
        chromestore.open_run(store, "a").prediction.values,
        _run("deepchrome", seed=7).prediction.values,
    )
    assert sorted(p.name for p in (tmp_path / "s.zarr" / "runs").iterdir()) == ["a", "zarr.json"]


def test_write_run__crash_between_renames_is_rolled_forward_by_next_write(tmp_path, monkeypatch):
    import os

    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    (tmp_path / "s.zarr" / "runs" / "a" / "metrics").mkdir()
    renames = []

    def rename(src, dst):
        if str(src).endswith("/runs/a"):  # the old run moved aside; crash before the new one
            os.replace(src, dst)
            renames.append(dst)
            raise KeyboardInterrupt("killed between the two renames")
        os.replace(src, dst)

    monkeypatch.setattr(RW.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        R.write_run(store, "a", _run("deepchrome", seed=7))
    monkeypatch.undo()
    assert renames and chromestore.list_runs(store) == []
    RW._recover(R.run_store(store, "a"))  # what the next write_run does first
    np.testing.assert_array_equal(
        chromestore.open_run(store, "a").prediction.values,
        _run("deepchrome", seed=7).prediction.values,
    )  # rolled forward
    assert (tmp_path / "s.zarr" / "runs" / "a" / "metrics").is_dir()  # children came along
    assert sorted(p.name for p in (tmp_path / "s.zarr" / "runs").iterdir()) == ["a", "zarr.json"]


def test_run_attrs__one_builder_one_order_json_safe():
    from chromestore import variables as V

    attrs = R.run_attrs(
        task="classification",
        models={"m": {"grid": (1.0, np.float32(2.0)), "tol": float("nan")}},
        split_scheme="random:2",
        seed=np.int64(3),
        label_rule=2.5,
        packages=("numpy",),
        wall_seconds={"m": np.float64(1.25)},
        mode="peers",
        device="cpu",
        train_cells=["E003"],
    )
    assert list(attrs) == [*V.RUN_ATTRS, "train_cells"]
    assert attrs["models"] == {"m": {"grid": [1.0, 2.0], "tol": "nan"}}
    assert (attrs["seed"], attrs["label_rule"], attrs["wall_seconds"]) == (3, "2.5", {"m": 1.25})
    assert type(attrs["seed"]) is int and type(attrs["wall_seconds"]["m"]) is float
    assert set(attrs["versions"]) == {"python", "chromestore", "numpy"}
    with pytest.raises(ValueError, match=r"wall_seconds names \['x'\], the run's models are"):
        R.run_attrs(
            task="regression",
            models={"m": {}},
            split_scheme="random",
            seed=0,
            label_rule="median",
            packages=(),
            wall_seconds={"x": 1.0},
            mode="loop",
            device="cpu",
        )
