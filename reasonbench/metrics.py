"""Evaluation metrics: exact and token accuracy, halting steps, task extras; Wilson intervals."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from .nn.losses import IGNORE_INDEX
from .stats import wilson_interval


class ReasoningMetrics(Metric):
    """Sums over examples, reduced across processes by summation (correct under DDP).

    An example counts as exactly right when every supervised token is right; examples
    without supervised tokens are not counted.
    """

    full_state_update = False

    def __init__(self, extra: tuple[str, ...] = (), stats: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.extra = tuple(extra)
        self.stats = tuple(stats)
        for name in ("examples", "exact", "tokens", "tokens_right", "steps_sum", "steps_count",
                     "halt_right", "halt_count",
                     *(f"extra_{e}" for e in self.extra), *(f"stat_{s}" for s in self.stats), "stat_weight"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, labels: torch.Tensor, steps: torch.Tensor | None = None,
               extra: dict[str, torch.Tensor] | None = None, halt_logits: torch.Tensor | None = None,
               stats: dict[str, float] | None = None) -> None:
        mask = labels != IGNORE_INDEX
        supervised = mask.sum(-1)
        valid = supervised > 0
        right = ((predictions == labels) & mask).sum(-1)
        self.examples += valid.sum()
        self.exact += ((right == supervised) & valid).sum()
        self.tokens += supervised.sum()
        self.tokens_right += right.sum()
        if halt_logits is not None:
            # the halting head is right when "halt" (logit >= 0) coincides with an exact answer
            exact = right == supervised
            self.halt_right += (((halt_logits >= 0) == exact) & valid).sum()
            self.halt_count += valid.sum()
        if steps is not None:
            self.steps_sum += steps.double().sum()
            self.steps_count += steps.numel()
        if stats:
            # batch figures weighted by the batch's examples: a mean over examples
            for name in self.stats:
                setattr(self, f"stat_{name}", getattr(self, f"stat_{name}") + float(stats[name]) * labels.shape[0])
            self.stat_weight += labels.shape[0]
        for name, values in (extra or {}).items():
            state = f"extra_{name}"
            setattr(self, state, getattr(self, state) + (values.bool() & valid).sum())

    def compute(self) -> dict[str, float]:
        n = int(self.examples.item())
        exact = int(self.exact.item())
        result = {
            "n_test_examples": n,
            "exact_correct": exact,
            "exact_accuracy": exact / n if n else 0.0,
            "exact_accuracy_ci95": list(wilson_interval(exact, n)),
            "token_accuracy": (self.tokens_right / self.tokens).item() if self.tokens > 0 else 0.0,
            "mean_steps": (self.steps_sum / self.steps_count).item() if self.steps_count > 0 else None,
            "halting_accuracy": (self.halt_right / self.halt_count).item() if self.halt_count > 0 else None,
        }
        for name in self.stats:
            weight = self.stat_weight.item()
            result[name] = getattr(self, f"stat_{name}").item() / weight if weight else None
        for name in self.extra:
            count = int(getattr(self, f"extra_{name}").item())
            result[name] = count / n if n else 0.0
            result[f"{name}_ci95"] = list(wilson_interval(count, n))
        return result
