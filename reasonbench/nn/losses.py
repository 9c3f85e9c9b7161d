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
