"""The training trajectories pinned in ``tests/data/reference_training.json``: the reference
implementations (sapientinc/HRM, SamsungSAILMontreal/TinyRecursiveModels, locuslab/EqR) trained
for ``TRAINING_STEPS`` steps in float64 on a CPU, driven as their ``pretrain.py`` drives them,
from the state dicts of ``tests/reference_layout.py`` over its batch stream and exploration draws.

Not part of CI (it needs checkouts of the reference code, and pydantic + einops + colorama):

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels TRM_DIR
    git clone https://github.com/sapientinc/HRM HRM_DIR
    git clone https://github.com/locuslab/EqR EQR_DIR
    python -m reasonbench_benchmarks.reference_training --trm-reference TRM_DIR \\
        --hrm-reference HRM_DIR --eqr-reference EQR_DIR --out tests/data/reference_training.json

What runs is the reference's own code: its model (``hrm_act_v1.py`` / ``trm.py`` / ``eqr.py``),
its loss head (``ACTLossHead`` with ``stablemax_cross_entropy``: ``models/losses.py``, EqR's
``models/losses/``), its puzzle embedding and sign-SGD optimizer (``models/sparse_embedding.py``;
EqR has no puzzle embedding, hence one optimizer) and the EMA helper of TRM and EqR
(``models/ema.py``), with the carry kept across batches and ``(1 / global_batch_size) * loss``
back-propagated, as ``train_batch`` does. Two pieces cannot be imported on a CPU and are
transcribed here line by line: the learning-rate schedule (``pretrain.py`` imports wandb,
hydra and the CUDA-only optimizer; EqR's ``utils/optimizer.py`` has the same formula) and
Adam-atan2 (the ``adam-atan2`` 0.0.3 package the references install is a CUDA kernel). The
kernel's lerp is ``fma(t, v1, fma(-t, v0, v0))``, which a CPU cannot form from PyTorch
operations; its authors note it equals PyTorch's lerp, which this transcription uses (the two
may differ by one rounding, which is not what the pin is about). The exploration draws
(``torch.rand_like`` / ``torch.randint_like`` in the reference ACT wrapper) are replaced by the
fixed stream of ``exploration_draws``, so both sides explore the same slots.

EqR draws more random numbers while it trains: the starting states of the slots that restart
(truncated normals, ``trunc_normal_init_`` in its ``reset_carry``) and the noise of every update
(``torch.randn_like`` in ``NoisyReasoningModule``), both from torch's global generator. Seeding
both sides alike does not line these up: reasonbench draws a start for every slot at every step
and keeps those of the slots that restart, the reference draws starts for the restarting slots
only (none at a step where no slot restarts), and the two training loops draw other numbers
from that generator in between (Lightning's data loader draws a seed per epoch). So each of
those draws is made inside ``reference_layout.eqr_draw(step, draw)``, which puts the global
generator in a state fixed by the step and the draw's number for that draw only; on each side
the draw runs through that side's own sampling code (the reference's ``trunc_normal_init_`` and
``torch.randn_like``, reasonbench's ``batch_randn``), so the pin still covers the truncated-normal
sampler, the two stds and the noise scale. The starting states are drawn for every slot, as
reasonbench draws them, and the reference's restarting slots receive their rows. The draws'
count is checked: two starts and ``H_cycles * (L_cycles + 1)`` noise tensors per step.

Per step the pin holds the rates applied (weights, and the puzzle embedding where there is
one), each loss term per example, the halting decisions and segment counts of the carried
slots, and a digest of the weights (puzzle embedding included) and of the EMA weights after the
update, the weights in reasonbench's names (the reference names mapped as
``reasonbench import-checkpoint`` maps them: ``checkpoint_import.rename_reference_state``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from reasonbench.config.registry import get_model
from reasonbench.tools.checkpoint_import import rename_reference_state
from reasonbench_benchmarks.reference_outputs import (REFERENCE_CLASSES, REFERENCE_MODULES, _commit, _Float64Torch,
                                                      _layout, build_float64, reference_modules_from)

ROOT = Path(__file__).resolve().parent.parent
LOSS_MODULE = "models.losses"
SPARSE_EMBEDDING_MODULE = "models.sparse_embedding"  # HRM, TRM: the puzzle embedding's sign-SGD
EMA_MODULE = "models.ema"  # TRM, EqR
PREFIX = "_orig_mod.model.inner."


class _DrawStream:
    """``torch.rand_like`` / ``torch.randint_like`` as the reference ACT wrapper calls them, once
    per training step each, answered from the fixed exploration draws."""

    def __init__(self, draws: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.draws, self.uniform_calls, self.integer_calls = draws, 0, 0

    def rand_like(self, like: torch.Tensor) -> torch.Tensor:
        uniform = self.draws[self.uniform_calls][0]
        self.uniform_calls += 1
        return uniform.to(like.dtype).reshape(like.shape)

    def randint_like(self, like: torch.Tensor, low: int, high: int) -> torch.Tensor:
        integers = self.draws[self.integer_calls][1]
        self.integer_calls += 1
        assert int(integers.min()) >= low and int(integers.max()) < high, "draws outside the reference's range"
        return integers.to(like.dtype).reshape(like.shape)


class _EqRDraws:
    """EqR's starting states and noise as the reference draws them in training, each draw made
    inside ``eqr_draw(step, draw)``: ``step`` and the slots restarting at it (``restarting``)
    set by the training loop before each step."""

    def __init__(self, layout: Any, batch_size: int, sampler: Callable[..., torch.Tensor]) -> None:
        self.layout, self.batch_size, self.sampler = layout, batch_size, sampler
        self.step, self.restarting = 0, torch.zeros(0, dtype=torch.long)
        self.starts = self.noises = 0  # this step's draws so far

    def begin(self, step: int, restarting: torch.Tensor) -> None:
        self.step, self.restarting, self.starts, self.noises = step, restarting.nonzero().flatten(), 0, 0

    def trunc_normal_init_(self, tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0,
                           upper: float = 2.0) -> torch.Tensor:
        """The reference's sampler filling the rows of the restarting slots: the start of every
        slot drawn by it, the restarting slots' rows kept (in the order ``reset_carry`` writes
        them)."""
        if tensor.shape[0] != self.restarting.numel():
            raise RuntimeError(f"the reference draws {tensor.shape[0]} starts, {self.restarting.numel()} slots restart")
        every = torch.empty((self.batch_size, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
        with self.layout.eqr_draw(self.step, self.starts):
            self.sampler(every, std=std, lower=lower, upper=upper)
        self.starts += 1
        return tensor.copy_(every[self.restarting])

    def randn_like(self, like: torch.Tensor) -> torch.Tensor:
        with self.layout.eqr_draw(self.step, 2 + self.noises):
            noise = torch.randn_like(like)
        self.noises += 1
        return noise


class _ReferenceTorch(_Float64Torch):
    """``torch`` as the reference modules see it: float32 names float64, the exploration's
    random draws come from the fixed stream (``stream`` set per run) and EqR's noise from
    ``eqr_draws`` (set per EqR run)."""

    stream: _DrawStream | None = None
    eqr_draws: _EqRDraws | None = None

    def rand_like(self, like: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.stream.rand_like(like) if self.stream else torch.rand_like(like, *args, **kwargs)

    def randint_like(self, like: torch.Tensor, low: int = 0, high: int | None = None) -> torch.Tensor:
        if not self.stream:
            return torch.randint_like(like, low=low, high=high)
        return self.stream.randint_like(like, low, high)

    def randn_like(self, like: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.eqr_draws.randn_like(like) if self.eqr_draws else torch.randn_like(like, *args, **kwargs)


def reference_modules(arch: str, checkout: Path) -> tuple[dict[str, Any], _ReferenceTorch]:
    """The reference's model class, loss head, sparse-embedding optimizer (HRM, TRM), EMA helper
    (TRM, EqR) and model module from ``checkout``, their modules reading ``_ReferenceTorch`` for
    ``torch``."""
    patched = _ReferenceTorch("torch")
    names = [REFERENCE_MODULES[arch], LOSS_MODULE] + ([SPARSE_EMBEDDING_MODULE] if arch != "eqr" else []) + \
        ([EMA_MODULE] if arch != "hrm" else [])
    modules = reference_modules_from(checkout, names, patched)
    found = {"module": modules[REFERENCE_MODULES[arch]],
             "model": getattr(modules[REFERENCE_MODULES[arch]], REFERENCE_CLASSES[arch]),
             "loss_head": modules[LOSS_MODULE].ACTLossHead}
    if SPARSE_EMBEDDING_MODULE in modules:
        found["sign_sgd"] = modules[SPARSE_EMBEDDING_MODULE].CastedSparseEmbeddingSignSGD_Distributed
    if EMA_MODULE in modules:
        found["ema"] = modules[EMA_MODULE].EMAHelper
    return found, patched


def scheduled_lr(base_lr: float, step: int, warmup: int, total: int, min_ratio: float) -> float:
    """``cosine_schedule_with_warmup_lr_lambda`` of the reference's ``pretrain.py`` (num_cycles
    0.5), transcribed."""
    if step < warmup:
        return base_lr * float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return base_lr * (min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * float(0.5) * 2.0 * progress))))


class AdamAtan2Kernel(torch.optim.Optimizer):
    """The arithmetic of the ``adam-atan2`` 0.0.3 CUDA kernel (``csrc/adam_atan2.cu``), per
    element: ``p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = lerp(v, g*g, 1-b2);
    p -= (lr / (1 - b1^t)) * atan2(m, sqrt(v) / sqrt(1 - b2^t))``."""

    def __init__(self, params: Any, lr: float, betas: tuple[float, float], weight_decay: float) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                t, m, v, g = state["step"], state["exp_avg"], state["exp_avg_sq"], p.grad
                step_size, wd_alpha = lr / (1 - beta1**t), 1 - lr * decay
                bias_correction2_sqrt = math.sqrt(1 - beta2**t)
                p.mul_(wd_alpha)
                m.lerp_(g, 1 - beta1)
                v.lerp_(g * g, 1 - beta2)
                p.sub_(step_size * torch.atan2(m, v.sqrt() / bias_correction2_sqrt))


def _ours(name: str) -> type:
    return get_model(_layout().CONFIGS[name]["arch"])


def _digest(layout: Any, name: str, state: dict[str, torch.Tensor], keep: set[str]) -> dict[str, float]:
    """Digest of the reference tensors ``state`` (reference names without prefix), in
    reasonbench's names, of the keys in ``keep``."""
    mapped = rename_reference_state(_ours(name), {PREFIX + k: v for k, v in state.items() if k in keep})
    return layout.parameter_digest(mapped)


def reference_trajectory(name: str, found: dict[str, Any], patched: _ReferenceTorch) -> dict[str, Any]:
    """Trains the reference model of config ``name``: the names digested and the per-step pins."""
    layout = _layout()
    config = {k: v for k, v in layout.CONFIGS[name].items() if k not in ("arch", "levels")}
    recipe, batch_size = layout.TRAINING, layout.TRAINING_BATCH
    arch = {**config, "batch_size": batch_size, "seq_len": layout.SEQ_LEN, "vocab_size": layout.VOCAB,
            "num_puzzle_identifiers": layout.NUM_IDS, "forward_dtype": "float64"}
    initial = layout.reference_state_dict(name)
    model = found["loss_head"](build_float64(found["model"], arch, initial), loss_type="stablemax_cross_entropy")
    inner = model.model.inner
    persistent = {k.removeprefix(PREFIX) for k in initial}
    model.train()

    # HRM and TRM: sign-SGD on the puzzle embedding, then Adam-atan2; EqR: Adam-atan2 alone
    optimizers, base_lrs = [], []
    if "sign_sgd" in found:
        optimizers.append(found["sign_sgd"](inner.puzzle_emb.buffers(), lr=0,
                                            weight_decay=recipe["puzzle_emb_weight_decay"], world_size=1))
        base_lrs.append(recipe["puzzle_emb_lr"])
    optimizers.append(AdamAtan2Kernel(model.parameters(), lr=0, weight_decay=recipe["weight_decay"],
                                      betas=(recipe["beta1"], recipe["beta2"])))
    base_lrs.append(recipe["lr"])
    ema = None
    if layout.EMA_DECAY[name] > 0:
        ema = found["ema"](mu=layout.EMA_DECAY[name])
        ema.register(model)

    steps = layout.TRAINING_STEPS
    patched.stream = stream = _DrawStream(layout.exploration_draws(config["halt_max_steps"], steps, batch_size))
    eqr = layout.CONFIGS[name]["arch"] == "eqr"  # it draws starting states and noise as it trains
    if eqr:
        sampler = found["module"].trunc_normal_init_
        patched.eqr_draws = eqr_draws = _EqRDraws(layout, batch_size, sampler)
        found["module"].trunc_normal_init_ = eqr_draws.trunc_normal_init_
        updates = config["H_cycles"] * (config["L_cycles"] + 1)
    pins, carry = [], None
    try:
        for step, batch in enumerate(layout.training_batches(steps, batch_size), start=1):
            batch = {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}
            if carry is None:
                carry = model.initial_carry(batch)
            if eqr:
                eqr_draws.begin(step, carry.halted)
            carry, loss, metrics, _, _ = model(carry=carry, batch=batch, return_keys=[])
            if eqr and (eqr_draws.noises != updates or eqr_draws.starts != (2 if len(eqr_draws.restarting) else 0)):
                raise RuntimeError(f"{name} step {step}: the reference drew {eqr_draws.starts} starts and "
                                   f"{eqr_draws.noises} noise tensors; the draws would not line up")
            if loss.dtype != torch.float64:
                raise RuntimeError(f"{name}: the reference's loss is {loss.dtype}, not float64")
            ((1 / batch_size) * loss).backward()
            rates = []
            for optim, base_lr in zip(optimizers, base_lrs):
                rate = scheduled_lr(base_lr, step, round(recipe["warmup_steps"]), steps, recipe["min_lr_ratio"])
                for group in optim.param_groups:
                    group["lr"] = rate
                optim.step()
                optim.zero_grad()
                rates.append(rate)
            if ema is not None:
                ema.update(model)
            terms = {"lm_loss": metrics["lm_loss"], "halt_loss": metrics["q_halt_loss"]}
            if "q_continue_loss" in metrics:
                terms["continue_loss"] = metrics["q_continue_loss"]
            pin = {"step": step, "lr": rates[-1], **({"puzzle_emb_lr": rates[0]} if len(rates) > 1 else {}),
                   "loss": float(loss.detach()) / batch_size, "terms": {k: float(v) / batch_size for k, v in terms.items()},
                   "halted": carry.halted.tolist(), "segments": carry.steps.tolist(),
                   "weights": _digest(layout, name, inner.state_dict(), persistent)}
            if ema is not None:
                shadow = {k.removeprefix("model.inner."): v for k, v in ema.shadow.items()}
                pin["ema_weights"] = _digest(layout, name, shadow, persistent)
            pins.append(pin)
    finally:
        patched.stream = patched.eqr_draws = None
        if eqr:
            found["module"].trunc_normal_init_ = sampler
    if stream.uniform_calls != steps or stream.integer_calls != steps:
        raise RuntimeError(f"{name}: the reference drew {stream.uniform_calls}/{stream.integer_calls} times in "
                           f"{steps} steps; the draws would not line up")
    ours = _ours(name)
    names = {"weights": sorted(rename_reference_state(ours, {PREFIX + k: v for k, v in initial.items()}))}
    if ema is not None:
        shadow = {PREFIX + k.removeprefix("model.inner."): v for k, v in ema.shadow.items()}
        names["ema_weights"] = sorted(rename_reference_state(ours, shadow))
    return {"names": names, "steps": pins}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trm-reference", type=Path, required=True, help="a checkout of TinyRecursiveModels")
    parser.add_argument("--hrm-reference", type=Path, required=True, help="a checkout of sapientinc/HRM")
    parser.add_argument("--eqr-reference", type=Path, required=True, help="a checkout of locuslab/EqR")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "reference_training.json")
    args = parser.parse_args(argv)
    checkouts = {"hrm": args.hrm_reference, "trm": args.trm_reference, "eqr": args.eqr_reference}
    commits = {arch: _commit(path) for arch, path in checkouts.items()}
    loaded = {arch: reference_modules(arch, path) for arch, path in checkouts.items()}
    layout = _layout()
    pins: dict[str, Any] = {"_about": (
        f"Training trajectories of the reference implementations (sapientinc/HRM at {commits['hrm']}; "
        f"SamsungSAILMontreal/TinyRecursiveModels at {commits['trm']}; locuslab/EqR at {commits['eqr']}): "
        f"{layout.TRAINING_STEPS} steps, float64 on CPU, the state dicts, batch stream and exploration draws of "
        "tests/reference_layout.py, EqR's starting states and noise drawn inside its eqr_draw; made by "
        "python -m reasonbench_benchmarks.reference_training.")}
    for name in layout.TRAINING_CONFIGS:
        pins[name] = reference_trajectory(name, *loaded[layout.CONFIGS[name]["arch"]])
        steps = pins[name]["steps"]
        print(f"{name}: loss {steps[0]['loss']:.6f} -> {steps[-1]['loss']:.6f}, "
              f"{sum(sum(p['halted']) for p in steps)} slot halts in {len(steps)} steps")
    args.out.write_text(json.dumps(pins, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
