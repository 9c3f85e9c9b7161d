"""The reference outputs pinned in ``tests/data/reference_outputs.json``: the reference
implementations (sapientinc/HRM ``models/hrm/hrm_act_v1.py``, SamsungSAILMontreal/
TinyRecursiveModels ``models/recursive_reasoning/trm.py``, locuslab/EqR ``models/eqr.py``) run in
float64 on the state dicts and batch of ``tests/reference_layout.py``, 3 segments in eval mode, on
a CPU; EqR's random starting states and noise drawn after ``torch.manual_seed(EQR_SEED)``. Also
the parameter counts of the reference EqR built from its own configs (``config/arch/eqr.yaml``
with ``config/train/eqr_sudoku.yaml``, ``eqr_maze_unique.yaml``; the architecture config alone on
ARC) at the length and vocabulary of reasonbench's tasks.

Not part of CI (it needs checkouts of the reference code, and pydantic + einops + colorama):

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels TRM_DIR
    git clone https://github.com/sapientinc/HRM HRM_DIR
    git clone https://github.com/locuslab/EqR EQR_DIR
    python -m reasonbench_benchmarks.reference_outputs --trm-reference TRM_DIR \\
        --hrm-reference HRM_DIR --eqr-reference EQR_DIR --out tests/data/reference_outputs.json

SE-RRM's pins (ml-jku/SE-RRM ``models/recursive_reasoning/trm_equi.py``), under the key
``se_rrm``, the others kept as they are:

    git clone https://github.com/ml-jku/SE-RRM SE_RRM_DIR
    python -m reasonbench_benchmarks.reference_outputs --se-rrm-reference SE_RRM_DIR

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
REFERENCE_MODULES = {"hrm": "models.hrm.hrm_act_v1", "trm": "models.recursive_reasoning.trm", "eqr": "models.eqr",
                     "se_rrm": "models.recursive_reasoning.trm_equi"}
REFERENCE_CLASSES = {"hrm": "HierarchicalReasoningModel_ACTV1", "trm": "TinyRecursiveReasoningModel_ACTV1",
                     "eqr": "EqRModel", "se_rrm": "SERRM"}


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


def reference_modules_from(checkout: Path, names: list[str], torch_as: types.ModuleType) -> dict[str, types.ModuleType]:
    """The modules ``names`` imported from ``checkout``, every module loaded from it reading
    ``torch_as`` for ``torch``. The repositories share package names (``models``, ``utils``), so
    every module loaded from the checkout is dropped from ``sys.modules`` afterwards (what was
    imported keeps its own modules alive)."""
    _flash_attention_on_sdpa()
    root = checkout.resolve()
    sys.path.insert(0, str(root))
    try:
        found = {name: importlib.import_module(name) for name in names}
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None)
            if name == "models" or name.startswith("models.") or (where and Path(where).resolve().is_relative_to(root)):
                if getattr(module, "torch", None) is torch:
                    module.torch = torch_as
                del sys.modules[name]
    finally:
        sys.path.remove(str(root))
    return found


def reference_class(arch: str, checkout: Path) -> type:
    """The reference's ACT model class for ``arch`` ('hrm', 'trm' or 'eqr') from ``checkout``,
    its modules reading float64 for float32."""
    module = reference_modules_from(checkout, [REFERENCE_MODULES[arch]], _Float64Torch("torch"))[REFERENCE_MODULES[arch]]
    return getattr(module, REFERENCE_CLASSES[arch])


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


def build_float64(cls: type, arch: dict, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The reference model ``cls(arch)`` built in float64 (buffers too), with ``state`` (the
    reference's key layout, ``_orig_mod.model.inner.`` prefixes) loaded into its ``inner``."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = cls(arch).double()
    finally:
        torch.set_default_dtype(previous)
    prefix = "_orig_mod.model.inner."
    model.inner.load_state_dict({k.removeprefix(prefix): v.double() for k, v in state.items()}, strict=True)
    return model


def pinned_segments(name: str, model: torch.nn.Module, batch: dict[str, torch.Tensor], heads: dict[str, str],
                    seed: int | None = None) -> list[dict]:
    """The pins of ``SEGMENTS`` evaluation segments of a reference model: per segment the logits'
    sum and |sum|, the first token's logits and each output named in ``heads`` (its key in the
    reference's outputs -> its key in the pin; one the model lacks is left out). Run twice, the
    second pass checked op by op for any dtype but float64 (the pins come from the first);
    ``seed`` seeds torch before each pass, for a model that draws random numbers."""

    def run() -> list[dict]:
        pinned = []
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            carry = model.initial_carry(batch)
            for _ in range(SEGMENTS):
                carry, out = model(carry=carry, batch=batch)
                logits = out["logits"]
                pinned.append({"logits_sum": logits.sum().item(), "logits_abs_sum": logits.abs().sum().item(),
                               "logits_first": logits[0, 0].tolist(),
                               **{pin: out[key].tolist() for key, pin in heads.items() if key in out}})
        return pinned

    pinned, guard = run(), _NoFloat32()
    with guard:
        run()
    if guard.offenders:
        raise RuntimeError(f"{name}: the reference computed in another dtype than float64: {sorted(guard.offenders)}")
    return pinned


def reference_outputs(name: str, cls: type) -> list[dict]:
    """The reference model ``cls`` in float64 on config ``name``'s weights and batch: per
    segment, the first token's logits, q_halt, q_continue and the logits' sum and |sum|."""
    layout = _layout()
    eqr = layout.CONFIGS[name]["arch"] == "eqr"
    config = {k: v for k, v in layout.CONFIGS[name].items() if k not in ("arch", "levels")}
    batch = layout.reference_batch()
    arch = {**config, "batch_size": batch["inputs"].shape[0], "seq_len": layout.SEQ_LEN,
            "vocab_size": layout.VOCAB, "num_puzzle_identifiers": layout.NUM_IDS, "forward_dtype": "float64"}
    model = build_float64(cls, arch, layout.reference_state_dict(name)).eval()
    batch = {"inputs": batch["inputs"], "labels": batch["labels"]} if eqr else \
        {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}

    # EqR draws its starting states (at the first segment) and noise: seeded alike on both sides
    return pinned_segments(name, model, batch, {"q_halt_logits": "q_halt", "q_continue_logits": "q_continue"},
                           seed=layout.EQR_SEED if eqr else None)


# reasonbench's paper presets -> the reference EqR config that describes them (train config
# overriding the architecture config's values; None: the architecture config alone)
EQR_PAPER_CONFIGS = {"sudoku": "eqr_sudoku.yaml", "maze": "eqr_maze_unique.yaml", "arc": None}


def eqr_parameter_counts(cls: type, checkout: Path) -> dict[str, int]:
    """Parameters of the reference EqR as its configs build it, at the sequence length and
    vocabulary of reasonbench's paper-preset tasks (the planned metadata: no data is built)."""
    import yaml

    from reasonbench.config import resolve as cfgmod
    from reasonbench.execution.build import make_task

    base = yaml.safe_load((checkout / "config" / "arch" / "eqr.yaml").read_text())
    counts = {}
    for task, train in EQR_PAPER_CONFIGS.items():
        arch = {k: v for k, v in base.items() if k not in ("name", "short_name", "loss")}
        if train:
            arch.update(yaml.safe_load((checkout / "config" / "train" / train).read_text()).get("arch") or {})
        cfg, _ = cfgmod.resolve(["--model", "eqr", "--task", task, "--preset", "paper"], prog="reference_outputs")
        meta, _ = make_task(cfg).planned_metadata()
        with torch.device("meta"):
            model = cls({**arch, "batch_size": 1, "seq_len": meta.seq_len, "vocab_size": meta.vocab_size})
        counts[task] = sum(p.numel() for p in model.parameters())
    return counts


def se_rrm_reference_outputs(name: str, cls: type) -> list[dict]:
    """The reference SE-RRM ``cls`` in float64 on case ``name``'s weights and batch (dropout 0:
    the reference drops attention weights in evaluation too): per segment, the first token's
    logits, the confidence it returns as "q_halt_logits", and the logits' sum and |sum|."""
    layout = _layout()
    batch = layout.reference_batch()
    arch = {**layout.SE_RRM_CONFIGS[name], "batch_size": batch["inputs"].shape[0], "seq_len": layout.SEQ_LEN,
            "vocab_size": layout.VOCAB, "num_puzzle_identifiers": layout.NUM_IDS, "forward_dtype": "float64"}
    model = build_float64(cls, arch, layout.se_rrm_reference_state_dict(name)).eval()
    batch = {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}

    return pinned_segments(name, model, batch, {"q_halt_logits": "confidence"})


def se_rrm_reference_training(name: str, cls: type, checkout: Path) -> list[dict]:
    """The reference SE-RRM in float64 training on case ``name``'s weights and batch under its
    loss head (``models.losses.ACTLossHead``, stablemax), no random stops (exploration 0, dropout
    0): per carried step, the loss and the gradient's norm over the weights, both per example
    (the reference's sums divided by the batch, as its training script scales them)."""
    layout = _layout()
    batch = layout.reference_batch()
    size = batch["inputs"].shape[0]
    arch = {**layout.SE_RRM_CONFIGS[name], "halt_exploration_prob": 0.0, "batch_size": size,
            "seq_len": layout.SEQ_LEN, "vocab_size": layout.VOCAB, "num_puzzle_identifiers": layout.NUM_IDS,
            "forward_dtype": "float64"}
    model = build_float64(cls, arch, layout.se_rrm_reference_state_dict(name))
    sys.path.insert(0, str(checkout.resolve()))
    try:
        loss_head = importlib.import_module("models.losses").ACTLossHead
    finally:
        sys.path.remove(str(checkout.resolve()))
        for module in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
            del sys.modules[module]
    head = loss_head(model, "stablemax_cross_entropy").train()
    batch = {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}
    carry, pinned = head.initial_carry(batch), []
    for _ in range(2):
        model.zero_grad()
        carry, loss, _, _, _ = head(carry=carry, batch=batch, return_keys=[])
        (loss / size).backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
        pinned.append({"loss": loss.item() / size, "grad_norm": norm.item()})
    return pinned


def _commit(checkout: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"{checkout} is not a git checkout: its commit is named in the pins") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trm-reference", type=Path, help="a checkout of TinyRecursiveModels")
    parser.add_argument("--hrm-reference", type=Path, help="a checkout of sapientinc/HRM")
    parser.add_argument("--eqr-reference", type=Path, help="a checkout of locuslab/EqR")
    parser.add_argument("--se-rrm-reference", type=Path, help="a checkout of ml-jku/SE-RRM")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "reference_outputs.json")
    args = parser.parse_args(argv)
    group = (args.trm_reference, args.hrm_reference, args.eqr_reference)
    if any(p is None for p in group) and any(p is not None for p in group):
        parser.error("--trm-reference, --hrm-reference and --eqr-reference go together")
    if args.trm_reference is None and args.se_rrm_reference is None:
        parser.error("give --trm-reference, --hrm-reference and --eqr-reference, --se-rrm-reference, or all four")
    # the pins not asked for stay as they are
    pins: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.trm_reference is not None:
        checkouts = {"hrm": args.hrm_reference, "trm": args.trm_reference, "eqr": args.eqr_reference}
        commits = {arch: _commit(path) for arch, path in checkouts.items()}
        classes = {arch: reference_class(arch, path) for arch, path in checkouts.items()}
        pins["_about"] = (
            "Outputs of the reference implementations (sapientinc/HRM models/hrm/hrm_act_v1.py at "
            f"{commits['hrm']}; SamsungSAILMontreal/TinyRecursiveModels models/recursive_reasoning/trm.py at "
            f"{commits['trm']}; locuslab/EqR models/eqr.py at {commits['eqr']}, its starting states and noise "
            f"drawn after torch.manual_seed({_layout().EQR_SEED})), float64 on CPU, eval mode, {SEGMENTS} segments, on "
            "the state dicts and batch of tests/reference_layout.py; eqr_paper_parameters: the reference EqR built "
            "from its configs at reasonbench's paper-preset task shapes; made by "
            "python -m reasonbench_benchmarks.reference_outputs.")
        for name, config in _layout().CONFIGS.items():
            pins[name] = reference_outputs(name, classes[config["arch"]])
        pins["eqr_paper_parameters"] = eqr_parameter_counts(classes["eqr"], args.eqr_reference)
    if args.se_rrm_reference is not None:
        commit, cls = _commit(args.se_rrm_reference), reference_class("se_rrm", args.se_rrm_reference)
        pins["se_rrm"] = {"_about": (
            f"Outputs of the reference SE-RRM (ml-jku/SE-RRM models/recursive_reasoning/trm_equi.py at {commit}), "
            f"float64 on CPU, eval mode, dropout 0, {SEGMENTS} segments, on the state dicts (SE_RRM_CONFIGS) and "
            "batch of tests/reference_layout.py; 'training': two carried training steps under its loss head "
            "(no random stops), loss and gradient norm per example; made by python -m "
            "reasonbench_benchmarks.reference_outputs --se-rrm-reference.")}
        for name in _layout().SE_RRM_CONFIGS:
            pins["se_rrm"][name] = se_rrm_reference_outputs(name, cls)
        pins["se_rrm"]["training"] = {name: se_rrm_reference_training(name, cls, args.se_rrm_reference)
                                      for name in _layout().SE_RRM_CONFIGS}
    args.out.write_text(json.dumps(pins, indent=1) + "\n")
    print(f"wrote {args.out}: {', '.join(n for n in pins if n != '_about')}")


if __name__ == "__main__":
    main()
