"""Adam over stacked parameters, one step count per model of the ensemble."""

from __future__ import annotations

from collections.abc import Sequence

import torch

BETAS, EPS = (0.9, 0.999), 1e-8


class MaskedAdam:
    """Adam (as ``torch.optim.Adam``) over stacked parameters, one step count per model.

    Models not ``active`` in a step keep their parameters and moments unchanged, so a
    model in an ensemble follows exactly the trajectory it would follow alone.
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float, n_models: int) -> None:
        self.params, self.lr = list(params), lr
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = torch.zeros(n_models, dtype=torch.float64)

    def step(self, active: torch.Tensor) -> None:
        b1, b2 = BETAS
        self.t += active.double().cpu()
        t = self.t.clamp(min=1)
        step_size = (self.lr / (1 - b1**t)).float().to(self.params[0].device)
        bc2_sqrt = torch.sqrt(1 - b2**t).float().to(self.params[0].device)
        all_active = bool(active.all())
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                g = p.grad
                shape = (-1,) + (1,) * (p.dim() - 1)
                if all_active:
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(EPS)
                    p.addcdiv_(m * step_size.view(shape), denom, value=-1)
                else:
                    a = active.to(p.device).view(shape)
                    m.copy_(torch.where(a, m * b1 + g * (1 - b1), m))
                    v.copy_(torch.where(a, v * b2 + g * g * (1 - b2), v))
                    denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(EPS)
                    p.copy_(torch.where(a, p - m * step_size.view(shape) / denom, p))
                p.grad = None

    def state(self) -> dict:
        return {"m": self.m, "v": self.v, "t": self.t}

    def load(self, state: dict) -> None:
        for dst, src in zip(self.m + self.v, state["m"] + state["v"], strict=True):
            dst.copy_(src)
        self.t = state["t"].clone()
