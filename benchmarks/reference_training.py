"""The training trajectories pinned in ``tests/data/reference_training.json``: the reference
implementations (sapientinc/HRM, SamsungSAILMontreal/TinyRecursiveModels) trained for
``TRAINING_STEPS`` steps in float64 on a CPU, driven as their ``pretrain.py`` drives them, from
the state dicts of ``tests/reference_layout.py`` over its batch stream and exploration draws.

Not part of CI (it needs checkouts of the reference code, and pydantic + einops):

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels TRM_DIR
    git clone https://github.com/sapientinc/HRM HRM_DIR
    python -m reasonbench_benchmarks.reference_training --trm-reference TRM_DIR \\
        --hrm-reference HRM_DIR --out tests/data/reference_training.json

What runs is the reference's own code: its model (``hrm_act_v1.py`` / ``trm.py``), its loss
head (``models/losses.py``, ``ACTLossHead`` with ``stablemax_cross_entropy``), its puzzle
embedding and sign-SGD optimizer (``models/sparse_embedding.py``) and TRM's EMA helper
(``models/ema.py``), with the carry kept across batches and ``(1 / global_batch_size) * loss``
back-propagated, as ``train_batch`` does. Two pieces cannot be imported on a CPU and are
transcribed here line by line: the learning-rate schedule (``pretrain.py`` imports wandb,
hydra and the CUDA-only optimizer) and Adam-atan2 (the ``adam-atan2`` 0.0.3 package the
references install is a CUDA kernel). The kernel's lerp is ``fma(t, v1, fma(-t, v0, v0))``,
which a CPU cannot form from PyTorch operations; its authors note it equals PyTorch's lerp,
which this transcription uses (the two may differ by one rounding, which is not what the pin
is about). The exploration draws (``torch.rand_like`` / ``torch.randint_like`` in the reference
ACT wrapper) are replaced by the fixed stream of ``exploration_draws``, so both sides explore
the same slots.

Per step the pin holds the rates applied (weights and puzzle embedding), each loss term per
example, the halting decisions and segment counts of the carried slots, and a digest of the
weights (puzzle embedding included) and of the EMA weights after the update, the weights in
reasonbench's names (the reference names mapped by the plugin's ``from_reference_state_dict``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from reasonbench_benchmarks.reference_outputs import _commit, _Float64Torch, _layout
from reasonbench_benchmarks.reference_speed import _flash_attention_on_sdpa
from reasonbench_plugins.hrm import HRMModel
from reasonbench_plugins.trm import TRMModel

ROOT = Path(__file__).resolve().parent.parent
MODEL_MODULES = {"hrm": ("models.hrm.hrm_act_v1", "HierarchicalReasoningModel_ACTV1"),
                 "trm": ("models.recursive_reasoning.trm", "TinyRecursiveReasoningModel_ACTV1")}
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


class _ReferenceTorch(_Float64Torch):
    """``torch`` as the reference modules see it: float32 names float64, and the exploration's
    random draws come from the fixed stream (``stream`` set per run)."""

    stream: _DrawStream | None = None

    def rand_like(self, like: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.stream.rand_like(like) if self.stream else torch.rand_like(like, *args, **kwargs)

    def randint_like(self, like: torch.Tensor, low: int = 0, high: int | None = None) -> torch.Tensor:
        if not self.stream:
            return torch.randint_like(like, low=low, high=high)
        return self.stream.randint_like(like, low, high)


def reference_modules(arch: str, checkout: Path) -> tuple[dict[str, Any], _ReferenceTorch]:
    """The reference's model class, loss head, sparse-embedding optimizer and (TRM) EMA helper
    from ``checkout``, their modules reading ``_ReferenceTorch`` for ``torch``. Both
    repositories name their package ``models``: it is dropped from ``sys.modules`` afterwards."""
    _flash_attention_on_sdpa()
    patched = _ReferenceTorch("torch")
    sys.path.insert(0, str(checkout.resolve()))
    try:
        module, cls = MODEL_MODULES[arch]
        found = {"model": getattr(importlib.import_module(module), cls),
                 "loss_head": importlib.import_module("models.losses").ACTLossHead,
                 "sign_sgd": importlib.import_module("models.sparse_embedding").CastedSparseEmbeddingSignSGD_Distributed}
        if arch == "trm":
            found["ema"] = importlib.import_module("models.ema").EMAHelper
        for name, loaded in list(sys.modules.items()):
            if name == "models" or name.startswith("models."):
                if getattr(loaded, "torch", None) is torch:
                    loaded.torch = patched
                del sys.modules[name]
    finally:
        sys.path.remove(str(checkout.resolve()))
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
    return HRMModel if _layout().CONFIGS[name]["arch"] == "hrm" else TRMModel


def _digest(layout: Any, name: str, state: dict[str, torch.Tensor], keep: set[str]) -> dict[str, float]:
    """Digest of the reference tensors ``state`` (reference names without prefix), in
    reasonbench's names, of the keys in ``keep``."""
    mapped = _ours(name).from_reference_state_dict({PREFIX + k: v for k, v in state.items() if k in keep})
    return layout.parameter_digest(mapped)


def reference_trajectory(name: str, found: dict[str, Any], patched: _ReferenceTorch) -> dict[str, Any]:
    """Trains the reference model of config ``name``: the names digested and the per-step pins."""
    layout = _layout()
    config = {k: v for k, v in layout.CONFIGS[name].items() if k not in ("arch", "levels")}
    recipe, batch_size = layout.TRAINING, layout.TRAINING_BATCH
    arch = {**config, "batch_size": batch_size, "seq_len": layout.SEQ_LEN, "vocab_size": layout.VOCAB,
            "num_puzzle_identifiers": layout.NUM_IDS, "forward_dtype": "float64"}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = found["loss_head"](found["model"](arch), loss_type="stablemax_cross_entropy").double()
    finally:
        torch.set_default_dtype(previous)
    inner = model.model.inner
    initial = layout.reference_state_dict(name)
    inner.load_state_dict({k.removeprefix(PREFIX): v.double() for k, v in initial.items()}, strict=True)
    persistent = {k.removeprefix(PREFIX) for k in initial}
    model.train()

    optimizers = [found["sign_sgd"](inner.puzzle_emb.buffers(), lr=0, weight_decay=recipe["puzzle_emb_weight_decay"],
                                    world_size=1),
                  AdamAtan2Kernel(model.parameters(), lr=0, weight_decay=recipe["weight_decay"],
                                  betas=(recipe["beta1"], recipe["beta2"]))]
    base_lrs = [recipe["puzzle_emb_lr"], recipe["lr"]]
    ema = None
    if layout.EMA_DECAY[name] > 0:
        ema = found["ema"](mu=layout.EMA_DECAY[name])
        ema.register(model)

    steps = layout.TRAINING_STEPS
    patched.stream = stream = _DrawStream(layout.exploration_draws(config["halt_max_steps"], steps, batch_size))
    pins, carry = [], None
    try:
        for step, batch in enumerate(layout.training_batches(steps, batch_size), start=1):
            batch = {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}
            if carry is None:
                carry = model.initial_carry(batch)
            carry, loss, metrics, _, _ = model(carry=carry, batch=batch, return_keys=[])
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
            pin = {"step": step, "lr": rates[1], "puzzle_emb_lr": rates[0],
                   "loss": float(loss.detach()) / batch_size, "terms": {k: float(v) / batch_size for k, v in terms.items()},
                   "halted": carry.halted.tolist(), "segments": carry.steps.tolist(),
                   "weights": _digest(layout, name, inner.state_dict(), persistent)}
            if ema is not None:
                shadow = {k.removeprefix("model.inner."): v for k, v in ema.shadow.items()}
                pin["ema_weights"] = _digest(layout, name, shadow, persistent)
            pins.append(pin)
    finally:
        patched.stream = None
    if stream.uniform_calls != steps or stream.integer_calls != steps:
        raise RuntimeError(f"{name}: the reference drew {stream.uniform_calls}/{stream.integer_calls} times in "
                           f"{steps} steps; the draws would not line up")
    ours = _ours(name)
    names = {"weights": sorted(ours.from_reference_state_dict({PREFIX + k: v for k, v in initial.items()}))}
    if ema is not None:
        shadow = {PREFIX + k.removeprefix("model.inner."): v for k, v in ema.shadow.items()}
        names["ema_weights"] = sorted(ours.from_reference_state_dict(shadow))
    return {"names": names, "steps": pins}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trm-reference", type=Path, required=True, help="a checkout of TinyRecursiveModels")
    parser.add_argument("--hrm-reference", type=Path, required=True, help="a checkout of sapientinc/HRM")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "reference_training.json")
    args = parser.parse_args(argv)
    checkouts = {"hrm": args.hrm_reference, "trm": args.trm_reference}
    commits = {arch: _commit(path) for arch, path in checkouts.items()}
    loaded = {arch: reference_modules(arch, path) for arch, path in checkouts.items()}
    layout = _layout()
    pins: dict[str, Any] = {"_about": (
        f"Training trajectories of the reference implementations (sapientinc/HRM at {commits['hrm']}; "
        f"SamsungSAILMontreal/TinyRecursiveModels at {commits['trm']}): {layout.TRAINING_STEPS} steps, float64 on "
        "CPU, the state dicts, batch stream and exploration draws of tests/reference_layout.py; made by "
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
