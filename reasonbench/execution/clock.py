"""Training time across every attempt of a run.

Two figures, kept apart on purpose:
* ``TrainClock.seconds``: the training time that produced the current weights. It travels in
  checkpoints, so after a resume it continues from the checkpoint's value; the device-time
  budget (``--budget``) limits this one.
* The attempts ledger (``<run>/attempts.json``): every attempt's wall time, including work that a
  kill or a crash threw away after the last checkpoint. It is what the run cost, so the record's
  ``cost.train_seconds`` and device-hours sum it. The ledger is rewritten atomically at most
  every ``LEDGER_PERIOD`` seconds during training and at every checkpoint, so a kill -9 loses at
  most that much of the account.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L

from reasonbench.util.atomic import write_atomic
from reasonbench.record.schema import LEDGER_NAME
LEDGER_PERIOD = 30.0  # seconds between ledger updates while training


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class AttemptsLedger:
    """The list of a run's training attempts: when each started, how long it ran, the steps it
    covered, what it resumed from and how it ended (``running`` left by a killed process)."""

    def __init__(self, run_dir: Path, fresh: bool) -> None:
        self.path = run_dir / LEDGER_NAME
        self.attempts: list[dict[str, Any]] = [] if fresh else self._read()
        for attempt in self.attempts:
            if attempt.get("outcome") == "running":  # its process died without a word: kill -9, power
                attempt["outcome"] = "killed"
        self.current: dict[str, Any] | None = None

    def _read(self) -> list[dict[str, Any]]:
        from reasonbench.util.untrusted import load_json

        try:
            data = load_json(self.path)
            attempts = data["attempts"]
            ok = isinstance(attempts, list) and all(
                isinstance(a, dict) and isinstance(a.get("seconds"), (int, float)) and a["seconds"] >= 0
                for a in attempts)
            return [dict(a) for a in attempts] if ok else []
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: start the account again
            return []

    def begin(self, from_step: int, resumed_from: str | None) -> None:
        self.current = {"started": now(), "seconds": 0.0, "from_step": from_step, "to_step": from_step,
                        "resumed_from": resumed_from, "outcome": "running"}
        self.attempts.append(self.current)
        self.save()

    def update(self, seconds: float, step: int, outcome: str | None = None) -> None:
        if self.current is None:
            return
        self.current.update(seconds=round(seconds, 3), to_step=step)
        if outcome is not None:
            self.current["outcome"] = outcome
        self.save()

    def save(self) -> None:
        try:
            write_atomic(self.path, json.dumps({"attempts": self.attempts}, indent=1) + "\n")
        except OSError:  # the account must never stop a run; the record still gets this attempt's time
            pass

    @property
    def total_seconds(self) -> float:
        return sum(float(a["seconds"]) for a in self.attempts)

    def resumes(self) -> list[dict[str, Any]]:
        """Every resume of the run, in order (the record's ``provenance.resumed``)."""
        return [{"checkpoint": a["resumed_from"], "step": int(a["from_step"]), "at": a["started"]}
                for a in self.attempts if a.get("resumed_from")]


class TrainClock(L.Callback):
    """Training wall time (see the module docstring), the attempts ledger, and the optional
    device-time budget: training stops once ``seconds`` x devices reaches ``budget_seconds``."""

    def __init__(self, budget_seconds: float | None = None, ledger: AttemptsLedger | None = None) -> None:
        self.budget_seconds = budget_seconds
        self.ledger = ledger
        self.before = 0.0  # seconds restored from the checkpoint resumed
        self.stopped_at_step: int | None = None
        self._start = time.perf_counter()
        self._attempt_start = self._start
        self._last_update = self._start

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self._start

    @property
    def attempt_seconds(self) -> float:
        return time.perf_counter() - self._attempt_start

    @property
    def total_seconds(self) -> float:
        """Every attempt's time (this one's up to now included)."""
        if self.ledger is None or self.ledger.current is None:
            return self.seconds
        if self.ledger.current["outcome"] != "running":  # finished: the ledger holds its time
            return self.ledger.total_seconds
        return self.ledger.total_seconds - self.ledger.current["seconds"] + self.attempt_seconds

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.before = float(state["seconds"])
        self._start = time.perf_counter()

    def finish(self, step: int, outcome: str) -> None:
        if self.ledger is not None:
            self.ledger.update(self.attempt_seconds, step, outcome)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.ledger is not None and trainer.is_global_zero:
            self.ledger.update(self.attempt_seconds, trainer.global_step)
            self._last_update = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.ledger is not None and trainer.is_global_zero and time.perf_counter() - self._last_update > LEDGER_PERIOD:
            self.ledger.update(self.attempt_seconds, trainer.global_step)
            self._last_update = time.perf_counter()
        if self.budget_seconds is None:
            return
        spent = self.seconds * max(1, trainer.num_devices * trainer.num_nodes)
        # one decision for all processes, so that none waits for the others at a collective
        if trainer.strategy.reduce_boolean_decision(spent >= self.budget_seconds, all=False):
            trainer.should_stop = True
            self.stopped_at_step = trainer.global_step


def about(seconds: float) -> str:
    """A duration as a person says it: ``about 40 s``, ``about 17 min``, ``about 3.5 h``,
    ``about 2.1 days``."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 86400:.1f} days"


def per_step(seconds: float) -> str:
    """Seconds per step to two significant figures (``0.51``, ``12``, ``0.0031``)."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{float(f'{seconds:.2g}'):g}"


def expected_time_line(steps: int, seconds_per_step: float, resumed_at: int = 0) -> str:
    """``expected training time: about 17 min (2000 steps at 0.51 s/step)``; a resumed run
    counts the steps it has left."""
    left = steps - resumed_at
    what = f"{left:,} steps left of {steps:,}" if resumed_at else f"{steps:,} steps"
    return f"expected training time: {about(left * seconds_per_step)} ({what} at {per_step(seconds_per_step)} s/step)"


class TimeEstimate(L.Callback):
    """Says the expected training time once, from the step time measured after the warm-up
    steps (the first steps compile, allocate and run under the FLOP counter: slower), so that
    nobody waits hours unawares. Printed by the main process; nothing for a run too short to
    measure."""

    def __init__(self, warmup_steps: int = 3, measured_steps: int = 5) -> None:
        self.warmup_steps, self.measured_steps = warmup_steps, measured_steps
        self._first_step: int | None = None
        self._mark: float | None = None
        self.line: str | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_step, self._mark, self.line = trainer.global_step, None, None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.line is not None or self._first_step is None:
            return
        done = trainer.global_step - self._first_step
        if done == self.warmup_steps:
            self._mark = time.perf_counter()
        elif self._mark is not None and done == self.warmup_steps + self.measured_steps:
            try:  # bounded by epochs: Lightning's count of the steps they make
                total = trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches
            except Exception:  # noqa: BLE001 (a message is never worth failing a run)
                total = None
            if not isinstance(total, (int, float)) or total == float("inf"):
                self.line = ""  # unknown length: nothing to tell
                return
            rate = (time.perf_counter() - self._mark) / self.measured_steps
            self.line = expected_time_line(int(total), rate, self._first_step)
            if trainer.is_global_zero:
                from tqdm import tqdm

                tqdm.write(self.line)  # above a progress bar, not through it
