"""SE-RRM, the Symbol-Equivariant Recursive Reasoning Model (arXiv 2603.02193), as in the
reference code (ml-jku/SE-RRM, models/recursive_reasoning/trm_equi.py).

TRM's recursion with one latent state, whose every position holds one vector *per vocabulary
id* (a channel): the state is [B, V, L, h] instead of [B, L, h]. At a position, the channel of
the id found there carries that id's embedding (times sqrt(V)), the others start empty. A block
is axial: attention over positions within each channel (RoPE, 2-D on grids), attention over the
channels at each position (no position encoding), a SwiGLU, each post-norm. The answer head
reads one logit per channel from the same vector of weights. With ``equivariant_symbols`` the
interchangeable ids (the task's ``symbols``: Sudoku digits, ARC colours) share one embedding
and the head is shared, so permuting the symbols of a puzzle permutes the answer alike; the
other ids (pad, blank, markers) keep their own embeddings. Without it every channel embeds
apart and the head reads all channels of a position at once.

``add_tokens`` appends learned positions to the sequence (a scratch pad standing in for a
puzzle embedding), unrotated by RoPE. ``puzzle_emb`` adds a learned per-puzzle vector, one
value per channel plus one vector for all.

A segment runs ``recursions`` x ``latent_steps`` applications of the network to
``z + input``, all but the last ``latent_steps`` without gradient. There is no halting head:
training slots stop at ``halt_max_steps`` segments or, each segment, at random with probability
``halt_exploration_prob``; evaluation runs every segment. The confidence of an answer (and the
reference's "q_halt_logits") is the least, over positions, of the largest softmax probability;
its binary cross-entropy against "the answer is right" joins the loss with weight 0.5, as in the
reference, without gradient (the probability is computed under no_grad).

Differences from the reference: attention dropout acts in training only (the reference passes
``dropout_p`` to attention in evaluation too, which makes an example's answer depend on the
random stream and so on its batch); the embeddings it creates in its bfloat16 forward dtype are
float32 weights here, computed in bfloat16 under mixed precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reasonbench.module import ReasoningOutput
from reasonbench.nn import Attention, BlockStack, Linear, PuzzleEmbedding, RotaryEmbedding, SwiGLU, add_rms_norm, trunc_normal_
from reasonbench.optim import OptimConfig
from reasonbench.recursive import RecursiveReasoningModule, State
from reasonbench.tasks import TaskMetadata

POS_ENCODINGS = ("rope", "rope2d", "learned")


class SymbolEquivariantBlock(nn.Module):
    """x = rms(x + attn over positions); x = rms(x + attn over channels); x = rms(x + swiglu(x)),
    on x [B, channels, positions, h]."""

    fused = False  # the fast path: torch's RMSNorm kernel (see ``add_rms_norm``)

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int, symbol_heads: int, symbol_head_dim: int,
                 expansion: float, dropout: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.attn = Attention(hidden_size, num_heads, head_dim, dropout)
        self.symbol_attn = Attention(hidden_size, symbol_heads, symbol_head_dim, dropout)
        self.mlp = SwiGLU(hidden_size, expansion)
        self.eps = eps

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = add_rms_norm(x, self.attn(x, rotary), self.eps, self.fused)
        x = add_rms_norm(x, self.symbol_attn(x.transpose(1, 2)).transpose(1, 2), self.eps, self.fused)
        return add_rms_norm(x, self.mlp(x), self.eps, self.fused)


def _check_settings(metadata: TaskMetadata, sizes: tuple[int, ...], pos_encodings: str, head_dim: int,
                    add_tokens: int, dropout: float, equivariant_symbols: bool) -> None:
    """A ValueError naming the setting when ``SERRMModel``'s settings cannot work on the task
    (``sizes``: the layer, loop and head counts and widths, each >= 1)."""
    if min(sizes) < 1:
        raise ValueError("model.num_layers, recursions, latent_steps, num_heads, head_dim, symbol_heads and "
                         "symbol_head_dim must be >= 1")
    if pos_encodings not in POS_ENCODINGS:
        raise ValueError(f"model.pos_encodings must be one of {', '.join(POS_ENCODINGS)}, got {pos_encodings!r}")
    if add_tokens < 0:
        raise ValueError(f"model.add_tokens must be >= 0, got {add_tokens}")
    if not 0 <= dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")
    vocab, seq_len = metadata.vocab_size, metadata.seq_len
    symbols = set(metadata.symbols)
    if equivariant_symbols and not symbols:
        raise ValueError(f"model.equivariant_symbols: task {metadata.name} names no interchangeable symbols; "
                         "set model.equivariant_symbols false")
    if equivariant_symbols and not symbols <= set(range(vocab)):
        raise ValueError(f"task {metadata.name}: its symbols {sorted(symbols)} lie outside its vocabulary 0-{vocab - 1}")
    if pos_encodings == "rope2d":
        rows, cols = metadata.grid_shape
        if rows * cols != seq_len:
            raise ValueError(f"model.pos_encodings rope2d needs the sequence to be the task's grid; task "
                             f"{metadata.name} has {seq_len} positions on a {rows}x{cols} grid")
        if head_dim % 4:
            raise ValueError(f"model.pos_encodings rope2d needs model.head_dim divisible by 4, got {head_dim}")


class SERRMModel(RecursiveReasoningModule):
    """TRM-style recursion on one vector per symbol at every cell, equivariant to renaming symbols.

    Args:
        hidden_size: width of each channel's vector (256 in the paper).
        num_heads: attention heads over positions (4 in the paper).
        head_dim: width of each attention head (64 in the paper).
        symbol_heads: attention heads over the channels (2 in the paper).
        symbol_head_dim: width of each of those heads (64 in the paper).
        expansion: SwiGLU expansion factor.
        num_layers: blocks in the one network (2).
        recursions: segments' outer loop, the last one with gradient (the reference's H_cycles).
        latent_steps: applications of the network per recursion (the reference's L_cycles).
        pos_encodings: 'rope2d' (rows and columns of the task's grid), 'rope' or 'learned'.
        rope_theta: RoPE base.
        equivariant_symbols: share embeddings and head across the task's symbols.
        add_tokens: learned positions appended to the sequence.
        puzzle_emb: a learned per-puzzle vector (width vocabulary + hidden), trained by sign-SGD.
        dropout: attention dropout (training only).
        halt_max_steps: supervision segments.
        halt_exploration_prob: per-segment probability that a training slot stops early.
        loss: 'stablemax' (the reference) or 'softmax' cross-entropy.
    """

    low_precision_state = True  # the fast path's bfloat16 state under autocast, as the reference's

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, hidden_size: int = 256,
                 num_heads: int = 4, head_dim: int = 64, symbol_heads: int = 2, symbol_head_dim: int = 64,
                 expansion: float = 4.0, num_layers: int = 2, recursions: int = 3, latent_steps: int = 4,
                 pos_encodings: str = "rope2d", rope_theta: float = 10000.0, equivariant_symbols: bool = True,
                 add_tokens: int = 0, puzzle_emb: bool = False, dropout: float = 0.0, halt_max_steps: int = 16,
                 halt_exploration_prob: float = 0.1, loss: str = "stablemax") -> None:
        # the shared encoding is not used (``build_io``); head widths are free of hidden_size
        super().__init__(metadata, optim, hidden_size=hidden_size, num_heads=1, expansion=expansion,
                         pos_encodings="none", rope_theta=rope_theta, puzzle_emb_dim=0, puzzle_emb_len=0,
                         halt_max_steps=halt_max_steps, halt_exploration_prob=halt_exploration_prob,
                         q_continue_loss=False, loss=loss)
        _check_settings(metadata, sizes=(num_layers, recursions, latent_steps, num_heads, head_dim, symbol_heads,
                                         symbol_head_dim), pos_encodings=pos_encodings, head_dim=head_dim,
                        add_tokens=add_tokens, dropout=dropout, equivariant_symbols=equivariant_symbols)
        vocab, seq_len = metadata.vocab_size, metadata.seq_len
        symbols = set(metadata.symbols)
        self.equivariant_symbols, self.add_tokens, self.pos_encodings = equivariant_symbols, add_tokens, pos_encodings
        self.recursions, self.latent_steps = recursions, latent_steps
        self.state_len = seq_len + add_tokens
        self.embed_scale = math.sqrt(vocab)  # sqrt of the vocabulary, not of the width

        # the fixed ids (pad, blank, markers) each own a row; all symbols share the last one
        specials = [i for i in range(vocab) if i not in symbols] if equivariant_symbols else []
        rows_of = [specials.index(i) if i in specials else len(specials) for i in range(vocab)]
        self.register_buffer("channel_rows", torch.tensor(rows_of, dtype=torch.long), persistent=False)

        self.puzzle_embedding = PuzzleEmbedding(metadata.num_puzzle_ids, vocab + hidden_size) if puzzle_emb else None
        if add_tokens:
            if equivariant_symbols:
                self.extra_tokens_special = nn.Parameter(trunc_normal_(torch.empty(1, len(specials), add_tokens, hidden_size)))
                self.extra_tokens = nn.Parameter(trunc_normal_(torch.empty(1, 1, add_tokens, hidden_size)))
            else:
                self.extra_tokens = nn.Parameter(trunc_normal_(torch.empty(1, vocab, add_tokens, hidden_size)))
        # one logit per channel from shared weights, or all channels of a position read at once
        self.head = Linear(hidden_size, 1) if equivariant_symbols else Linear(hidden_size * vocab, vocab)
        if pos_encodings == "learned":
            self.position = nn.Parameter(trunc_normal_(torch.empty(1, 1, seq_len, hidden_size)))
            self.rotary = None
        else:
            width = metadata.grid_shape[1] if pos_encodings == "rope2d" else None
            self.rotary = RotaryEmbedding(head_dim, seq_len, rope_theta, grid_width=width)
        if equivariant_symbols:
            self.special_embedding = nn.Parameter(trunc_normal_(torch.empty(1, len(specials), 1, hidden_size)))
            self.symbol_embedding = nn.Parameter(trunc_normal_(torch.empty(1, 1, 1, hidden_size)))
        else:
            self.symbol_embedding = nn.Parameter(trunc_normal_(torch.empty(1, vocab, 1, hidden_size)))
        self.net = BlockStack([SymbolEquivariantBlock(hidden_size, num_heads, head_dim, symbol_heads, symbol_head_dim,
                                                      expansion, dropout) for _ in range(num_layers)])
        self.register_buffer("z_init", trunc_normal_(torch.empty(hidden_size), std=1.0))

    def build_io(self, metadata: TaskMetadata, hidden_size: int, num_heads: int, pos_encodings: str,
                 rope_theta: float, puzzle_emb_dim: int) -> None:
        """Nothing shared: the symbol channels' encoding and head are built in ``__init__``."""

    # --- encoding: one channel per vocabulary id ---------------------------------------------
    def _per_channel(self, special: torch.Tensor | None, shared: torch.Tensor) -> torch.Tensor:
        """[1, V, ...]: each fixed id's own row, the shared row for every symbol."""
        if special is None:
            return shared
        return torch.cat([special, shared], dim=1)[:, self.channel_rows]

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, V, L + add_tokens, h]: at each position the channel of the id found there holds
        that id's embedding times sqrt(V), the others 0; plus positions, the puzzle's vector
        and the appended tokens."""
        inputs = batch["inputs"]
        vocab = self.metadata.vocab_size
        dtype = self.symbol_embedding.dtype
        present = F.one_hot(inputs, vocab).to(dtype).transpose(1, 2) * self.embed_scale
        table = self._per_channel(getattr(self, "special_embedding", None), self.symbol_embedding)
        x = present.unsqueeze(-1) * table
        if self.rotary is None:
            x = x + self.position
        batch_size, channels, _, width = x.shape
        if self.puzzle_embedding is not None:
            puzzle = self.puzzle_embedding(batch["puzzle_ids"]).to(dtype)
            per_channel = puzzle[:, width:].view(batch_size, channels, 1, 1)
            x = x + per_channel + puzzle[:, :width].view(batch_size, 1, 1, width)
        if self.add_tokens:
            extra = self._per_channel(getattr(self, "extra_tokens_special", None), self.extra_tokens)
            x = torch.cat([x, extra.expand(batch_size, -1, -1, -1)], dim=2)
        return x

    def initial_state(self, batch: dict[str, torch.Tensor]) -> State:
        shape = (batch["inputs"].shape[0], self.metadata.vocab_size, self.state_len, self.hidden_size)
        return (self.z_init.expand(shape),)

    # --- one segment ------------------------------------------------------------------------
    def reason(self, state: State, inputs: torch.Tensor) -> State:
        (z,) = state
        rotary = self.rotary_tables()
        with torch.no_grad():
            for _ in range((self.recursions - 1) * self.latent_steps):
                z = self.net(z, inputs, rotary)
        for _ in range(self.latent_steps):
            z = self.net(z, inputs, rotary)
        return (z,)

    def segment(self, state: State, batch: dict[str, torch.Tensor]) -> tuple[State, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(detached new state, logits [B, L, V], confidence [B], zeros [B]: no continue head)."""
        inputs = self.encode(batch)
        dtype = self.state_dtype(inputs.device.type)
        if dtype is not None:
            state, inputs = tuple(s.to(dtype) for s in state), inputs.to(dtype)
        (z,) = self.reason(state, inputs)
        answer = z[:, :, :self.metadata.seq_len]  # the appended tokens are not read
        if self.equivariant_symbols:
            logits = self.head(answer).squeeze(-1).transpose(1, 2)
        else:
            batch_size, channels, length, width = answer.shape
            logits = self.head(answer.transpose(1, 2).reshape(batch_size, length, channels * width))
        with torch.no_grad():
            probs = F.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
            confidence = probs.amax(-1).amin(-1).clamp(0, 1)
        return (z.detach(),), logits, confidence, torch.zeros_like(confidence)

    # --- halting: none learned ---------------------------------------------------------------
    def halt_signal(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(q_halt, dtype=torch.bool)

    def training_halted(self, steps: torch.Tensor, last: torch.Tensor, q_halt: torch.Tensor,
                        q_continue: torch.Tensor) -> torch.Tensor:
        """At the segment limit, or at random with probability ``halt_exploration_prob``."""
        if self.halt_max_steps <= 1:
            return last
        return last | (self.batch_rand(q_halt.shape[0], q_halt.device) < self.halt_exploration_prob)

    def forward(self, batch: dict[str, torch.Tensor]) -> ReasoningOutput:
        run = self.run_segments(batch)
        return ReasoningOutput(logits=run.logits, steps=run.halt_step, confidence=run.q_halt,
                               step_predictions=run.step_predictions, step_residuals=run.step_residuals)

    # --- import of the reference implementation's checkpoints -------------------------------
    reference_level_renames = {"L_level.": "net."}
    reference_renames = {
        "puzzle_emb.weights": "puzzle_embedding.weight",
        "add_tokens_special": "extra_tokens_special",
        "add_tokens": "extra_tokens",
        "lm_head.": "head.",
        "pos_embedding": "position",
        "embed_special_tokens": "special_embedding",
        "embed_symbol_tokens": "symbol_embedding",
        "embed_symbols": "symbol_embedding",
        "Z_init": "z_init",
        "attn.qkv_proj.": "attn.qkv.",
        "attn.o_proj.": "attn.out.",
        "attn_t.qkv_proj.": "symbol_attn.qkv.",
        "attn_t.o_proj.": "symbol_attn.out.",
        "mlp.gate_up_proj.": "mlp.gate_up.",
        "mlp.down_proj.": "mlp.down.",
    }

    @classmethod
    def reference_arguments(cls, arch: dict) -> dict:
        """This model's arguments from the reference's ``arch`` config (its ``SERRM_Config``)."""
        pos = arch.get("pos_encodings", "rope2d")
        loss_type = (arch.get("loss") or {}).get("loss_type", "stablemax_cross_entropy")
        return {"hidden_size": arch["hidden_size"], "num_heads": arch["num_heads"], "head_dim": arch["head_dim"],
                "symbol_heads": arch["num_heads_t"], "symbol_head_dim": arch["head_dim_t"],
                "expansion": float(arch["expansion"]), "num_layers": arch["L_layers"], "recursions": arch["H_cycles"],
                "latent_steps": arch["L_cycles"], "pos_encodings": pos if pos in ("rope", "rope2d") else "learned",
                "rope_theta": float(arch.get("rope_theta", 10000.0)),
                "equivariant_symbols": bool(arch.get("equivariant_symbols", True)),
                "add_tokens": int(arch.get("add_tokens", 0)), "puzzle_emb": int(arch.get("puzzle_emb_ndim", 0)) > 0,
                "dropout": float(arch.get("dropout", 0.0)), "halt_max_steps": arch["halt_max_steps"],
                "halt_exploration_prob": arch["halt_exploration_prob"],
                "loss": "softmax" if loss_type.startswith("softmax") else "stablemax"}

    @classmethod
    def reference_shape_arguments(cls, state: dict[str, torch.Tensor]) -> dict:
        """What renamed reference weights say about the architecture (without its config): the
        width, layers, whether symbols share weights, appended tokens, the puzzle vector, learned
        positions. Head counts are not told apart from head widths by the shapes: the preset's."""
        args = {"hidden_size": int(state["z_init"].shape[0]),
                "num_layers": len({k.split(".")[2] for k in state if k.startswith("net.layers.")}),
                "equivariant_symbols": "special_embedding" in state,
                "add_tokens": int(state["extra_tokens"].shape[2]) if "extra_tokens" in state else 0,
                "puzzle_emb": "puzzle_embedding.weight" in state}
        if "position" in state:
            args["pos_encodings"] = "learned"
        return args
