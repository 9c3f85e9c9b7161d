"""The reference outputs pinned in ``tests/data/reference_outputs.json``: the reference
implementations (sapientinc/HRM ``models/hrm/hrm_act_v1.py``, SamsungSAILMontreal/
TinyRecursiveModels ``models/recursive_reasoning/trm.py``) run in float64 on the state dicts and
batch of ``tests/reference_layout.py``, 3 segments in eval mode, on a CPU.

Not part of CI (it needs checkouts of the reference code, and pydantic + einops):

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels trm_ref
    git clone https://github.com/sapientinc/HRM hrm_ref
    python -m reasonbench_benchmarks.reference_outputs --trm-reference trm_ref \\
        --hrm-reference hrm_ref --out tests/data/reference_outputs.json

Why float64: float32 outputs hold the CPU that computed them (other kernels round otherwise:
1e-4 apart after 3 segments on an AVX-512/AMX Xeon), float64 ones agree across CPUs to ~1e-12.
The reference runs with ``forward_dtype="float64"`` and its modules ``.double()``; the few places
where it names float32 outright (RoPE tables built in float32, ``rms_norm`` computed in float32,
the Q-head's logits cast to float32) read ``torch.float32`` from their module's ``torch``, so in
the reference modules that name is pointed at float64 (``_Float64Torch``), the code left as it
is. Every floating-point tensor the forward pass makes is then checked to be float64.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from reasonbench_benchmarks.reference_speed import _flash_attention_on_sdpa

ROOT = Path(__file__).resolve().parent.parent
SEGMENTS = 3
REFERENCE_MODULES = {"hrm": "models.hrm.hrm_act_v1", "trm": "models.recursive_reasoning.trm"}
REFERENCE_CLASSES = {"hrm": "HierarchicalReasoningModel_ACTV1", "trm": "TinyRecursiveReasoningModel_ACTV1"}


def _layout():
    """``tests/reference_layout.py`` (the tests are no package that installs)."""
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module("tests.reference_layout")
    finally:
        sys.path.remove(str(ROOT))


class _Float64Torch(types.ModuleType):
    """``torch`` as the reference modules see it, except that ``float32`` names float64."""

    float32 = torch.float64

    def __getattr__(self, name: str):
        return getattr(torch, name)


def reference_class(arch: str, checkout: Path) -> type:
    """The reference's ACT model class for ``arch`` ('hrm' or 'trm') from ``checkout``, its
    modules reading float64 for float32. Both repositories name their package ``models``, so it
    is dropped from ``sys.modules`` afterwards (the class keeps its own modules alive)."""
    _flash_attention_on_sdpa()
    sys.path.insert(0, str(checkout.resolve()))
    try:
        cls = getattr(importlib.import_module(REFERENCE_MODULES[arch]), REFERENCE_CLASSES[arch])
        for name, module in list(sys.modules.items()):
            if name == "models" or name.startswith("models."):
                if getattr(module, "torch", None) is torch:
                    module.torch = _Float64Torch("torch")
                del sys.modules[name]
    finally:
        sys.path.remove(str(checkout.resolve()))
    return cls


class _NoFloat32(TorchDispatchMode):
    """Records every op that returns a floating-point tensor other than float64."""

    def __init__(self) -> None:
        super().__init__()
        self.offenders: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
                self.offenders.add(f"{func} -> {t.dtype}")
        return out


def reference_outputs(name: str, cls: type) -> list[dict]:
    """The reference model ``cls`` in float64 on config ``name``'s weights and batch: per
    segment, the first token's logits, q_halt, q_continue and the logits' sum and |sum|."""
    layout = _layout()
    config = {k: v for k, v in layout.CONFIGS[name].items() if k not in ("arch", "levels")}
    batch = layout.reference_batch()
    arch = {**config, "batch_size": batch["inputs"].shape[0], "seq_len": layout.SEQ_LEN,
            "vocab_size": layout.VOCAB, "num_puzzle_identifiers": layout.NUM_IDS, "forward_dtype": "float64"}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = cls(arch).double().eval()
    finally:
        torch.set_default_dtype(previous)
    prefix = "_orig_mod.model.inner."
    state = {k.removeprefix(prefix): v.double() for k, v in layout.reference_state_dict(name).items()}
    model.inner.load_state_dict(state, strict=True)
    batch = {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}

    def run() -> list[dict]:
        pinned = []
        with torch.no_grad():
            carry = model.initial_carry(batch)
            for _ in range(SEGMENTS):
                carry, out = model(carry=carry, batch=batch)
                logits = out["logits"]
                pinned.append({"logits_sum": logits.sum().item(), "logits_abs_sum": logits.abs().sum().item(),
                               "logits_first": logits[0, 0].tolist(), "q_halt": out["q_halt_logits"].tolist(),
                               "q_continue": out["q_continue_logits"].tolist()})
        return pinned

    pinned, guard = run(), _NoFloat32()
    with guard:  # a second pass, checked op by op (the pins come from the plain one)
        run()
    if guard.offenders:
        raise RuntimeError(f"{name}: the reference computed in another dtype than float64: {sorted(guard.offenders)}")
    return pinned


def _commit(checkout: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"{checkout} is not a git checkout: its commit is named in the pins") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trm-reference", type=Path, required=True, help="a checkout of TinyRecursiveModels")
    parser.add_argument("--hrm-reference", type=Path, required=True, help="a checkout of sapientinc/HRM")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "reference_outputs.json")
    args = parser.parse_args(argv)
    checkouts = {"hrm": args.hrm_reference, "trm": args.trm_reference}
    commits = {arch: _commit(path) for arch, path in checkouts.items()}
    classes = {arch: reference_class(arch, path) for arch, path in checkouts.items()}
    pins: dict = {"_about": (
        "Outputs of the reference implementations (sapientinc/HRM models/hrm/hrm_act_v1.py at "
        f"{commits['hrm']}; SamsungSAILMontreal/TinyRecursiveModels models/recursive_reasoning/trm.py at "
        f"{commits['trm']}), float64 on CPU, eval mode, {SEGMENTS} segments, on the state dicts and batch "
        "of tests/reference_layout.py; made by python -m reasonbench_benchmarks.reference_outputs.")}
    for name, config in _layout().CONFIGS.items():
        pins[name] = reference_outputs(name, classes[config["arch"]])
    args.out.write_text(json.dumps(pins, indent=1) + "\n")
    print(f"wrote {args.out}: {', '.join(n for n in pins if n != '_about')}")


if __name__ == "__main__":
    main()
