"""CMM: the ODE/SDE reading of TRM's recursion, its loss terms and the shared pieces they use
(third-order StableMax, repulsion, Hutchinson estimates, AlgGradNorm)."""

from __future__ import annotations

import math

import pytest
import torch

from reasonbench.nn.balance import GradNormBalancer
from reasonbench.nn.jacobian import jacobian_frobenius_sq, jacobian_mean_diagonal
from reasonbench.nn.losses import hyperspherical_repulsion, stablemax_cross_entropy
from reasonbench.tasks.base import TaskMetadata
from reasonbench_plugins.cmm import CMMModel
from reasonbench_plugins.trm import TRMModel

from .conftest import call_cli
from .reference_layout import reference_batch

META = TaskMetadata(name="sudoku", vocab_size=11, seq_len=81, num_puzzle_ids=3, grid_shape=(9, 9))
TINY = dict(hidden_size=16, num_heads=2, num_layers=1, recursions=2, latent_steps=3, mixer="mlp", pos_encodings="none",
            puzzle_emb_dim=16, puzzle_emb_len=1, halt_max_steps=2, halt_exploration_prob=0.0, activation="tanh")


def _cmm(**kw) -> CMMModel:
    torch.manual_seed(0)
    return CMMModel(META, **{**TINY, **kw})


def _start(model: CMMModel, batch: dict) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    x = model.encode(batch)
    return model.initial_state(batch), x


def test_euler_with_step_one_is_the_discrete_recursion():
    cmm = _cmm().eval()
    trm = TRMModel(META, **TINY).eval()
    missing, unexpected = trm.load_state_dict(cmm.state_dict(), strict=False)
    assert not missing and all(k.startswith("balancer.") for k in unexpected)
    batch = reference_batch()
    state, x = _start(cmm, batch)
    with torch.no_grad():
        y_ode, z_ode = cmm.reason(state, x)
        y_map, z_map = trm.reason(state, x)
    torch.testing.assert_close(y_ode, y_map, atol=1e-5, rtol=0)
    torch.testing.assert_close(z_ode, z_map, atol=1e-5, rtol=0)
    # the state starts at (x, 0), not TRM's fixed random vectors
    assert torch.equal(state[0], x.detach()) and not state[1].any()


def test_finer_and_higher_order_solvers_converge_to_the_same_flow():
    batch = reference_batch()
    ends = {}
    for solver, step in (("euler", 0.02), ("rk4", 0.1), ("dopri5", 1.0)):
        model = _cmm(solver=solver, step_size=step, solver_rtol=1e-7, solver_atol=1e-8).double().eval()
        state, x = _start(model, batch)
        with torch.no_grad():
            ends[solver] = model.integrate(state[1], state[0] + x, 3, None)
    assert (ends["rk4"] - ends["dopri5"]).abs().max() < 1e-5
    assert (ends["euler"] - ends["dopri5"]).abs().max() < 5e-2
    # and the flow differs from one coarse step: the solver option changes the model
    coarse = _cmm().double().eval()
    state, x = _start(coarse, batch)
    with torch.no_grad():
        assert (coarse.integrate(state[1], state[0] + x, 3, None) - ends["dopri5"]).abs().max() > 1e-3


def test_adjoint_gradients_equal_backpropagation_through_the_solver():
    batch = reference_batch()
    grads = []
    for adjoint in (False, True):
        model = _cmm(solver="rk4", step_size=0.1, adjoint=adjoint).double().train()
        state, x = _start(model, batch)
        z = model.integrate(state[1], state[0] + x, 2, None)
        grads.append(torch.autograd.grad(z.pow(2).sum(), list(model.net.parameters())))
    # both discretise the same continuous gradient (the adjoint integrates it backwards in time)
    for direct, adjoint in zip(*grads):
        torch.testing.assert_close(adjoint, direct, rtol=1e-3, atol=1e-4)


def test_sde_noise_is_sigma_per_unit_time_in_training_and_absent_in_evaluation():
    model = _cmm(noise_std=0.05)
    batch = reference_batch()
    state, x = _start(model, batch)
    with torch.no_grad():
        model.eval()
        clean = model.integrate(state[1], state[0] + x, 1, None)
        assert torch.equal(clean, model.integrate(state[1], state[0] + x, 1, None))  # deterministic
        model.train()
        noisy = model.integrate(state[1], state[0] + x, 1, None)
    # one Euler-Maruyama step of dt = 1: F(...) + sigma * N(0, 1), cell by cell
    assert (noisy - clean).std().item() == pytest.approx(0.05, rel=0.1)
    assert (noisy - clean).mean().abs().item() < 0.005


def test_third_order_stablemax_on_known_logits():
    logits = torch.tensor([[[0.0, 1.0, -1.0]]])
    labels = torch.tensor([[1]])
    t3 = 1 + 1 + 1 / 2 + 1 / 6  # exp's cubic Taylor polynomial at 1
    s = torch.tensor([1.0, t3, 1 / t3])
    assert stablemax_cross_entropy(logits, labels, order=3).item() == pytest.approx(-math.log(t3 / s.sum().item()))
    # order 1 is HRM/TRM's s(x) = x + 1, 1/(1 - x)
    assert stablemax_cross_entropy(logits, labels).item() == pytest.approx(-math.log(2 / 3.5))
    assert stablemax_cross_entropy(logits, torch.tensor([[-100]])).item() == 0.0


def test_repulsion_is_the_mean_squared_cosine_over_pairs():
    eye = torch.eye(3).view(3, 3, 1)
    assert hyperspherical_repulsion(eye).item() == pytest.approx(0.0)
    assert hyperspherical_repulsion(torch.ones(4, 2, 3)).item() == pytest.approx(1.0)
    sixty = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])  # 60 degrees apart: cos^2 = 1/4
    assert hyperspherical_repulsion(sixty).item() == pytest.approx(0.25)


def test_hutchinson_estimates_on_linear_maps():
    diag = torch.tensor([0.5, -2.0, 3.0, 1.5])
    z = torch.randn(2, 4, requires_grad=True)
    # Rademacher probes give a diagonal map's trace exactly: v^T D v = sum D_ii
    assert jacobian_mean_diagonal(z * diag, z).tolist() == pytest.approx([diag.mean().item()] * 2)
    torch.manual_seed(0)
    a = torch.randn(4, 4)
    estimate = jacobian_frobenius_sq(z @ a.T, z, samples=4000).mean().item()
    assert estimate == pytest.approx(a.pow(2).sum().item() / 4, rel=0.05)


def test_balancer_closed_form_step_and_equalised_gradients():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    balancer = GradNormBalancer(["a", "b"], alpha=1.5, momentum=0.95)
    terms = lambda: {"a": w.pow(2).sum(), "b": 10 * w.pow(2).sum()}  # noqa: E731 (gradient norms 2 and 20)
    balancer.update(terms(), [w])
    # first update: equal training rates, target norm 11: proposals 5.5 and 0.55, renormalised to sum 2
    proposed = torch.tensor([5.5, 0.55]) * 2 / 6.05
    torch.testing.assert_close(balancer.weights, 0.95 + 0.05 * proposed)
    for _ in range(300):
        balancer.update(terms(), [w])
    a, b = balancer.weights.tolist()
    assert a * 2 == pytest.approx(b * 20, rel=0.02) and a + b == pytest.approx(2.0)


def test_balancer_leaves_a_term_without_gradient_alone():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    balancer = GradNormBalancer(["a", "inactive"])
    balancer.update({"a": w.pow(2).sum(), "inactive": torch.relu(w - 5).sum()}, [w])
    assert balancer.weights.tolist() == pytest.approx([1.0, 1.0])


def test_every_term_trains_and_each_can_be_switched_off():
    batch = reference_batch()
    model = _cmm(balance_every=1).train()
    loss, logs = model.training_loss(batch)
    assert {"equilibrium_answer", "equilibrium_input", "stability_answer", "instability_input",
            "repulsion_input", "repulsion_answer", "balance_repulsion_answer"} <= set(logs)
    assert "balance_lm_loss" not in logs  # the answer and halting terms keep their fixed weights
    loss.backward()
    assert all(p.grad is not None for p in model.net.parameters())
    assert not torch.equal(model.balancer.weights, torch.ones_like(model.balancer.weights))

    off = _cmm(equilibrium_weight=0, stability_weight=0, instability_weight=0, repulsion_weight=0, balancer="none").train()
    loss, logs = off.training_loss(batch)
    assert set(logs) & {"equilibrium_answer", "stability_answer", "instability_input", "repulsion_input"} == set()
    # with every extra term off, CMM trains on TRM's loss: answer + 0.5 halting
    assert loss.item() == pytest.approx((logs["lm_loss"] + 0.5 * logs["halt_loss"]).item(), rel=1e-6)


@pytest.mark.parametrize("gain, stable, unstable", [(0.5, 0.0, 0.25), (1.5, 0.25, 0.0)])
def test_stability_hinges_on_a_known_jacobian(gain, stable, unstable):
    """F(u) = gain * u has mean Jacobian diagonal ``gain``: the answer's hinge is relu(gain - 1)^2,
    the input's relu(1 - gain)^2 (Rademacher probes make both exact)."""
    model = _cmm(balancer="none").train()
    model.block = lambda u: gain * u
    _, logs = model.training_loss(reference_batch())
    assert logs["stability_answer"].item() == pytest.approx(stable)
    assert logs["instability_input"].item() == pytest.approx(unstable)


@pytest.mark.parametrize("task, preset, expected", [("sudoku", "paper", 5_028_866), ("sudoku", "tiny", 261_890),
                                                     ("maze", "paper", 6_822_914), ("maze", "tiny", 263_938)])
def test_preset_sizes(task, preset, expected):
    result = call_cli("info", "--model", "cmm", "--task", task, "--preset", preset)
    assert result.returncode == 0, result.stderr
    assert f"parameters  {expected:,}\n" in result.stdout


def test_rejects_bad_settings():
    for bad in (dict(solver="leapfrog"), dict(noise_std=0.01, solver="rk4"), dict(balancer="pcgrad"),
                dict(repulsion_weight=-1.0), dict(layer_repeats=0)):
        with pytest.raises(ValueError):
            _cmm(**bad)
