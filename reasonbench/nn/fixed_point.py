"""Fixed points z* = f(z*) of a batched map, and gradients through them (deep equilibrium).

``anderson`` solves without gradient (Anderson acceleration, plain iteration as fallback);
``attach_gradient`` then reconnects z* to the graph, either by a truncated "phantom" backward
through K more applications of f (memory of K steps, independent of the solver's iterations) or
by implicit differentiation: the backward pass solves g = J_f(z*)^T g + dL/dz* by fixed-point
iteration on vector-Jacobian products (memory of one step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Map = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SolverStats:
    iterations: int
    residual: float  # max over the batch of ||f(z) - z|| / ||f(z)||


def _relative_residual(fz: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    diff = (fz - z).flatten(1).norm(dim=1)
    return diff / fz.flatten(1).norm(dim=1).clamp_min(1e-8)


@torch.no_grad()
def fixed_point_iteration(f: Map, z0: torch.Tensor, tol: float = 1e-3, max_iter: int = 30) -> tuple[torch.Tensor, SolverStats]:
    z, residual = z0, float("inf")
    for k in range(1, max_iter + 1):
        fz = f(z)
        residual = _relative_residual(fz, z).max().item()
        z = fz
        if residual < tol:
            return z, SolverStats(k, residual)
    return z, SolverStats(max_iter, residual)


@torch.no_grad()
def anderson(f: Map, z0: torch.Tensor, history: int = 5, mixing: float = 1.0, ridge: float = 1e-4,
             tol: float = 1e-3, max_iter: int = 8, min_iter: int = 1) -> tuple[torch.Tensor, SolverStats]:
    """Anderson acceleration (type II) on each example of the batch: the next iterate mixes
    the last ``history`` images with weights alpha minimising ||sum_i alpha_i (f(x_i) - x_i)||
    subject to sum alpha = 1 (ridge-regularised). Computed in float32 (float64 for float64
    input); returns the image f(x) of the iterate with the smallest residual. Falls back to plain iteration if the small solve fails."""
    dtype, shape = z0.dtype, z0.shape
    work = torch.float64 if dtype == torch.float64 else torch.float32
    batch = shape[0]
    x0 = z0.to(work).reshape(batch, -1)
    ff = lambda v: f(v.view(shape).to(dtype)).to(work).reshape(batch, -1)  # noqa: E731
    xs, fs = [x0], [ff(x0)]
    best, best_res = fs[0], _relative_residual(fs[0], x0)
    iterations = 1
    for k in range(1, max_iter):
        n = len(xs)
        X, F = torch.stack(xs, 1), torch.stack(fs, 1)  # [B, n, D]
        G = F - X
        # [[0, 1^T], [1, G G^T + ridge I]] [mu; alpha] = [1; 0]
        H = torch.zeros(batch, n + 1, n + 1, device=x0.device, dtype=work)
        H[:, 0, 1:] = H[:, 1:, 0] = 1
        H[:, 1:, 1:] = G @ G.transpose(1, 2) + ridge * torch.eye(n, device=x0.device, dtype=work)
        rhs = torch.zeros(batch, n + 1, 1, device=x0.device, dtype=work)
        rhs[:, 0] = 1
        try:
            alpha = torch.linalg.solve(H, rhs)[:, 1:, 0]  # [B, n]
        except RuntimeError:
            alpha = None
        if alpha is None or not torch.isfinite(alpha).all():
            x = fs[-1]  # plain iteration
        else:
            x = mixing * (alpha.unsqueeze(1) @ F)[:, 0] + (1 - mixing) * (alpha.unsqueeze(1) @ X)[:, 0]
        fx = ff(x)
        iterations = k + 1
        xs.append(x)
        fs.append(fx)
        if len(xs) > history:
            xs.pop(0)
            fs.pop(0)
        res = _relative_residual(fx, x)
        better = res < best_res
        best = torch.where(better.unsqueeze(1), fx, best)
        best_res = torch.minimum(res, best_res)
        if iterations >= min_iter and best_res.max().item() < tol:
            break
    return best.view(shape).to(dtype), SolverStats(iterations, best_res.max().item())


def attach_gradient(f: Map, z_star: torch.Tensor, method: str = "phantom", phantom_steps: int = 2,
                    backward_tol: float = 1e-4, backward_max_iter: int = 30) -> torch.Tensor:
    """z* (found without gradient) reconnected to the graph of f's parameters and inputs.

    ``phantom``: K = ``phantom_steps`` applications of f from the detached z*, differentiated
    (the truncated backward of the Attractor code). ``implicit``: one application of f, whose
    backward replaces dL/dz by the solution g of g = J^T g + dL/dz (implicit function theorem).
    """
    z_star = z_star.detach()
    if method == "phantom":
        z = z_star
        for _ in range(phantom_steps):
            z = f(z)
        return z
    if method != "implicit":
        raise ValueError(f"gradient method must be 'phantom' or 'implicit', got {method!r}")
    z = f(z_star)
    if not z.requires_grad:
        return z
    leaf = z_star.clone().requires_grad_(True)
    with torch.enable_grad():
        f_leaf = f(leaf)

    def solve_backward(grad: torch.Tensor) -> torch.Tensor:
        g = grad
        for _ in range(backward_max_iter):
            vjp = torch.autograd.grad(f_leaf, leaf, g, retain_graph=True)[0]
            g_next = vjp + grad
            done = (g_next - g).flatten(1).norm(dim=1).max() <= backward_tol * g_next.flatten(1).norm(dim=1).max().clamp_min(1e-8)
            g = g_next
            if done:
                break
        return g

    z.register_hook(solve_backward)
    return z
