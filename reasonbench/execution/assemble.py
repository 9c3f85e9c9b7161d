"""The result record of a finished run, assembled in one place: its metrics (with the
out-of-distribution split's scores and the test split's difficulty breakdown), cost (the forward
FLOPs are measured here), provenance, how far its weights were trained and the test-time compute
it was tested at. ``record.metrics`` counts; this module names and places what it counted."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L

from reasonbench.config.resolve import RunConfig, model_preset_file
from reasonbench.model.module import ReasoningModule
from reasonbench.record import schema as rec
from reasonbench.record.measure import (TrainFlopCounter, count_parameters, cpu_info, device_name,
                                        forward_flops_per_example, peak_memory_bytes)
from reasonbench.execution.checkpoints import RUN_KEY
from reasonbench.execution.clock import TrainClock, now
from reasonbench.tasks.base import ReasoningTask
from reasonbench.util.errors import UserError


def make_record(cfg: RunConfig, mode: str, command: str | None, trainer: L.Trainer, model: ReasoningModule,
                task: ReasoningTask, clock: TrainClock, flop_counter: TrainFlopCounter, eval_seconds: float,
                ood_results: dict[str, Any] | None, checkpoint_path: Path | None, run_dir: Path,
                started: str, training: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result record of a finished run (a ``ResultRecord``, as data): metrics, cost (the
    forward FLOPs measured here), provenance, and how far its weights were trained (``training``:
    an evaluation's, from its checkpoint; a training run's is made here)."""
    submission = None
    if model.test_predictions is not None and hasattr(task, "write_submission"):
        # e.g. ARC: the voted answers in the ARC Prize format, beside the record
        submission = str(task.write_submission(*model.test_predictions, run_dir / "submission.json"))
        model.test_predictions = None
    place_ood_and_difficulty(model.test_results, task, ood_results)
    # budget's stopped_at_step null: the preset's steps ran out before the budget did
    budget = None if clock.budget_seconds is None else {
        "device_seconds": clock.budget_seconds, "spec": cfg.budget, "stopped_at_step": clock.stopped_at_step}
    cost = cost_of(cfg, mode, trainer, model, task, clock, flop_counter, eval_seconds)
    if training is None and mode == "train":
        training = training_of(cfg, cost["train_steps"], clock)
    return rec.ResultRecord(
        model=cfg.model, task=cfg.task, preset=cfg.preset, seed=cfg.seed, mode=mode,
        status="diverged" if model.diverged else "completed", status_detail=model.diverged,
        metrics=None if model.diverged else model.test_results,
        cost=cost,
        provenance=provenance_of(cfg, command, task, clock, started), task_metadata=task.metadata.as_dict(),
        checkpoint=str(checkpoint_path) if checkpoint_path else None, budget=budget, submission=submission or None,
        examples=model.test_examples or None, test_time_compute=test_time_of(model), training=training).as_dict()


def cost_of(cfg: RunConfig, mode: str, trainer: L.Trainer, model: ReasoningModule, task: ReasoningTask,
            clock: TrainClock, flop_counter: TrainFlopCounter, eval_seconds: float) -> dict[str, Any]:
    """The record's ``cost``: parameters, FLOPs (forward ones counted now, timed apart), time."""
    device = model.device
    t0 = time.perf_counter()
    # every example costs the same where the model runs a fixed computation: one is enough
    examples = 1 if getattr(model, "uniform_eval_cost", False) else cfg.measure.flops_examples
    flops = forward_flops_per_example(model, task.splits["test"], examples, device)
    measure_seconds = time.perf_counter() - t0
    params, params_extra = count_parameters(model)
    device_count = max(1, trainer.num_devices * trainer.num_nodes)
    per_step = flop_counter.per_step
    # Lightning counts the skipped step of a divergence too; record the updates really made
    steps = model.diverged_step if model.diverged_step is not None else int(trainer.global_step)
    train_seconds = clock.total_seconds if mode == "train" else 0.0
    return {
        "params": params, "params_extra": params_extra,
        "flops_per_example_forward": {"mean": flops.mean, "p95": flops.p95, "examples": flops.examples},
        # each process counts its own batches; the total is over all of them
        "train_flops": per_step * steps * device_count if per_step is not None else None,
        "train_flops_per_step": per_step * device_count if per_step is not None else None,
        "train_steps": steps,
        # every attempt's time: work an interruption threw away was spent too
        "train_seconds": round(train_seconds, 3), "eval_seconds": round(eval_seconds, 3),
        "measure_seconds": round(measure_seconds, 3),
        "device": device_name(device), "device_count": device_count,
        "device_hours": (train_seconds + eval_seconds + measure_seconds) * device_count / 3600,
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def provenance_of(cfg: RunConfig, command: str | None, task: ReasoningTask, clock: TrainClock,
                  started: str) -> dict[str, Any]:
    """The record's ``provenance``: code, versions, command and config, data, machine, attempts."""
    commit, dirty = rec.git_state()
    provenance = {
        "git_commit": commit, "git_dirty": dirty, "versions": rec.versions(),
        "command": command or shlex.join(sys.argv), "config": cfg.config, "overrides": cfg.overrides,
        "cpu": cpu_info(),
        "data_fingerprint": task.fingerprint,
        "test_data_fingerprint": task.split_fingerprint("test"), "started": started, "finished": now(),
        "resumed": clock.ledger.resumes() if clock.ledger else [],
        "attempts": clock.ledger.attempts if clock.ledger else [],
    }
    # False: the model has no preset of this name for the task and ran on its own defaults
    provenance["model_preset"] = model_preset_file(cfg.model, cfg.task, cfg.preset, cfg.model_cls) is not None
    source = task.data_source() if hasattr(task, "data_source") else None
    if source is not None:  # where the data came from: Hub commit and file hashes, or the generator
        provenance["data_source"] = source
    return provenance


def test_time_of(model: ReasoningModule) -> dict[str, Any] | None:
    """The record's ``test_time_compute`` (None for a model without reasoning segments)."""
    compute = getattr(model, "test_time", None)
    if compute is None:
        return None
    widened = compute.breadth > 1
    return {"depth": compute.depth or model.halt_max_steps, "trained_depth": model.halt_max_steps,
            "breadth": compute.breadth, "select": compute.select if widened else None,
            "seed": compute.seed if widened else None, "noise": compute.noise if widened else None}


def planned_steps(config: Any) -> int | None:
    """The training steps a run's config plans (``trainer.max_steps``), None where it plans none."""
    trainer = config.get("trainer") if isinstance(config, dict) else None
    steps = trainer.get("max_steps") if isinstance(trainer, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None


def training_of(cfg: RunConfig, steps: int, clock: TrainClock) -> dict[str, Any]:
    """The record's ``training`` for a training run: the updates made against the steps its
    config planned, and whether the budget stopped it."""
    planned, stopped = planned_steps(cfg.config), clock.stopped_at_step
    return {"steps": steps, "planned_steps": planned,
            "finished": stopped is None and (planned is None or steps >= planned),
            "stopped_by": "budget" if stopped is not None else None}


def checkpoint_training(loaded: dict[str, Any], cfg: RunConfig) -> dict[str, Any]:
    """The record's ``training`` for an evaluation: the steps the checkpoint's weights had (a
    Lightning checkpoint's ``global_step``, a final checkpoint's ``train_steps``) against the
    steps its own config planned (this run's config where it holds none)."""
    steps = loaded.get("global_step", loaded.get("train_steps"))
    steps = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else None
    identity = loaded.get(RUN_KEY)
    own_config = identity.get("config") if isinstance(identity, dict) else loaded.get("config")
    planned = planned_steps(own_config) or planned_steps(cfg.config)
    finished = None if steps is None or planned is None else steps >= planned
    return {"steps": steps, "planned_steps": planned, "finished": finished, "stopped_by": None}


# --- out of distribution and difficulty ---------------------------------------------------
# Two sources of out-of-distribution scores: a task that builds an OOD split of its own has it
# scored like the test split (``evaluate_ood``, part of the test pass); a task whose examples
# have a difficulty has its test split broken down by difficulty, and ``record.metrics`` counts
# the test examples harder than any training example as OOD. Where both exist, the OOD split's
# scores are the record's.

def place_ood_and_difficulty(metrics: dict[str, Any] | None, task: ReasoningTask,
                     ood_results: dict[str, Any] | None) -> None:
    """Put the difficulty breakdown and the OOD split's scores (``ood_results``, if the task
    built that split) into the test split's ``metrics``."""
    difficulty_breakdown(metrics, task)
    if ood_results is not None:
        metrics["ood"] = ood_results


def evaluate_ood(trainer: L.Trainer, model: ReasoningModule, task: ReasoningTask) -> dict[str, Any] | None:
    """Score the task's generated out-of-distribution split like the test split (curves too);
    the test split's results and examples stay the model's. None: the task built no such split."""
    loader = task.ood_dataloader()
    if loader is None:
        return None
    if model.task_aggregate is not None:  # a whole-split vote belongs to the test split alone
        raise UserError(f"task {task.name}: an out-of-distribution split with whole-split scoring is not supported")
    test_results, test_examples = model.test_results, model.test_examples
    model.test_split = "ood"
    try:
        trainer.test(model, dataloaders=loader, verbose=False)
    except SystemExit:
        if not trainer.interrupted:
            raise
        raise KeyboardInterrupt("while testing the out-of-distribution split; no record written") from None
    finally:
        model.test_split = "test"
    scored = model.test_results
    model.test_results, model.test_examples = test_results, test_examples
    return ood_summary(scored, task)


def ood_summary(scored: dict[str, Any], task: ReasoningTask) -> dict[str, Any]:
    """The record's ``metrics.ood`` from a test pass over the out-of-distribution split."""
    kept = ("n_test_examples", "exact_correct", "exact_accuracy", "exact_accuracy_ci95", "token_accuracy",
            "mean_steps", "by_step", *task.metadata.extra_metrics)
    return {"definition": task.ood_definition(), **{k: scored[k] for k in kept if scored.get(k) is not None}}


def difficulty_breakdown(metrics: dict[str, Any] | None, task: ReasoningTask) -> None:
    """Name the test split's difficulty buckets in ``metrics`` and say what OOD meant."""
    counts = (metrics or {}).pop("by_difficulty_counts", None)
    report = task.difficulty_report()
    if counts is None or report is None:
        return
    test, train_max = report
    metrics["by_difficulty"] = {"kind": test.kind, "buckets": [
        {"name": name, "n_test_examples": n, "exact_correct": k, "exact_accuracy": k / n if n else None}
        for name, n, k in zip(test.names(), counts["examples"], counts["exact"])]}
    if metrics.get("ood") is not None:
        metrics["ood"]["definition"] = f"{test.kind} > {train_max}, the training split's maximum"
