"""TRM, the Tiny Recursive Model (Jolicoeur-Martineau 2025, arXiv 2510.04871), as in the
reference code (SamsungSAILMontreal/TinyRecursiveModels, models/recursive_reasoning/trm.py).

One small network does both updates. With answer y (the reference's z_H) and latent z (z_L),
a recursion is: n times z = net(z, y + x), then y = net(y, z). A segment runs T recursions,
the first T-1 without gradient and the last one fully back-propagated (no fixed-point
assumption, unlike HRM's 1-step gradient). Halting: q_halt > 0, no continue loss. On Sudoku
the attention is replaced by an MLP across the sequence ("MLP-mixer", ``mixer: mlp``).
"""

from __future__ import annotations

import torch

from reasonbench.nn import BlockStack, PostNormBlock
from reasonbench.optim import OptimConfig
from reasonbench.recursive import RecursiveReasoningModule, State
from reasonbench.tasks import TaskMetadata


class TRMModel(RecursiveReasoningModule):
    """TRM: one small network updates a latent and then the answer, recursion after recursion.

    Args:
        hidden_size: width (512 in the paper).
        num_heads: attention heads (attention mixer only).
        expansion: SwiGLU expansion factor.
        num_layers: blocks in the one network (2 in the paper).
        recursions: T, recursions per segment (the reference's H_cycles).
        latent_steps: n, latent updates per recursion (the reference's L_cycles).
        mixer: 'attention' or 'mlp' (sequence mixing by an MLP, for fixed-size grids).
        pos_encodings: 'rope', 'learned' or 'none'.
        rope_theta: RoPE base.
        puzzle_emb_dim: per-puzzle embedding width (0 = none).
        puzzle_emb_len: positions reserved in front of the sequence (16 in the reference).
        halt_max_steps: supervision segments.
        halt_exploration_prob: exploration probability of the halting policy.
        q_continue_loss: HRM's Q-learning halting instead of TRM's q_halt > 0.
        loss: 'stablemax', 'stablemax3' or 'softmax' cross-entropy.
        activation: gate of the SwiGLU MLPs, 'silu' (the paper) or 'tanh'.
    """

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, hidden_size: int = 512,
                 num_heads: int = 8, expansion: float = 4.0, num_layers: int = 2, recursions: int = 3,
                 latent_steps: int = 6, mixer: str = "attention", pos_encodings: str = "rope",
                 rope_theta: float = 10000.0, puzzle_emb_dim: int = 512, puzzle_emb_len: int = 16,
                 halt_max_steps: int = 16, halt_exploration_prob: float = 0.1, q_continue_loss: bool = False,
                 loss: str = "stablemax", activation: str = "silu") -> None:
        super().__init__(metadata, optim, hidden_size=hidden_size, num_heads=num_heads, expansion=expansion,
                         pos_encodings=pos_encodings, rope_theta=rope_theta, puzzle_emb_dim=puzzle_emb_dim,
                         puzzle_emb_len=puzzle_emb_len, halt_max_steps=halt_max_steps,
                         halt_exploration_prob=halt_exploration_prob, q_continue_loss=q_continue_loss, loss=loss)
        if min(num_layers, recursions, latent_steps) < 1:
            raise ValueError("model.num_layers, model.recursions and model.latent_steps must be >= 1")
        if mixer not in ("attention", "mlp"):
            raise ValueError(f"model.mixer must be 'attention' or 'mlp', got {mixer!r}")
        self.recursions, self.latent_steps = recursions, latent_steps
        self.net = BlockStack([PostNormBlock(hidden_size, num_heads, expansion, mixer=mixer, seq_len=self.state_len,
                                             activation=activation) for _ in range(num_layers)])

    low_precision_state = True  # the fast path's bfloat16 state under autocast, as the reference's

    # the reference's names of the reasoning modules, for `reasonbench import-checkpoint`
    reference_level_renames = {"L_level.": "net."}

    @classmethod
    def reference_arguments(cls, arch: dict) -> dict:
        return {**super().reference_arguments(arch), "num_layers": arch["L_layers"], "recursions": arch["H_cycles"],
                "latent_steps": arch["L_cycles"], "mixer": "mlp" if arch.get("mlp_t") else "attention",
                "puzzle_emb_len": arch.get("puzzle_emb_len", 16),
                "q_continue_loss": not arch.get("no_ACT_continue", True)}

    def depth(self) -> tuple[int, int]:
        """(T, n) of the next segment; a curriculum (CGAR) varies it during training."""
        return self.recursions, self.latent_steps

    def recursion(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor, latent_steps: int,
                  rotary: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(latent_steps):
            z = self.net(z, y + x, rotary)
        return self.net(y, z, rotary), z

    def reason(self, state: State, inputs: torch.Tensor) -> State:
        y, z = state
        recursions, latent_steps = self.depth()
        rotary = self.rotary_tables()
        with torch.no_grad():
            for _ in range(recursions - 1):
                y, z = self.recursion(y, z, inputs, latent_steps, rotary)
        return self.recursion(y, z, inputs, latent_steps, rotary)
