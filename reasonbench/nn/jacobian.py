"""Stochastic estimates of a map's Jacobian J = df/dz at z, one vector-Jacobian product per
sample, per example (dimension 0 is the batch). With ``create_graph`` they can be trained on:
Jacobian regularisation of fixed-point models (Bai et al. 2021) and CMM's stability terms."""

from __future__ import annotations

import torch


def _vjp(fz: torch.Tensor, z: torch.Tensor, v: torch.Tensor, create_graph: bool) -> torch.Tensor:
    (vj,) = torch.autograd.grad(fz, z, v, create_graph=create_graph, retain_graph=True)
    return vj


def jacobian_frobenius_sq(fz: torch.Tensor, z: torch.Tensor, samples: int = 1,
                          create_graph: bool = True) -> torch.Tensor:
    """||J||_F^2 / dim per example, by Hutchinson: E ||v^T J||^2 with v ~ N(0, I). Returns [B]."""
    dims = tuple(range(1, z.ndim))
    total = 0.0
    for _ in range(samples):
        v = torch.randn_like(fz)
        total = total + _vjp(fz, z, v, create_graph).pow(2).sum(dims)
    return total / (samples * z[0].numel())


def jacobian_mean_diagonal(fz: torch.Tensor, z: torch.Tensor, samples: int = 1,
                           create_graph: bool = True) -> torch.Tensor:
    """tr(J) / dim per example (the mean of J's diagonal), by Hutchinson: E v^T J v with
    Rademacher v. Returns [B]."""
    dims = tuple(range(1, z.ndim))
    total = 0.0
    for _ in range(samples):
        v = torch.randint_like(fz, 0, 2).mul_(2).sub_(1)
        total = total + (_vjp(fz, z, v, create_graph) * v).sum(dims)
    return total / (samples * z[0].numel())


def double_differentiable():  # noqa: ANN201 (a context manager)
    """Attention through the math kernel: the fused GPU kernels have no double backward, which
    training on a Jacobian estimate needs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])
