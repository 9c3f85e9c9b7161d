"""Loss functions shared by plugins."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over examples of the mean cross-entropy over each example's supervised tokens.

    Per-example normalisation (as in the reference code) keeps examples with few supervised
    cells from being drowned by those with many.
    """
    mask = labels != IGNORE_INDEX
    per_token = F.cross_entropy(logits.float().flatten(0, 1), labels.clamp_min(0).flatten(),
                                reduction="none").view_as(labels)
    per_example = (per_token * mask).sum(-1) / mask.sum(-1).clamp_min(1)
    return per_example.mean()


def taylor_exp(x: torch.Tensor, order: int) -> torch.Tensor:
    """exp's Taylor polynomial of the given order at 0: 1 + x + x^2/2 + ... + x^order/order!."""
    term, total = torch.ones_like(x), torch.ones_like(x)
    for k in range(1, order + 1):
        term = term * x / k
        total = total + term
    return total


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, order: int = 1) -> torch.Tensor:
    """Per-token cross-entropy under "stablemax": probabilities proportional to s(x) = T(x) for
    x >= 0 and 1/T(-x) otherwise, T being exp's Taylor polynomial of ``order`` (1: HRM/TRM's
    x + 1 and 1/(1-x); 3: CMM's), in float64 (float32 on MPS, which has no float64).
    Ignored labels give 0. Returns [B, L]."""
    dtype = torch.float32 if logits.device.type == "mps" else torch.float64
    x = logits.to(dtype)
    s = torch.where(x < 0, 1 / (taylor_exp(-x, order) + 1e-30), taylor_exp(x, order))
    log_probs = torch.log(s / s.sum(-1, keepdim=True))
    mask = labels != IGNORE_INDEX
    picked = log_probs.gather(-1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1)
    return -torch.where(mask, picked, 0)


def hyperspherical_repulsion(states: torch.Tensor) -> torch.Tensor:
    """Mean over ordered pairs i != j of the batch of the squared cosine similarity between the
    flattened states (CMM): 0 when the examples' states are orthogonal, 1 when all collapse
    onto one direction."""
    units = F.normalize(states.flatten(1).float(), dim=-1)
    batch = units.shape[0]
    if batch < 2:
        return units.new_zeros(())
    cos_sq = (units @ units.T).pow(2)
    return (cos_sq.sum() - cos_sq.diagonal().sum()) / (batch * (batch - 1))
