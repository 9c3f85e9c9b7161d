"""Adam-atan2 and stablemax cross-entropy against hand-computed values."""

import math

import pytest
import torch

from reasonbench.nn import stablemax_cross_entropy
from reasonbench.model.optim import AdamAtan2, OptimConfig


def test_stablemax_cross_entropy_known_values():
    logits = torch.tensor([[[0.0, 1.0, -1.0], [2.0, -3.0, 0.5]]])
    labels = torch.tensor([[1, -100]])
    loss = stablemax_cross_entropy(logits, labels)
    # s = [1, 2, 1/2] -> p(1) = 2 / 3.5; the ignored token costs 0
    assert loss.dtype == torch.float64
    assert loss[0, 0].item() == pytest.approx(-math.log(2 / 3.5), rel=1e-12)
    assert loss[0, 1].item() == 0.0


def test_stablemax_gradient_is_finite_for_huge_logits():
    logits = torch.tensor([[[1e6, -1e6, 0.0]]], requires_grad=True)
    stablemax_cross_entropy(logits, torch.tensor([[2]])).sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_adam_atan2_two_steps_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdamAtan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.5)
    grads = [torch.tensor([0.2, -0.4]), torch.tensor([-0.1, 0.3])]
    expected, m, v = p.detach().clone().double(), torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        g = g.double()
        expected = expected * (1 - 0.1 * 0.5)
        m = 0.9 * m + 0.1 * g
        v = 0.95 * v + 0.05 * g * g
        expected = expected - 0.1 / (1 - 0.9**t) * torch.atan2(m, v.sqrt() / math.sqrt(1 - 0.95**t))
    assert torch.allclose(p.detach().double(), expected, atol=1e-6)


def test_adam_atan2_first_step_is_scale_invariant():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    opt_a, opt_b = AdamAtan2([a], lr=0.01), AdamAtan2([b], lr=0.01)
    a.grad, b.grad = torch.tensor([1e-12, -3.0, 5.0]), torch.tensor([1e-4, -3e8, 5e8])
    opt_a.step()
    opt_b.step()
    # first step: lr/(1-b1) * atan(0.1 * sign(g)) whatever the gradient's size
    step = 0.01 / 0.1 * math.atan(0.1)
    assert torch.allclose(a.detach(), torch.tensor([-step, step, -step]), atol=1e-7)
    assert torch.allclose(b.detach(), a.detach(), atol=1e-7)


def test_optimizer_name_is_validated():
    with pytest.raises(ValueError, match="optim.name"):
        OptimConfig(name="sgd")
