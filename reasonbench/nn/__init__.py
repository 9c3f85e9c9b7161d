"""Shared neural-network blocks: plugins hold only what makes each architecture itself."""

from .layers import (Attention, Linear, PostNormBlock, RotaryEmbedding, SwiGLU, TokenEmbedding,
                     apply_rotary, lecun_normal_, rms_norm, swiglu_width, trunc_normal_)
from .losses import IGNORE_INDEX, stablemax_cross_entropy, token_cross_entropy

__all__ = [
    "Attention", "Linear", "PostNormBlock", "RotaryEmbedding", "SwiGLU", "TokenEmbedding",
    "apply_rotary", "lecun_normal_", "rms_norm", "swiglu_width", "trunc_normal_",
    "IGNORE_INDEX", "stablemax_cross_entropy", "token_cross_entropy",
]
