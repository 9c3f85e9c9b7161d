"""Small state dicts in the key layout of the reference HRM/TRM/EqR/SE-RRM code, built here from a seeded
generator (no reference code involved), and the batch they are run on. The outputs pinned in
``tests/data/reference_outputs.json`` were computed by running the reference implementation
itself on exactly these tensors, in float64 on a CPU (``benchmarks/reference_outputs.py``).

The weights are float32, as in a reference checkpoint, drawn in float64 and rounded: PyTorch's
float32 ``randn`` takes another code path on CPUs without AVX2 (other values), its float64 one
does not, so every x86-64 CPU builds the same tensors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

VOCAB, SEQ_LEN, NUM_IDS = 11, 81, 3

CONFIGS = {
    # name: (reference arch config, levels -> layer count)
    "hrm": dict(arch="hrm", hidden_size=16, num_heads=2, expansion=4, H_layers=1, L_layers=1, H_cycles=2,
                L_cycles=2, puzzle_emb_ndim=16, halt_max_steps=3, halt_exploration_prob=0.1,
                pos_encodings="rope", levels={"H_level": 1, "L_level": 1}),
    "trm_attention": dict(arch="trm", hidden_size=16, num_heads=2, expansion=4, H_layers=0, L_layers=2, H_cycles=2,
                          L_cycles=2, puzzle_emb_ndim=16, puzzle_emb_len=2, mlp_t=False, no_ACT_continue=True,
                          halt_max_steps=3, halt_exploration_prob=0.1, pos_encodings="rope", levels={"L_level": 2}),
    "trm_mlp": dict(arch="trm", hidden_size=16, num_heads=2, expansion=4, H_layers=0, L_layers=2, H_cycles=2,
                    L_cycles=2, puzzle_emb_ndim=16, puzzle_emb_len=2, mlp_t=True, no_ACT_continue=True,
                    halt_max_steps=3, halt_exploration_prob=0.1, pos_encodings="none", levels={"L_level": 2}),
    # EqR: no puzzle embedding; its starting states and noise are drawn from torch's generator,
    # seeded with EQR_SEED before the first segment (the two stds differ so that a swap shows)
    "eqr_attention": dict(arch="eqr", hidden_size=16, num_heads=2, expansion=4, H_layers=0, L_layers=2, H_cycles=2,
                          L_cycles=2, mlp_t=False, halt_max_steps=3, halt_exploration_prob=0.1, pos_encodings="rope",
                          lambda_=0.95, noise_scale=0.01, H_init_std=1.0, L_init_std=0.5, levels={"L_level": 2}),
    "eqr_attention_noiseless": dict(arch="eqr", hidden_size=16, num_heads=2, expansion=4, H_layers=0, L_layers=2,
                                    H_cycles=2, L_cycles=2, mlp_t=False, halt_max_steps=3, halt_exploration_prob=0.1,
                                    pos_encodings="rope", lambda_=0.95, noise_scale=0.0, H_init_std=1.0,
                                    L_init_std=0.5, levels={"L_level": 2}),
    # as the reference's Sudoku setting: the MLP mixer, RoPE tables built and never read
    "eqr_mlp": dict(arch="eqr", hidden_size=16, num_heads=2, expansion=4, H_layers=0, L_layers=2, H_cycles=2,
                    L_cycles=2, mlp_t=True, halt_max_steps=3, halt_exploration_prob=0.1, pos_encodings="rope",
                    lambda_=0.95, noise_scale=0.01, H_init_std=1.0, L_init_std=1.0, levels={"L_level": 2}),
}

EQR_SEED = 0  # torch.manual_seed before EqR's first segment, in the reference run and in ours


def _swiglu_inner(width: int) -> int:
    return -(-round(4 * width * 2 / 3) // 256) * 256


def reference_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Keys as the reference's training script saves them (compiled loss head around the model)."""
    c = CONFIGS[name]
    h, g = c["hidden_size"], torch.Generator().manual_seed(seed)
    prefix = "_orig_mod.model.inner."

    def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
        return (std * torch.randn(*shape, generator=g, dtype=torch.float64)).float()

    def w(*shape: int) -> torch.Tensor:
        return randn(*shape, std=1 / math.sqrt(shape[-1]))

    state = {"embed_tokens.embedding_weight": randn(VOCAB, h, std=1 / math.sqrt(h)),
             "lm_head.weight": w(VOCAB, h), "q_head.weight": w(2, h), "q_head.bias": randn(2)}
    if c["arch"] != "eqr":  # EqR has no puzzle embedding and draws its starting states
        state.update({"puzzle_emb.weights": randn(NUM_IDS, c["puzzle_emb_ndim"], std=0.5),
                      "H_init": randn(h), "L_init": randn(h)})
    positions = SEQ_LEN + (0 if c["arch"] == "eqr" else c.get("puzzle_emb_len", 1))
    inner, inner_t = _swiglu_inner(h), _swiglu_inner(positions)
    for level, count in c["levels"].items():
        for i in range(count):
            layer = f"{level}.layers.{i}."
            if c.get("mlp_t"):
                state[layer + "mlp_t.gate_up_proj.weight"] = w(2 * inner_t, positions)
                state[layer + "mlp_t.down_proj.weight"] = w(positions, inner_t)
            else:
                state[layer + "self_attn.qkv_proj.weight"] = w(3 * h, h)
                state[layer + "self_attn.o_proj.weight"] = w(h, h)
            state[layer + "mlp.gate_up_proj.weight"] = w(2 * inner, h)
            state[layer + "mlp.down_proj.weight"] = w(h, inner)
    return {prefix + k: v for k, v in state.items()}


def reference_batch(seed: int = 1, batch_size: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, VOCAB, (batch_size, SEQ_LEN), generator=g)
    labels = torch.randint(1, VOCAB, (batch_size, SEQ_LEN), generator=g)
    return {"inputs": inputs, "labels": labels, "puzzle_ids": torch.arange(batch_size) % NUM_IDS}


# --- the training-trajectory pin (benchmarks/reference_training.py, tests/test_training_pin.py)
TRAINING_CONFIGS = ("hrm", "trm_attention", "trm_mlp", "eqr_attention", "eqr_mlp")  # those with a training pin
TRAINING_STEPS = 30
TRAINING_BATCH = 3
# the reference recipe's optimizer settings, with a warm-up and a cosine short enough that
# every phase of the schedule falls inside the pinned steps; a larger lr than the papers' so
# that 30 steps move the weights, and the halting decisions with them
TRAINING = dict(lr=1e-3, weight_decay=0.1, beta1=0.9, beta2=0.95, warmup_steps=5, min_lr_ratio=0.1,
                puzzle_emb_lr=1e-2, puzzle_emb_weight_decay=0.1)
# TRM's and EqR's recipes keep an EMA of the weights, HRM's none
EMA_DECAY = {"hrm": 0.0, "trm_attention": 0.9, "trm_mlp": 0.9, "eqr_attention": 0.9, "eqr_mlp": 0.9}


def training_batches(steps: int = TRAINING_STEPS, batch_size: int = TRAINING_BATCH) -> list[dict[str, torch.Tensor]]:
    """The batch of every training step: random tokens and labels, puzzle ids drawn with
    repeats (so the sign-SGD sums the gradients of one row used twice)."""
    out = []
    for step in range(steps):
        g = torch.Generator().manual_seed(1000 + step)
        inputs = torch.randint(1, VOCAB, (batch_size, SEQ_LEN), generator=g)
        labels = torch.randint(1, VOCAB, (batch_size, SEQ_LEN), generator=g)
        out.append({"inputs": inputs, "labels": labels, "puzzle_ids": torch.randint(0, NUM_IDS, (batch_size,), generator=g)})
    return out


def exploration_draws(halt_max_steps: int, steps: int = TRAINING_STEPS,
                      batch_size: int = TRAINING_BATCH) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The halting exploration's random numbers of every step, fed to both implementations in
    place of their own draws: a uniform number per slot (explore where < the exploration
    probability) and a minimum segment count in [2, halt_max_steps]."""
    g = torch.Generator().manual_seed(2000)
    return [(torch.rand(batch_size, generator=g, dtype=torch.float64),
             torch.randint(2, halt_max_steps + 1, (batch_size,), generator=g)) for _ in range(steps)]


EQR_DRAW_SEED = 3000


@contextmanager
def eqr_draw(step: int, draw: int) -> Iterator[None]:
    """Inside, torch's global CPU generator is in a state fixed by the training step ``step``
    (from 1) and the number ``draw`` of the draw within it (0: every slot's answer-state start,
    1: every slot's latent start, 2 + k: the noise of the step's update k); after, its own state
    is back. EqR draws its starting states and noise from that generator; each implementation
    makes each draw in here with its own sampling code, so both sample the same numbers however
    many other draws the rest of the run makes."""
    if not 0 <= draw < 100:
        raise ValueError(f"draw {draw} outside [0, 100)")
    generator = torch.default_generator
    saved = generator.get_state()
    generator.manual_seed(EQR_DRAW_SEED + 100 * step + draw)
    try:
        yield
    finally:
        generator.set_state(saved)


def parameter_digest(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Two numbers that move with every weight: the sum of squares and a projection on fixed
    random directions (one per tensor, seeded by its name), in float64; ``scale`` bounds the
    projection's size (||weights|| * ||directions||), the yardstick of its relative error."""
    sumsq = projection = directions_sumsq = 0.0
    for name in sorted(state):
        value = state[name].detach().double()
        g = torch.Generator().manual_seed(sum(name.encode()) * 7919 + len(name))
        direction = torch.randn(value.shape, generator=g, dtype=torch.float64)
        sumsq += float((value * value).sum())
        projection += float((value * direction).sum())
        directions_sumsq += float((direction * direction).sum())
    return {"sumsq": sumsq, "projection": projection, "scale": (sumsq * directions_sumsq) ** 0.5}
# SE-RRM (ml-jku/SE-RRM, models/recursive_reasoning/trm_equi.py): the reference arch config of
# each pinned case; together they take every branch of its encoding and head.
SE_RRM_CONFIGS = {
    "se_rrm_rope2d": dict(hidden_size=16, num_heads=2, head_dim=8, num_heads_t=2, head_dim_t=4, expansion=4,
                          H_layers=0, L_layers=2, H_cycles=2, L_cycles=2, halt_max_steps=3, halt_exploration_prob=0.1,
                          pos_encodings="rope2d", equivariant_symbols=True, add_tokens=2, puzzle_emb_ndim=1,
                          dropout=0.0),
    "se_rrm_rope": dict(hidden_size=16, num_heads=2, head_dim=8, num_heads_t=1, head_dim_t=8, expansion=4,
                        H_layers=0, L_layers=1, H_cycles=2, L_cycles=3, halt_max_steps=3, halt_exploration_prob=0.1,
                        pos_encodings="rope", equivariant_symbols=True, add_tokens=0, puzzle_emb_ndim=0, dropout=0.0),
    "se_rrm_learned": dict(hidden_size=16, num_heads=2, head_dim=8, num_heads_t=2, head_dim_t=8, expansion=4,
                           H_layers=0, L_layers=2, H_cycles=2, L_cycles=2, halt_max_steps=3, halt_exploration_prob=0.1,
                           pos_encodings="learned", equivariant_symbols=False, add_tokens=3, puzzle_emb_ndim=1,
                           dropout=0.0),
}
SE_RRM_SPECIAL_IDS = 2  # the reference's fixed ids: the first two of the vocabulary (pad and blank)


def se_rrm_reference_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """An SE-RRM state dict in the reference's key layout (as its training script saves it)."""
    c = SE_RRM_CONFIGS[name]
    h, g = c["hidden_size"], torch.Generator().manual_seed(seed)
    equivariant, extra = c["equivariant_symbols"], c["add_tokens"]

    def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
        return (std * torch.randn(*shape, generator=g, dtype=torch.float64)).float()

    def w(*shape: int) -> torch.Tensor:
        return randn(*shape, std=1 / math.sqrt(shape[-1]))

    state: dict[str, torch.Tensor] = {}
    if c["puzzle_emb_ndim"]:
        state["puzzle_emb.weights"] = randn(NUM_IDS, VOCAB + h, std=0.5)
    if extra and equivariant:
        state["add_tokens_special"] = randn(1, SE_RRM_SPECIAL_IDS, extra, h)
        state["add_tokens"] = randn(1, 1, extra, h)
    elif extra:
        state["add_tokens"] = randn(1, VOCAB, extra, h)
    state["lm_head.weight"] = w(1, h) if equivariant else w(VOCAB, h * VOCAB)
    if c["pos_encodings"] not in ("rope", "rope2d"):
        state["pos_embedding"] = randn(1, 1, SEQ_LEN, h)
    if equivariant:
        state["embed_special_tokens"] = randn(1, SE_RRM_SPECIAL_IDS, 1, h)
        state["embed_symbol_tokens"] = randn(1, 1, 1, h)
    else:
        state["embed_symbols"] = randn(1, VOCAB, 1, h)
    inner = _swiglu_inner(h)
    for i in range(c["L_layers"]):
        layer = f"L_level.layers.{i}."
        for part, heads, width in (("attn", c["num_heads"], c["head_dim"]), ("attn_t", c["num_heads_t"], c["head_dim_t"])):
            state[layer + f"{part}.qkv_proj.weight"] = w(3 * heads * width, h)
            state[layer + f"{part}.o_proj.weight"] = w(h, heads * width)
        state[layer + "mlp.gate_up_proj.weight"] = w(2 * inner, h)
        state[layer + "mlp.down_proj.weight"] = w(h, inner)
    state["Z_init"] = randn(h)
    return {"_orig_mod.model.inner." + k: v for k, v in state.items()}
