"""The one epoch loop of every network: early stopping, best epochs and checkpoints.

:class:`EpochLoop` runs the epochs of M models trained side by side (a stacked ensemble,
the members of an ensemble, or M = 1) and keeps, per model, the best validation score
and its epoch, the epochs since it, the training-loss and validation-score histories and
the best epoch's validation predictions. A model stops ``patience`` epochs after its last
improvement (``None``: it runs every epoch); the loop ends when none is still running.
Like PyTorch Lightning's ``Trainer.fit`` or skorch's ``NeuralNet.fit``, the loop owns
this bookkeeping and a model plugs in with small hooks (:class:`Hooks`):

``train_epoch(epoch, running)``
    one training epoch of the models ``running`` (M,) bool; their mean losses (M,);
``validate(epoch, running)``
    each model's validation score (M,) and its predictions (M, ...) or None;
``keep_best(better)``
    take the current weights of the models ``better`` (M,) bool as their best;
``restore_best()``
    put each model's best weights back (once, when the loop ends);
``state()``, ``load_state(state)``
    with a :class:`Checkpoint` only (:class:`CheckpointHooks`): the models' side of a
    checkpoint (weights, best weights, optimiser), plain tensors and values.

A model's first validated epoch is its first best, whatever its score (a one-class
validation set's NaN AUC included); after it a score counts only if strictly better
(``better="higher"``, an AUC, or ``"lower"``, an MSE), so a NaN never improves.

Examples
--------
>>> class Hooks:  # two models whose validation scores are fixed in advance
...     scores = np.array([[0.5, 0.6, 0.6, 0.6, 0.6], [0.5, 0.4, 0.7, 0.8, 0.9]])
...     def train_epoch(self, epoch, running):
...         return np.zeros(2)
...     def validate(self, epoch, running):
...         return self.scores[:, epoch], None
...     def keep_best(self, better):
...         pass
...     def restore_best(self):
...         pass
>>> loop = EpochLoop(2, epochs=5, patience=2).fit(Hooks())
>>> loop.best_epoch.tolist(), loop.model_epochs.tolist(), loop.finished
([1, 4], [4, 5], True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from chromestore.store import Store
from chromestore.training import weights as W

#: ``better``: which way a validation score improves.
DIRECTIONS = ("higher", "lower")


class Hooks(Protocol):
    """What a model gives :meth:`EpochLoop.fit` (see the module docstring)."""

    def train_epoch(self, epoch: int, running: np.ndarray) -> np.ndarray: ...

    def validate(self, epoch: int, running: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def keep_best(self, better: np.ndarray) -> None: ...

    def restore_best(self) -> None: ...


class CheckpointHooks(Hooks, Protocol):
    """:class:`Hooks` of a model whose loop saves checkpoints."""

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Checkpoint:
    """Where a loop saves its state and its models', and how often.

    ``key`` fingerprints the settings: a checkpoint written with another key is refused.
    A checkpoint is written ``every`` seconds (at most once an epoch), always when the
    loop is stopped early (``stop_after``), and after the last epoch only over an older
    one, so that a finished fit leaves no stale checkpoint behind.
    """

    target: Store
    key: str
    every: float = 30.0

    def read(self) -> dict | None:
        """The saved state, or None when there is none. A file that is not a checkpoint of
        chromestore's format is refused naming it (nothing in it is run)."""
        data = W.read_bytes(self.target)
        if data is None:
            return None
        state = W.loads(data, where=self.target.url)
        if not isinstance(state, dict) or "config" not in state:
            raise W.WeightsFormatError(f"{self.target.url}: not a chromestore checkpoint")
        if state["config"] != self.key:
            raise ValueError(
                f"checkpoint {self.target.url} was written with other settings; "
                "remove it or use another run name"
            )
        return state

    def write(self, state: dict) -> None:
        """Save ``state`` (tensors, arrays and plain values; written atomically)."""
        W.write_bytes(self.target, W.dumps({"config": self.key, **state}))


class EpochLoop:
    """The epochs of ``n_models`` models, each kept at its best validation epoch.

    ``patience``: epochs without improvement after which a model stops (None: never);
    ``better``: ``"higher"`` or ``"lower"`` scores are better. After :meth:`fit`:
    ``best_score``, ``best_epoch`` (-1: never validated) and ``since`` (M,);
    ``history_loss`` and ``history_score`` (M, epochs) float32, NaN where a model did
    not run; ``best_prediction`` (the best epoch's predictions of each model, when
    ``validate`` returns them and the epochs ran in this process); ``start`` (the first
    epoch of this call: after a checkpoint's), ``done`` (epochs run, counted from the
    first), ``model_epochs`` and ``finished``.
    """

    def __init__(
        self, n_models: int, epochs: int, *, patience: int | None = None, better: str = "higher"
    ) -> None:
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be at least 1 epoch, or None, not {patience}")
        if better not in DIRECTIONS:
            raise ValueError(f"better must be one of {DIRECTIONS}, not {better!r}")
        self.n_models, self.epochs, self.patience, self.better = n_models, epochs, patience, better
        self.best_score = np.full(n_models, -np.inf if better == "higher" else np.inf)
        self.best_epoch = np.full(n_models, -1, np.int16)
        self.since = np.zeros(n_models, np.int64)
        self.history_loss = np.full((n_models, epochs), np.nan, np.float32)
        self.history_score = np.full((n_models, epochs), np.nan, np.float32)
        self.best_prediction: np.ndarray | None = None
        self.start = self.done = 0

    @property
    def running(self) -> np.ndarray:
        """(M,) bool: the models that have not stopped early."""
        if self.patience is None:
            return np.ones(self.n_models, bool)
        return self.since < self.patience

    @property
    def finished(self) -> bool:
        """Every epoch ran, or every model stopped early."""
        return self.done >= self.epochs or not self.running.any()

    @property
    def model_epochs(self) -> np.ndarray:
        """(M,) the epochs each model trained: its best epoch's and those since."""
        return self.best_epoch.astype(np.int64) + 1 + self.since

    def improved(self, scores: np.ndarray, running: np.ndarray) -> np.ndarray:
        """(M,) bool: the ``running`` models whose ``scores`` are their best so far."""
        beats = scores > self.best_score if self.better == "higher" else scores < self.best_score
        return running & ((self.best_epoch < 0) | beats)

    def fit(
        self,
        hooks: Hooks,
        *,
        checkpoint: Checkpoint | None = None,
        stop_after: int | None = None,
        progress: Callable[[int, np.ndarray], None] | None = None,
    ) -> EpochLoop:
        """Run the epochs left, then put each model's best weights back.

        ``checkpoint``: resume from it when it holds one, and save to it (``hooks`` are
        then :class:`CheckpointHooks`); ``stop_after``: stop after that many epochs of
        this call (a checkpoint is saved); ``progress(epoch, scores)`` after each epoch.
        """
        saved = False
        if checkpoint is not None and (state := checkpoint.read()) is not None:
            hooks.load_state(state)
            self._load(state)
            saved = True
        saved_at = time.perf_counter()
        for epoch in range(self.start, self.epochs):
            running = self.running
            if not running.any():
                break
            losses = hooks.train_epoch(epoch, running)
            scores, predictions = hooks.validate(epoch, running)
            self._record(hooks, epoch, running, losses, scores, predictions)
            self.done = epoch + 1
            stopping = stop_after is not None and self.done - self.start >= stop_after
            if checkpoint is not None:
                due = time.perf_counter() - saved_at >= checkpoint.every
                if stopping or (due and not self.finished) or (self.finished and saved):
                    checkpoint.write({**hooks.state(), **self._state()})
                    saved_at, saved = time.perf_counter(), True
            if progress is not None:
                progress(epoch, scores)
            if stopping:
                break
        hooks.restore_best()
        return self

    def _record(self, hooks, epoch, running, losses, scores, predictions) -> None:
        self.history_loss[running, epoch] = losses[running]
        self.history_score[running, epoch] = scores[running]
        better = self.improved(scores, running)
        self.since[running & ~better] += 1
        self.since[better] = 0
        self.best_score[better] = scores[better]
        self.best_epoch[better] = epoch
        if predictions is not None:
            if self.best_prediction is None:
                dtype = np.result_type(predictions.dtype, np.float32)  # NaN: not yet scored
                self.best_prediction = np.full(predictions.shape, np.nan, dtype)
            self.best_prediction[better] = predictions[better]
        if better.any():
            hooks.keep_best(better)

    def _state(self) -> dict:
        return {
            "epoch": self.done - 1,
            "best_auc": self.best_score,
            "best_epoch": self.best_epoch,
            "since": self.since,
            "hist_loss": self.history_loss,
            "hist_auc": self.history_score,
        }

    def _load(self, state: dict) -> None:
        self.best_score, self.best_epoch, self.since = (
            state["best_auc"],
            state["best_epoch"],
            state["since"],
        )
        self.history_loss, self.history_score = state["hist_loss"], state["hist_auc"]
        self.start = self.done = int(state["epoch"]) + 1


class StackedBest:
    """The :class:`Hooks`' ``keep_best``/``restore_best`` of a stacked ensemble: ``params``
    (each with a leading model dim) and ``best``, their copies at each model's best epoch."""

    params: list[torch.Tensor]
    best: list[torch.Tensor]

    def keep_best(self, better: np.ndarray) -> None:
        with torch.no_grad():
            for p, bp in zip(self.params, self.best, strict=True):
                sel = torch.from_numpy(better).to(p.device).view((-1,) + (1,) * (p.dim() - 1))
                bp.copy_(torch.where(sel, p, bp))

    def restore_best(self) -> None:
        with torch.no_grad():
            for p, bp in zip(self.params, self.best, strict=True):
                p.copy_(bp)


def minibatch_epoch(
    optimiser: torch.optim.Optimizer,
    loss_of: Callable[[torch.Tensor | np.ndarray], torch.Tensor],
    order: torch.Tensor | np.ndarray,
    batch_size: int,
    clip: float = 0.0,
) -> float:
    """One epoch of one network over the samples ``order`` in batches of ``batch_size``:
    ``loss_of(batch indices)`` → mean loss, a step each (``clip``: the gradients' norm
    clipped to it, 0: not); returns the mean loss over the samples."""
    params = [p for group in optimiser.param_groups for p in group["params"]]
    total = 0.0
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        optimiser.zero_grad()
        loss = loss_of(idx)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimiser.step()
        total += float(loss.detach()) * len(idx)
    return total / len(order)
