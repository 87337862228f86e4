"""Any network as a stacked ensemble: ``M`` copies of one ``nn.Module`` evaluated at once.

For ``torch`` models registered without a ``stacked`` implementation of their own.
:class:`StackedModules` keeps each parameter with a leading model dim and maps
``torch.func.functional_call`` over it with ``torch.vmap`` (dropout draws differ per
model). Buffers are carried but not updated, so layers with running statistics
(batch norm) are not supported. Models with dropout are reproducible for a given group,
not across groups of other sizes (DeepChrome's stacked module draws its masks per model).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def _attr(name: str) -> str:
    return name.replace(".", "__")


class StackedModules(nn.Module):
    """``forward(x (M, B, ...), masks=None)`` → each model's output on its own batch."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        params, buffers = torch.func.stack_module_state(list(models))
        self.n_models = len(models)
        self._params, self._buffers_names = list(params), list(buffers)
        for name, p in params.items():
            self.register_parameter(_attr(name), nn.Parameter(p.detach().clone()))
        for name, b in buffers.items():
            self.register_buffer(_attr(name), b.clone())
        self._base = [copy.deepcopy(models[0]).to("meta")]  # a template, not a submodule

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        base = self._base[0].train(self.training)
        params = {n: getattr(self, _attr(n)) for n in self._params}
        buffers = {n: getattr(self, _attr(n)) for n in self._buffers_names}

        def one(p, b, xi):
            return torch.func.functional_call(base, (p, b), (xi,))

        return torch.vmap(one, randomness="different")(params, buffers, x)

    def state_dict_of(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i``'s state dict, loadable into the original module (on CPU)."""
        return {
            n: getattr(self, _attr(n))[i].detach().cpu().clone()
            for n in self._params + self._buffers_names
        }
