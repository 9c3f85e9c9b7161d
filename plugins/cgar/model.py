"""CGAR, curriculum-guided adaptive recursion (arXiv 2511.08653): TRM trained with two
changes that cut training compute, evaluated exactly as TRM.

* Progressive depth: with p the share of training done, segments run
  (ceil(T/3), max(2, ceil(n/3))) recursions x latent steps while p < 0.3,
  (ceil(2T/3), ceil(2n/3)) while p < 0.6, then the full (T, n). Evaluation is always at full
  depth. (Sudoku paper setting: (1, 2) -> (2, 4) -> (3, 6).)
* Hierarchical supervision weighting: the loss of a slot's t-th supervision segment is
  multiplied by decay^(t-1) (0.7), so early segments, where most is learned, weigh most.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from reasonbench.optim import OptimConfig
from reasonbench.tasks import TaskMetadata
from reasonbench_plugins.trm import TRMModel


class CGARModel(TRMModel):
    """CGAR: TRM trained with progressive depth and decaying supervision weights.

    TRM's options apply too.

    Args:
        curriculum: progressive depth during training.
        curriculum_stages: training shares at which depth goes from 1/3 to 2/3 and to full.
        supervision_decay: weight decay factor per supervision segment (1.0 = off).
    """

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, curriculum: bool = True,
                 curriculum_stages: tuple[float, float] = (0.3, 0.6), supervision_decay: float = 0.7,
                 **trm_args: Any) -> None:
        super().__init__(metadata, optim, **trm_args)
        first, second = curriculum_stages
        if not 0 <= first <= second <= 1:
            raise ValueError(f"model.curriculum_stages must satisfy 0 <= a <= b <= 1, got {list(curriculum_stages)}")
        if not 0 < supervision_decay <= 1:
            raise ValueError(f"model.supervision_decay must be in (0, 1], got {supervision_decay}")
        self.curriculum = curriculum
        self.curriculum_stages = (float(first), float(second))
        self.supervision_decay = supervision_decay

    def depth_at(self, progress: float) -> tuple[int, int]:
        """(T, n) at a share ``progress`` of training."""
        T, n = self.recursions, self.latent_steps
        if not self.curriculum or progress >= self.curriculum_stages[1]:
            return T, n
        if progress < self.curriculum_stages[0]:
            return math.ceil(T / 3), max(2, math.ceil(n / 3))
        return math.ceil(2 * T / 3), math.ceil(2 * n / 3)

    def depth(self) -> tuple[int, int]:
        return self.depth_at(self.training_progress) if self.training else (self.recursions, self.latent_steps)

    def cost_phase(self) -> tuple[int, int]:
        return self.depth()

    def supervision_weights(self, steps: torch.Tensor) -> torch.Tensor | None:
        if self.supervision_decay == 1.0:
            return None
        return self.supervision_decay ** (steps.float() - 1)
