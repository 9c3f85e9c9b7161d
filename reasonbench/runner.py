"""Builds task + model + Trainer from a resolved config, trains, tests, measures and writes
the result record. Data flows one way: task -> batch -> model -> metrics -> record."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from . import record as rec
from .config import RunConfig, one_line, parse_duration
from .errors import UserError
from .measure import TrainFlopCounter, count_parameters, device_name, forward_flops_per_example, peak_memory_bytes
from .module import ReasoningModule
from .tasks.base import ReasoningTask, TaskMetadata

CHECKPOINT_FORMAT = "reasonbench-checkpoint"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (device summaries, tips) off the terminal."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*tensorboardX.*")
    warnings.filterwarnings("ignore", message=".*`training_step` returned `None`.*")
    # Lightning's hint for a machine that has SLURM installed but runs outside a job
    warnings.filterwarnings("ignore", message=".*`srun` command is available on your system.*")
    # test metrics are reduced over processes by torchmetrics before they are logged
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")


def make_task(cfg: RunConfig) -> ReasoningTask:
    """The task object, its data not built yet."""
    try:
        return cfg.task_cls(**cfg.task_args)
    except (TypeError, ValueError) as exc:
        raise UserError(one_line(exc)) from None


def build_task(cfg: RunConfig) -> ReasoningTask:
    task = make_task(cfg)
    task.setup("fit")
    return task


def build_model(cfg: RunConfig, task: ReasoningTask, metadata: TaskMetadata | None = None) -> ReasoningModule:
    try:
        model = cfg.model_cls(metadata=metadata or task.metadata, optim=cfg.optim, **cfg.model_args)
    except (TypeError, ValueError) as exc:
        raise UserError(one_line(exc)) from None
    model.task_score = task.score
    model.task_aggregate = getattr(task, "aggregate_scores", None)
    model.task_render_image = task.render_image
    return model


def read_torch_file(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` onto the CPU; a missing or unreadable file is a
    one-line ``UserError``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path}: {'not a file' if path.exists() else 'no such file'}")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path}: unreadable: empty file")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip files, foreign formats
        from .errors import unreadable_torch_file

        raise UserError(f"checkpoint {path}: unreadable: {unreadable_torch_file(exc)}") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a reasonbench or Lightning checkpoint safely (``weights_only=True``)."""
    data = read_torch_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise UserError(f"checkpoint {path}: no 'state_dict' in it (not a reasonbench or Lightning checkpoint)")
    return data


def checkpoint_config_argv(argv: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """For ``eval``: the model settings (and preset, seed) stored in a reasonbench checkpoint,
    as a leading ``--config``, so a checkpoint evaluates without retyping its architecture;
    flags given on the command line still win. Also returns the loaded checkpoint, so that
    ``execute`` need not read it a second time."""
    path = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--checkpoint"),
                next((a.split("=", 1)[1] for a in argv if a.startswith("--checkpoint=")), None))
    if path is None:
        return [], None
    loaded = load_checkpoint(path)
    loaded["_path"] = path
    stored = loaded.get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        return [], loaded
    from .config import _normalise_argv, _scan_names

    trained, asked = stored["model"].get("name"), _scan_names(_normalise_argv(argv)[0]).get("model")
    if trained and asked and trained != asked:  # its settings would not even parse for another model
        raise UserError(f"checkpoint {path} holds a {trained} model, not {asked}: "
                        f"use --model {trained} (or leave --model out)")
    keep = {k: stored[k] for k in ("preset", "seed") if k in stored}
    keep["model"] = stored["model"]
    return ["--config", json.dumps(keep)], loaded


def save_checkpoint(model: ReasoningModule, cfg: RunConfig, path: Path, **extra: Any) -> None:
    """A portable checkpoint: weights plus the resolved config (and ``extra`` fields, e.g. where
    imported weights came from), loadable with weights_only; written atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "version": 1, "model": cfg.model, "task": cfg.task,
               "config": cfg.config, "state_dict": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                                                          for k, v in model.state_dict().items()},
               **extra}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, tmp)
    os.replace(tmp, path)


class TrainClock(L.Callback):
    """Training wall time over every attempt of a run (it travels in checkpoints, so a resumed
    run's record counts the time before the interruption too), the resumes, and the optional
    device-time budget: training stops once wall time x devices reaches ``budget_seconds``."""

    def __init__(self, budget_seconds: float | None = None, resumed: dict[str, Any] | None = None) -> None:
        self.budget_seconds = budget_seconds
        self.before = 0.0  # seconds of earlier attempts
        self.resumes: list[dict[str, Any]] = []
        self._resumed = resumed  # this attempt's resume, added to the list restored from the checkpoint
        self.stopped_at_step: int | None = None
        self._start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self._start

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "resumes": self.resumes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.before, self.resumes = float(state["seconds"]), list(state["resumes"])
        self.resumes += [self._resumed] if self._resumed else []
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.budget_seconds is None:
            return
        spent = self.seconds * max(1, trainer.num_devices * trainer.num_nodes)
        # one decision for all processes, so that none waits for the others at a collective
        if trainer.strategy.reduce_boolean_decision(spent >= self.budget_seconds, all=False):
            trainer.should_stop = True
            self.stopped_at_step = trainer.global_step


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The most recent training checkpoint of a run folder: the periodic ``last.ckpt`` or one
    Lightning wrote on a SLURM preemption signal (``hpc_ckpt_N.ckpt``)."""
    found = [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")]
    found = [f for f in found if f.is_file()]
    return max(found, key=lambda f: f.stat().st_mtime) if found else None


def _trainer(cfg: RunConfig, run_dir: Path, callbacks: list[L.Callback], checkpoints: bool) -> L.Trainer:
    args = dict(cfg.trainer_args)
    logger = TensorBoardLogger(str(run_dir), name="tensorboard", version="", default_hp_metric=False)
    try:
        # the tasks shard their own batches over processes (same global batches on 1 or N devices)
        return L.Trainer(**args, logger=logger, callbacks=callbacks, default_root_dir=str(run_dir),
                         enable_checkpointing=checkpoints, use_distributed_sampler=False)
    except (TypeError, ValueError) as exc:
        raise UserError(_trainer_error(exc, args)) from None
    except Exception as exc:  # Lightning raises MisconfigurationException for bad combinations
        if type(exc).__name__ == "MisconfigurationException":
            raise UserError(_trainer_error(exc, args)) from None
        raise


def _trainer_error(exc: Exception, args: dict[str, Any]) -> str:
    """Lightning's message, led by the option it is about when it names one (`max_steps`)."""
    import re

    named = re.search(r"`(\w+)", str(exc))
    option = named.group(1) if named and named.group(1) in args else None
    return f"option --trainer.{option}: {one_line(exc)}" if option else f"trainer: {one_line(exc)}"


def execute(cfg: RunConfig, mode: str = "train", command: str | None = None,
            loaded_checkpoint: dict[str, Any] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train (mode 'train') or load ``cfg.checkpoint`` (mode 'eval'; ``loaded_checkpoint`` if
    it was read already), test, write the record. ``resume``: a finished run's record is
    returned as it is; otherwise training continues from the run folder's newest checkpoint
    (or starts, if there is none)."""
    quiet_lightning()
    started = _now()
    out_path = rec.record_path(cfg.out, cfg.model, cfg.task, cfg.preset, cfg.seed, mode)
    run_dir = out_path.with_suffix("")
    resume_from: Path | None = None
    resumed: dict[str, Any] | None = None
    if resume and mode == "train":
        if out_path.is_file():
            record = rec.read_record(out_path)
            record["_path"], record["_kept"] = str(out_path), True
            return record
        resume_from = newest_checkpoint(run_dir)
        if resume_from is not None:  # unreadable -> one line, before anything starts
            step = load_checkpoint(resume_from).get("global_step", 0)
            resumed = {"checkpoint": str(resume_from), "step": int(step), "at": started}
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = build_task(cfg)
    model = build_model(cfg, task)
    checkpoint_path: Path | None = None

    if mode == "eval":
        if not cfg.checkpoint:
            raise UserError("reasonbench eval: --checkpoint is required")
        if loaded_checkpoint is None or loaded_checkpoint.get("_path") != cfg.checkpoint:
            loaded_checkpoint = load_checkpoint(cfg.checkpoint)
        state = loaded_checkpoint["state_dict"]
        if isinstance(loaded_checkpoint.get("ema_state"), dict):
            # a Lightning checkpoint of an EMA run: the averaged weights are the model
            state = {**state, **loaded_checkpoint["ema_state"]}
        table = state.get("puzzle_embedding.weight")
        own = model.state_dict().get("puzzle_embedding.weight")
        if table is not None and own is not None and table.shape[0] != own.shape[0]:
            # identifiers number one data build's puzzle variants: another build cannot reuse them
            raise UserError(f"checkpoint {cfg.checkpoint} has {table.shape[0]:,} puzzle identifiers, this "
                            f"{cfg.task} build has {own.shape[0]:,}: evaluate on the data build it was trained on")
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise UserError(f"checkpoint {cfg.checkpoint} does not fit model {cfg.model}: "
                            f"{one_line(str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else exc)}") from None
        if missing or unexpected:
            raise UserError(f"checkpoint {cfg.checkpoint} does not fit model {cfg.model}: "
                            f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        checkpoint_path = Path(cfg.checkpoint)

    if cfg.eval_max_steps is not None:
        if not hasattr(model, "eval_max_steps"):
            raise UserError(f"option --eval_max_steps: model {cfg.model} has no reasoning steps to extend")
        model.eval_max_steps = cfg.eval_max_steps

    flop_counter = TrainFlopCounter(cfg.measure.train_flop_steps)
    clock = TrainClock(parse_duration(cfg.budget) if cfg.budget else None, resumed)
    callbacks: list[L.Callback] = [flop_counter, clock]
    if mode == "train":
        # two callbacks: Lightning's save_last only refreshes last.ckpt when "best" improves;
        # last.ckpt every `checkpoint_every` steps is what --resume continues from
        callbacks.append(ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="best",
                                         monitor="val/exact_accuracy", mode="max"))
        callbacks.append(ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="last", monitor=None,
                                         save_top_k=1, enable_version_counter=False,
                                         every_n_train_steps=cfg.checkpoint_every or None))
    trainer = _trainer(cfg, run_dir, callbacks, checkpoints=mode == "train")

    train_seconds = 0.0
    if mode == "train":
        try:
            trainer.fit(model, datamodule=task, ckpt_path=str(resume_from) if resume_from else None)
        except SystemExit:  # Lightning 2.6 exits with 1 after Ctrl-C, and with 0 (SIGTERMException) on SIGTERM
            if not trainer.interrupted:
                raise
        train_seconds = clock.seconds
        if trainer.interrupted:  # no partial record
            raise KeyboardInterrupt(f"at step {trainer.global_step}; no record written "
                                    f"(`--resume` continues from {run_dir / 'checkpoints'})")
        # the finished state too (all processes take part), whatever the period
        trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
        if trainer.is_global_zero:
            checkpoint_path = run_dir / "final.pt"
            save_checkpoint(model, cfg, checkpoint_path)

    eval_seconds, ood_results = 0.0, None
    if model.diverged is None:
        t0 = time.perf_counter()
        try:
            trainer.test(model, datamodule=task, verbose=False)
        except SystemExit:  # Ctrl-C while testing (see fit above)
            if not trainer.interrupted:
                raise
            kept = f" (the trained weights are in {checkpoint_path})" if mode == "train" and checkpoint_path else ""
            raise KeyboardInterrupt(f"while testing; no record written{kept}") from None
        ood_results = evaluate_ood(trainer, model, task)
        eval_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return {}

    submission = None
    if model.test_predictions is not None and hasattr(task, "write_submission"):
        # e.g. ARC: the voted answers in the ARC Prize format, beside the record
        submission = str(task.write_submission(*model.test_predictions, run_dir / "submission.json"))
        model.test_predictions = None

    difficulty_breakdown(model.test_results, task)
    if ood_results is not None:
        model.test_results["ood"] = ood_results
    device = model.device
    flops = forward_flops_per_example(model, task.splits["test"], cfg.measure.flops_examples, device)
    params, params_extra = count_parameters(model)
    device_count = max(1, trainer.num_devices * trainer.num_nodes)
    per_step = flop_counter.per_step
    # Lightning counts the skipped step of a divergence too; record the updates really made
    steps = model.diverged_step if model.diverged_step is not None else int(trainer.global_step)
    commit, dirty = rec.git_state()
    record = {
        "schema_version": rec.SCHEMA_VERSION,
        "model": cfg.model, "task": cfg.task, "preset": cfg.preset, "seed": cfg.seed,
        "mode": mode, "status": "diverged" if model.diverged else "completed",
        "status_detail": model.diverged,
        "metrics": None if model.diverged else model.test_results,
        "cost": {
            "params": params, "params_extra": params_extra,
            "flops_per_example_forward": {"mean": flops.mean, "p95": flops.p95, "examples": flops.examples},
            # each process counts its own batches; the total is over all of them
            "train_flops": per_step * steps * device_count if per_step is not None else None,
            "train_flops_per_step": per_step * device_count if per_step is not None else None,
            "train_steps": steps,
            "train_seconds": round(train_seconds, 3), "eval_seconds": round(eval_seconds, 3),
            "device": device_name(device), "device_count": device_count,
            "device_hours": (train_seconds + eval_seconds) * device_count / 3600,
            "peak_memory_bytes": peak_memory_bytes(device),
        },
        "provenance": {
            "git_commit": commit, "git_dirty": dirty, "versions": rec.versions(),
            "command": command or shlex.join(sys.argv), "config": cfg.config,
            "data_fingerprint": task.fingerprint,
            "test_data_fingerprint": task.split_fingerprint("test"), "started": started, "finished": _now(),
            "resumed": clock.resumes,
        },
        "task_metadata": task.metadata.as_dict(),
        "checkpoint": str(checkpoint_path) if checkpoint_path else None,
    }
    if clock.budget_seconds is not None:
        # stopped_at_step null: the preset's steps ran out before the budget did
        record["budget"] = {"device_seconds": clock.budget_seconds, "spec": cfg.budget,
                            "stopped_at_step": clock.stopped_at_step}
    if submission:
        record["submission"] = submission
    if model.test_examples:
        record["examples"] = model.test_examples
    rec.write_record(record, out_path)
    record["_path"] = str(out_path)
    return record


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


def summary(record: dict[str, Any]) -> str:
    """A short table for the terminal."""
    m, c = record["metrics"] or {}, record["cost"]
    if record["status"] != "completed":
        return (f"{record['model']} / {record['task']} / {record['preset']} (seed {record['seed']}): "
                f"{record['status']}: {record['status_detail']}")
    lo, hi = m.get("exact_accuracy_ci95", [0, 0])
    rows = [("model / task / preset", f"{record['model']} / {record['task']} / {record['preset']} (seed {record['seed']})"),
            ("status", record["status"])]
    if m.get("pass@2") is not None:
        rows.append(("tasks solved", f"pass@1 {100 * m['pass@1']:.1f}%, pass@2 {100 * m['pass@2']:.1f}% "
                                     f"of {m.get('n_tasks', '?')} tasks (below: per test variant)"))
    rows += [
        ("exact accuracy", f"{100 * m.get('exact_accuracy', 0):.2f}%  (95% CI {100 * lo:.1f}-{100 * hi:.1f}%, "
                           f"n={m.get('n_test_examples', 0)})"),
        ("token accuracy", f"{100 * m.get('token_accuracy', 0):.2f}%"),
    ]
    ood = m.get("ood") or {}
    if ood.get("n_test_examples"):
        rows.append(("out of distribution", f"{100 * ood['exact_accuracy']:.2f}% exact (n={ood['n_test_examples']}: "
                                            f"{ood.get('definition') or '?'})"))
    if m.get("mean_steps") is not None:
        rows.append(("mean reasoning steps", f"{m['mean_steps']:.2f}"))
    if m.get("halting_accuracy") is not None:
        rows.append(("halting accuracy", f"{100 * m['halting_accuracy']:.2f}%"))
    rows += [
        ("parameters", f"{c['params']:,}" + (f" (+{c['params_extra']:,} extra)" if c["params_extra"] else "")),
        ("forward FLOPs / example", f"{c['flops_per_example_forward']['mean']:.3g}"),
    ]
    if c.get("train_flops"):
        rows.append(("training FLOPs", f"{c['train_flops']:.3g} over {c['train_steps']} steps"))
    rows += [
        ("train / eval time", f"{c['train_seconds']:.1f} s / {c['eval_seconds']:.1f} s on {c['device']}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
