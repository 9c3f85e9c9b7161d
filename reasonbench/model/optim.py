"""Optimizer settings, learning-rate schedules and Adam-atan2 (no Lightning import: the CLI
loads this before it knows whether a run will happen)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule (linear warm-up, then cosine to ``min_lr_ratio``).

    Args:
        name: 'adamw', or 'adam_atan2' (the HRM/TRM reference optimizer: Adam with atan2 in place
            of the division by the second moment, no eps).
        lr: peak learning rate, reached at the end of the warm-up.
        weight_decay: decoupled weight decay of the weight matrices and embedding tables (not of
            biases or norm gains, unless the model decays all; the per-puzzle tables have their own).
        beta1: Adam's first-moment decay.
        beta2: Adam's second-moment decay.
        eps: Adam's epsilon (AdamW only).
        warmup_steps: optimizer steps of linear warm-up from 0.
        min_lr_ratio: learning rate at the last step as a share of ``lr``; 1.0 keeps it constant
            after the warm-up, as in the reference recipes.
        puzzle_emb_lr: learning rate of the per-puzzle embeddings, trained by sign-SGD (reference:
            1e-2 on ARC, 1e-4 on Sudoku and Maze).
        puzzle_emb_weight_decay: weight decay of the per-puzzle embeddings.
        ema_decay: > 0: evaluate an exponential moving average of the weights with this decay
            (TRM: 0.999); 0: the weights as trained.
    """

    name: Literal["adamw", "adam_atan2"] = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_steps: int = 0
    min_lr_ratio: float = 1.0
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in ("adamw", "adam_atan2"):
            raise ValueError(f"optim.name must be 'adamw' or 'adam_atan2', got '{self.name}'")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"optim.lr must be > 0 and finite, got {self.lr}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"optim.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"optim.{key} must be in [0, 1), got {getattr(self, key)}")
        if not (self.eps >= 0 and math.isfinite(self.eps)):
            raise ValueError(f"optim.eps must be a finite number >= 0, got {self.eps}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        for key in ("puzzle_emb_lr", "puzzle_emb_weight_decay"):
            if not (getattr(self, key) >= 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"optim.{key} must be a finite number >= 0, got {getattr(self, key)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def scheduled_lr(base_lr: float, step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """The rate of optimizer step ``step`` (counted from 1) as the HRM/TRM reference computes it
    (``cosine_schedule_with_warmup_lr_lambda`` of its ``pretrain.py``), rounding included: the
    warm-up rate is ``base_lr * step / warmup``, not ``base_lr * (step / warmup)``, as a
    one-ulp difference grows through training. The first update gets ``base_lr / warmup``."""
    if step < warmup_steps:
        return base_lr * float(step) / float(max(1, warmup_steps))
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    # clamped: a run longer than planned stays at the floor instead of climbing back
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return base_lr * (min_ratio + max(0.0, (1 - min_ratio) * cosine))


class ScheduledLR(torch.optim.lr_scheduler.LRScheduler):
    """Sets every group's rate for the coming optimizer step ``t`` (counted from 1) to
    ``rate(base_lr, t)``; stepped once after each optimizer step, so a resumed run continues the
    same sequence from the saved step count. ``rate`` is not saved with the state."""

    def __init__(self, optimizer: torch.optim.Optimizer, rate: Callable[[float, int], float]) -> None:
        self.rate = rate
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [self.rate(base, self.last_epoch + 1) for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "rate")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k not in ("optimizer", "rate", "lr_lambdas")})


class AdamAtan2(torch.optim.Optimizer):
    """Adam with ``atan2`` in place of the epsilon division (Everett et al. 2024), as the
    HRM/TRM reference trains with (the compiled ``adam-atan2`` package, which fails to build
    for many users). Per parameter, with step t counted from 1:

        p <- p * (1 - lr * weight_decay)                  (decoupled decay)
        m <- lerp(m, g, 1 - beta1);  v <- lerp(v, g*g, 1 - beta2)
        p <- p - lr / (1 - beta1^t) * atan2(m, sqrt(v) / sqrt(1 - beta2^t))

    The update is bounded by lr * pi / 2 / (1 - beta1^t) and needs no epsilon.

    ``foreach`` (the default) updates all parameters of a group with ``torch._foreach_*`` ops
    (one multi-tensor kernel per operation on a GPU instead of one per parameter); only the
    ``atan2`` runs per tensor, as PyTorch has no foreach ``atan2``. ``foreach=False`` is the
    plain per-parameter loop; both give the same results.
    """

    def __init__(self, params: Any, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95),
                 weight_decay: float = 0.0, foreach: bool = True) -> None:
        if not lr > 0 or not all(0 <= b < 1 for b in betas) or weight_decay < 0:
            raise ValueError(f"AdamAtan2: bad lr {lr}, betas {betas} or weight_decay {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "foreach": foreach})

    def _state(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        return state

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # groups restored from a checkpoint of an older version have no "foreach"
            (self._group_foreach if group.get("foreach", True) else self._group_loop)(group)
        return loss

    def _group_loop(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self._state(p)
            t = state["step"]
            m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
            p.mul_(1 - lr * decay)
            m.lerp_(g, 1 - beta1)
            v.lerp_(g * g, 1 - beta2)
            denom = v.sqrt() / math.sqrt(1 - beta2**t)
            p.add_(torch.atan2(m, denom), alpha=-lr / (1 - beta1**t))

    def _group_foreach(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        states = [self._state(p) for p in params]
        grads = [p.grad for p in params]
        ms, vs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        steps = [s["step"] for s in states]
        if decay:  # a multiplication by exactly 1 otherwise
            torch._foreach_mul_(params, 1 - lr * decay)
        torch._foreach_lerp_(ms, grads, 1 - beta1)
        torch._foreach_lerp_(vs, torch._foreach_mul(grads, grads), 1 - beta2)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, [math.sqrt(1 - beta2**t) for t in steps])
        for m, d in zip(ms, denom):  # no foreach atan2: in place, one call per tensor
            torch.atan2(m, d, out=d)
        if len(set(steps)) == 1:  # the usual case: one step count for the whole group
            torch._foreach_add_(params, denom, alpha=-lr / (1 - beta1**steps[0]))
        else:
            torch._foreach_mul_(denom, [-lr / (1 - beta1**t) for t in steps])
            torch._foreach_add_(params, denom)
