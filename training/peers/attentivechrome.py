"""AttentiveChrome (Singh et al. 2017): attention over bins, then over marks.

For each mark, a bidirectional LSTM reads the bins 5'→3' and a bin-level attention
(a learned scoring vector, softmax over bins) pools its states into one vector per
mark. A second bidirectional LSTM reads those mark vectors and a mark-level attention
pools them into the gene's representation, which a linear layer turns into the
log-odds of high expression. Both attention maps are returned with every forward
pass so that analysis can keep them.

Examples
--------
>>> m = AttentiveChrome(n_marks=5, n_bins=100)
>>> logit, bin_att, mark_att = m(torch.zeros(3, 5, 100))
>>> logit.shape, bin_att.shape, mark_att.shape
(torch.Size([3]), torch.Size([3, 5, 100]), torch.Size([3, 5]))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from chromestore import variables as V
from chromestore.training.config import torch_threads
from chromestore.training.entry import ArraysModel, ModelMetric
from chromestore.training.fitting import EpochLoop, minibatch_epoch
from chromestore.training.scoring import auc as _auc
from chromestore.training.weights import TORCH

#: Hyper-parameters (the paper's sizes: 32 bin-level and 16 mark-level units per direction).
#: ``ensemble``: members trained from different seeds whose probabilities are averaged
#: (each keeps its own best-validation epoch); ``clip``: gradient-norm clipping (0: off);
#: ``weight_decay``: Adam's L2 penalty.
DEFAULTS = {
    "bin_hidden": 32,
    "mark_hidden": 16,
    "dropout": 0.5,
    "lr": 1e-3,
    "epochs": 40,
    "batch_size": 32,
    "patience": 10,
    "log1p": True,
    "ensemble": 5,
    "clip": 0.0,
    "weight_decay": 0.0,
}
#: Seed offset between ensemble members (``seed + k * MEMBER_SEED_STEP``).
MEMBER_SEED_STEP = 7919


class _Attention(nn.Module):
    """Softmax attention over dim 1 of ``(B, T, H)``: returns ``(pooled (B, H), weights (B, T))``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.softmax(self.score(h).squeeze(-1), dim=1)
        return torch.einsum("bt,bth->bh", w, h), w


class AttentiveChrome(nn.Module):
    """``(B, marks, bins)`` → ``(logit (B,), bin attention (B, marks, bins), mark attention (B, marks))``."""

    def __init__(
        self,
        n_marks: int = 5,
        n_bins: int = 100,
        bin_hidden: int = DEFAULTS["bin_hidden"],
        mark_hidden: int = DEFAULTS["mark_hidden"],
        dropout: float = DEFAULTS["dropout"],
    ) -> None:
        super().__init__()
        self.n_marks, self.n_bins = n_marks, n_bins
        self.bin_rnn = nn.ModuleList(
            nn.LSTM(1, bin_hidden, batch_first=True, bidirectional=True) for _ in range(n_marks)
        )
        self.bin_att = nn.ModuleList(_Attention(2 * bin_hidden) for _ in range(n_marks))
        self.mark_rnn = nn.LSTM(2 * bin_hidden, mark_hidden, batch_first=True, bidirectional=True)
        self.mark_att = _Attention(2 * mark_hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * mark_hidden, 1)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``generator``: where training draws its dropout mask (None: torch's global RNG)."""
        pooled, bin_w = [], []
        for j in range(self.n_marks):
            h, _ = self.bin_rnn[j](x[:, j, :, None])
            p, w = self.bin_att[j](h)
            pooled.append(p)
            bin_w.append(w)
        s, _ = self.mark_rnn(torch.stack(pooled, dim=1))
        v, mark_w = self.mark_att(s)
        return self.out(self._dropout(v, generator)).squeeze(-1), torch.stack(bin_w, dim=1), mark_w

    def _dropout(self, v: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        p = self.dropout.p
        if generator is None or not self.training or p == 0:
            return self.dropout(v)
        keep = torch.rand(v.shape, generator=generator, device=v.device) >= p
        return v * keep / (1 - p)


def initialise(model: nn.Module, generator: torch.Generator) -> None:
    """torch's default initialisation of ``model``'s LSTMs and linear layers (uniform in
    ±1/√hidden and ±1/√fan-in), drawn from ``generator`` instead of the global RNG."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LSTM):
                bound = module.hidden_size**-0.5
            elif isinstance(module, nn.Linear):
                bound = module.in_features**-0.5
            else:
                continue
            for p in module.parameters(recurse=False):
                p.uniform_(-bound, bound, generator=generator)


@dataclass
class AttentiveFit:
    """A trained model (best validation epoch), its history and outputs for every gene.

    With an ensemble, ``score`` and both attention maps are the members' means (still
    distributions), ``valid_auc`` is the ensemble's validation AUC, and ``model``,
    ``best_epoch`` and the histories are those of the first member; ``models`` holds all.
    """

    model: AttentiveChrome
    best_epoch: int
    history_loss: np.ndarray  # mean training loss per epoch
    history_valid_auc: np.ndarray
    score: np.ndarray = field(repr=False)  # P(class 1), (gene,)
    bin_attention: np.ndarray = field(repr=False)  # (gene, mark, bin)
    mark_attention: np.ndarray = field(repr=False)  # (gene, mark)
    valid_auc: float = float("nan")
    models: list = field(default_factory=list, repr=False)
    members_valid_auc: np.ndarray = field(default_factory=lambda: np.array([]), repr=False)


def _prepare(signal: np.ndarray, log1p: bool) -> torch.Tensor:
    x = np.nan_to_num(np.asarray(signal, dtype=np.float32), nan=0.0)
    if log1p:
        x = np.log1p(np.clip(x, 0, None))
    return torch.from_numpy(x)


@torch.no_grad()
def predict(model: AttentiveChrome, x: torch.Tensor, batch_size: int = 512):
    """Probabilities and attention maps for ``x`` (already prepared), in eval mode."""
    model.eval()
    outs = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    logit, bw, mw = (torch.cat(t) for t in zip(*outs, strict=True))
    return torch.sigmoid(logit).numpy(), bw.numpy(), mw.numpy()


def fit_attentivechrome(
    signal: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    *,
    seed: int = 0,
    threads: int | None = 1,
    **hyper,
) -> AttentiveFit:
    """Train on the ``split == 0`` genes, keep the epoch with the best validation AUC.

    ``signal`` is ``(gene, mark, bin)`` counts; ``hyper`` overrides :data:`DEFAULTS`.
    The ensemble's members (seeds ``seed + k * MEMBER_SEED_STEP``) train side by side in
    one :class:`chromestore.training.fitting.EpochLoop`, each stopping ``patience``
    epochs after its last improvement. A member draws its initial weights, batch orders
    and dropout masks from its own generators, never from torch's global RNG, so fits
    running at once in threads give the same models as one at a time. ``threads`` sets
    torch's intra-op threads for the duration of the fit (1: one task per core, the
    fastest for these small recurrent models; None: leave torch's setting).
    """
    hp = {**DEFAULTS, **hyper}
    unknown = set(hp) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown AttentiveChrome hyper-parameters {sorted(unknown)}")
    x = _prepare(signal, hp["log1p"])
    y = np.asarray(y)
    va = np.asarray(split) == V.VALID
    seeds = [seed + k * MEMBER_SEED_STEP for k in range(max(1, int(hp["ensemble"])))]
    # a patience of 0 stopped at the first epoch without gain, as 1 does
    patience = None if hp["patience"] is None else max(1, int(hp["patience"]))
    with torch_threads(threads):
        members = _Members(x, y, split, seeds, hp)
        loop = EpochLoop(len(seeds), int(hp["epochs"]), patience=patience).fit(members)
        outs = [predict(m, x) for m in members.models]
    score = np.mean([o[0] for o in outs], axis=0)
    n = int(loop.model_epochs[0])
    return AttentiveFit(
        members.models[0],
        int(loop.best_epoch[0]),
        loop.history_loss[0, :n],
        loop.history_score[0, :n],
        score,
        np.mean([o[1] for o in outs], axis=0),
        np.mean([o[2] for o in outs], axis=0),
        valid_auc=_auc(y[va], score[va]),
        models=members.models,
        members_valid_auc=loop.best_score.copy(),
    )


class _Members:
    """The loop's hooks (:mod:`chromestore.training.fitting`) for an ensemble's members."""

    def __init__(self, x: torch.Tensor, y: np.ndarray, split, seeds: list[int], hp: dict):
        split = np.asarray(split)
        self.x, self.y, self.hp = x, y.astype(np.float32), hp
        self.train = np.flatnonzero(split == V.TRAIN)
        self.valid = split == V.VALID
        self.xt, self.yt = x[self.train], torch.from_numpy(self.y[self.train])
        self.models, self.opts, self.orders, self.noise = [], [], [], []
        for seed in seeds:
            noise = torch.Generator().manual_seed(
                int(np.random.default_rng([seed, 1]).integers(2**62))
            )
            model = AttentiveChrome(
                x.shape[1], x.shape[2], hp["bin_hidden"], hp["mark_hidden"], hp["dropout"]
            )
            initialise(model, noise)
            self.models.append(model)
            self.opts.append(
                torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
            )
            self.orders.append(torch.Generator().manual_seed(seed))
            self.noise.append(noise)
        self.best: list[dict | None] = [None] * len(seeds)
        self.loss = nn.BCEWithLogitsLoss()

    def train_epoch(self, epoch: int, running: np.ndarray) -> np.ndarray:
        losses = np.full(len(self.models), np.nan)
        for k in np.flatnonzero(running):
            self.models[k].train()
            losses[k] = minibatch_epoch(
                self.opts[k],
                self._loss_of(k),
                torch.randperm(len(self.train), generator=self.orders[k]),
                self.hp["batch_size"],
                clip=self.hp["clip"],
            )
        return losses

    def _loss_of(self, k: int):
        model, noise = self.models[k], self.noise[k]
        return lambda idx: self.loss(model(self.xt[idx], noise)[0], self.yt[idx])

    def validate(self, epoch: int, running: np.ndarray) -> tuple[np.ndarray, None]:
        aucs = np.full(len(self.models), np.nan)
        for k in np.flatnonzero(running):
            p, _, _ = predict(self.models[k], self.x[self.valid])
            aucs[k] = _auc(self.y[self.valid], p)
        return aucs, None

    def keep_best(self, better: np.ndarray) -> None:
        for k in np.flatnonzero(better):
            self.best[k] = copy.deepcopy(self.models[k].state_dict())

    def restore_best(self) -> None:
        for model, state in zip(self.models, self.best, strict=True):
            if state is not None:
                model.load_state_dict(state)


# --- in the run layout (the peer executor's ``fit_cell``) -------------------------------
def fit_cell(data, hp: dict, seed: int) -> dict:
    """AttentiveChrome on one epigenome, every split repeat (seed ``seed + repeat``)."""
    out: dict = {
        k: []
        for k in (
            "prediction",
            "attention_bin",
            "attention_mark",
            "valid_auc",
            "history_loss",
            "history_valid_auc",
            "best_epoch",
            "weights",
        )
    }
    for r, split in enumerate(data.split):
        fit = fit_attentivechrome(data.signal, data.y, split, seed=seed + r, **hp)
        values = {
            "prediction": fit.score,
            "attention_bin": fit.bin_attention,
            "attention_mark": fit.mark_attention,
            "valid_auc": fit.valid_auc,
            "history_loss": fit.history_loss,
            "history_valid_auc": fit.history_valid_auc,
            "best_epoch": fit.best_epoch,
            "weights": [m.state_dict() for m in fit.models],
        }  # one per ensemble member
        for k, v in values.items():
            out[k].append(v)
    return out


def attention_per_class(run: xr.Dataset) -> xr.DataArray | None:
    """The bin attention averaged over test genes of each class and over repeats."""
    if "attentivechrome_attention_bin" not in run:
        return None
    att = run["attentivechrome_attention_bin"].transpose(V.CELL, V.REPEAT, V.GENE, V.MARK, V.BIN)
    split = run["split"].transpose(V.REPEAT, V.GENE).values
    out = np.full((run.sizes[V.CELL], 2, att.sizes[V.MARK], att.sizes[V.BIN]), np.nan, np.float32)
    for ci in range(run.sizes[V.CELL]):
        a = att.isel({V.CELL: ci}).values  # (repeat, gene, mark, bin)
        y = run["target"].isel({V.CELL: ci}).values
        for k in (0, 1):
            sel = (split == V.TEST) & (y == k)[None, :] & np.isfinite(a).all((2, 3))
            if sel.any():
                out[ci, k] = a[sel].mean(0)
    return xr.DataArray(
        out,
        dims=(V.CELL, V.CLASS, V.MARK, V.BIN),
        coords={
            V.CELL: run[V.CELL].values,
            V.CLASS: list(V.CLASS_NAMES),
            V.MARK: att[V.MARK].values,
            V.BIN: att[V.BIN].values,
        },
    )


_CR = (V.CELL, V.REPEAT)


def attentivechrome_scorer(weights: Any, hp: Mapping, layout) -> Callable[[np.ndarray], np.ndarray]:
    """``attentivechrome``: the mean P(class 1) of the member's ensemble of networks."""
    states = weights if isinstance(weights, list) else [weights]
    nets = []
    for state in states:
        bin_hidden = int(state["bin_rnn.0.weight_hh_l0"].shape[1])
        mark_hidden = int(state["mark_rnn.weight_hh_l0"].shape[1])
        n_marks = sum(1 for k in state if k.startswith("bin_rnn.") and k.endswith("weight_hh_l0"))
        net = AttentiveChrome(n_marks=n_marks, bin_hidden=bin_hidden, mark_hidden=mark_hidden)
        net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        nets.append(net)
    log1p = bool(hp.get("log1p", DEFAULTS.get("log1p", False)))

    def score(x: np.ndarray) -> np.ndarray:
        t = _prepare(x, log1p)
        return np.mean([predict(n, t)[0] for n in nets], axis=0).astype(np.float32)

    return score


ENTRY = ArraysModel(
    "attentivechrome",
    fit_cell,
    defaults=dict(DEFAULTS),
    weights=TORCH,  # a state dict per ensemble member
    scorer=attentivechrome_scorer,
    paper="Singh et al. 2017, AttentiveChrome (NeurIPS)",
    extras=(
        V.Spec(
            "attentivechrome_attention_bin",
            (*_CR, V.GENE, V.MARK, V.BIN),
            "f",
            "float32",
            "Bin-level attention of each gene and mark (ensemble mean).",
            required=False,
        ),
        V.Spec(
            "attentivechrome_attention_mark",
            (*_CR, V.GENE, V.MARK),
            "f",
            "float32",
            "Mark-level attention of each gene (ensemble mean).",
            required=False,
        ),
        # history_* and best_epoch are the first member's; this is the ensemble's
        V.Spec(
            "attentivechrome_valid_auc",
            _CR,
            "f",
            "float32",
            "Validation AUC of the ensemble.",
            required=False,
        ),
    ),
    metrics=(
        ModelMetric(
            "attention_class",
            attention_per_class,
            "AttentiveChrome bin-level attention averaged over test genes per class and repeats.",
            plot="class_map",
            title="AttentiveChrome attention",
            label="attention weight",
        ),
    ),
)
