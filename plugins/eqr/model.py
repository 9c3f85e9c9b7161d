"""EqR, Equilibrium Reasoners (Huang et al. 2026, arXiv 2605.21488), as in the reference code
(locuslab/EqR, models/eqr.py and config/arch/eqr.yaml).

TRM's recursion (one network; n latent updates z = f(z, y + x), then y = f(y, z); T recursions
per segment, the last one back-propagated) with two changes that make it a noisy damped
fixed-point iteration:

* every update is damped and noisy: ``s <- (1 - lambda) s + lambda f(s, injection) + noise``,
  lambda 0.95, noise ``noise_scale`` (0.01) times a standard normal, drawn at every update, in
  training and in evaluation alike (the reference adds it unconditionally);
* a new example starts from random states, truncated normals (bounds +-2 std, JAX-style) of
  std ``high_init_std`` / ``low_init_std`` drawn per example and per position, instead of
  TRM's one fixed vector.

No per-puzzle embedding (the reference has none). Halting as TRM: q_halt > 0, no continue loss.
Both random draws come from torch's global generator on the state's device, in the reference's
order (the answer state's start, the latent's start, then one noise tensor per update after its
network call): a seeded run draws the same numbers every time, and the reference code seeded
alike draws the same ones as long as every slot starts together (evaluation, the first training
step). In training, a start is drawn for every slot at every step and the restarting slots' rows
kept, where the reference draws for the restarting slots alone: from the first step where some
slots restart and others carry on, the two runs sample the same distributions but other numbers
(the training pin, ``tests/test_training_pin.py``, hands both the same draws). Several processes
draw the global batch's numbers and keep their rows (``batch_randn``), so N devices sample what
one device does for the same examples.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from reasonbench.optim import OptimConfig
from reasonbench.recursive import State
from reasonbench.tasks import TaskMetadata
from reasonbench_plugins.trm import TRMModel


def truncated_normal_by_inverse_cdf_(tensor: torch.Tensor, std: float, bound: float = 2.0) -> torch.Tensor:
    """Truncated normal of actual standard deviation ``std`` on [-bound, bound] standard
    deviations, drawn as the reference draws it (one uniform per element through the inverse
    normal CDF; torch's ``trunc_normal_`` rejection-samples, other numbers from the same seed)."""
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        low, high = math.erf(-bound / math.sqrt(2.0)), math.erf(bound / math.sqrt(2.0))
        pdf = math.exp(-0.5 * bound**2) / math.sqrt(2.0 * math.pi)
        scaled_std = std / math.sqrt(1.0 - 2.0 * bound * pdf / ((high - low) / 2.0))
        tensor.uniform_(low, high)
        tensor.erfinv_()
        tensor.mul_(math.sqrt(2.0) * scaled_std)
        return tensor.clip_(-bound * scaled_std, bound * scaled_std)


class EqRModel(TRMModel):
    """TRM's recursion as a noisy, damped fixed-point iteration from random starting states.

    Args:
        hidden_size: width (512 in the paper).
        num_heads: attention heads (attention mixer only).
        expansion: SwiGLU expansion factor.
        num_layers: blocks in the one network (the reference's L_layers).
        recursions: T, recursions per segment (H_cycles).
        latent_steps: n, latent updates per recursion (L_cycles).
        mixer: 'attention' or 'mlp' (the reference's mlp_t, its Sudoku setting).
        pos_encodings: 'rope', 'learned' or 'none'.
        rope_theta: RoPE base.
        halt_max_steps: supervision segments.
        halt_exploration_prob: exploration probability of the halting policy.
        loss: 'stablemax', 'stablemax3' or 'softmax' cross-entropy.
        damping: lambda, the weight of the network's output in each update (lambda_).
        noise_scale: standard deviation of the Gaussian noise added at each update (0: none).
        high_init_std: std of the answer state's random start (H_init_std).
        low_init_std: std of the latent state's random start (L_init_std).
    """

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, hidden_size: int = 512,
                 num_heads: int = 8, expansion: float = 4.0, num_layers: int = 2, recursions: int = 3,
                 latent_steps: int = 6, mixer: str = "attention", pos_encodings: str = "rope",
                 rope_theta: float = 10000.0, halt_max_steps: int = 16, halt_exploration_prob: float = 0.1,
                 loss: str = "stablemax", damping: float = 0.95, noise_scale: float = 0.01,
                 high_init_std: float = 1.0, low_init_std: float = 1.0) -> None:
        super().__init__(metadata, optim, hidden_size=hidden_size, num_heads=num_heads, expansion=expansion,
                         num_layers=num_layers, recursions=recursions, latent_steps=latent_steps, mixer=mixer,
                         pos_encodings=pos_encodings, rope_theta=rope_theta, puzzle_emb_dim=0, puzzle_emb_len=0,
                         halt_max_steps=halt_max_steps, halt_exploration_prob=halt_exploration_prob,
                         q_continue_loss=False, loss=loss)
        if not 0 < damping <= 1:
            raise ValueError(f"model.damping must be in (0, 1], got {damping}")
        if noise_scale < 0 or high_init_std < 0 or low_init_std < 0:
            raise ValueError("model.noise_scale, model.high_init_std and model.low_init_std must be >= 0")
        self.damping, self.noise_scale = damping, noise_scale
        self.high_init_std, self.low_init_std = high_init_std, low_init_std
        # the starting states are drawn per example: the fixed vectors of HRM/TRM do not exist here
        del self.high_init, self.low_init

    low_precision_state = True  # as TRM: the reference runs the state in bfloat16
    samples_across_batch = True  # one generator stream over the batch, as the reference draws

    def initial_state(self, batch: dict[str, torch.Tensor]) -> State:
        """Fresh random states for every example and position: truncated normals of std
        ``high_init_std`` (answer) then ``low_init_std`` (latent), as the reference's reset."""
        shape = (batch["inputs"].shape[0], self.state_len, self.hidden_size)
        dtype, device = self.embed.weight.dtype, batch["inputs"].device
        high = self.batch_randn(shape, dtype, device, partial(truncated_normal_by_inverse_cdf_, std=self.high_init_std))
        low = self.batch_randn(shape, dtype, device, partial(truncated_normal_by_inverse_cdf_, std=self.low_init_std))
        return high, low

    def update(self, state: torch.Tensor, injection: torch.Tensor,
               rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """One damped, noisy step of the network: (1 - lambda) s + lambda f(s + injection) + noise."""
        updated = (1 - self.damping) * state + self.damping * self.net(state, injection, rotary)
        if self.noise_scale:
            updated = updated + self.batch_randn(state.shape, state.dtype, state.device) * self.noise_scale
        return updated

    def recursion(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor, latent_steps: int,
                  rotary: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(latent_steps):
            z = self.update(z, y + x, rotary)
        return self.update(y, z, rotary), z

    @classmethod
    def reference_arguments(cls, arch: dict) -> dict:
        args = super().reference_arguments(arch)
        for name in ("puzzle_emb_dim", "puzzle_emb_len", "q_continue_loss"):
            args.pop(name)
        if args["pos_encodings"] in (None, "none"):
            args["pos_encodings"] = "none"
        return {**args, "damping": float(arch.get("lambda_", 0.95)), "noise_scale": float(arch.get("noise_scale", 0.01)),
                "high_init_std": float(arch.get("H_init_std", 1.0)), "low_init_std": float(arch.get("L_init_std", 1.0))}
