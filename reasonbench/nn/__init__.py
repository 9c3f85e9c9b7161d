"""Shared neural-network blocks: plugins hold only what makes each architecture itself."""

from reasonbench.nn.layers import (Attention, BlockStack, Linear, PostNormBlock, SequenceMLP, RotaryEmbedding,
                                   SwiGLU, TokenEmbedding, add_rms_norm, apply_rotary, lecun_normal_,
                                   rms_norm, swiglu_width, trunc_normal_)
from reasonbench.nn.ema import WeightEMA
from reasonbench.nn.puzzle import PuzzleEmbedding
from reasonbench.nn.losses import IGNORE_INDEX, stablemax_cross_entropy, token_cross_entropy

__all__ = [
    "Attention", "BlockStack", "Linear", "SequenceMLP", "PostNormBlock", "RotaryEmbedding", "SwiGLU", "TokenEmbedding",
    "add_rms_norm", "apply_rotary", "lecun_normal_", "rms_norm", "swiglu_width", "trunc_normal_",
    "WeightEMA", "PuzzleEmbedding", "IGNORE_INDEX", "stablemax_cross_entropy", "token_cross_entropy",
]
