"""No pickle anywhere: a payload planted at every weights and checkpoint path never runs,
and every command that would read it stops with one line naming the file."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import chromestore
from chromestore.app.cli import main
from chromestore.store import Store
from chromestore.training import weights as W
from chromestore.training.config import TrainConfig
from chromestore.training.ensemble import checkpoint_tag, fit_group
from chromestore.training.peers.execute import run_peers
from chromestore.training.pooled import leave_one_out
from chromestore.training.trainer import train


class Payload:
    """Unpickling this runs ``touch SENTINEL``."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("nopickle")
    store = str(root / "s.zarr")
    chromestore.simulate(store, cells=2, genes=192, seed=4, gene_chunk=64)
    cfg = TrainConfig(split="random", epochs=1, batch_size=32)
    train(store, "dc", ["E003", "E004"], cfg, mode="loop", progress=False)
    small = {"svm-bin": {"grid": {"C": [1.0], "gamma": [0.1]}}, "rf-bestbin": {"trees": [5]},
             "attentivechrome": {"epochs": 1, "ensemble": 1}}  # fmt: skip
    run_peers(store, "peers", ["shallowchrome", "svm-bin", "rf-bestbin", "attentivechrome"],
              ["E003"], hyper=small)  # fmt: skip
    leave_one_out(store, "pool", ["E003", "E004"], epochs=1)
    fit_group(store, ["E003"], TrainConfig(split="random", epochs=3), run="ck", stop_after=1)
    return root, store


def _files(store: str) -> list[Path]:
    return sorted(p for p in Path(f"{store}.weights").rglob("*.safetensors"))


def test_every_weights_and_checkpoint_file_is_safetensors_never_a_pickle(runs):
    _, store = runs
    files = _files(store)
    models = {p.parts[-3] for p in files}
    assert {"deepchrome", "shallowchrome", "svm-bin", "rf-bestbin", "attentivechrome",
            "deepchrome-pooled"} <= models  # fmt: skip
    assert any(".checkpoints" in p.parts for p in files)
    for p in files:
        data = p.read_bytes()
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        assert header["__metadata__"]["format"] == "chromestore-weights", p
        assert b"\x80\x04" not in data[:2] and not data.startswith(b"PK")  # no pickle, no zip


def _cli(*args) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["--workers", "0", *args])
    return res.exit_code, res.output


def test_a_payload_at_any_weights_or_checkpoint_path_never_runs(runs, tmp_path):
    root, store = runs
    sentinel = tmp_path / "ran"
    payloads = {
        "pickle": pickle.dumps(Payload(sentinel)),
        "torch": _torch_payload(sentinel, tmp_path),
    }
    for p in _files(store):
        original = p.read_bytes()
        for kind, payload in payloads.items():
            p.write_bytes(payload)
            where = str(p)
            if ".checkpoints" in p.parts:  # resuming reads it
                with pytest.raises(W.WeightsFormatError) as err:
                    fit_group(store, ["E003"], TrainConfig(split="random", epochs=3), run="ck")
                assert err.value.args[0].startswith(f"{where}: not a safetensors file"), kind
            else:
                run, model, cell = p.parts[-5], p.parts[-3], p.parts[-2]
                if "+" in cell:
                    commands = [("predict", store, "--run", run, "--cells", "E004")]
                else:
                    commands = [
                        ("predict", store, "--run", run, "--model", model, "--from-cell", cell,
                         "--cells", "E004"),
                        ("export", store, "--run", run, "--model", model, "--cell", cell,
                         "--out", str(tmp_path / f"x-{kind}")),
                    ]  # fmt: skip
                if model == "deepchrome" and run == "dc":
                    commands.append(("analyze", store, "--run", run))  # interpretation loads it
                for command in commands:
                    code, out = _cli(*command)
                    assert code == 1, (command, out)
                    assert out.strip().splitlines() == [
                        f"error: {where}: the file changed after the run was written (its "
                        "SHA-256 is not the one the run records); it is not loaded: retrain "
                        "the run"
                    ], (command, out)
            # the reader itself refuses the bytes, whatever the run records
            with pytest.raises(W.WeightsFormatError) as err:
                W.loads(payload, where=where)
            assert err.value.args[0].startswith(f"{where}: not a safetensors file")
            assert not sentinel.exists(), f"the {kind} payload at {p} ran"
        p.write_bytes(original)
    assert _cli("verify", store)[0] == 0


def _torch_payload(sentinel: Path, tmp_path: Path) -> bytes:
    import torch

    path = tmp_path / "payload.pt"
    torch.save({"state_dict": Payload(sentinel)}, path)
    return path.read_bytes()


def test_a_skops_estimator_naming_other_types_is_refused_unloaded(tmp_path):
    """A plugin's scikit-learn estimator is kept with skops, loaded trusting only
    scikit-learn's own types: a file naming another (here os.system) is not loaded."""
    import skops.io
    from safetensors.numpy import save

    raw = np.frombuffer(skops.io.dumps({"f": os.system}), np.uint8).copy()
    data = save(
        {"w": raw},
        metadata={"format": "chromestore-weights", "format_version": "1",
                  "structure": json.dumps({"__skops__": "w"})},
    )  # fmt: skip
    with pytest.raises(W.WeightsFormatError) as err:
        W.loads(data, where="planted.safetensors")
    assert err.value.args[0] == (
        "planted.safetensors: names types chromestore does not trust (posix.system); not loaded"
    )


def test_a_checkpoint_holds_no_pickle_either(runs):
    _, store = runs
    ck = Store.of(f"{store}.weights/ck/.checkpoints/deepchrome/{checkpoint_tag(['E003'])}")
    state = W.loads(W.read_bytes(Store.of(ck.url + ".safetensors")))
    assert state["epoch"] == 0 and isinstance(state["best_auc"], np.ndarray)
