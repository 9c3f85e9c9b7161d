"""Cost measurement: parameters, executed FLOPs, device time and memory.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` while the model runs on
real batches, so loops and data-dependent halting count as executed, not as configured.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from dataclasses import dataclass
from typing import Any, Iterable

import lightning as L
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, _FlopCounterMode

from reasonbench.tasks.base import Split, TaskMetadata


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(parameters, extra parameters): extras are those ``model.extra_parameters()`` yields
    (e.g. per-puzzle embeddings, which the reference code leaves out of the count)."""
    extra_ids = {id(p) for p in getattr(model, "extra_parameters", lambda: [])()}
    seen: set[int] = set()
    main = extra = 0
    for p in model.parameters():
        if id(p) in seen:  # tied weights count once
            continue
        seen.add(id(p))
        if id(p) in extra_ids:
            extra += p.numel()
        else:
            main += p.numel()
    return main, extra


def synthetic_split(metadata: TaskMetadata, examples: int, seed: int = 0) -> Split:
    """``examples`` random sequences of the task's length and vocabulary, puzzle id 0: what a
    FLOP count needs when the data are not built (``reasonbench info --flops``)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (examples, metadata.seq_len)
    return Split(torch.randint(0, metadata.vocab_size, shape, generator=generator),
                 torch.randint(0, metadata.vocab_size, shape, generator=generator),
                 torch.zeros(examples, dtype=torch.long))


class FlopCounter(FlopCounterMode):
    """``FlopCounterMode`` counting the total only: its per-module tracking installs backward
    hooks that break ``torch.autograd.grad`` inside the counted region (Jacobian estimates, loss
    balancers)."""

    def __init__(self) -> None:
        super().__init__(display=False)

    def __enter__(self) -> "FlopCounter":
        self.flop_counts.clear()
        self.mode = _FlopCounterMode(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *args: Any) -> Any:
        result = self.mode.__exit__(*args)
        self.mode = None
        return result


def count_flops(fn: Any, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    """Run ``fn`` under a FLOP counter; returns (flops, fn's result)."""
    with FlopCounter() as counter:
        result = fn(*args, **kwargs)
    return counter.get_total_flops(), result


@dataclass
class ForwardFlops:
    mean: float
    p95: float
    examples: int


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    # nearest-rank percentile: the value at or above a fraction q of the examples
    rank = max(1, -(-int(round(q * 100)) * len(ordered) // 100))
    return float(ordered[min(rank, len(ordered)) - 1])


def forward_flops_per_example(model: nn.Module, split: Split, examples: int = 16,
                              device: torch.device | str = "cpu") -> ForwardFlops:
    """Executed forward FLOPs of ``model`` on the first ``examples`` examples of ``split``,
    one example at a time, so each example's own halting decides its cost."""
    model.eval()
    values: list[float] = []
    n = min(examples, len(split))
    with torch.inference_mode():
        for i in range(n):
            batch = {"inputs": split.inputs[i:i + 1].to(device), "labels": split.labels[i:i + 1].to(device),
                     "puzzle_ids": split.puzzle_ids[i:i + 1].to(device)}
            flops, _ = count_flops(model, batch)
            values.append(float(flops))
    if not values:
        return ForwardFlops(0.0, 0.0, 0)
    return ForwardFlops(sum(values) / len(values), _percentile(values, 0.95), len(values))


class TrainFlopCounter(L.Callback):
    """Counts the FLOPs of the first ``steps`` training batches (forward, backward and
    optimizer, executed for real) of every cost phase the model reports (``cost_phase()``:
    one phase unless, say, a curriculum changes the depth), and the batches run in each, so
    the total is the sum over phases of the measured mean times the batches."""

    def __init__(self, steps: int = 2) -> None:
        self.steps = steps
        self.measured: dict[Any, list[int]] = {}
        self.batches: dict[Any, int] = {}
        self._counter: FlopCounter | None = None
        self._phase: Any = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        phase = pl_module.cost_phase() if hasattr(pl_module, "cost_phase") else None
        self._phase = phase
        self.batches[phase] = self.batches.get(phase, 0) + 1
        if len(self.measured.setdefault(phase, [])) < self.steps:
            self._counter = FlopCounter()
            self._counter.__enter__()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.measured[self._phase].append(self._counter.get_total_flops())
            self._counter = None

    def state_dict(self) -> dict[str, Any]:
        # in checkpoints: a resumed run adds its batches to the phases measured before
        return {"phases": [(phase, list(flops), self.batches.get(phase, 0)) for phase, flops in self.measured.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for phase, flops, batches in state["phases"]:
            self.measured[phase], self.batches[phase] = list(flops), batches

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self._counter = None

    @property
    def total(self) -> float | None:
        """FLOPs of all training batches run: per phase, measured mean x batches."""
        # the first batches of every phase are measured, so each phase has a mean
        if not any(self.measured.values()):
            return None
        return sum(sum(v) / len(v) * self.batches[p] for p, v in self.measured.items() if v)

    @property
    def per_step(self) -> float | None:
        """Mean FLOPs per training batch over the whole run."""
        total = self.total
        return total / sum(self.batches.values()) if total is not None else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "mps"
    return "cpu"


def peak_memory_bytes(device: torch.device) -> int:
    """Peak accelerator memory allocated, or on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_info() -> dict[str, Any]:
    """What decides float32 CPU kernels: the CPU model, the vector extensions torch's kernels
    dispatch on (a cross-machine difference in a record shows here), and the threads used."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((set(line.split(":", 1)[1].split()) for line in handle if line.startswith("flags")), set())
    except OSError:
        pass
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "asimd", "sve")
    return {"model": cpu_name(), "vector_extensions": [f for f in wanted if f in flags],
            "torch_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "cores": os.cpu_count()}
