"""runs/NAME: write, reopen, merge models, keep weights and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import chromestore
from chromestore import runs as R
from chromestore.runs import write as RW


def _labels(cells, n_genes: int) -> np.ndarray:
    """Each epigenome's labels, the same in every run (they come from the store)."""
    return np.stack(
        [np.random.default_rng(int(c[1:])).integers(0, 2, n_genes) for c in cells]
    ).astype(np.float32)


def _run(model: str, cells=("E003", "E004"), n_genes: int = 6, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n_c, n_e = len(cells), 4
    split = np.array([[0, 0, 1, 1, 2, 2, 2][:n_genes]], np.int8)
    pred = rng.random((1, n_c, 1, n_genes)).astype(np.float32)
    pred[..., split[0] == 0] = np.nan
    hist = rng.random((1, n_c, 1, n_e)).astype(np.float32)
    hist[..., 3] = np.nan
    return xr.Dataset(
        {
            "prediction": (("model", "cell", "repeat", "gene"), pred),
            "target": (("cell", "gene"), _labels(cells, n_genes)),
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


def _tree(path) -> dict:
    """Every file under ``path`` with its bytes (what must not change)."""
    from pathlib import Path

    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(Path(path).rglob("*"))
        if p.is_file()
    }


def test_write_run__refuses_a_taken_name_naming_overwrite_and_a_free_name(tmp_path):
    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    R.write_run(store, "a-2", _run("deepchrome"))
    before = _tree(tmp_path)
    with pytest.raises(R.RunExists) as err:
        R.write_run(store, "a", _run("shallowchrome", seed=1))
    assert err.value.args[0] == (
        f"run 'a' already exists in {store}; a run is never changed: pass --overwrite to "
        "replace it whole, or choose a free name such as 'a-3'"
    )
    assert _tree(tmp_path) == before  # store, runs and weights byte-identical


def test_write_run__overwrite_replaces_the_run_whole(tmp_path):
    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    (tmp_path / "s.zarr" / "runs" / "a" / "metrics").mkdir()
    (tmp_path / "s.zarr" / "runs" / "a" / "metrics" / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group", "attributes": {}}'
    )
    R.write_run(store, "a", _run("shallowchrome", cells=("E004",), seed=1), existing="overwrite")
    back = chromestore.open_run(store, "a").load()
    assert list(back.model.values) == ["shallowchrome"] and list(back.cell.values) == ["E004"]
    assert set(back.attrs["models"]) == {"shallowchrome"}
    assert not (tmp_path / "s.zarr" / "runs" / "a" / "metrics").exists()  # the old run's


def test_write_run__add_joins_models_of_the_same_split_and_keeps_predictions(tmp_path):
    store = str(tmp_path / "s.zarr")
    first = R.write_run(store, "a", _run("deepchrome"))
    scores = xr.DataArray(
        np.full((1, 6), 0.5, np.float32),
        dims=("cell", "gene"),
        coords={"cell": ["E009"], "gene": [f"G{i}" for i in range(6)]},
        attrs={"model": "deepchrome"},
    )
    source = {"model": "deepchrome", "weights_sha256": "x", "run": "a"}
    R.write_predictions(store, "a", scores, source=source)
    R.write_run(store, "a", _run("shallowchrome", cells=("E004",), seed=1), existing="add")
    back = chromestore.open_run(store, "a").load()
    assert list(back.model.values) == ["deepchrome", "shallowchrome"]
    assert list(back.cell.values) == ["E003", "E004"]
    assert back.attrs["created"] == first.attrs["created"]
    sc = back.prediction.sel(model="shallowchrome")
    assert np.isnan(sc.sel(cell="E003")).all()
    np.testing.assert_array_equal(
        sc.sel(cell="E004").values, _run("shallowchrome", ("E004",), seed=1).prediction.values[0, 0]
    )
    np.testing.assert_array_equal(
        back.prediction.sel(model="deepchrome").values, _run("deepchrome").prediction.values[0]
    )
    assert set(back.attrs["wall_seconds"]) == {"deepchrome", "shallowchrome"}
    assert list(R.open_predictions(store, "a").cell.values) == ["E009"]  # kept


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split_scheme": "random"}, "run 'a' was trained with split_scheme 'deepchrome', this "
         "training has 'random'; --add needs identical split settings (scheme, seed, K, genes, "
         "label rule): train into another run name"),
        ({"seed": 1}, "run 'a' was trained with seed 0, this training has 1;"),
        ({"label_rule": 2.0}, "run 'a' was trained with label_rule 'median', this training has"),
        ({"genes": 5}, "run 'a' holds 6 genes, this training 5"),
        ({"split": [[1, 0, 1, 1, 2, 2]]}, "run 'a' and this training split the genes differently"),
        ({"model": "deepchrome"}, "run 'a' already holds model 'deepchrome'; a run is never "
         "changed: pass --overwrite"),
    ],
)  # fmt: skip
def test_write_run__add_refuses_other_split_settings_from_the_records(tmp_path, change, message):
    store = str(tmp_path / "s.zarr")
    base = _run("deepchrome")
    base.attrs["label_rule"] = "median"
    R.write_run(store, "a", base)
    new = _run(change.get("model", "shallowchrome"), n_genes=change.get("genes", 6), seed=1)
    new.attrs["label_rule"] = "median"
    for key in ("split_scheme", "seed", "label_rule"):
        if key in change:
            new.attrs[key] = change[key]
    if "split" in change:
        new["split"] = (("repeat", "gene"), np.array(change["split"], np.int8))
    before = _tree(tmp_path)
    with pytest.raises(R.RunError) as err:
        R.write_run(store, "a", new, existing="add")
    assert err.value.args[0].startswith(message)
    assert _tree(tmp_path) == before


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
        R.write_run(store, "a", _run("deepchrome", seed=7), existing="overwrite")
    np.testing.assert_array_equal(
        chromestore.open_run(store, "a").prediction.values, _run("deepchrome").prediction.values
    )
    assert chromestore.list_runs(store) == ["a"]  # the half-written one is not a run
    monkeypatch.undo()
    R.write_run(store, "a", _run("deepchrome", seed=7), existing="overwrite")  # clears leftovers
    np.testing.assert_array_equal(
        chromestore.open_run(store, "a").prediction.values,
        _run("deepchrome", seed=7).prediction.values,
    )
    assert sorted(p.name for p in (tmp_path / "s.zarr" / "runs").iterdir()) == ["a", "zarr.json"]


def test_write_run__crash_between_renames_is_rolled_forward_by_next_write(tmp_path, monkeypatch):
    import os

    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    renames = []
    monkeypatch.setattr(RW, "_exchange", lambda a, b: False)  # a system without RENAME_EXCHANGE

    def rename(src, dst):
        if str(src).endswith("/runs/a"):  # the old run moved aside; crash before the new one
            os.replace(src, dst)
            renames.append(dst)
            raise KeyboardInterrupt("killed between the two renames")
        os.replace(src, dst)

    monkeypatch.setattr(RW.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        R.write_run(store, "a", _run("deepchrome", seed=7), existing="overwrite")
    monkeypatch.undo()
    assert renames and chromestore.list_runs(store) == []
    RW._recover(R.run_store(store, "a"))  # what the next write_run does first
    np.testing.assert_array_equal(
        chromestore.open_run(store, "a").prediction.values,
        _run("deepchrome", seed=7).prediction.values,
    )  # rolled forward
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
