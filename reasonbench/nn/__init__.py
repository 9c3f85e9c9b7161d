"""Shared neural-network blocks: plugins hold only what makes each architecture itself."""

from .layers import (Attention, BlockStack, Linear, PostNormBlock, SequenceMLP, RotaryEmbedding, SwiGLU, TokenEmbedding,
                     add_rms_norm, apply_rotary, lecun_normal_, rms_norm, swiglu_width, trunc_normal_)
from .ema import WeightEMA
from .puzzle import PuzzleEmbedding
from .losses import IGNORE_INDEX, stablemax_cross_entropy, token_cross_entropy

__all__ = [
    "Attention", "BlockStack", "Linear", "SequenceMLP", "PostNormBlock", "RotaryEmbedding", "SwiGLU", "TokenEmbedding",
    "add_rms_norm", "apply_rotary", "lecun_normal_", "rms_norm", "swiglu_width", "trunc_normal_",
    "WeightEMA", "PuzzleEmbedding", "IGNORE_INDEX", "stablemax_cross_entropy", "token_cross_entropy",
]
