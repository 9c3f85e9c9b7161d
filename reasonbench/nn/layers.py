"""Transformer building blocks shared by every plugin, as in the HRM/TRM reference code:
bias-free linears with truncated LeCun-normal init, weightless RMSNorm, rotary position
embeddings, non-causal attention through ``scaled_dot_product_attention``, SwiGLU, and the
post-norm residual block.

The blocks that hold a ``fused`` flag (``PostNormBlock``, ``SequenceMLP``) have a fast path
(``reasonbench.model.fastpath`` turns it on, by default on CUDA): torch's one-kernel RMSNorm, and the
MLP mixer's token mixing as plain GEMMs with 16-byte-aligned shapes. Off (the default), they run
the reference's operations in the reference's order, so float32 outputs stay bit-identical."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def trunc_normal_(tensor: torch.Tensor, std: float = 1.0, bound: float = 2.0) -> torch.Tensor:
    """Truncated normal with the given *actual* standard deviation (JAX semantics).

    ``torch.nn.init.trunc_normal_`` truncates a N(0, std) and so returns a smaller std; the
    reference code rescales so that the truncated distribution itself has std ``std``.
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        # variance of a standard normal truncated to [-bound, bound]
        pdf = math.exp(-0.5 * bound**2) / math.sqrt(2 * math.pi)
        mass = math.erf(bound / math.sqrt(2))
        truncated_std = math.sqrt(1 - 2 * bound * pdf / mass)
        nn.init.trunc_normal_(tensor, mean=0.0, std=1.0, a=-bound, b=bound)
        return tensor.mul_(std / truncated_std)


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Truncated LeCun-normal: std = 1/sqrt(fan_in), fan_in = weight.shape[-1]."""
    return trunc_normal_(weight, std=1.0 / math.sqrt(weight.shape[-1]))


class Linear(nn.Linear):
    """Linear layer with truncated LeCun-normal init and no bias by default."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        lecun_normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Weightless RMSNorm computed in float32 (the reference's numerics; float64 stays
    float64), cast back."""
    dtype = x.dtype
    x = x.to(torch.promote_types(dtype, torch.float32))
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x.to(dtype)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, eps: float = 1e-5, fused: bool = False) -> torch.Tensor:
    """``rms_norm(x + residual)``, the post-norm residual step. ``fused``: torch's RMSNorm kernel
    (one kernel on CUDA instead of five; bit-identical to ``rms_norm`` on the CPU), cast back to
    the sum's dtype (autocast may run it in float32); a compiled block fuses the add in too."""
    y = x + residual
    if not fused:
        return rms_norm(y, eps)
    return F.rms_norm(y, (y.shape[-1],), eps=eps).to(y.dtype)


class RotaryEmbedding(nn.Module):
    """Cos/sin tables for rotary position embeddings (theta 10000 by default), computed in
    float32 as the reference does; a module made float64 (``.double()``) computes them again in
    float64 rather than widening the float32 ones.

    With ``grid_width`` the positions are cells of a grid read row by row, and the rotation is
    2-D (SE-RRM's ``RotaryEmbedding2d``): a quarter of the frequencies turn with the row, a
    quarter with the column, the two halves of the head laid out alike (row, column, row,
    column)."""

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0, grid_width: int | None = None) -> None:
        super().__init__()
        if grid_width is not None and (grid_width < 1 or head_dim % 4):
            raise ValueError(f"2-D RoPE needs a grid width >= 1 and a head width divisible by 4, got {grid_width}, {head_dim}")
        self.head_dim, self.max_len, self.theta, self.grid_width = head_dim, max_len, theta, grid_width
        cos, sin = self._tables(torch.float32)
        # buffers, not parameters, and not saved: they are a pure function of the config
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _tables(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(self.max_len, dtype=dtype)
        if self.grid_width is None:
            inv_freq = 1.0 / self.theta ** (torch.arange(0, self.head_dim, 2, dtype=dtype) / self.head_dim)
            freqs = torch.outer(positions, inv_freq)
            angles = torch.cat([freqs, freqs], dim=-1)
        else:
            inv_freq = 1.0 / self.theta ** (torch.arange(0, self.head_dim, 4, dtype=dtype) / self.head_dim)
            rows = torch.outer(positions // self.grid_width, inv_freq)
            cols = torch.outer(positions % self.grid_width, inv_freq)
            angles = torch.cat([rows, cols, rows, cols], dim=-1)
        return angles.cos(), angles.sin()

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if self.cos.dtype == torch.float64:  # on the CPU, as at construction, then moved
            device = self.cos.device
            self.cos, self.sin = (t.to(device) for t in self._tables(torch.float64))
        return self

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos, self.sin


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [B, heads, L, head_dim] by position, in the tables' float32 (as the
    reference does under bfloat16), cast back to x's dtype. Positions past the tables' length
    (tokens appended to the sequence, as SE-RRM's) are left unrotated."""
    if x.shape[-2] > cos.shape[0]:
        head, tail = x.split([cos.shape[0], x.shape[-2] - cos.shape[0]], dim=-2)
        return torch.cat([apply_rotary(head, cos, sin), tail], dim=-2)
    cos, sin = cos[: x.shape[-2]], sin[: x.shape[-2]]
    rotated = x.to(cos.dtype)
    return (rotated * cos + _rotate_half(rotated) * sin).to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention with optional RoPE over the second-to-last axis of
    ``x`` [..., L, hidden]; leading axes beyond the batch are batch too (axial attention).
    ``head_dim`` defaults to hidden / heads; ``dropout`` drops attention weights in training."""

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if head_dim is None and hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"attention dropout must be in [0, 1), got {dropout}")
        self.num_heads = num_heads
        self.head_dim = head_dim or hidden_size // num_heads
        self.dropout = dropout
        self.qkv = Linear(hidden_size, 3 * num_heads * self.head_dim)
        self.out = Linear(num_heads * self.head_dim, hidden_size)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        *lead, length, _ = x.shape
        batch = math.prod(lead)
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=False)
        return self.out(y.transpose(1, 2).reshape(*lead, length, -1))


def swiglu_width(hidden_size: int, expansion: float) -> int:
    """Inner width of SwiGLU: round(expansion * h * 2/3) rounded up to a multiple of 256."""
    width = round(expansion * hidden_size * 2 / 3)
    return -(-width // 256) * 256


GATES = {"silu": F.silu, "tanh": torch.tanh}


class SwiGLU(nn.Module):
    """down(act(gate(x)) * up(x)); ``activation`` 'silu' (SwiGLU proper) or 'tanh' (a bounded
    gate, CMM's choice for contraction)."""

    def __init__(self, hidden_size: int, expansion: float = 4.0, activation: str = "silu") -> None:
        super().__init__()
        if activation not in GATES:
            raise ValueError(f"activation must be one of {sorted(GATES)}, got {activation!r}")
        inner = swiglu_width(hidden_size, expansion)
        self.gate_up = Linear(hidden_size, 2 * inner)
        self.down = Linear(inner, hidden_size)
        self.activation = GATES[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(self.activation(gate) * up)


class SequenceMLP(nn.Module):
    """MLP-mixer token mixing (TRM's ``mlp_t``, used instead of attention on fixed-size grids;
    needs no position encoding): a SwiGLU across the sequence axis, with its residual and
    RMSNorm taken in that transposed layout too (normalising each channel over positions),
    as the reference does."""

    fused = False  # the fast path: see ``_forward_gemm``

    def __init__(self, seq_len: int, expansion: float = 4.0, eps: float = 1e-5, activation: str = "silu") -> None:
        super().__init__()
        self.mlp = SwiGLU(seq_len, expansion, activation)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self._forward_gemm(x)
        columns = x.transpose(1, 2)
        return rms_norm(columns + self.mlp(columns), self.eps).transpose(1, 2)

    def _forward_gemm(self, x: torch.Tensor) -> torch.Tensor:
        """The same function with two plain GEMMs. Linears on the transposed view run as a
        batched product of broadcast weights with K = seq_len (97 on Sudoku: rows of 194 bytes
        in bf16, too misaligned for tensor-core kernels); here the columns are copied once into
        rows zero-padded to a multiple of 8 positions, and the weights padded alike, so both
        products are one [B*h, Lp] GEMM each. The zero positions add nothing: they multiply zero
        weights and come out exactly 0; the norm is taken over the real positions."""
        length = x.shape[1]
        pad = -length % 8
        columns = F.pad(x.transpose(1, 2), (0, pad))  # [B, h, Lp], contiguous
        gate_up = F.pad(self.mlp.gate_up.weight, (0, pad))  # [2I, Lp]
        down = F.pad(self.mlp.down.weight, (0, 0, 0, pad))  # [Lp, I]
        gate, up = F.linear(columns, gate_up).chunk(2, dim=-1)
        y = columns + F.linear(self.mlp.activation(gate) * up, down)
        return rms_norm(y[..., :length], self.eps).transpose(1, 2)


class PostNormBlock(nn.Module):
    """x = rms(x + attn(x)); x = rms(x + swiglu(x)). With ``mixer="mlp"`` (needs ``seq_len``)
    the first half is ``SequenceMLP`` instead of attention."""

    fused = False  # the fast path: torch's RMSNorm kernel (see ``add_rms_norm``)

    def __init__(self, hidden_size: int, num_heads: int, expansion: float = 4.0, eps: float = 1e-5,
                 mixer: str = "attention", seq_len: int | None = None, activation: str = "silu") -> None:
        super().__init__()
        if mixer == "attention":
            self.attn = Attention(hidden_size, num_heads)
        elif mixer == "mlp":
            if seq_len is None:
                raise ValueError("an MLP sequence mixer needs seq_len")
            self.seq_mlp = SequenceMLP(seq_len, expansion, eps, activation)
        else:
            raise ValueError(f"mixer must be 'attention' or 'mlp', got {mixer!r}")
        self.mlp = SwiGLU(hidden_size, expansion, activation)
        self.eps = eps

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = add_rms_norm(x, self.attn(x, rotary), self.eps, self.fused) if hasattr(self, "attn") else self.seq_mlp(x)
        return add_rms_norm(x, self.mlp(x), self.eps, self.fused)


class BlockStack(nn.Module):
    """Post-norm blocks applied to ``state + injection``: one reasoning module of HRM/TRM
    (the input, or the other level's state, is injected by addition). ``repeats`` > 1 runs
    the blocks that many times over (layers sharing their weights)."""

    def __init__(self, blocks: list[PostNormBlock], repeats: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(blocks)
        self.repeats = repeats

    def forward(self, state: torch.Tensor, injection: torch.Tensor,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = state + injection
        for _ in range(self.repeats):
            for layer in self.layers:
                x = layer(x, rotary)
        return x


class TokenEmbedding(nn.Module):
    """Token embedding with std 1/sqrt(h) init, scaled by sqrt(h) on the way out."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size))
        self.scale = math.sqrt(hidden_size)
        trunc_normal_(self.weight, std=1.0 / self.scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.scale * F.embedding(ids, self.weight)
