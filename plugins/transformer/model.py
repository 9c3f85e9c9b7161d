"""A stack of post-norm transformer encoder blocks that predicts every cell in one pass.

The baseline against which recursion is measured: same blocks, embedding and head as
HRM/TRM, but no recurrence, no halting and no deep supervision.
"""

from __future__ import annotations

import torch
from torch import nn

from reasonbench.module import ReasoningModule, ReasoningOutput
from reasonbench.optim import OptimConfig
from reasonbench.nn import Linear, PostNormBlock, RotaryEmbedding, TokenEmbedding
from reasonbench.tasks import TaskMetadata


class TransformerModel(ReasoningModule):
    """Transformer baseline: post-norm blocks that predict every cell in one pass, no recursion.

    Args:
        hidden_size: model width.
        num_layers: number of post-norm blocks.
        num_heads: attention heads.
        expansion: SwiGLU expansion factor.
        rope_theta: RoPE base.
    """

    uniform_eval_cost = True

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, hidden_size: int = 128,
                 num_layers: int = 4, num_heads: int = 4, expansion: float = 4.0,
                 rope_theta: float = 10000.0) -> None:
        super().__init__(metadata, optim)
        if hidden_size < 1 or num_layers < 1 or num_heads < 1:
            raise ValueError("model.hidden_size, model.num_layers and model.num_heads must be positive")
        if hidden_size % num_heads:
            raise ValueError(f"model.hidden_size {hidden_size} is not divisible by model.num_heads {num_heads}")
        self.embed = TokenEmbedding(metadata.vocab_size, hidden_size)
        self.rotary = RotaryEmbedding(hidden_size // num_heads, metadata.seq_len, rope_theta)
        self.blocks = nn.ModuleList(PostNormBlock(hidden_size, num_heads, expansion) for _ in range(num_layers))
        self.head = Linear(hidden_size, metadata.vocab_size)

    def forward(self, batch: dict[str, torch.Tensor]) -> ReasoningOutput:
        x = self.embed(batch["inputs"])
        rotary = self.rotary()
        for block in self.blocks:
            x = block(x, rotary)
        return ReasoningOutput(logits=self.head(x))
