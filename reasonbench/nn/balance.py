"""Loss balancing by gradient norms: AlgGradNorm, the closed-form GradNorm (Chen et al. 2018)
that CMM uses instead of training the weights by a second loss."""

from __future__ import annotations

import torch
from torch import nn


class GradNormBalancer(nn.Module):
    """Weights lambda_n (start 1, sum N) that multiply N loss terms (each already scaled by its
    fixed weight). An update measures each weighted term's gradient norm G_n on the ``shared``
    weights and moves lambda towards

        lambda_n * clamp(G* / G_n),  G* = mean(G) * r_n ** alpha,  r_n = (L_n / L_n(0)) / mean(...)

    renormalised to sum N, with momentum: terms that learn slower than the others (r_n > 1) get
    more weight, and no term's gradient dwarfs the rest. L_n(0) is re-read every ``reset_every``
    updates. A term without gradient (e.g. an inactive hinge) keeps its weight.
    """

    def __init__(self, names: list[str], alpha: float = 1.5, momentum: float = 0.95, reset_every: int = 100,
                 clamp: float = 10.0) -> None:
        super().__init__()
        if alpha < 0 or not 0 <= momentum < 1 or reset_every < 1 or clamp < 1:
            raise ValueError("balancer: alpha >= 0, 0 <= momentum < 1, reset_every >= 1, clamp >= 1")
        self.names = list(names)
        self.alpha, self.momentum, self.reset_every, self.clamp = alpha, momentum, reset_every, clamp
        self.register_buffer("weights", torch.ones(len(names)))
        self.register_buffer("initial_losses", torch.zeros(len(names)))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(w * terms[n] for n, w in zip(self.names, self.weights))

    @torch.no_grad()
    def _step(self, losses: torch.Tensor, norms: torch.Tensor) -> None:
        if self.updates % self.reset_every == 0:
            self.initial_losses.copy_(losses)
        self.updates += 1
        active = norms > 0
        if not active.any():
            return
        ratio = torch.where(self.initial_losses > 0, losses / self.initial_losses.clamp_min(1e-30), torch.ones_like(losses))
        rate = ratio / ratio[active].mean()
        target = norms[active].mean() * rate.pow(self.alpha)
        scale = (target / norms.clamp_min(1e-30)).clamp(1 / self.clamp, self.clamp)
        proposed = torch.where(active, self.weights * scale, self.weights)
        proposed = len(self.names) * proposed / proposed.sum()
        self.weights.mul_(self.momentum).add_((1 - self.momentum) * proposed)

    def update(self, terms: dict[str, torch.Tensor], shared: list[nn.Parameter]) -> None:
        """Measure the gradient norms of the weighted terms (graphs kept for the backward to come)."""
        norms = []
        for name, weight in zip(self.names, self.weights):
            grads = torch.autograd.grad(weight * terms[name], shared, retain_graph=True, allow_unused=True)
            total = self.weights.new_zeros(())
            for g in grads:
                if g is not None:
                    total = total + g.detach().float().pow(2).sum()
            norms.append(total.sqrt())
        self._step(torch.stack([terms[n].detach().float() for n in self.names]), torch.stack(norms))
