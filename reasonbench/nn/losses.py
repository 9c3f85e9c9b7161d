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


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy under "stablemax" (HRM/TRM): probabilities proportional to
    s(x) = 1/(1-x) for x < 0 and x + 1 otherwise, computed in float64 (float32 on MPS, which
    has no float64). Ignored labels give 0. Returns [B, L]."""
    dtype = torch.float32 if logits.device.type == "mps" else torch.float64
    x = logits.to(dtype)
    s = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    log_probs = torch.log(s / s.sum(-1, keepdim=True))
    mask = labels != IGNORE_INDEX
    picked = log_probs.gather(-1, torch.where(mask, labels, 0).unsqueeze(-1)).squeeze(-1)
    return -torch.where(mask, picked, 0)
