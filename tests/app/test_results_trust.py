"""The issue's reproductions, through the command line: a run name is never reused silently,
a merged run that leaks training genes into the test set is refused, exported model folders
are checked, output folders of the user's are never overwritten, and the smaller items.

Each refusal is one line (``error: …``, exit 1) and leaves the store, its runs and weights
byte-identical."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import chromestore
from chromestore import runs as R
from chromestore import variables as V
from chromestore.app.cli import main
from chromestore.training import export as X
from chromestore.training import predict as P

W0 = ["--workers", "0"]


def _cli(*args: str):
    return CliRunner().invoke(main, [*W0, *args])


def _ok(*args: str) -> str:
    res = _cli(*args)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "warn" not in res.output.lower(), res.output
    return res.output


def _refused(*args: str) -> str:
    """The one line a refused command prints (exit 1, nothing else printed)."""
    res = _cli(*args)
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def _tree(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (lock files aside: they hold no data)."""
    out = {}
    for root in roots:
        for p in sorted(root.parent.glob(f"{root.name}*/**/*")):
            if p.is_file() and not any(part.endswith(".locks") for part in p.parts):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _copy(store: Path, tmp_path: Path) -> str:
    """A copy of the module's store (with its weights) to change."""
    import shutil

    for p in store.parent.glob(f"{store.name}*"):
        shutil.copytree(p, tmp_path / p.name)
    return str(tmp_path / store.name)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two epigenomes; run ``mix`` (ShallowChrome, E003, random split), ``dc`` (DeepChrome,
    E003, random split) and ``pool`` (DeepChrome pooled over E003 and E004)."""
    root = tmp_path_factory.mktemp("trust")
    path = root / "s.zarr"
    chromestore.simulate(path, cells=["E003", "E004"], genes=300, seed=2, gene_chunk=150)
    s = str(path)
    _ok("train", s, "--model", "shallowchrome", "--cells", "E003", "--split", "random",
        "--run", "mix")  # fmt: skip
    _ok("train", s, "--model", "deepchrome", "--cells", "E003", "--split", "random",
        "--epochs", "2", "--batch-size", "32", "--run", "dc")  # fmt: skip
    _ok("train", s, "--model", "pooled", "--cells", "E003,E004", "--epochs", "2",
        "--batch-size", "32", "--run", "pool")  # fmt: skip
    return path


# --- 1. a run is written once ---------------------------------------------------------------
def test_train_into_a_taken_run_name__refused_naming_overwrite_and_a_free_name(store):
    s = str(store)
    before = _tree(store)
    line = _refused("train", s, "--model", "deepchrome", "--cells", "all", "--run", "mix")
    assert line == (
        f"error: run 'mix' already exists in {s}; a run is never changed: pass --overwrite to "
        "replace it whole, or choose a free name such as 'mix-2'"
    )
    assert _tree(store) == before


def test_train_add__refused_with_another_split_and_joined_with_the_same(store, tmp_path):
    s = str(store)
    before = _tree(store)
    line = _refused("train", s, "--model", "svm-bin", "--cells", "E003", "--add", "--run", "mix")
    assert line == (
        "error: run 'mix' was trained with split_scheme 'random', this training has "
        "'deepchrome'; --add needs identical split settings (scheme, seed, K, genes, label "
        "rule): train into another run name"
    )
    line = _refused("train", s, "--model", "svm-bin", "--cells", "E003", "--split", "random",
                    "--seed", "1", "--add", "--run", "mix")  # fmt: skip
    assert line == (
        "error: run 'mix' was trained with seed 0, this training has 1; --add needs identical "
        "split settings (scheme, seed, K, genes, label rule): train into another run name"
    )
    line = _refused("train", s, "--model", "shallowchrome", "--cells", "E003", "--split",
                    "random", "--add", "--run", "mix")  # fmt: skip
    assert line == (
        "error: run 'mix' already holds model 'shallowchrome'; a run is never changed: pass "
        "--overwrite to replace the whole run, or train into another run name"
    )
    assert _tree(store) == before
    # the same split: the model joins, each model keeps its own genes and weights
    c = _copy(store, tmp_path)
    _ok("train", c, "--model", "svm-bin", "--cells", "E003", "--split", "random", "--add",
        "--run", "mix")  # fmt: skip
    run = chromestore.open_run(c, "mix")
    assert list(run.model.values) == ["shallowchrome", "svm-bin"]
    assert R.has_weights(run.attrs, "shallowchrome") and R.has_weights(run.attrs, "svm-bin")
    out = _ok("analyze", c, "--run", "mix", "--no-interpret")
    assert "shallowchrome" in out and "svm-bin" in out


# --- 2. the split travels with the model ----------------------------------------------------
def test_a_run_merged_over_another_split__analyze_predict_and_report_refuse(store, tmp_path):
    """What the old merge wrote: run ``mix``'s model under the split of a later training
    (here the default scheme's), its own genes recorded; scoring it there would count its
    training genes as test genes."""
    s = _copy(store, tmp_path)
    old = chromestore.open_run(s, "mix").load()
    merged = old.copy()
    merged["split"] = (("repeat", "gene"), old.split.values[:, ::-1].copy())
    merged.attrs = {k: v for k, v in old.attrs.items() if k != R.RECORD}
    merged.attrs["split_scheme"] = "deepchrome"
    R.write_run(s, "merged", merged)
    own = merged[V.model_split.name].sel(model="shallowchrome", cell="E003").values[0]
    test = (merged.split.values[0] == V.TEST) & ~merged.excluded.sel(cell="E003").values
    leak = int((test & ((own == V.TRAIN) | (own == V.VALID))).sum())
    assert leak > 0
    expected = (
        f"error: run 'merged': model 'shallowchrome' was trained or validated on {leak} of the "
        f"{int(test.sum())} genes it would be tested on in E003 (repeat 0): its test and "
        "training genes overlap, so it is not scored; train it into a run of its own"
    )
    before = _tree(Path(s))
    assert _refused("analyze", s, "--run", "merged", "--no-interpret") == expected
    report = tmp_path / "report"
    assert _refused("analyze", s, "--run", "merged", "--report", str(report)) == expected
    assert _refused("predict", s, "--run", "merged", "--cells", "E004") == expected
    assert _tree(Path(s)) == before and not report.exists()


# --- 5. exported model folders are checked --------------------------------------------------
@pytest.fixture(scope="module")
def exported(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "dc-E003"
    _ok("export", str(store), "--run", "dc", "--cell", "E003", "--out", str(out))
    return out


def _edited(exported: Path, tmp_path: Path, spec=None, weights=None, raw_spec=None) -> Path:
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(exported, folder)
    if spec is not None:
        doc = json.loads((folder / "model.json").read_text())
        spec(doc)
        (folder / "model.json").write_text(json.dumps(doc))
    if raw_spec is not None:
        (folder / "model.json").write_text(raw_spec)
    if weights is not None:
        data = weights((folder / "model.safetensors").read_bytes())
        (folder / "model.safetensors").write_bytes(data)
    return folder


def _swap_marks(doc):
    doc["marks"][0], doc["marks"][1] = doc["marks"][1], doc["marks"][0]


def _flip_byte(data: bytes) -> bytes:
    i = len(data) - 100
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


CASES = {
    "marks swapped": (
        dict(spec=_swap_marks),
        'model.json: \'marks\' is ["H3K36me3", "H3K27me3", ',
        'but the weights were trained with ["H3K27me3", "H3K36me3", ',
    ),
    "another genome": (
        dict(spec=lambda d: d.update(genome="mm10")),
        'model.json: \'genome\' is "mm10" but the weights were trained with "hg19"',
        "model.json was edited: not loaded",
    ),
    "contradictory bins": (
        dict(spec=lambda d: d.update(window=4000)),
        "model.json: 'window' ±4000 bp, 'bin_size' 100 bp and 'n_bins' 100 contradict each other",
        "",
    ),
    "a flipped byte": (
        dict(weights=_flip_byte),
        "model.safetensors: its SHA-256 is not the weights_sha256 of model.json",
        "not loaded",
    ),
    "not JSON": (
        dict(raw_spec='{"format": "chromestore-model",\n  nope'),
        "model.json: not valid JSON at line 2, column 3",
        "",
    ),  # fmt: skip
    "a member naming a missing array": (
        dict(spec=lambda d: d["members"][0]["state_dict"].update(nope={"__array__": "x/nope"})),
        "model.safetensors: lacks the array 'x/nope' that its structure names (member 0)",
        "",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_edited_or_damaged_model_folder__refused_one_line_naming_the_file(
    case, store, exported, tmp_path
):
    kwargs, first, second = CASES[case]
    folder = _edited(exported, tmp_path, **kwargs)
    before = _tree(store)
    line = _refused("predict", str(store), "--model-dir", str(folder), "--cells", "E004")
    assert line.startswith(f"error: {folder}/"), line
    assert first in line and second in line, line
    for theirs in ("SafetensorError", "weights_only", "Expecting value", "KeyError"):
        assert theirs not in line
    assert _tree(store) == before


def test_a_crafted_torch_or_foreign_weights_file__refused_as_not_chromestores(
    store, exported, tmp_path
):
    import io

    import torch
    from safetensors.numpy import save

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(3)}}, buf)
    foreign = save({"w": np.zeros(3, np.float32)})
    for data, what in ((buf.getvalue(), "not a safetensors file (no JSON header at its start)"),
                       (foreign, "not a chromestore model's weights (format None)")):  # fmt: skip
        sha = hashlib.sha256(data).hexdigest()
        folder = _edited(exported, tmp_path, spec=lambda d, sha=sha: d.update(weights_sha256=sha),
                         weights=lambda _, data=data: data)  # fmt: skip
        line = _refused("predict", str(store), "--model-dir", str(folder), "--cells", "E004")
        assert line == f"error: {folder}/model.safetensors: {what}"
        import shutil

        shutil.rmtree(folder)


def test_an_exported_model__checks_genome_window_and_bin_size_against_the_store(store, exported):
    model = chromestore.load_model(exported)
    ds = chromestore.open_store(store).sel(cell=["E004"])
    assert ds.attrs["genome"] == "hg19"
    for key, value, what in (("genome", "mm10", "genome assembly"), ("window", 4000,
                             "window (bp)"), ("bin_size", 50, "bin size (bp)")):  # fmt: skip
        other = ds.copy()
        other.attrs = {**ds.attrs, key: value}
        with pytest.raises(P.PredictError) as err:
            model.predict(other)
        assert err.value.args[0] == (
            f"{what} mismatch: the dataset's is {value!r}, model 'deepchrome' was trained on "
            f"{ds.attrs[key]!r}"
        )
    # the marks matched by name: another order is fed in the model's order
    flipped = ds.isel(mark=slice(None, None, -1))
    np.testing.assert_allclose(model.predict(flipped).values, model.predict(ds).values)


def test_an_exported_folder__files_share_one_mode_and_carry_checksum_and_layout(exported):
    from safetensors import safe_open

    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in exported.iterdir()}
    assert modes["model.safetensors"] == modes["model.json"] == modes["README.md"], modes
    spec = json.loads((exported / "model.json").read_text())
    data = (exported / "model.safetensors").read_bytes()
    assert spec["weights_sha256"] == hashlib.sha256(data).hexdigest()
    assert spec["format_version"] == X.FORMAT_VERSION == 3
    assert spec["signal_units"] == dict.fromkeys(V.DEFAULT_MARKS, "reads")
    with safe_open(str(exported / "model.safetensors"), "np") as f:
        meta = f.metadata()
    assert json.loads(meta["chromestore.marks"]) == spec["marks"] == list(V.DEFAULT_MARKS)
    assert json.loads(meta["chromestore.bin_offset"]) == spec["bin_offset"]
    assert json.loads(meta["chromestore.genome"]) == "hg19"
    assert json.loads(meta["chromestore.signal_units"]) == spec["signal_units"]
    assert json.loads(meta["chromestore.input_transform"]) == spec["input_transform"] == "raw"
    assert json.loads(meta["chromestore.quantile_normalisation"]) is None


# --- 6. nothing overwrites what chromestore did not create -----------------------------------
def _users_folder(path: Path) -> dict[str, bytes]:
    path.mkdir()
    (path / "metrics.csv").write_text("my,own\n1,2\n")
    (path / "notes.txt").write_text("mine")
    return _files(path)


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _same(path: Path, files: dict[str, bytes]) -> bool:
    return _files(path) == files


def test_emit_report_and_export__refuse_a_folder_of_the_users(store, tmp_path):
    s = str(store)
    for i, args in enumerate((
        ["simulate", "--emit", "{}", "--cells", "E003", "--genes", "20"],
        ["analyze", s, "--run", "mix", "--no-interpret", "--report", "{}"],
        ["export", s, "--run", "dc", "--cell", "E003", "--out", "{}"],
    )):  # fmt: skip
        folder = tmp_path / f"users-{i}"
        files = _users_folder(folder)
        for extra in ([], ["--overwrite"]):
            line = _refused(*[a.replace("{}", str(folder)) for a in args], *extra)
            assert line.startswith(f"error: {folder}: exists and is not a chromestore "), line
            assert line.endswith(
                "folder (a folder chromestore did not write, holding metrics.csv, notes.txt); "
                "nothing was changed: choose a new or empty folder"
            ), line
            assert _same(folder, files)


def test_emit_report_and_export__replace_their_own_folder_only_with_overwrite(store, tmp_path):
    s = str(store)
    for i, (args, kind) in enumerate((
        (["simulate", "--emit", "{}", "--cells", "E003", "--genes", "20"], "emit"),
        (["analyze", s, "--run", "mix", "--no-interpret", "--report", "{}"], "report"),
        (["export", s, "--run", "dc", "--cell", "E003", "--out", "{}"], "model"),
    )):  # fmt: skip
        folder = tmp_path / f"ours-{i}"
        cmd = [a.replace("{}", str(folder)) for a in args]
        _ok(*cmd)
        files = _files(folder)
        line = _refused(*cmd)
        assert line.startswith(f"error: {folder}: a chromestore {kind} is already there; pass "
                               "--overwrite to replace it"), line  # fmt: skip
        assert _same(folder, files)
        _ok(*cmd, "--overwrite")
        (folder / "mine.txt").write_text("mine")  # the user's file joins: never replaced
        files = _files(folder)
        line = _refused(*cmd, "--overwrite")
        assert "with other files added: mine.txt" in line, line
        assert _same(folder, files)


# --- 7. the smaller items -------------------------------------------------------------------
def test_predict_model_dir__keeps_a_real_run_that_info_lists(store, exported, tmp_path):
    c = _copy(store, tmp_path)
    copy = Path(c)
    out = _ok("predict", c, "--model-dir", str(exported), "--cells", "E004", "--name", "mine")
    assert (copy / "runs" / "mine" / "zarr.json").is_file()
    assert "scores → " in out
    info = _ok("info", c)
    assert "runs: 4" in info and "  mine: deepchrome (predictions) on E004" in info, info
    # later commands see a run, not an object zarr does not recognise
    out = _ok("analyze", c, "--run", "mix", "--no-interpret")
    assert "not recognized" not in out
    line = _refused("train", c, "--model", "shallowchrome", "--cells", "E003", "--run", "mine")
    assert "run 'mine' already exists" in line and "'mine-2'" in line


def test_export_cell_of_a_pooled_run__refused_not_ignored(store, tmp_path):
    line = _refused("export", str(store), "--run", "pool", "--cell", "E003", "--out",
                    str(tmp_path / "p"))  # fmt: skip
    assert line == (
        "error: run 'pool': deepchrome-pooled is one model pooled over E003, E004, not a "
        "model of E003; name no epigenome (--from-cell/--cell) for it"
    )
    assert not (tmp_path / "p").exists()
    _ok("export", str(store), "--run", "pool", "--out", str(tmp_path / "p"))
    assert json.loads((tmp_path / "p" / "model.json").read_text())["training_cells"] == [
        "E003",
        "E004",
    ]


def test_analyze_of_several_runs__writes_the_metrics_into_each(store, tmp_path):
    c = _copy(store, tmp_path)
    out = _ok("analyze", c, "--run", "mix", "--run", "dc", "--no-interpret")
    assert "reductions written to runs/mix/metrics, runs/dc/metrics" in out
    for name in ("mix", "dc"):
        metrics = xr.open_zarr(f"{c}/runs/{name}/metrics", consolidated=False)
        assert sorted(str(m) for m in metrics.model.values) == ["deepchrome", "shallowchrome"]


def test_predict_into_a_taken_run_name__refused_one_line_nothing_changed(store, exported, tmp_path):
    c = _copy(store, tmp_path)
    before = _tree(Path(c))
    line = _refused("predict", c, "--model-dir", str(exported), "--cells", "E004", "--name", "dc")
    assert line == (
        "error: run 'dc' holds trained models; scores of a model that is not one of them are "
        "not kept in it: choose a free name such as 'dc-2' (--name)"
    )
    assert _tree(Path(c)) == before
    _ok("predict", c, "--model-dir", str(exported), "--cells", "E004", "--name", "mine")
    before = _tree(Path(c))
    line = _refused("predict", c, "--run", "mix", "--cells", "E004", "--name", "mine")
    assert line == (
        f"error: run 'mine' already exists in {c}; a run is never changed: pass --overwrite "
        "to replace it whole, or choose a free name such as 'mine-2'"
    )
    assert _tree(Path(c)) == before
    _ok("predict", c, "--run", "mix", "--cells", "E004", "--name", "mine", "--overwrite")
    info = _ok("info", c)
    assert "  mine: shallowchrome (predictions) on E004" in info, info


def test_a_changed_weights_file__verify_exits_1_naming_it_and_predict_refuses(store, tmp_path):
    c = _copy(store, tmp_path)
    _ok("verify", c)
    run = chromestore.open_run(c, "dc")
    entry = R.record_of(run.attrs)["deepchrome/E003/0.safetensors"]
    path = Path(f"{c}.weights/dc/{entry['dir']}/deepchrome/E003/0.safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    res = _cli("verify", c)
    assert res.exit_code == 1
    bad = (
        f"{path}: the file changed after the run was written (its SHA-256 is not the one the "
        "run records); it is not loaded: retrain the run"
    )
    assert f"bad: {bad}" in res.output.splitlines(), res.output
    assert res.output.splitlines()[-1] == f"error: {c}: 1 run weights file bad (listed above)"
    line = _refused("predict", c, "--run", "dc", "--cells", "E004")
    assert line == f"error: {bad}"
