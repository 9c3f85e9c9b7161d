"""Optimizer settings and learning-rate schedules (no Lightning import: the CLI loads this
before it knows whether a run will happen)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule (linear warm-up, then cosine to ``min_lr_ratio``)."""

    lr: float = 1e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_steps: int = 0
    min_lr_ratio: float = 1.0  # 1.0 = constant after warm-up, as in the reference recipes

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up from 0, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
