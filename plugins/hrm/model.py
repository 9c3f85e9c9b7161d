"""HRM, the Hierarchical Reasoning Model (Wang et al. 2025, arXiv 2506.21734), as in the
reference code (sapientinc/HRM, models/hrm/hrm_act_v1.py).

Two recurrent transformer modules at two speeds: a fast low level L and a slow high level H.
In one supervision segment, for each of H_cycles high-level updates, L runs L_cycles times on
``z_L + (z_H + x)``; then H runs once on ``z_H + z_L``. Only the last L and the last H call
carry gradient ("1-step gradient", an approximation of the implicit-function gradient at the
fixed point), so memory does not grow with depth. The answer is read from z_H.
"""

from __future__ import annotations

import torch

from reasonbench.nn import BlockStack, PostNormBlock
from reasonbench.optim import OptimConfig
from reasonbench.recursive import RecursiveReasoningModule, State
from reasonbench.tasks import TaskMetadata


class HRMModel(RecursiveReasoningModule):
    """HRM: a fast low-level and a slow high-level recurrent transformer module.

    Args:
        hidden_size: width (512 in the paper).
        num_heads: attention heads.
        expansion: SwiGLU expansion factor.
        high_layers: blocks in the high-level module H.
        low_layers: blocks in the low-level module L.
        high_cycles: H updates per segment.
        low_cycles: L updates per H update.
        pos_encodings: 'rope', 'learned' or 'none'.
        rope_theta: RoPE base.
        puzzle_emb_dim: per-puzzle embedding width (= hidden_size in the paper; 0 = none).
        puzzle_emb_len: positions it takes (0 = ceil(puzzle_emb_dim / hidden_size)).
        halt_max_steps: supervision segments.
        halt_exploration_prob: exploration probability of the halting policy.
        q_continue_loss: Q-learning halting with the bootstrapped continue target.
        loss: 'stablemax' or 'softmax' cross-entropy.
    """

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, hidden_size: int = 512,
                 num_heads: int = 8, expansion: float = 4.0, high_layers: int = 4, low_layers: int = 4,
                 high_cycles: int = 2, low_cycles: int = 2, pos_encodings: str = "rope",
                 rope_theta: float = 10000.0, puzzle_emb_dim: int = 512, puzzle_emb_len: int = 0,
                 halt_max_steps: int = 16, halt_exploration_prob: float = 0.1, q_continue_loss: bool = True,
                 loss: str = "stablemax") -> None:
        super().__init__(metadata, optim, hidden_size=hidden_size, num_heads=num_heads, expansion=expansion,
                         pos_encodings=pos_encodings, rope_theta=rope_theta, puzzle_emb_dim=puzzle_emb_dim,
                         puzzle_emb_len=puzzle_emb_len, halt_max_steps=halt_max_steps,
                         halt_exploration_prob=halt_exploration_prob, q_continue_loss=q_continue_loss, loss=loss)
        if min(high_layers, low_layers, high_cycles, low_cycles) < 1:
            raise ValueError("model.high_layers, low_layers, high_cycles and low_cycles must be >= 1")
        self.high_cycles, self.low_cycles = high_cycles, low_cycles
        self.high = BlockStack([PostNormBlock(hidden_size, num_heads, expansion) for _ in range(high_layers)])
        self.low = BlockStack([PostNormBlock(hidden_size, num_heads, expansion) for _ in range(low_layers)])

    low_precision_state = True  # the fast path's bfloat16 state under autocast, as the reference's

    # the reference's names of the reasoning modules, for `reasonbench import-checkpoint`
    reference_level_renames = {"H_level.": "high.", "L_level.": "low."}

    @classmethod
    def reference_arguments(cls, arch: dict) -> dict:
        return {**super().reference_arguments(arch), "high_layers": arch["H_layers"], "low_layers": arch["L_layers"],
                "high_cycles": arch["H_cycles"], "low_cycles": arch["L_cycles"], "q_continue_loss": True}

    def reason(self, state: State, inputs: torch.Tensor) -> State:
        z_high, z_low = state
        rotary = self.rotary_tables()
        with torch.no_grad():
            for h in range(self.high_cycles):
                for l in range(self.low_cycles):
                    if h < self.high_cycles - 1 or l < self.low_cycles - 1:
                        z_low = self.low(z_low, z_high + inputs, rotary)
                if h < self.high_cycles - 1:
                    z_high = self.high(z_high, z_low, rotary)
        # 1-step gradient: only the last L and H updates are differentiated
        z_low = self.low(z_low, z_high + inputs, rotary)
        z_high = self.high(z_high, z_low, rotary)
        return z_high, z_low
