"""DeepChrome (Singh et al., 2016) as published, and its vectorised ensemble.

:class:`DeepChrome` is one model: input ``marks × bins`` (5 × 100),
Conv1d(5→50, kernel 10) → ReLU → MaxPool(5) → Dropout(0.5) → Linear(900→625) → ReLU →
Linear(625→125) → ReLU → Linear(125→2), trained with softmax cross-entropy.

:class:`StackedDeepChrome` holds ``M`` such models as tensors with a leading model
dimension and runs them at once: the convolution is an im2col view followed by one
batched matmul, the dense layers are ``baddbmm`` calls. Each model sees its own batch
(``x`` is ``(M, B, marks, bins)``), so gradients, optimiser state and dropout stay per
model. ``from_models``/``to_models`` convert to and from plain :class:`DeepChrome`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from chromestore.training.entry import TorchModel

N_FILTERS = 50
KERNEL = 10
POOL = 5
HIDDEN = (625, 125)
N_CLASSES = 2


def conv_length(n_bins: int) -> int:
    """Length after the convolution and max-pooling: 100 bins → 18."""
    out = (n_bins - KERNEL + 1) // POOL
    if out < 1:
        raise ValueError(f"{n_bins} bins are too few for kernel {KERNEL} and pool {POOL}")
    return out


def flops_per_sample(n_marks: int = 5, n_bins: int = 100) -> int:
    """Multiply-adds × 2 of one forward pass (a training step costs about 3×)."""
    conv = (n_bins - KERNEL + 1) * N_FILTERS * n_marks * KERNEL
    dims = (N_FILTERS * conv_length(n_bins), *HIDDEN, N_CLASSES)
    dense = sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True))
    return 2 * (conv + dense)


def pool_relu(h: torch.Tensor) -> torch.Tensor:
    """``relu(max_pool1d(h, POOL))`` over the last dim, equal in values and gradients to
    DeepChrome's ``max_pool1d(relu(h))``, in less time.

    ReLU commutes with a window's maximum, and where the maximum is positive the same
    position wins (ties go to the first position, as in ``max_pool1d``), so the gradient
    reaches the same elements; where it is not positive no gradient passes either way.
    ReLU then runs on a fifth of the elements, and the windows are reduced with
    ``max(-1)`` (``amax`` without autograd), which on a CPU core costs less than
    ``max_pool1d``: one DeepChrome step ~6 % less in isolation, the training of 8
    epigenomes ~4 % (README), bit for bit the same (``tests/training/test_training.py``;
    :class:`StackedDeepChrome` pools before its ReLU too, where ``amax`` shares a tied
    maximum's gradient among the tied positions: the same positions either way).
    """
    n = h.shape[-1] // POOL
    windows = h[..., : n * POOL].unflatten(-1, (n, POOL))
    pooled = windows.max(-1).values if h.requires_grad else windows.amax(-1)
    return F.relu(pooled)


class DeepChrome(nn.Module):
    """DeepChrome's CNN: ``(B, marks, bins)`` → logits ``(B, 2)``.

    Examples
    --------
    >>> m = DeepChrome()
    >>> sum(p.numel() for p in m.parameters())
    644177
    >>> m(torch.zeros(3, 5, 100)).shape
    torch.Size([3, 2])
    """

    def __init__(self, n_marks: int = 5, n_bins: int = 100, dropout: float = 0.5) -> None:
        super().__init__()
        self.n_marks, self.n_bins, self.dropout_p = n_marks, n_bins, dropout
        self.conv = nn.Conv1d(n_marks, N_FILTERS, KERNEL)
        self.pool = nn.MaxPool1d(POOL)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(N_FILTERS * conv_length(n_bins), HIDDEN[0])
        self.fc2 = nn.Linear(HIDDEN[0], HIDDEN[1])
        self.fc3 = nn.Linear(HIDDEN[1], N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ReLU after the pool: the same values and gradients (see :func:`pool_relu`)
        h = self.dropout(F.relu(self.pool(self.conv(x)))).flatten(1)
        h = F.relu(self.fc1(h))
        h = F.relu(self.fc2(h))
        return self.fc3(h)


#: Parameter names of DeepChrome in a fixed order (the stacked tensors follow it).
PARAM_NAMES = (
    "conv.weight",
    "conv.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
)


class StackedDeepChrome(nn.Module):
    """``M`` independent DeepChrome models evaluated together.

    Parameters are stored with a leading model dim, in ``nn.Linear``/``nn.Conv1d``
    layout (``fc1_weight`` is ``(M, 625, 900)``). ``forward(x, masks)`` takes
    ``x`` of shape ``(M, B, marks, bins)`` and optional dropout keep-masks
    ``(M, B, 900)`` already scaled by ``1/(1-p)``; it returns logits ``(M, B, 2)``.
    """

    def __init__(
        self, n_models: int, n_marks: int = 5, n_bins: int = 100, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.n_models, self.n_marks, self.n_bins, self.dropout_p = (
            n_models,
            n_marks,
            n_bins,
            dropout,
        )
        self.n_flat = N_FILTERS * conv_length(n_bins)
        #: Step the models one at a time (see :meth:`forward`) instead of batched.
        self.per_model = False
        shapes = {
            "conv.weight": (N_FILTERS, n_marks, KERNEL),
            "conv.bias": (N_FILTERS,),
            "fc1.weight": (HIDDEN[0], self.n_flat),
            "fc1.bias": (HIDDEN[0],),
            "fc2.weight": (HIDDEN[1], HIDDEN[0]),
            "fc2.bias": (HIDDEN[1],),
            "fc3.weight": (N_CLASSES, HIDDEN[1]),
            "fc3.bias": (N_CLASSES,),
        }
        for name in PARAM_NAMES:
            self.register_parameter(
                name.replace(".", "_"), nn.Parameter(torch.zeros(n_models, *shapes[name]))
            )

    @classmethod
    def from_models(cls, models: Sequence[DeepChrome]) -> StackedDeepChrome:
        first = models[0]
        out = cls(len(models), first.n_marks, first.n_bins, first.dropout_p)
        with torch.no_grad():
            for name in PARAM_NAMES:
                stacked = torch.stack([m.state_dict()[name] for m in models])
                getattr(out, name.replace(".", "_")).copy_(stacked)
        return out.to(first.conv.weight.device)

    def state_dict_of(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i`` as a plain :class:`DeepChrome` state dict (on CPU)."""
        return {
            n: getattr(self, n.replace(".", "_"))[i].detach().cpu().clone() for n in PARAM_NAMES
        }

    def to_models(self) -> list[DeepChrome]:
        models = []
        for i in range(self.n_models):
            m = DeepChrome(self.n_marks, self.n_bins, self.dropout_p)
            m.load_state_dict(self.state_dict_of(i))
            models.append(m)
        return models

    def forward(
        self, x: torch.Tensor, masks: torch.Tensor | None = None, active: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(M, B, 2)``: one stacked pass, or one pass per model when
        :attr:`per_model` is set (then models not ``active`` give zeros and no gradient)."""
        if self.per_model:
            return self._forward_each(x, masks, active)
        m, b, c, n_bins = x.shape
        length = n_bins - KERNEL + 1
        # im2col: (M, B, C, L, K) view → (M, B*L, C*K) rows; one bmm does all the convolutions
        patches = x.unfold(3, KERNEL, 1).permute(0, 1, 3, 2, 4).reshape(m, b * length, c * KERNEL)
        w = self.conv_weight.reshape(m, N_FILTERS, c * KERNEL)
        h = torch.baddbmm(self.conv_bias.unsqueeze(1), patches, w.transpose(1, 2))
        h = h.view(m, b, length, N_FILTERS)
        n_pool = length // POOL
        h = F.relu(h[:, :, : n_pool * POOL].reshape(m, b, n_pool, POOL, N_FILTERS).amax(3))
        h = h.transpose(2, 3).reshape(m, b, self.n_flat)  # channel-major, as nn.Flatten
        if masks is not None:
            h = h * masks
        h = F.relu(torch.baddbmm(self.fc1_bias.unsqueeze(1), h, self.fc1_weight.transpose(1, 2)))
        h = F.relu(torch.baddbmm(self.fc2_bias.unsqueeze(1), h, self.fc2_weight.transpose(1, 2)))
        return torch.baddbmm(self.fc3_bias.unsqueeze(1), h, self.fc3_weight.transpose(1, 2))

    def _forward_each(
        self, x: torch.Tensor, masks: torch.Tensor | None, active: torch.Tensor | None
    ) -> torch.Tensor:
        # One small model at a time (as a plain per-model loop): on a CPU core this beats
        # the batched matmuls. ``unbind`` keeps the stacked parameters: its backward stacks
        # the per-model gradients once, so the optimiser still sees (M, ...) tensors.
        params = [getattr(self, n.replace(".", "_")).unbind(0) for n in PARAM_NAMES]
        run = range(len(x)) if active is None else active.nonzero().flatten().tolist()
        out = [None] * len(x)
        for i in run:
            cw, cb, w1, b1, w2, b2, w3, b3 = (p[i] for p in params)
            h = pool_relu(F.conv1d(x[i], cw, cb)).flatten(1)
            if masks is not None:
                h = h * masks[i]
            h = F.relu(F.linear(h, w1, b1))
            h = F.relu(F.linear(h, w2, b2))
            out[i] = F.linear(h, w3, b3)
        if not run:
            return x.new_zeros(len(x), x.shape[1], N_CLASSES)
        zero = out[run[0]].detach().new_zeros(out[run[0]].shape)
        return torch.stack([o if o is not None else zero for o in out])


ENTRY = TorchModel(
    "deepchrome",
    DeepChrome,
    stacked=StackedDeepChrome.from_models,
    defaults={"dropout": 0.5},
    paper="Singh et al. 2016, DeepChrome (Bioinformatics)",
)
