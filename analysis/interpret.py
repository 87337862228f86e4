"""What the trained models look at: class optimisation, saliency, integrated gradients, bins.

Kernels here are plain torch/numpy on one model (any ``nn.Module`` mapping
``(B, marks, bins)`` to two logits, e.g. ``training.models.DeepChrome``); the
per-run wrappers in :mod:`chromestore.analysis.explain` and :mod:`chromestore.analysis.report` run them
per epigenome and reduce them into the ``classopt_*``, ``saliency``,
``integrated_gradients`` and ``feature_map_bin`` variables of :mod:`chromestore.variables`.

Class optimisation follows DeepChrome §3.3: starting from a random input, minimise
the cross-entropy of the wanted class plus ``λ‖X‖²`` with the network frozen;
clamp negatives to 0, divide by the max, call bins above 0.25 active, count the
active bins per mark and flag the marks whose count is above the mean count.
Across epigenomes, :func:`pair_counts` counts how often each pair of marks is
flagged together (the paper's 47/56 and 50/56).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F

from chromestore import variables as V

ACTIVE_THRESHOLD = 0.25


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode with no parameter gradients; restores both on exit."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)


# --- class optimisation -----------------------------------------------------------
def class_optimisation(
    model: nn.Module,
    n_marks: int,
    n_bins: int,
    *,
    classes: Sequence[int] = (0, 1),
    lam: float = 0.01,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
) -> np.ndarray:
    """The input that best represents each class: an array (class, mark, bin), raw.

    All classes are optimised together as one batch (their losses are independent).
    """
    gen = torch.Generator().manual_seed(seed)
    x = (0.1 * torch.randn(len(classes), n_marks, n_bins, generator=gen)).requires_grad_(True)
    y = torch.as_tensor(list(classes), dtype=torch.long)
    opt = torch.optim.Adam([x], lr=lr)
    # cosine decay to 0: Adam's sign-like steps would otherwise leave noise of size lr
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    with frozen(model):
        for _ in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y, reduction="sum") + lam * (x**2).sum()
            loss.backward()
            opt.step()
            sched.step()
    return x.detach().numpy().astype(np.float32)


def activity(
    maps: np.ndarray, threshold: float = ACTIVE_THRESHOLD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalise class-optimisation maps (..., mark, bin) and score their marks.

    Returns ``(normalised, active_bins, flagged)``: negatives clamped to 0 and each
    map divided by its max over marks and bins; the number of bins above
    ``threshold`` per mark; and whether that count is above the mean count over marks.
    """
    clamped = np.clip(maps, 0, None)
    top = clamped.max(axis=(-2, -1), keepdims=True)
    norm = np.divide(clamped, top, out=np.zeros_like(clamped), where=top > 0)
    counts = (norm > threshold).sum(-1)
    flagged = counts > counts.mean(-1, keepdims=True)
    return norm.astype(np.float32), counts.astype(np.int64), flagged


def pair_counts(flagged: xr.DataArray) -> xr.DataArray:
    """Epigenomes where both marks are flagged: (class, mark, mark2) from (cell, class, mark)."""
    f = flagged.transpose(V.CELL, V.CLASS, V.MARK).values.astype(np.int64)
    counts = np.einsum("ckm,ckn->kmn", f, f)
    return xr.DataArray(
        counts,
        dims=(V.CLASS, V.MARK, V.MARK2),
        coords={
            V.CLASS: flagged[V.CLASS].values,
            V.MARK: flagged[V.MARK].values,
            V.MARK2: flagged[V.MARK].values,
        },
        name="classopt_pair_count",
    )


def top_pairs(counts: xr.DataArray, n: int = 3) -> dict[str, list[tuple[str, str, int]]]:
    """The ``n`` most frequent flagged pairs of distinct marks per class."""
    out = {}
    marks = [str(m) for m in counts[V.MARK].values]
    for k in counts[V.CLASS].values:
        c = counts.sel({V.CLASS: k}).values
        pairs = [
            (marks[i], marks[j], int(c[i, j]))
            for i in range(len(marks))
            for j in range(i + 1, len(marks))
        ]
        out[str(k)] = sorted(pairs, key=lambda p: -p[2])[:n]
    return out


# --- attributions -----------------------------------------------------------------
class Margin(nn.Module):
    """The logit margin ``f_high - f_low`` of a two-class model: > 0 pushes to high expression."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if isinstance(out, tuple):  # AttentiveChrome-style (logits, attention...)
            out = out[0]
        return out[:, 1] - out[:, 0]


def integrated_gradients(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    baseline: np.ndarray | torch.Tensor | None = None,
    n_steps: int = 64,
    batch_size: int = 256,
) -> np.ndarray:
    """Integrated gradients (captum) of the logit margin, per gene × mark × bin.

    The baseline defaults to zero signal; attributions sum to
    ``margin(x) - margin(baseline)`` up to the integral's discretisation error.
    """
    from captum.attr import IntegratedGradients

    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    base = (
        torch.zeros_like(x)
        if baseline is None
        else torch.as_tensor(np.asarray(baseline, dtype=np.float32)).expand_as(x)
    )
    out = []
    with frozen(model):
        ig = IntegratedGradients(Margin(model))
        for i in range(0, len(x), batch_size):
            out.append(
                ig.attribute(
                    x[i : i + batch_size].clone().requires_grad_(True),
                    base[i : i + batch_size],
                    n_steps=n_steps,
                    method="gausslegendre",
                    internal_batch_size=max(batch_size, 1) * 4,
                ).detach()
            )
    return torch.cat(out).numpy() if out else np.zeros(x.shape, np.float32)


def saliency(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Gradient saliency |∂ margin / ∂ x| (captum ``Saliency``), per gene × mark × bin."""
    from captum.attr import Saliency

    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    out = []
    with frozen(model):
        sal = Saliency(Margin(model))
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].clone().requires_grad_(True)
            out.append(sal.attribute(xb, abs=True).detach())
    return torch.cat(out).numpy() if out else np.zeros(x.shape, np.float32)


def margin(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """The logit margin of each gene (no gradients)."""
    with frozen(model), torch.no_grad():
        return Margin(model)(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


def per_class_mean(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (gene, ...) over the genes of each class: (class, ...)."""
    labels = np.asarray(labels).astype(int)
    out = np.full((len(V.CLASS_NAMES),) + values.shape[1:], np.nan, dtype=np.float32)
    for k in range(len(V.CLASS_NAMES)):
        if (labels == k).any():
            out[k] = values[labels == k].mean(0)
    return out


# --- bin influence ----------------------------------------------------------------
def first_conv(model: nn.Module) -> nn.Conv1d:
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            return m
    raise ValueError(f"{type(model).__name__} has no Conv1d layer")


def feature_map_per_bin(
    model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 1024
) -> np.ndarray:
    """Mean first-layer activation (ReLU of the convolution) over filters and genes, per bin.

    Position ``i`` of the convolution covers bins ``i .. i+k-1``; its value is put at
    the window's centre bin ``i + k // 2``; bins no window is centred on are NaN.
    """
    conv = first_conv(model)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    total = None
    with frozen(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            h = F.relu(conv(x[i : i + batch_size])).mean(1).sum(0)
            total = h if total is None else total + h
    n_bins = x.shape[-1]
    out = np.full(n_bins, np.nan, dtype=np.float32)
    k = conv.kernel_size[0]
    if total is not None:
        vals = (total / len(x)).numpy()
        out[k // 2 : k // 2 + len(vals)] = vals
    return out
