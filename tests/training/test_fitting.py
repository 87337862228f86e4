"""The one epoch loop (chromestore.training.fitting): early stopping, best epochs, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chromestore.store import Store
from chromestore.training import weights as W
from chromestore.training.fitting import Checkpoint, EpochLoop, minibatch_epoch

NAN = np.nan


class Table:
    """Hooks whose validation scores are a table (model, epoch); a model's "weights" are
    the epoch it last trained, its predictions (model, 2) the epoch and the model."""

    def __init__(self, scores) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        n = len(self.scores)
        self.weights, self.best = np.full(n, -1), np.full(n, -1)
        self.trained: list[list[int]] = []
        self.restored = False

    def train_epoch(self, epoch, running):
        self.trained.append(np.flatnonzero(running).tolist())
        self.weights[running] = epoch
        return np.where(running, 10.0 - epoch, NAN)

    def validate(self, epoch, running):
        m = np.arange(len(self.scores))
        return self.scores[:, epoch], np.stack([np.full_like(m, epoch), m], axis=1)

    def keep_best(self, better):
        self.best[better] = self.weights[better]

    def restore_best(self):
        self.weights = self.best.copy()
        self.restored = True


def test_epoch_loop__each_model_stops_patience_epochs_after_its_own_best():
    scores = [
        [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6],  # best at 1, stops after epoch 3
        [0.5, 0.4, 0.7, 0.8, 0.9, 0.8, 0.7],  # best at 4, stops after epoch 6 (the last)
        [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # best at 0, stops after epoch 2
    ]
    hooks = Table(scores)
    loop = EpochLoop(3, epochs=7, patience=2).fit(hooks)
    assert hooks.trained == [[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1], [1], [1], [1]]
    assert loop.best_epoch.tolist() == [1, 4, 0]
    assert loop.best_score.tolist() == [0.6, 0.9, 0.9]
    assert loop.model_epochs.tolist() == [4, 7, 3]
    assert loop.done == 7 and loop.finished and not loop.running[[0, 2]].any()
    np.testing.assert_array_equal(np.isnan(loop.history_score), np.isnan(loop.history_loss))
    assert (~np.isnan(loop.history_score)).sum(1).tolist() == [4, 7, 3]
    np.testing.assert_array_equal(loop.history_score[1], np.float32(scores[1]))
    np.testing.assert_array_equal(loop.history_loss[0, :4], [10, 9, 8, 7])


def test_epoch_loop__ends_when_every_model_has_stopped():
    hooks = Table([[0.9, 0.1, 0.1, 0.1, 0.1], [0.9, 0.1, 0.1, 0.1, 0.1]])
    loop = EpochLoop(2, epochs=5, patience=1).fit(hooks)
    assert hooks.trained == [[0, 1], [0, 1]]
    assert loop.done == 2 and loop.finished and loop.model_epochs.tolist() == [2, 2]


def test_epoch_loop__keeps_each_models_best_weights_and_predictions():
    hooks = Table([[0.5, 0.7, 0.6, 0.8, 0.1], [0.5, 0.9, 0.2, 0.3, 0.4]])
    loop = EpochLoop(2, epochs=5).fit(hooks)  # patience None: every epoch runs
    assert hooks.trained == [[0, 1]] * 5
    assert loop.best_epoch.tolist() == [3, 1]
    assert hooks.restored and hooks.weights.tolist() == [3, 1]
    assert loop.best_prediction.tolist() == [[3, 0], [1, 1]]


def test_epoch_loop__lower_is_better_for_an_mse():
    hooks = Table([[3.0, 2.0, 2.5, 1.0, 1.5, 1.2]])
    loop = EpochLoop(1, epochs=6, patience=2, better="lower").fit(hooks)
    assert loop.best_epoch.tolist() == [3] and loop.best_score.tolist() == [1.0]
    assert loop.done == 6 and hooks.weights.tolist() == [3]
    higher = EpochLoop(1, epochs=6, patience=2).fit(Table(hooks.scores))
    assert higher.best_epoch.tolist() == [0] and higher.done == 3


def test_epoch_loop__first_epoch_is_best_even_if_nan_and_nan_never_improves():
    hooks = Table([[NAN, 0.6, 0.7, 0.8], [0.6, NAN, 0.5, 0.7]])
    loop = EpochLoop(2, epochs=4, patience=3).fit(hooks)
    # a one-class validation set scores NaN every epoch: its first epoch stays the best
    assert loop.best_epoch.tolist() == [0, 3]
    assert np.isnan(loop.best_score[0]) and loop.since.tolist() == [3, 0]


def test_epoch_loop__patience_under_one_epoch_is_refused():
    with pytest.raises(ValueError, match="patience must be at least 1 epoch, or None, not 0"):
        EpochLoop(2, epochs=3, patience=0)
    with pytest.raises(ValueError, match="better must be one of"):
        EpochLoop(2, epochs=3, better="max")


class Walk:
    """Hooks of M tensors that take seeded random steps; a model's score is its first
    coordinate, so each model peaks at its own epoch. Checkpointable."""

    def __init__(self, n_models: int = 3, seed: int = 0) -> None:
        self.seed = seed
        self.w = torch.zeros(n_models, 4, dtype=torch.float64)
        self.best = self.w.clone()

    def train_epoch(self, epoch, running):
        gen = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        step = torch.randn(self.w.shape, generator=gen, dtype=torch.float64)
        run = torch.from_numpy(running)
        self.w[run] += step[run]
        return step.abs().sum(1).numpy()

    def validate(self, epoch, running):
        return self.w[:, 0].numpy().copy(), self.w.numpy().copy()

    def keep_best(self, better):
        self.best[torch.from_numpy(better)] = self.w[torch.from_numpy(better)]

    def restore_best(self):
        self.w = self.best.clone()

    def state(self):
        return {"params": [self.w.clone()], "best": [self.best.clone()]}

    def load_state(self, state):
        self.w, self.best = state["params"][0].clone(), state["best"][0].clone()


def _ckpt(tmp_path, name: str, key: str = "settings") -> Checkpoint:
    return Checkpoint(Store.of(str(tmp_path / f"{name}.pt")), key, every=0.0)


def test_epoch_loop__resumed_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path):
    whole_hooks = Walk()
    whole = EpochLoop(3, epochs=12, patience=3).fit(whole_hooks)
    assert len(set(whole.best_epoch.tolist())) > 1  # the models stop at their own epochs
    ckpt = _ckpt(tmp_path, "cut")
    part = EpochLoop(3, epochs=12, patience=3).fit(Walk(), checkpoint=ckpt, stop_after=4)
    assert part.done == 4 and not part.finished and ckpt.read()["epoch"] == 3
    hooks = Walk()
    resumed = EpochLoop(3, epochs=12, patience=3).fit(hooks, checkpoint=ckpt)
    assert resumed.start == 4 and resumed.done == whole.done and resumed.finished
    for name in ("best_epoch", "best_score", "since", "history_loss", "history_score"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name), err_msg=name)
    torch.testing.assert_close(hooks.w, whole_hooks.w, rtol=0, atol=0)
    # the finished fit wrote its last epoch over the older checkpoint
    assert ckpt.read()["epoch"] == whole.done - 1


def test_checkpoint__written_when_due_never_by_a_short_finished_fit_and_other_settings_refused(
    tmp_path,
):
    due = _ckpt(tmp_path, "due")  # every=0: due after every epoch
    EpochLoop(3, epochs=3).fit(Walk(), checkpoint=due)
    assert due.read()["epoch"] == 2
    short = Checkpoint(Store.of(str(tmp_path / "short.pt")), "settings", every=1e9)
    EpochLoop(3, epochs=3).fit(Walk(), checkpoint=short)
    assert W.read_bytes(short.target) is None
    EpochLoop(3, epochs=3).fit(Walk(), checkpoint=_ckpt(tmp_path, "k", "one"), stop_after=1)
    with pytest.raises(ValueError, match=r"checkpoint .*k\.pt was written with other settings"):
        EpochLoop(3, epochs=3).fit(Walk(), checkpoint=_ckpt(tmp_path, "k", "two"))


def test_checkpoint__keeps_the_ensembles_file_format(tmp_path):
    ckpt = _ckpt(tmp_path, "format", "abc")
    EpochLoop(3, epochs=5, patience=2).fit(Walk(), checkpoint=ckpt, stop_after=2)
    raw = W.TORCH.load(W.read_bytes(ckpt.target))  # plain tensors: torch.load(weights_only)
    assert set(raw) == {
        "config",
        "epoch",
        "params",
        "best",
        "best_auc",
        "best_epoch",
        "since",
        "hist_loss",
        "hist_auc",
    }
    assert raw["config"] == "abc" and raw["epoch"] == 1
    dtypes = {k: raw[k].dtype for k in ("best_auc", "best_epoch", "since", "hist_loss")}
    assert dtypes == {
        "best_auc": torch.float64,
        "best_epoch": torch.int16,
        "since": torch.int64,
        "hist_loss": torch.float32,
    }
    assert raw["hist_auc"].shape == (3, 5)


def test_minibatch_epoch__steps_once_per_batch_and_returns_the_mean_loss():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.0)
    x = torch.arange(10.0)
    seen = []

    def loss_of(idx):
        seen.append(idx.tolist())
        return (x[idx] + w).mean()

    assert minibatch_epoch(opt, loss_of, torch.arange(10), 4) == pytest.approx(4.5)
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
