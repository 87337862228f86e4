"""A run is one unit: its weights are recorded with checksums and swapped in with it; a run
whose models' test genes overlap their training genes is refused; predictions never mix."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import chromestore
from chromestore import runs as R
from tests.runs.test_runs import _run, _tree


def _commit(store, name, ds, files: dict[str, bytes], existing="refuse"):
    with R.RunWriter(store, name, existing=existing) as writer:
        for key, data in files.items():
            target = writer.staging.child(key)
            Path(target.url).parent.mkdir(parents=True, exist_ok=True)
            Path(target.url).write_bytes(data)
        return writer.commit(ds)


def _weights_dirs(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "s.zarr.weights" / "a").iterdir())


def test_run_writer__records_each_weights_file_and_drops_the_replaced_ones(tmp_path):
    store = str(tmp_path / "s.zarr")
    run = _commit(store, "a", _run("deepchrome"), {"deepchrome/E003/0.safetensors": b"old"})
    record = run.attrs["weights"]["deepchrome/E003/0.safetensors"]
    assert record["sha256"] == R.files.sha256(b"old") and record["bytes"] == 3
    old_dir = record["dir"]
    assert _weights_dirs(tmp_path) == [old_dir] and old_dir.startswith("w-")
    new = _commit(
        store,
        "a",
        _run("deepchrome", seed=7),
        {"deepchrome/E003/0.safetensors": b"new"},
        "overwrite",
    )
    new_dir = new.attrs["weights"]["deepchrome/E003/0.safetensors"]["dir"]
    assert _weights_dirs(tmp_path) == [new_dir] != [old_dir]  # the old folder is gone
    target, entry = R.weights_file(store, "a", "deepchrome/E003/0.safetensors", new.attrs)
    assert R.read_checked(target, entry) == b"new"


def test_run_writer__a_failure_before_the_commit_leaves_the_old_run_and_weights(tmp_path):
    store = str(tmp_path / "s.zarr")
    _commit(store, "a", _run("deepchrome"), {"deepchrome/E003/0.safetensors": b"old"})
    before = _tree(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with R.RunWriter(store, "a", existing="overwrite") as writer:
            target = Path(writer.weights_target("deepchrome", "E003", 0).url)
            target.parent.mkdir(parents=True)
            target.write_bytes(b"half")
            raise KeyboardInterrupt  # Ctrl-C while the new weights are written
    assert _tree(tmp_path) == before  # nothing of the new training is left


def test_run_writer__a_commit_that_fails_before_its_swap_leaves_no_weights_folder(
    tmp_path, monkeypatch
):
    from chromestore.runs import write as RW

    store = str(tmp_path / "s.zarr")
    _commit(store, "a", _run("deepchrome"), {"deepchrome/E003/0.safetensors": b"old"})
    before = _tree(tmp_path)

    def disk_full(run, ds):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RW, "_write_arrays", disk_full)
    with pytest.raises(OSError, match="No space left"):
        _commit(store, "a", _run("deepchrome", seed=7), {"deepchrome/E003/0.safetensors": b"new"},
                "overwrite")  # fmt: skip
    assert _tree(tmp_path) == before  # the promoted folder of the new weights is gone too


def test_run_writer__a_failure_during_the_swap_keeps_the_weights_of_the_run_in_place(
    tmp_path, monkeypatch
):
    """Ctrl-C after the exchange (while the old run is deleted): the new run is in place, and
    the weights it names stay."""
    from chromestore.runs import write as RW

    store = str(tmp_path / "s.zarr")
    _commit(store, "a", _run("deepchrome"), {"deepchrome/E003/0.safetensors": b"old"})
    real = RW._swap_in

    def interrupted(new, run):
        real(new, run)
        raise KeyboardInterrupt

    monkeypatch.setattr(RW, "_swap_in", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _commit(store, "a", _run("deepchrome", seed=7), {"deepchrome/E003/0.safetensors": b"new"},
                "overwrite")  # fmt: skip
    attrs = R.run_store(store, "a").attrs()
    target, entry = R.weights_file(store, "a", "deepchrome/E003/0.safetensors", attrs)
    assert R.read_checked(target, entry) == b"new"
    assert R.verify_runs(store) == ([], [])


def test_run_writer__a_second_writer_of_the_name_is_refused_at_once(tmp_path):
    store = str(tmp_path / "s.zarr")
    held, release, seen = threading.Event(), threading.Event(), []

    def first():
        with R.RunWriter(store, "a"):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(30)
    try:
        with pytest.raises(R.RunExists) as err:
            with R.RunWriter(store, "a", existing="overwrite"):
                seen.append("entered")
    finally:
        release.set()
        thread.join()
    assert seen == []
    assert err.value.args[0] == (
        f"run 'a' of {store} is being written by another chromestore command; wait for it "
        "to finish, or choose another run name"
    )


def test_verify_runs__names_a_weights_file_that_changed(tmp_path):
    store = str(tmp_path / "s.zarr")
    run = _commit(store, "a", _run("deepchrome"), {"deepchrome/E003/0.safetensors": b"weights"})
    assert R.verify_runs(store) == ([], [])
    entry = run.attrs["weights"]["deepchrome/E003/0.safetensors"]
    path = tmp_path / "s.zarr.weights" / "a" / entry["dir"] / "deepchrome/E003/0.safetensors"
    path.write_bytes(b"weightz")  # one byte flipped
    problems, _ = R.verify_runs(store)
    assert problems == [
        f"{path}: the file changed after the run was written (its SHA-256 is not the one the "
        "run records); it is not loaded: retrain the run"
    ]
    path.unlink()
    assert "the weights file the run names is missing" in R.verify_runs(store)[0][0]


def test_check_test_genes__refuses_a_run_whose_model_was_trained_on_its_test_genes(tmp_path):
    """The merge of the issue: a model fitted on a random split joined (by an older
    chromestore, or by hand) with a model of another split, whose split the run keeps."""
    first = _run("logistic-mean")
    first["split"] = (("repeat", "gene"), np.array([[2, 2, 0, 0, 1, 1]], np.int8))
    dims = ("model", "cell", "repeat", "gene")
    first["model_split"] = (
        dims,
        R.derive_model_split(first.split, first.excluded, first.target, 1),
    )
    second = _run("shallowchrome", seed=1)  # split [0, 0, 1, 1, 2, 2]
    second["model_split"] = (
        dims,
        R.derive_model_split(second.split, second.excluded, second.target, 1),
    )
    merged = R.merge_runs([first, second], attrs="last")  # the later split overlays
    with pytest.raises(R.RunError) as err:
        R.check_test_genes(merged, "mix")
    assert err.value.args[0] == (
        "run 'mix': model 'logistic-mean' was trained or validated on 2 of the 2 genes it "
        "would be tested on in E003 (repeat 0): its test and training genes overlap, so it "
        "is not scored; train it into a run of its own"
    )
    R.check_test_genes(second, "own")  # a model's own split passes


def test_check_test_genes__refuses_an_old_run_of_several_models_it_cannot_check(tmp_path):
    store = str(tmp_path / "s.zarr")
    both = R.merge_runs([_run("deepchrome"), _run("shallowchrome", seed=1)])
    R.write_run(store, "old", both)
    group = R.run_store(store, "old")
    import shutil

    shutil.rmtree(Path(group.url) / "model_split")  # as chromestore wrote runs before
    run = chromestore.open_run(store, "old")
    with pytest.raises(R.RunError, match="written before chromestore recorded each model's"):
        R.check_test_genes(run, "old")


def _scores(cells, value=0.5, model="deepchrome"):
    return xr.DataArray(
        np.full((len(cells), 6), value, np.float32),
        dims=("cell", "gene"),
        coords={"cell": list(cells), "gene": [f"G{i}" for i in range(6)]},
        attrs={"model": model},
    )


def test_write_predictions__a_model_dir_run_is_a_real_run_that_other_models_never_join(tmp_path):
    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    mine = {"model": "deepchrome", "weights_sha256": "1" * 64, "from": "model folder x"}
    R.write_predictions(store, "x", _scores(["MINE"]), source=mine)
    assert (tmp_path / "s.zarr" / "runs" / "x" / "zarr.json").is_file()
    assert chromestore.list_runs(store) == ["a", "x"]
    with pytest.raises(R.RunError, match="run 'x' in .* holds only predictions"):
        chromestore.open_run(store, "x")
    R.write_predictions(store, "x", _scores(["MINE2"], 0.7), source=mine)  # same model joins
    assert list(R.open_predictions(store, "x").cell.values) == ["MINE", "MINE2"]
    before = _tree(tmp_path)
    other = {**mine, "weights_sha256": "2" * 64}
    with pytest.raises(R.RunExists) as err:
        R.write_predictions(store, "x", _scores(["MINE"], 0.9), source=other)
    assert err.value.args[0] == (
        f"run 'x' already exists in {store}; a run is never changed: pass --overwrite to "
        "replace it whole, or choose a free name such as 'x-2'"
    )
    with pytest.raises(R.RunExists, match="holds trained models; scores of a model that is not"):
        R.write_predictions(store, "a", _scores(["MINE"], 0.9), source=other)
    assert _tree(tmp_path) == before
    R.write_predictions(store, "x", _scores(["MINE"], 0.9), source=other, existing="overwrite")
    back = R.open_predictions(store, "x")
    assert list(back.cell.values) == ["MINE"] and float(back.max()) == pytest.approx(0.9)
    from chromestore.info import run_summaries

    summary = {r["name"]: r for r in run_summaries(store)}
    assert summary["x"]["models"] == ["deepchrome (predictions)"]
    assert summary["x"]["cells"] == ["MINE"]


def test_write_predictions__a_run_keeps_one_of_its_models_scores_at_a_time(tmp_path):
    store = str(tmp_path / "s.zarr")
    R.write_run(store, "a", _run("deepchrome"))
    e3 = {"model": "deepchrome", "weights_sha256": "3" * 64, "run": "a", "from": "run a, E003"}
    e4 = {"model": "deepchrome", "weights_sha256": "4" * 64, "run": "a", "from": "run a, E004"}
    R.write_predictions(store, "a", _scores(["E005"]), source=e3)
    with pytest.raises(R.RunExists) as err:
        R.write_predictions(store, "a", _scores(["E006"]), source=e4)
    assert err.value.args[0] == (
        "run 'a' already holds predictions of deepchrome (run a, E003); pass --overwrite to "
        "replace them, or keep these under a free name such as 'a-2' (--name)"
    )
    R.write_predictions(store, "a", _scores(["E006"]), source=e3)
    assert list(R.open_predictions(store, "a").cell.values) == ["E005", "E006"]
