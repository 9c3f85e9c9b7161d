"""Fixed-point solving and gradients (reasonbench.nn.fixed_point) and the Attractor plugin."""

from __future__ import annotations

import pytest
import torch

from reasonbench.nn.fixed_point import anderson, attach_gradient, fixed_point_iteration
from reasonbench.tasks.base import TaskMetadata
from reasonbench_plugins.attractor import AttractorModel

from .reference_layout import reference_batch


def _contraction(dim: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    w = (0.6 * w / torch.linalg.matrix_norm(w, 2)).requires_grad_(True)
    x = torch.randn(3, dim, generator=g, dtype=torch.float64, requires_grad=True)
    return w, x


@pytest.mark.parametrize("solve", [anderson, fixed_point_iteration])
def test_solvers_reach_the_fixed_point(solve):
    w, x = _contraction()
    f = lambda z: torch.tanh(z @ w.T + x)  # noqa: E731 (a 0.6-contraction)
    kwargs = dict(tol=1e-10, max_iter=200) if solve is fixed_point_iteration else dict(tol=1e-10, max_iter=60)
    z, stats = solve(f, torch.zeros(3, 6, dtype=torch.float64), **kwargs)
    assert (f(z) - z).abs().max().item() < 1e-8
    assert stats.residual < 1e-10 and stats.iterations >= 2


def test_anderson_needs_far_fewer_iterations_than_plain_iteration_on_a_slow_contraction():
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    w = q @ torch.diag(torch.linspace(-0.99, 0.99, 16, dtype=torch.float64)) @ q.T
    f = lambda z: z @ w.T + 1.0  # noqa: E731 (linear, spectral radius 0.99)
    z0 = torch.zeros(2, 16, dtype=torch.float64)
    z_plain, plain = fixed_point_iteration(f, z0, tol=1e-8, max_iter=5000)
    z_fast, accelerated = anderson(f, z0, history=5, ridge=1e-10, tol=1e-8, max_iter=5000)
    assert accelerated.iterations < plain.iterations / 3  # measured: 284 vs 1422
    torch.testing.assert_close(z_fast, z_plain, atol=0, rtol=1e-5)


def test_implicit_gradient_matches_finite_differences():
    w, x = _contraction()

    def loss_for(x_value: torch.Tensor) -> torch.Tensor:
        f = lambda z: torch.tanh(z @ w.T + x_value)  # noqa: E731
        z, _ = anderson(f, torch.zeros(3, 6, dtype=torch.float64), tol=1e-13, max_iter=100)
        return (z ** 2).sum()

    f = lambda z: torch.tanh(z @ w.T + x)  # noqa: E731
    z_star, _ = anderson(f, torch.zeros(3, 6, dtype=torch.float64), tol=1e-13, max_iter=100)
    z = attach_gradient(f, z_star, "implicit", backward_tol=1e-13, backward_max_iter=300)
    grad_x, = torch.autograd.grad((z ** 2).sum(), x)
    eps, numeric = 1e-6, torch.zeros_like(x)
    with torch.no_grad():
        for i in range(3):
            for j in range(6):
                step = torch.zeros_like(x)
                step[i, j] = eps
                numeric[i, j] = (loss_for(x + step) - loss_for(x - step)) / (2 * eps)
    torch.testing.assert_close(grad_x, numeric, atol=1e-7, rtol=1e-6)


def test_phantom_gradient_is_backprop_through_k_steps_from_the_detached_fixed_point():
    w, x = _contraction()
    f = lambda z: torch.tanh(z @ w.T + x)  # noqa: E731
    z_star, _ = anderson(f, torch.zeros(3, 6, dtype=torch.float64), tol=1e-12, max_iter=100)
    phantom = attach_gradient(f, z_star, "phantom", phantom_steps=3)
    manual = f(f(f(z_star.detach())))
    g1 = torch.autograd.grad(phantom.sum(), w)[0]
    g2 = torch.autograd.grad(manual.sum(), w)[0]
    torch.testing.assert_close(g1, g2)


def _tiny(**kw) -> AttractorModel:
    torch.manual_seed(0)
    meta = TaskMetadata(name="sudoku", vocab_size=11, seq_len=81, num_puzzle_ids=3, grid_shape=(9, 9))
    return AttractorModel(meta, **{**dict(hidden_size=16, num_heads=2, num_layers=1, recursions=2, puzzle_emb_dim=16,
                                         puzzle_emb_len=1, halt_max_steps=2, halt_exploration_prob=0.0), **kw})


@pytest.mark.parametrize("max_iter", [4, 12])
def test_training_graph_does_not_grow_with_solver_iterations(max_iter):
    """Only K phantom steps and the answer update are differentiated, whatever the solver ran."""
    model = _tiny(solver_min_iter=max_iter, solver_max_iter=max_iter, solver_tol=1e-12, phantom_steps=2).train()
    with_grad = []
    model.net.register_forward_hook(lambda m, a, o: with_grad.append(torch.is_grad_enabled()))
    _, logs = model.training_loss(reference_batch())
    assert sum(with_grad) == 2 + 1
    assert logs["solver_iterations"].item() == max_iter


def test_evaluation_reports_solver_statistics():
    model = _tiny().eval()
    with torch.inference_mode():
        out = model(reference_batch())
    assert set(out.stats) == {"solver_iterations", "solver_residual"}
    assert 4 <= out.stats["solver_iterations"] <= 8 and out.stats["solver_residual"] >= 0


def test_rejects_bad_solver_settings():
    with pytest.raises(ValueError, match="solver"):
        _tiny(solver="newton")
    with pytest.raises(ValueError, match="gradient"):
        _tiny(gradient="exact")


def test_jacobian_penalty_adds_the_estimated_frobenius_norm_at_the_fixed_point():
    batch = reference_batch()
    plain = _tiny().train()
    torch.manual_seed(1)
    loss_plain, logs_plain = plain.training_loss(batch)
    assert "jacobian_frobenius_sq" not in logs_plain
    penalised = _tiny(jacobian_penalty=1e-3).train()
    torch.manual_seed(1)
    loss, logs = penalised.training_loss(batch)
    norm = logs["jacobian_frobenius_sq"].item()
    assert norm > 0
    assert loss.item() == pytest.approx(loss_plain.item() + 1e-3 * norm, rel=1e-5)
    loss.backward()  # double backward through the map (attention under the math kernel)
    assert all(p.grad is not None for p in penalised.net.parameters())
    with pytest.raises(ValueError, match="jacobian_penalty"):
        _tiny(jacobian_penalty=-1.0)
