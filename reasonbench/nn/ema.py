"""Exponential moving average of the trainable weights, evaluated in their place (TRM)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def copy_weights(module: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Overwrite the module's parameters named in ``weights`` with those tensors."""
    for name, p in module.named_parameters():
        if name in weights:
            p.copy_(weights[name])


class WeightEMA:
    """shadow <- decay * shadow + (1 - decay) * weight after every optimizer step, over the
    parameters that train by gradient (as the reference: puzzle-embedding tables excluded)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        live = {name: p.detach() for name, p in module.named_parameters() if name in self.shadow}
        for name, p in live.items():
            if self.shadow[name].device != p.device:  # the module moved (e.g. to the GPU) after we were made
                self.shadow[name] = self.shadow[name].to(p.device)
        # one multi-tensor op instead of a kernel per parameter
        torch._foreach_lerp_([self.shadow[n] for n in live], list(live.values()), 1 - self.decay)

    def copy_to(self, module: nn.Module) -> None:
        """Overwrite the module's weights with the averages (for good: the final weights)."""
        copy_weights(module, self.shadow)

    @torch.no_grad()
    def swap_in(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """Put the averages in place (evaluation); returns the live weights for ``swap_out``."""
        live = {name: p.detach().clone() for name, p in module.named_parameters() if name in self.shadow}
        self.copy_to(module)
        return live

    def swap_out(self, module: nn.Module, live: dict[str, torch.Tensor]) -> None:
        copy_weights(module, live)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: t.detach().cpu() for name, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"EMA state does not fit the model: {sorted(missing)[:3]}")
        for name, t in state.items():
            self.shadow[name] = t.to(self.shadow[name].device, self.shadow[name].dtype)
