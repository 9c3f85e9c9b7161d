"""CMM, the Contraction Mapping Model (Es'kin & Smorkalov 2026, arXiv 2603.22871; no official
code): TRM's recursion read as a dynamical system pushed towards a stable equilibrium.

With F the shared block (tanh-gated MLPs), each update of TRM becomes an ODE phase:

    latent:  dz/dt = F(z + y + x) - z   for n time units (y frozen)
    answer:  dy/dt = F(y + z) - y       for 1 time unit

so one explicit Euler step of size 1 is exactly TRM's ``z = F(z + y + x)``; smaller steps or
higher-order solvers (torchdiffeq's ``odeint``, adjoint optional) integrate the same flow more
finely. The NSDE variant adds diagonal noise sigma dW to every phase while training
(torchsde's ``sdeint``, Euler-Maruyama); evaluation is noise-free. The state starts at
(y, z) = (x, 0). Deep supervision, halting and the gradient path (the last recursion only) are
TRM's.

Training adds, each with a weight (0 switches it off):

* equilibrium: ||y - F(y + z)||^2 at the final state and ||x - F(x)||^2 at the input;
* stability (Routh-Hurwitz on the flow's Jacobian J_F - I, whose trace must be negative): a
  hinge on the mean diagonal of J_F (Hutchinson estimate), squared: relu(mean J_ii - 1)^2 at the
  answer, and the opposite, relu(1 - mean J_ii)^2, at the input (a repeller);
* hyperspherical repulsion: mean squared cosine similarity between different examples' states
  (x and y), against collapse onto one direction;
* the answer loss is third-order StableMax (``loss: stablemax3``);
* the auxiliary terms balanced by AlgGradNorm (``reasonbench.nn.balance``) on F's weights; the
  answer and halting terms keep TRM's weights 1 and 0.5.

The paper's text was not reachable; the equations follow its abstract and two third-party
re-implementations that cite its equations (term weights below are theirs). The README says
what is unverified.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torchdiffeq
import torchsde
from torch import nn
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.solvers import FixedGridODESolver

from reasonbench.nn.balance import GradNormBalancer
from reasonbench.nn.jacobian import double_differentiable, jacobian_mean_diagonal
from reasonbench.nn.losses import hyperspherical_repulsion
from reasonbench.optim import OptimConfig
from reasonbench.recursive import State
from reasonbench.tasks import TaskMetadata
from reasonbench_plugins.trm import TRMModel

Drift = Callable[[torch.Tensor], torch.Tensor]


class _Flow(nn.Module):
    """dz/dt = F(z + injection) - z for odeint; the injection rides along as a constant part of
    the state so the adjoint method also returns its gradient."""

    def __init__(self, net: nn.Module, rotary: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        super().__init__()
        self.net, self.rotary = net, rotary

    def forward(self, t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        z, injection = state
        return self.net(z, injection, self.rotary) - z, torch.zeros_like(injection)


class _NoisyFlow(nn.Module):
    """The same flow as an Ito SDE with constant diagonal diffusion sigma (torchsde works on
    flat [batch, dim] states)."""

    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, drift: Drift, shape: torch.Size, sigma: float) -> None:
        super().__init__()
        self.drift, self.shape, self.sigma = drift, shape, sigma

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = y.view(self.shape)
        return (self.drift(z) - z).flatten(1)

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.full_like(y, self.sigma)


class CMMModel(TRMModel):
    """CMM: TRM's recursion as an ODE (or SDE) flow trained towards a stable equilibrium.

    TRM's options apply too.

    Args:
        activation: gate of the SwiGLU MLPs, 'tanh' (the paper) or 'silu'.
        loss: 'stablemax3' (the paper), 'stablemax' or 'softmax' cross-entropy.
        layer_repeats: times F runs its blocks per application (2 with num_layers 1: the tiny
            model's "identical layers").
        solver: a torchdiffeq method ('euler', 'midpoint', 'rk4', ..., adaptive 'dopri5').
        step_size: the fixed-step solvers' step (and the SDE's); 'euler' with 1.0 = TRM's recursion.
        solver_rtol: relative tolerance of adaptive solvers.
        solver_atol: absolute tolerance of adaptive solvers.
        adjoint: gradients by the adjoint ODE (memory flat in the number of steps).
        noise_std: sigma of the NSDE's diffusion while training; 0 = the ODE model.
        equilibrium_weight: weight of each equilibrium term.
        stability_weight: weight of the stability hinge at the answer.
        instability_weight: weight of the instability hinge at the input.
        repulsion_weight: weight of each repulsion term.
        jacobian_samples: Hutchinson probes per estimate.
        balancer: 'gradnorm' (AlgGradNorm over the auxiliary terms) or 'none' (fixed weights).
        balancer_alpha: AlgGradNorm's alpha.
        balancer_momentum: AlgGradNorm's momentum.
        balancer_reset: balancer updates between re-reads of the initial losses.
        balance_every: optimizer steps between balancer updates (each costs a backward per term).
    """

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, activation: str = "tanh",
                 loss: str = "stablemax3", layer_repeats: int = 1, solver: str = "euler", step_size: float = 1.0,
                 solver_rtol: float = 1e-3, solver_atol: float = 1e-4, adjoint: bool = False,
                 noise_std: float = 0.0, equilibrium_weight: float = 1.0, stability_weight: float = 1e4,
                 instability_weight: float = 10.0, repulsion_weight: float = 1e3, jacobian_samples: int = 1,
                 balancer: str = "gradnorm", balancer_alpha: float = 1.5, balancer_momentum: float = 0.95,
                 balancer_reset: int = 100, balance_every: int = 10, **trm_args: Any) -> None:
        super().__init__(metadata, optim, activation=activation, loss=loss, **trm_args)
        if solver not in SOLVERS or solver == "scipy_solver":
            raise ValueError(f"model.solver must be a torchdiffeq method ({', '.join(sorted(set(SOLVERS) - {'scipy_solver'}))}), got {solver!r}")
        if layer_repeats < 1 or step_size <= 0 or noise_std < 0 or jacobian_samples < 1 or balance_every < 1:
            raise ValueError("model.layer_repeats >= 1, step_size > 0, noise_std >= 0, jacobian_samples >= 1, "
                             "balance_every >= 1")
        weights = dict(equilibrium=equilibrium_weight, stability=stability_weight, instability=instability_weight,
                       repulsion=repulsion_weight)
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"model loss weights must be >= 0, got {weights}")
        if balancer not in ("gradnorm", "none"):
            raise ValueError(f"model.balancer must be 'gradnorm' or 'none', got {balancer!r}")
        if noise_std > 0 and (adjoint or solver != "euler"):
            raise ValueError("model.noise_std > 0 integrates an SDE by Euler-Maruyama: use solver 'euler', adjoint false")
        self.net.repeats = layer_repeats
        self.solver, self.step_size, self.adjoint, self.noise_std = solver, step_size, adjoint, noise_std
        self.solver_options = ({"step_size": step_size} if issubclass(SOLVERS[solver], FixedGridODESolver) else {})
        self.solver_tolerances = dict(rtol=solver_rtol, atol=solver_atol)
        # adaptive steps (and implicit Adams' corrector iterations) depend on the example
        self.uniform_eval_cost = bool(self.solver_options) and solver != "implicit_adams"
        self.jacobian_samples = jacobian_samples
        self.term_weights = {**self.loss_weights,
                             "equilibrium_answer": equilibrium_weight, "equilibrium_input": equilibrium_weight,
                             "stability_answer": stability_weight, "instability_input": instability_weight,
                             "repulsion_input": repulsion_weight, "repulsion_answer": repulsion_weight}
        # the auxiliary terms are balanced among themselves; the answer and halting terms keep the
        # reference's weights (balancing them too starved the answer loss: see the README)
        names = [n for n, w in self.term_weights.items() if w > 0 and n not in self.loss_weights]
        self.balance_every = balance_every
        self.balancer = (GradNormBalancer(names, balancer_alpha, balancer_momentum, balancer_reset)
                         if balancer == "gradnorm" and names else None)
        self._final: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # --- the dynamics ---------------------------------------------------------------------
    def initial_state(self, batch: dict[str, torch.Tensor]) -> State:
        with torch.no_grad():  # a starting point, not a path for gradients
            x = self.encode(batch)
        return x, torch.zeros_like(x)

    def integrate(self, z: torch.Tensor, injection: torch.Tensor, duration: int,
                  rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """z after ``duration`` time units of dz/dt = F(z + injection) - z."""
        t = torch.tensor([0.0, float(duration)], device=z.device)
        if self.training and self.noise_std > 0:
            sde = _NoisyFlow(lambda u: self.net(u, injection, rotary), z.shape, self.noise_std)
            return torchsde.sdeint(sde, z.flatten(1), t, method="euler", dt=self.step_size)[-1].view(z.shape)
        if self.adjoint and torch.is_grad_enabled():
            path = torchdiffeq.odeint_adjoint(_Flow(self.net, rotary), (z, injection), t, method=self.solver,
                                              options=self.solver_options, adjoint_params=tuple(self.net.parameters()),
                                              **self.solver_tolerances)
            return path[0][-1]
        # a closure over the injection spares torchdiffeq packing a tuple state at every step
        return torchdiffeq.odeint(lambda _, u: self.net(u, injection, rotary) - u, z, t, method=self.solver,
                                  options=self.solver_options, **self.solver_tolerances)[-1]

    def recursion(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor, latent_steps: int,
                  rotary: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.integrate(z, y + x, latent_steps, rotary)
        return self.integrate(y, z, 1, rotary), z

    def reason(self, state: State, inputs: torch.Tensor) -> State:
        y, z = super().reason(state, inputs)
        if torch.is_grad_enabled():
            self._final = (y, z, inputs)  # read by the training terms
        return y, z

    # --- training ---------------------------------------------------------------------------
    def block(self, u: torch.Tensor) -> torch.Tensor:
        """F itself (no injection)."""
        return self.net(u, u.new_zeros(()), self.rotary_tables())

    def stability_of(self, point: torch.Tensor) -> torch.Tensor:
        """Mean diagonal of F's Jacobian at ``point`` per example (gradient to F's weights only)."""
        at = point.detach().requires_grad_()
        with double_differentiable():
            return jacobian_mean_diagonal(self.block(at), at, self.jacobian_samples)

    def training_terms(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        self._final = None
        terms, logs = super().training_terms(batch)
        y, z, x = self._final
        self._final = None
        w = self.term_weights
        if w["equilibrium_answer"] > 0:
            terms["equilibrium_answer"] = (y - self.net(y, z, self.rotary_tables())).pow(2).mean()
            terms["equilibrium_input"] = (x - self.block(x)).pow(2).mean()
        if w["stability_answer"] > 0:
            terms["stability_answer"] = torch.relu(self.stability_of(y + z) - 1).pow(2).mean()
        if w["instability_input"] > 0:
            terms["instability_input"] = torch.relu(1 - self.stability_of(x)).pow(2).mean()
        if w["repulsion_answer"] > 0:
            terms["repulsion_input"] = hyperspherical_repulsion(x)
            terms["repulsion_answer"] = hyperspherical_repulsion(y)
        logs.update({name: value.detach() for name, value in terms.items()})
        return terms, logs

    def cost_phase(self) -> Any:
        # a balancer update costs a backward per term: its steps are measured apart
        return self.balancer is not None and self.global_step % self.balance_every == 0

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms, logs = self.training_terms(batch)
        weighted = {name: self.term_weights[name] * value for name, value in terms.items()}
        task = sum(value for name, value in weighted.items() if name in self.loss_weights)
        if self.balancer is None:
            return task + sum(value for name, value in weighted.items() if name not in self.loss_weights), logs
        if self.global_step % self.balance_every == 0 and torch.is_grad_enabled():
            self.balancer.update(weighted, [p for p in self.net.parameters() if p.requires_grad])
        logs.update({f"balance_{n}": w for n, w in zip(self.balancer.names, self.balancer.weights)})
        return task + self.balancer.combine(weighted), logs
