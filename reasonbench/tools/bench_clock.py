"""The step clock of ``reasonbench bench``: a Lightning callback that times a fit's training
steps and counts the FLOPs of one step per cost phase. Apart from ``bench`` so that the command
(its ``--help``, its option errors) does not import Lightning."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from reasonbench.record.measure import FlopCounter


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(L.Callback):
    """Times ``steps`` training steps after ``warmup`` untimed ones, then stops the fit.

    The clock runs from the start of the first timed batch to the end of the last (syncing
    the device only there and around counted steps), so a step's time is everything between
    two batch starts: fetching the batch, forward, backward, optimizer, hooks (the EMA update
    of the very last step excepted). The first step of every cost phase (``cost_phase()``)
    runs under the FLOP counter, untimed: a warm-up step when it can (``count_in_warmup``;
    not when compiling, where the warm-up's extra time is the compile time), else the first
    step of the phase after the warm-up, with the clock paused."""

    def __init__(self, warmup: int, steps: int, device: torch.device, count_in_warmup: bool = True) -> None:
        self.warmup = warmup
        self.steps = steps
        self.device = device
        self.count_in_warmup = count_in_warmup
        self.index = 0  # batches started
        self.timed_batches = 0
        self.optimizer_steps = 0
        self.examples = 0
        self.seconds = 0.0
        self.warmup_seconds = 0.0
        self.flops: dict[Any, int] = {}  # phase -> FLOPs of its counted step
        self.phase_batches: dict[Any, int] = {}  # phase -> batches after the warm-up
        self.counting: tuple[Any, FlopCounter] | None = None
        self._start: tuple[float, int] | None = None  # (time, global step) while the clock runs
        self._t_first = 0.0

    def _stop(self, trainer: L.Trainer) -> None:
        sync_device(self.device)
        t0, step0 = self._start
        self.seconds += time.perf_counter() - t0
        self.optimizer_steps += trainer.global_step - step0
        self._start = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        index = self.index
        self.index += 1
        if index == 0:
            sync_device(self.device)
            self._t_first = time.perf_counter()
        if index == self.warmup:
            sync_device(self.device)
            self.warmup_seconds = time.perf_counter() - self._t_first
        phase = pl_module.cost_phase()
        if index >= self.warmup:
            self.phase_batches[phase] = self.phase_batches.get(phase, 0) + 1
        if phase not in self.flops and (index >= self.warmup or self.count_in_warmup):
            if self._start is not None:
                self._stop(trainer)
            self.flops[phase] = 0
            self.counting = (phase, FlopCounter())
            self.counting[1].__enter__()
            return
        if index < self.warmup:
            return
        if self._start is None:
            sync_device(self.device)
            self._start = (time.perf_counter(), trainer.global_step)
        self.timed_batches += 1
        self.examples += int(batch["inputs"].shape[0])

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._end_count()
        if self.timed_batches >= self.steps and self._start is not None:
            self._stop(trainer)
            trainer.should_stop = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._end_count()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None:  # the fit ended before the planned steps (e.g. divergence)
            self._stop(trainer)

    def _end_count(self) -> None:
        if self.counting is not None:
            phase, counter = self.counting
            counter.__exit__(None, None, None)
            self.flops[phase] = counter.get_total_flops()
            self.counting = None

    @property
    def flops_per_step(self) -> float | None:
        """FLOPs per training batch, each phase's measured FLOPs weighted by its batches."""
        weights = {p: n for p, n in self.phase_batches.items() if self.flops.get(p)}
        if not weights:
            return None
        return sum(self.flops[p] * n for p, n in weights.items()) / sum(weights.values())
