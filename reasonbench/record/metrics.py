"""Evaluation metrics: exact and token accuracy, halting steps, task extras; Wilson intervals."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from reasonbench.nn.losses import IGNORE_INDEX
from reasonbench.record.stats import wilson_interval

MAX_STEPS = 128  # reasoning steps a depth curve can hold (`eval --eval-depth` at most this)
MAX_BUCKETS = 16  # difficulty buckets a task may define


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
                     "halt_right", "halt_count", "curve_examples", "halted_exact", "ood_examples", "ood_exact",
                     *(f"extra_{e}" for e in self.extra), *(f"stat_{s}" for s in self.stats),
                     *(f"stat_weight_{s}" for s in self.stats)):
            self.add_state(name, default=torch.tensor(0, dtype=torch.float64), dist_reduce_fx="sum")
        # per reasoning step and per difficulty bucket: fixed capacity, so processes can sum them
        for name, size in (("step_exact", MAX_STEPS), ("step_tokens_right", MAX_STEPS), ("step_residual", MAX_STEPS),
                           ("halt_histogram", MAX_STEPS), ("bucket_examples", MAX_BUCKETS), ("bucket_exact", MAX_BUCKETS)):
            self.add_state(name, default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("curve_steps", default=torch.tensor(0, dtype=torch.float64), dist_reduce_fx="max")

    def update(self, predictions: torch.Tensor, labels: torch.Tensor, steps: torch.Tensor | None = None,
               extra: dict[str, torch.Tensor] | None = None, halt_logits: torch.Tensor | None = None,
               stats: dict[str, float] | None = None, step_predictions: torch.Tensor | None = None,
               step_residuals: torch.Tensor | None = None, buckets: torch.Tensor | None = None,
               ood: torch.Tensor | None = None) -> None:
        mask = labels != IGNORE_INDEX
        supervised = mask.sum(-1)
        valid = supervised > 0
        right = ((predictions == labels) & mask).sum(-1)
        self.examples += valid.sum()
        self.exact += ((right == supervised) & valid).sum()
        if step_predictions is not None:
            self._update_curves(step_predictions, step_residuals, labels, mask, valid, steps)
        if buckets is not None:
            exact = ((right == supervised) & valid).double()
            # weights instead of boolean indexing: no host sync on a GPU
            self.bucket_examples += torch.bincount(buckets, weights=valid.double(), minlength=MAX_BUCKETS)[:MAX_BUCKETS]
            self.bucket_exact += torch.bincount(buckets, weights=exact, minlength=MAX_BUCKETS)[:MAX_BUCKETS]
        if ood is not None:
            self.ood_examples += (ood & valid).sum()
            self.ood_exact += (ood & valid & (right == supervised)).sum()
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
            # batch figures weighted by the batch's examples: a mean over the examples of the
            # batches that report the figure
            for name in self.stats:
                if name in stats:
                    setattr(self, f"stat_{name}", getattr(self, f"stat_{name}") + float(stats[name]) * labels.shape[0])
                    setattr(self, f"stat_weight_{name}", getattr(self, f"stat_weight_{name}") + labels.shape[0])
        for name, values in (extra or {}).items():
            state = f"extra_{name}"
            setattr(self, state, getattr(self, state) + (values.bool() & valid).sum())

    def _update_curves(self, step_predictions: torch.Tensor, step_residuals: torch.Tensor | None,
                       labels: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, steps: torch.Tensor | None) -> None:
        """Exact and token accuracy of the answer after every step; where the model halted and
        whether its answer there was right (does it stop when it is right?)."""
        n_steps = step_predictions.shape[0]
        if n_steps > MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS} reasoning steps are recorded, got {n_steps}")
        right = ((step_predictions == labels) & mask).sum(-1)  # [S, B]
        exact = (right == mask.sum(-1)) & valid
        self.step_exact[:n_steps] += exact.sum(-1)
        self.step_tokens_right[:n_steps] += right.sum(-1)
        if step_residuals is not None:
            self.step_residual[:n_steps] += (step_residuals.double() * valid).sum(-1)
        self.curve_examples += valid.sum()
        self.curve_steps = torch.maximum(self.curve_steps, torch.tensor(float(n_steps), dtype=torch.float64,
                                                                        device=self.curve_steps.device))
        if steps is not None:
            halt = steps.long().clamp(1, n_steps) - 1
            self.halt_histogram += torch.bincount(halt, weights=valid.double(), minlength=MAX_STEPS)[:MAX_STEPS]
            self.halted_exact += exact.gather(0, halt.view(1, -1)).sum()

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
        curve = self._curves()
        if curve:
            result["by_step"] = curve
            result["halted_exact_accuracy"] = (self.halted_exact / self.curve_examples).item() \
                if self.halt_histogram.sum() > 0 else None
        if self.bucket_examples.sum() > 0:
            result["by_difficulty_counts"] = {"examples": self.bucket_examples.long().tolist(),
                                              "exact": self.bucket_exact.long().tolist()}
        if self.ood_examples > 0 or self.bucket_examples.sum() > 0:
            n_ood, k_ood = int(self.ood_examples.item()), int(self.ood_exact.item())
            result["ood"] = {"n_test_examples": n_ood, "exact_correct": k_ood,
                             "exact_accuracy": k_ood / n_ood if n_ood else None,
                             "exact_accuracy_ci95": list(wilson_interval(k_ood, n_ood)) if n_ood else None}
        for name in self.stats:
            weight = getattr(self, f"stat_weight_{name}").item()
            result[name] = getattr(self, f"stat_{name}").item() / weight if weight else None
        for name in self.extra:
            count = int(getattr(self, f"extra_{name}").item())
            result[name] = count / n if n else 0.0
            result[f"{name}_ci95"] = list(wilson_interval(count, n))
        return result

    def _curves(self) -> dict[str, list[float | None]] | None:
        n_steps, n = int(self.curve_steps.item()), self.curve_examples.item()
        if not n_steps or not n:
            return None
        tokens = self.tokens.item()
        halted = self.halt_histogram[:n_steps]
        return {"exact": (self.step_exact[:n_steps] / n).tolist(),
                "token": (self.step_tokens_right[:n_steps] / tokens).tolist() if tokens else [0.0] * n_steps,
                "halted": (halted / n).tolist() if halted.sum() > 0 else None,
                "residual": (self.step_residual[:n_steps] / n).tolist() if self.step_residual.abs().sum() > 0 else None}


def encode_outcomes(exact: torch.Tensor) -> dict[str, Any]:
    """Per-example exact outcomes (bool [N], split order) as the record stores them: bits, the
    first example the most significant bit of the first byte, base64 (``stats.decode_outcomes``)."""
    import base64

    n = int(exact.numel())
    bits = torch.zeros(-(-n // 8) * 8, dtype=torch.uint8)
    bits[:n] = exact.detach().cpu().to(torch.uint8)
    packed = (bits.view(-1, 8) * torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)).sum(-1)
    return {"encoding": "bits-base64", "n": n,
            "data": base64.b64encode(packed.to(torch.uint8).numpy().tobytes()).decode("ascii")}
