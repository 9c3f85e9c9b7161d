"""Attractor (arXiv 2605.12466; jacobfa/Attractor, experiments/attractor_puzzles/trm/trm_deq.py):
TRM whose n explicit latent updates are replaced by the fixed point of the latent map,

    z* = f(z*),  f(z) = net(z, y + x),

found by Anderson acceleration without gradient (warm-started from the carried latent), then
reconnected to the graph by a truncated "phantom" backward through K more applications of f
(the reference's default) or by implicit differentiation. The answer update y = net(y, z*) and
the recursions, halting and deep supervision are TRM's. Training memory depends on K, not on
the solver's iterations. The reference's Anderson keeps its history wrongly (it rolls the buffer
but reads the first slots), which collapses the iterate; this one is a standard solver.
"""

from __future__ import annotations

from typing import Any

import torch

from reasonbench.module import ReasoningOutput
from reasonbench.nn.fixed_point import SolverStats, anderson, attach_gradient, fixed_point_iteration
from reasonbench.nn.jacobian import double_differentiable, jacobian_frobenius_sq
from reasonbench.optim import OptimConfig
from reasonbench.tasks import TaskMetadata
from reasonbench_plugins.trm import TRMModel


class AttractorModel(TRMModel):
    """Attractor: TRM whose latent updates are replaced by the fixed point of the latent map.

    TRM's options apply too (``latent_steps`` is unused; ``num_layers`` defaults to 8 here).

    Args:
        num_layers: blocks in the one network.
        solver: 'anderson' or 'iteration' (plain fixed-point iteration).
        solver_history: Anderson history m.
        solver_mixing: Anderson mixing beta.
        solver_ridge: regularisation of Anderson's least squares.
        solver_tol: stop when the relative residual ||f(z) - z|| / ||f(z)|| is below this.
        solver_min_iter: iterations at least.
        solver_max_iter: iterations at most.
        gradient: 'phantom' (K differentiated steps from the fixed point) or 'implicit'.
        phantom_steps: K.
        jacobian_penalty: weight of ||df/dz||_F^2 / dim at the fixed point (Hutchinson, one
            sample; the reference's option, 1e-3 when on), which keeps the map contractive; 0: off.
    """

    reported_stats = ("solver_iterations", "solver_residual")
    uniform_eval_cost = False  # the solver stops at its tolerance: examples differ

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, num_layers: int = 8,
                 solver: str = "anderson", solver_history: int = 5, solver_mixing: float = 1.0,
                 solver_ridge: float = 1e-4, solver_tol: float = 1e-3, solver_min_iter: int = 4,
                 solver_max_iter: int = 8, gradient: str = "phantom", phantom_steps: int = 2,
                 jacobian_penalty: float = 0.0, **trm_args: Any) -> None:
        super().__init__(metadata, optim, num_layers=num_layers, **trm_args)
        if solver not in ("anderson", "iteration"):
            raise ValueError(f"model.solver must be 'anderson' or 'iteration', got {solver!r}")
        if gradient not in ("phantom", "implicit"):
            raise ValueError(f"model.gradient must be 'phantom' or 'implicit', got {gradient!r}")
        if solver_history < 1 or not 0 < solver_mixing <= 1 or solver_ridge < 0 or solver_tol <= 0:
            raise ValueError("model.solver_history >= 1, 0 < solver_mixing <= 1, solver_ridge >= 0, solver_tol > 0")
        if not 1 <= solver_min_iter <= solver_max_iter or phantom_steps < 1:
            raise ValueError("model.solver_min_iter must be in 1..solver_max_iter and model.phantom_steps >= 1")
        if jacobian_penalty < 0:
            raise ValueError(f"model.jacobian_penalty must be >= 0, got {jacobian_penalty}")
        self.jacobian_penalty = jacobian_penalty
        self._jacobian_terms: list[torch.Tensor] = []
        self.solver, self.gradient, self.phantom_steps = solver, gradient, phantom_steps
        self.solver_options = dict(history=solver_history, mixing=solver_mixing, ridge=solver_ridge, tol=solver_tol,
                                   min_iter=solver_min_iter, max_iter=solver_max_iter)
        self._solves: list[SolverStats] = []

    def solve(self, f, z0: torch.Tensor) -> torch.Tensor:
        if self.solver == "anderson":
            z, stats = anderson(f, z0, **self.solver_options)
        else:
            z, stats = fixed_point_iteration(f, z0, self.solver_options["tol"], self.solver_options["max_iter"])
        self._solves.append(stats)
        return z

    def recursion(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor, latent_steps: int,
                  rotary: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        injection = y + x

        def f(state: torch.Tensor) -> torch.Tensor:
            return self.net(state, injection, rotary)

        z = self.solve(f, z.detach())
        if torch.is_grad_enabled():
            if self.jacobian_penalty > 0:
                at = z.detach().requires_grad_()
                with double_differentiable():
                    self._jacobian_terms.append(jacobian_frobenius_sq(f(at), at).mean())
            z = attach_gradient(f, z, self.gradient, self.phantom_steps)
        return self.net(y, z, rotary), z

    def solver_stats(self) -> dict[str, float]:
        """Mean iterations and mean final residual of the solves since the last call."""
        solves, self._solves = self._solves, []
        if not solves:
            return {}
        return {"solver_iterations": sum(s.iterations for s in solves) / len(solves),
                "solver_residual": sum(s.residual for s in solves) / len(solves)}

    def forward(self, batch: dict[str, torch.Tensor]) -> ReasoningOutput:
        self._solves = []
        out = super().forward(batch)
        out.stats = {**(out.stats or {}), **self.solver_stats()} or None
        return out

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._solves, self._jacobian_terms = [], []
        loss, logs = super().training_loss(batch)
        if self._jacobian_terms:
            penalty = torch.stack(self._jacobian_terms).mean()
            loss = loss + self.jacobian_penalty * penalty
            logs["jacobian_frobenius_sq"] = penalty.detach()
            self._jacobian_terms = []
        logs.update({k: torch.tensor(v) for k, v in self.solver_stats().items()})
        return loss, logs
