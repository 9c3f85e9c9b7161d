"""Builds task + model + Trainer from a resolved config, trains, tests, measures and writes
the result record. Data flows one way: task -> batch -> model -> metrics -> record."""

from __future__ import annotations

import importlib
import json
import logging
import shlex
import shutil
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from reasonbench.record import schema as rec
from reasonbench.util.atomic import MACHINE_ERRNOS, probe_folder
from reasonbench.execution.checkpoints import (RUN_KEY, AtomicCheckpointIO, InterruptCheckpoint, ResumePoint,
                                         RunIdentity, check_resumable, load_checkpoint, read_torch_file,
                                         resume_point, save_checkpoint, stop_message, training_checkpoints)
from reasonbench.execution.clock import AttemptsLedger, TimeEstimate, TrainClock, now
from reasonbench.config.resolve import RunConfig, collapse_whitespace, model_preset_file, parse_duration
from reasonbench.util.errors import MachineError, UserError, cannot_write
from reasonbench.record.measure import (TrainFlopCounter, count_parameters, cpu_info, device_name,
                                        forward_flops_per_example, peak_memory_bytes)
from reasonbench.model.module import ReasoningModule
from reasonbench.execution.progress import RunProgressBar
from reasonbench.tasks.base import ReasoningTask, TaskMetadata
from reasonbench.model.testtime import TestTimeCompute

__all__ = ["build_model", "build_task", "execute", "load_checkpoint", "make_task", "read_torch_file",
           "save_checkpoint", "summary"]


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (device summaries, tips) off the terminal."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*tensorboardX.*")
    # a run shorter than its first validation has no best checkpoint yet: last.ckpt holds it
    warnings.filterwarnings("ignore", message=".*could not find the monitored key in the returned metrics.*")
    # a resumed run's folder holds its checkpoints: that is the point
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
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
        raise UserError(collapse_whitespace(exc)) from None


def build_task(cfg: RunConfig) -> ReasoningTask:
    task = make_task(cfg)
    task.setup("fit")
    return task


def build_model(cfg: RunConfig, task: ReasoningTask, metadata: TaskMetadata | None = None) -> ReasoningModule:
    """The model for ``cfg`` on ``task``. A model too large for this machine is a one-line
    UserError naming its size settings: measured first on the meta device (shapes only, no
    memory), and an allocation that fails all the same is caught too."""
    from reasonbench.tasks.base import physical_memory

    metadata = metadata or task.metadata
    sizes = sorted((v, k) for k, v in cfg.model_args.items() if isinstance(v, int) and not isinstance(v, bool))
    largest = f"the largest size setting: --model.{sizes[-1][1]} {sizes[-1][0]:,}" if sizes else "see the --model.* options"

    def too_large(why: str) -> UserError:
        return UserError(f"model {cfg.model} too large: {why} ({largest})")

    try:
        memory = physical_memory()
        if memory and torch.empty(0).device.type != "meta":  # `info` builds on the meta device itself
            with torch.device("meta"):
                shapes = cfg.model_cls(metadata=metadata, optim=cfg.optim, **cfg.model_args)
            size = sum(t.numel() * t.element_size() for t in (*shapes.parameters(), *shapes.buffers()))
            del shapes
            if size > memory:
                raise too_large(f"its weights alone take {size / 2**30:,.0f} GiB; this machine has "
                                f"{memory / 2**30:,.0f} GiB of memory")
        model = cfg.model_cls(metadata=metadata, optim=cfg.optim, **cfg.model_args)
    except (TypeError, ValueError) as exc:
        raise UserError(collapse_whitespace(exc)) from None
    except MemoryError:
        raise too_large("out of memory while allocating its weights") from None
    except RuntimeError as exc:  # torch: "can't allocate memory", "out of memory", "size ... overflowed"
        if not any(word in str(exc).lower() for word in ("allocate", "out of memory", "overflow")):
            raise
        raise too_large(f"allocating its weights failed ({collapse_whitespace(exc)[:160]})") from None
    return model


def checkpoint_config_argv(argv: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """For ``eval``: the model settings (and preset, seed) stored in a reasonbench checkpoint
    (final.pt, final.safetensors, or a training checkpoint's ``reasonbench`` entry), as a
    leading ``--config``, so a checkpoint evaluates without retyping its architecture; flags
    given on the command line still win. Without ``--task``, the task it was trained on, with
    the settings it was trained with (its own data included). Also returns the loaded
    checkpoint, so that ``execute`` need not read it a second time."""
    path = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--checkpoint"),
                next((a.split("=", 1)[1] for a in argv if a.startswith("--checkpoint=")), None))
    if path is None:
        return [], None
    loaded = load_checkpoint(path)
    loaded["_path"] = path
    stored = loaded.get("config")
    if stored is None and isinstance(loaded.get(RUN_KEY), dict):  # a Lightning .ckpt written by a run
        stored = loaded[RUN_KEY].get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        return [], loaded
    from reasonbench.util.untrusted import MAX_DEPTH, depth

    if depth(stored) > MAX_DEPTH:  # read from a file: never handed on nested beyond any real config
        raise UserError(f"checkpoint {path}: its stored config is nested too deeply (more than {MAX_DEPTH} levels)")
    from reasonbench.config.resolve import _normalise_argv, _scan_names

    asked_names = _scan_names(_normalise_argv(argv)[0])
    trained, asked = stored["model"].get("name"), asked_names.get("model")
    if trained and asked and trained != asked:  # its settings would not even parse for another model
        raise UserError(f"checkpoint {path} holds a {trained} model, not {asked}: "
                        f"use --model {trained} (or leave --model out)")
    keep = {k: stored[k] for k in ("preset", "seed") if k in stored}
    keep["model"] = stored["model"]
    if "task" not in asked_names and isinstance(stored.get("task"), dict) and "name" in stored["task"]:
        keep["task"] = stored["task"]
    return ["--config", json.dumps(keep)], loaded


def _instantiate(spec: dict[str, Any]) -> Any:
    """A ``{class_path, init_args}`` spec (as jsonargparse validated it) -> the object."""
    from reasonbench.config.imports import check_importable

    check_importable(spec["class_path"], "option --trainer.logger/--trainer.callbacks")
    module, _, name = spec["class_path"].rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)(**(spec.get("init_args") or {}))
    except (TypeError, ValueError, OSError) as exc:
        raise UserError(f"option --trainer.logger/--trainer.callbacks: {spec['class_path']}: {collapse_whitespace(exc)}") from None


def user_logger(spec: Any, run_dir: Path) -> Any:
    """``trainer.logger``: unset, TensorBoard in the run folder; ``false``, none; else the
    logger(s) it names (``--trainer.logger CSVLogger --trainer.logger.save_dir DIR``)."""
    if spec is None or spec is True:
        return TensorBoardLogger(str(run_dir), name="tensorboard", version="", default_hp_metric=False)
    if spec is False:
        return False
    return [_instantiate(s) for s in spec] if isinstance(spec, list) else _instantiate(spec)


def _trainer(cfg: RunConfig, run_dir: Path, callbacks: list[L.Callback], checkpoints: bool) -> L.Trainer:
    args = dict(cfg.trainer_args)
    logger = user_logger(args.pop("logger", None), run_dir)
    given = args.pop("callbacks", None) or []  # the user's, after the runner's own
    callbacks = [*callbacks, *(_instantiate(s) for s in (given if isinstance(given, list) else [given]))]
    if args.get("enable_progress_bar") is not False:
        callbacks = [*callbacks, RunProgressBar()]
    try:
        # the tasks shard their own batches over processes (same global batches on 1 or N devices)
        return L.Trainer(**args, logger=logger, callbacks=callbacks, default_root_dir=str(run_dir),
                         enable_checkpointing=checkpoints, use_distributed_sampler=False,
                         plugins=[AtomicCheckpointIO()])
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
    return f"option --trainer.{option}: {collapse_whitespace(exc)}" if option else f"trainer: {collapse_whitespace(exc)}"


def check_output(cfg: RunConfig, out_path: Path, mode: str, resume: bool, overwrite: bool) -> None:
    """Before anything runs: a record is never replaced unless ``--overwrite`` says so, nor an
    unfinished run's checkpoints, and the output folder must be writable (so that hours of
    training never end in a record that cannot be written). Creates nothing."""
    run_dir = out_path.with_suffix("")
    if out_path.exists() and not out_path.is_file():
        raise UserError(f"--out {cfg.out}: cannot write: {out_path} is not a file")
    if not overwrite and not resume:
        if out_path.exists():
            again = " `--resume` keeps it," if mode == "train" else ""
            raise UserError(f"record {out_path} exists: this {cfg.model}/{cfg.task}/{cfg.preset} seed {cfg.seed} "
                            f"ran already;{again} `--overwrite` replaces it, or choose another --seed or --out")
        if mode == "train" and training_checkpoints(run_dir):
            raise UserError(f"{run_dir / 'checkpoints'} holds an unfinished run's checkpoints: `--resume` "
                            f"continues it, `--overwrite` starts again")
    try:
        probe_folder(out_path.parent)
    except OSError as exc:
        message = cannot_write("--out", cfg.out, exc, inside=out_path)
        raise (MachineError if exc.errno in MACHINE_ERRNOS else UserError)(message) from None


def load_eval_weights(model: ReasoningModule, cfg: RunConfig,
                      loaded: dict[str, Any] | None) -> tuple[Path, dict[str, Any]]:
    """Put ``cfg.checkpoint``'s weights (the EMA ones where it has them) into ``model``; returns
    the checkpoint's path and what was read from it."""
    if not cfg.checkpoint:
        raise UserError("reasonbench eval: --checkpoint is required")
    if loaded is None or loaded.get("_path") != cfg.checkpoint:
        loaded = load_checkpoint(cfg.checkpoint)
    state = loaded["state_dict"]
    if isinstance(loaded.get("ema_state"), dict):
        # a Lightning checkpoint of an EMA run: the averaged weights are the model
        state = {**state, **loaded["ema_state"]}
    table = state.get("puzzle_embedding.weight")
    own = model.state_dict().get("puzzle_embedding.weight")
    if table is not None and own is not None and table.shape[0] != own.shape[0]:
        # identifiers number one data build's puzzle variants: another build cannot reuse them
        raise UserError(f"checkpoint {cfg.checkpoint} has {table.shape[0]:,} puzzle identifiers, this "
                        f"{cfg.task} build has {own.shape[0]:,}: evaluate on the data build it was trained on")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        lines = str(exc).splitlines()
        raise UserError(f"checkpoint {cfg.checkpoint} does not fit model {cfg.model}: "
                        f"{collapse_whitespace(lines[1] if len(lines) > 1 else exc)}") from None
    if missing or unexpected:
        raise UserError(f"checkpoint {cfg.checkpoint} does not fit model {cfg.model}: "
                        f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return Path(cfg.checkpoint), loaded


def planned_steps(config: Any) -> int | None:
    """The training steps a run's config plans (``trainer.max_steps``), None where it plans none."""
    trainer = config.get("trainer") if isinstance(config, dict) else None
    steps = trainer.get("max_steps") if isinstance(trainer, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None


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


def find_resume_point(cfg: RunConfig, run_dir: Path, model: ReasoningModule) -> ResumePoint | None:
    """The checkpoint ``--resume`` continues from, checked against this run's model; says on
    stderr which one, and which newer ones it passed over as unreadable."""
    point = resume_point(run_dir)
    if point is None:
        return None
    check_resumable(point, cfg.model, model)
    for why in point.skipped:
        print(f"reasonbench: skipped {why}", file=sys.stderr)
    print(f"reasonbench: resuming from {point.path} (step {point.step})", file=sys.stderr)
    point.state_dict = {}  # Lightning loads it again; this copy was for the check
    return point


def fit(cfg: RunConfig, trainer: L.Trainer, model: ReasoningModule, task: ReasoningTask, clock: TrainClock,
        interrupt: InterruptCheckpoint, point: ResumePoint | None, run_dir: Path) -> Path | None:
    """Train; on an interrupt save the step reached and stop as interrupted. Returns the final
    weights' path (on the main process)."""
    clock.ledger.begin(point.step if point else 0, str(point.path) if point else None)
    outcome = "failed"
    try:
        with interrupt.armed(), quiet_writer_threads():
            trainer.fit(model, datamodule=task, ckpt_path=str(point.path) if point else None)
        outcome = "completed"
    except SystemExit:  # Lightning 2.6 exits with 1 after an interrupt (Ctrl-C, SIGTERM)
        if not trainer.interrupted:
            raise
        outcome = "interrupted"
    except Exception as exc:  # a full disk may hit the logger first, or the checkpoint
        fault = machine_fault(exc, run_dir)
        if fault is None:
            raise
        kept = training_checkpoints(run_dir)
        saved = f"; newest checkpoint kept whole: {kept[0]}" if kept else ""
        raise MachineError(f"training stopped at step {trainer.global_step}: {fault}{saved}") from None
    finally:
        clock.finish(trainer.global_step, outcome)
    if outcome == "interrupted":  # no partial record
        raise KeyboardInterrupt(stop_message(trainer, interrupt, run_dir / "checkpoints"))
    # the finished state too (all processes take part), whatever the period
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    if not trainer.is_global_zero:
        return None
    final = run_dir / "final.pt"
    # the same weights and config twice: final.pt (torch) and final.safetensors (no pickle;
    # the config as JSON in its metadata), each readable by `reasonbench eval --checkpoint`
    for path in (final, final.with_suffix(".safetensors")):
        try:
            # the steps travel with the weights: an evaluation of them can say how far they were trained
            save_checkpoint(model, cfg, path, train_steps=int(trainer.global_step))
        except OSError as exc:
            kind = MachineError if exc.errno in MACHINE_ERRNOS else UserError
            raise kind(f"cannot write {path}: {exc.strerror or collapse_whitespace(exc)} (the trained state is in "
                       f"{run_dir / 'checkpoints' / 'last.ckpt'}: `--resume` finishes the run)") from None
        except TypeError as exc:  # a model with non-tensor state: final.pt holds it, safetensors cannot
            print(f"reasonbench: {path} not written: {exc}", file=sys.stderr)
    return final


def machine_fault(exc: BaseException, folder: Path | None = None) -> str | None:
    """The machine's fault (a full disk, an I/O error) behind ``exc`` or the exceptions it
    interrupted, as a short reason; None if there is none."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MachineError):
            return str(exc)
        if isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS:
            where = exc.filename or folder
            return f"cannot write {where}: {exc.strerror}" if where else f"cannot write: {exc.strerror}"
        exc = exc.__cause__ or exc.__context__
    return None


def os_fault(exc: BaseException) -> str | None:
    """Any OS error behind ``exc`` (a logger that cannot write, whatever the reason), as a short
    reason naming the file; None if there is none."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            return f"{exc.strerror or collapse_whitespace(exc)}{where}"
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def quiet_writer_threads() -> Iterator[None]:
    """A logger's writer thread that hits a full disk prints its traceback from that thread;
    the same error reaches the training loop, which reports it in one line."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in MACHINE_ERRNOS):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def score_splits(trainer: L.Trainer, model: ReasoningModule, task: ReasoningTask, mode: str,
         checkpoint_path: Path | None) -> tuple[float, dict[str, Any] | None]:
    """Score the test split (and the OOD split, if the task has one); (seconds, OOD results)."""
    if model.diverged is not None:
        return 0.0, None
    t0 = time.perf_counter()
    try:
        with quiet_writer_threads():
            trainer.test(model, datamodule=task, verbose=False)
            ood_results = evaluate_ood(trainer, model, task)
    except SystemExit:  # Ctrl-C while testing (see fit)
        if not trainer.interrupted:
            raise
        kept = f" (the trained weights are in {checkpoint_path})" if mode == "train" and checkpoint_path else ""
        raise KeyboardInterrupt(f"while testing; no record written{kept}") from None
    except Exception as exc:  # a full disk (or another OS error) under a logger's own exception
        fault = machine_fault(exc) or os_fault(exc)
        if fault is None:
            raise
        kept = f"; the trained weights are in {checkpoint_path}" if mode == "train" and checkpoint_path else ""
        raise MachineError(f"testing stopped: {fault}; no record written{kept}") from None
    return time.perf_counter() - t0, ood_results


def execute(cfg: RunConfig, mode: str = "train", command: str | None = None,
            loaded_checkpoint: dict[str, Any] | None = None, resume: bool = False,
            overwrite: bool = False) -> dict[str, Any]:
    """Train (mode 'train') or load ``cfg.checkpoint`` (mode 'eval'; ``loaded_checkpoint`` if
    it was read already), test, write the record. ``resume``: a finished run's record is
    returned as it is; otherwise training continues from the run folder's newest readable
    checkpoint (or starts, if there is none). An existing record is replaced only with
    ``overwrite``."""
    quiet_lightning()
    started = now()
    depth_paths = depth_record_paths(cfg, mode)  # `eval --eval-depth 1,2,4`: a record per depth
    out_path = rec.record_path(cfg.out, cfg.model, cfg.task, cfg.preset, cfg.seed, mode)
    out_path = depth_paths[max(depth_paths)] if depth_paths else out_path
    run_dir = out_path.with_suffix("")
    resume = resume and mode == "train"
    if resume and out_path.is_file():
        record = rec.read_record(out_path)
        record["_path"], record["_kept"] = str(out_path), True
        return record
    for path in depth_paths.values() or [out_path]:
        check_output(cfg, path, mode, resume, overwrite)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = build_task(cfg)
    model = build_model(cfg, task)
    point = find_resume_point(cfg, run_dir, model) if resume else None
    checkpoint_path, training = None, None
    if mode == "eval":
        checkpoint_path, loaded_checkpoint = load_eval_weights(model, cfg, loaded_checkpoint)
        training = checkpoint_training(loaded_checkpoint, cfg)
        loaded_checkpoint = None  # the weights are in the model now
    configure_test_time(cfg, model)

    flop_counter = TrainFlopCounter(cfg.measure.train_flop_steps)
    clock = TrainClock(parse_duration(cfg.budget) if cfg.budget else None,
                       AttemptsLedger(run_dir, fresh=not resume) if mode == "train" else None)
    interrupt = InterruptCheckpoint(run_dir / "checkpoints" / "last.ckpt")
    callbacks: list[L.Callback] = [flop_counter, clock]
    if mode == "train":
        if overwrite:  # the old run's checkpoints would be resumed from or versioned beside the new ones
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        callbacks += checkpoint_callbacks(cfg, run_dir, interrupt)
        # measured once the steps under the FLOP counter are past
        callbacks.append(TimeEstimate(warmup_steps=cfg.measure.train_flop_steps + 1))
    trainer = _trainer(cfg, run_dir, callbacks, checkpoints=mode == "train")
    if mode == "train":
        checkpoint_path = fit(cfg, trainer, model, task, clock, interrupt, point, run_dir)
    eval_seconds, ood_results = score_splits(trainer, model, task, mode, checkpoint_path)
    if not trainer.is_global_zero:
        return {}
    if depth_paths:
        return write_depth_records(cfg, depth_paths, command, trainer, model, task, clock, flop_counter,
                                   eval_seconds, checkpoint_path, started, training)
    record = make_record(cfg, mode, command, trainer, model, task, clock, flop_counter, eval_seconds,
                         ood_results, checkpoint_path, run_dir, started, training)
    write_record(record, out_path, checkpoint_path)
    record["_data"] = task.sizes_line()  # for the summary, not the record
    return record


def configure_test_time(cfg: RunConfig, model: ReasoningModule) -> None:
    """Set the test-time depth (``--eval-depth``) and breadth (``--breadth``, ``--select``,
    ``--breadth-seed``, ``--breadth-noise``) the test pass runs at. Breadth needs a latent
    state to start from elsewhere: a model without one refuses it."""
    if cfg.eval_max_steps is not None and not hasattr(model, "eval_max_steps"):
        raise UserError(f"option --eval-depth: model {cfg.model} has no reasoning steps to extend")
    if not hasattr(model, "configure_test_time"):
        if cfg.eval_breadth != 1:
            raise UserError(f"option --breadth: model {cfg.model} has no latent state to start trajectories from "
                            f"(test-time breadth needs a recursive model); use --breadth 1")
        return
    if cfg.eval_depths and not (hasattr(model, "reads_depths_in_one_pass") and model.reads_depths_in_one_pass()):
        raise UserError(f"option --eval-depth: model {cfg.model} builds its evaluation its own way and cannot be "
                        f"read at several depths in one pass; evaluate one depth at a time")
    model.configure_test_time(TestTimeCompute(depth=cfg.eval_max_steps, breadth=cfg.eval_breadth,
                                              select=cfg.eval_select, seed=cfg.eval_breadth_seed,
                                              noise=cfg.eval_breadth_noise, readings=cfg.eval_depths))


def depth_record_paths(cfg: RunConfig, mode: str) -> dict[int, Path]:
    """For a test pass that reads several depths (``eval --eval-depth 1,2,4``), each depth's
    record: where an evaluation at that depth alone writes it when given ``--out OUT/depth<D>``.
    Empty for one depth (the record where it always was)."""
    return {depth: rec.record_path(Path(cfg.out) / f"depth{depth}", cfg.model, cfg.task, cfg.preset, cfg.seed, mode)
            for depth in cfg.eval_depths}


def write_depth_records(cfg: RunConfig, paths: dict[int, Path], command: str | None, trainer: L.Trainer,
                        model: ReasoningModule, task: ReasoningTask, clock: TrainClock,
                        flop_counter: TrainFlopCounter, eval_seconds: float, checkpoint_path: Path | None,
                        started: str, training: dict[str, Any] | None) -> dict[str, Any]:
    """One record per depth the test pass read, each the record of an evaluation at that depth
    alone (its config's ``eval_max_steps``, its FLOPs counted at that depth) but for the time:
    ``cost.eval_seconds`` is the shared pass's, whose depths ``cost.eval_shared_depths`` lists.
    Returns the deepest record, the others' depths and paths in its ``_depths``."""
    compute, written = model.test_time, []
    for depth, path in paths.items():
        model.configure_test_time(replace(compute, depth=depth, readings=()))
        found = model.depth_results["test"][depth]
        model.test_results, model.test_examples, model.test_predictions = (
            found[name] for name in ("test_results", "test_examples", "test_predictions"))
        ood = model.depth_results.get("ood", {}).get(depth)
        # the settings of `eval --eval-depth D --out OUT/depthD`, the evaluation this record stands for
        out = str(Path(cfg.out) / f"depth{depth}")
        overrides = {key: depth if key == "eval_max_steps" else out if key == "out" else value
                     for key, value in cfg.overrides.items()}
        one = replace(cfg, out=out, eval_max_steps=depth, eval_depths=(), overrides=overrides,
                      config={**cfg.config, "eval_max_steps": depth, "out": out})
        record = make_record(one, "eval", command, trainer, model, task, clock, flop_counter, eval_seconds,
                             ood_summary(ood["test_results"], task) if ood else None, checkpoint_path,
                             path.with_suffix(""), started, training)
        record["cost"]["eval_shared_depths"] = list(paths)
        write_record(record, path, checkpoint_path)
        written.append((depth, record))
    model.configure_test_time(compute)
    deepest = written[-1][1]
    deepest["_depths"] = [(depth, record) for depth, record in written]
    return deepest


def test_time_of(model: ReasoningModule) -> dict[str, Any] | None:
    """The record's ``test_time_compute`` (None for a model without reasoning segments)."""
    compute = getattr(model, "test_time", None)
    if compute is None:
        return None
    widened = compute.breadth > 1
    return {"depth": compute.depth or model.halt_max_steps, "trained_depth": model.halt_max_steps,
            "breadth": compute.breadth, "select": compute.select if widened else None,
            "seed": compute.seed if widened else None, "noise": compute.noise if widened else None}


def checkpoint_callbacks(cfg: RunConfig, run_dir: Path, interrupt: InterruptCheckpoint) -> list[L.Callback]:
    """What saves a training run: the best checkpoint at validation, ``last.ckpt`` every
    ``checkpoint_every`` steps (what --resume continues from; Lightning's save_last refreshes it
    only when "best" improves), the run's identity in each, and the save on an interrupt."""
    folder = str(run_dir / "checkpoints")
    return [ModelCheckpoint(dirpath=folder, filename="best", monitor="val/exact_accuracy", mode="max"),
            ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
                            every_n_train_steps=cfg.checkpoint_every or None),
            RunIdentity(cfg.model, cfg.config), interrupt]


def write_record(record: dict[str, Any], out_path: Path, checkpoint_path: Path | None) -> None:
    """Write the record atomically; if the disk will not take it, exit 1 with what it held."""
    try:
        rec.write_record(record, out_path)
    except OSError as exc:
        metrics = record["metrics"] or {}
        raise MachineError(f"record not written: {cannot_write('--out', out_path, exc)}; "
                           f"it held exact accuracy {metrics.get('exact_accuracy')} of "
                           f"{metrics.get('n_test_examples')} test examples; the weights are in {checkpoint_path}") from None
    record["_path"] = str(out_path)


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
    difficulty_breakdown(model.test_results, task)
    if ood_results is not None:
        model.test_results["ood"] = ood_results
    # budget's stopped_at_step null: the preset's steps ran out before the budget did
    budget = None if clock.budget_seconds is None else {
        "device_seconds": clock.budget_seconds, "spec": cfg.budget, "stopped_at_step": clock.stopped_at_step}
    cost = cost_of(cfg, mode, trainer, model, task, clock, flop_counter, eval_seconds)
    if training is None and mode == "train":
        planned, stopped = planned_steps(cfg.config), clock.stopped_at_step
        training = {"steps": cost["train_steps"], "planned_steps": planned,
                    "finished": stopped is None and (planned is None or cost["train_steps"] >= planned),
                    "stopped_by": "budget" if stopped is not None else None}
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


PRESET_MEANING = {
    "smoke": "a seconds-long check that everything runs; its accuracy means nothing (--preset mini: numbers that "
             "mean something)",
    "mini": "small settings sized for a CPU: shows that a model learns, not its paper figure",
    "paper": "the paper's settings and data, sized for GPUs",
    "tiny": "a paper's small variant on the paper data",
}


def status_text(record: dict[str, Any]) -> str:
    """A completed record's status in words: "completed" only for weights trained the planned
    steps; a run the budget stopped, or an evaluation of unfinished weights, says so."""
    training = record.get("training") or {}
    steps, planned = training.get("steps"), training.get("planned_steps")
    of = f" of {planned:,}" if planned is not None else ""
    if training.get("stopped_by") == "budget":
        return f"stopped by the budget at step {steps:,}{of} (the record goes to the budget track)"
    if training.get("finished") is False:
        what = "evaluated weights from" if record["mode"] == "eval" else "stopped at"
        return f"{what} step {steps:,}{of}: training unfinished (the record goes to a partial track)"
    if record["mode"] == "eval" and steps is not None:
        return f"completed (weights trained {steps:,}{of} steps)"
    return record["status"]


def summary(record: dict[str, Any]) -> str:
    """A short table for the terminal."""
    m, c = record["metrics"] or {}, record["cost"]
    if record["status"] != "completed":
        return (f"{record['model']} / {record['task']} / {record['preset']} (seed {record['seed']}): "
                f"{record['status']}: {record['status_detail']}")
    lo, hi = m.get("exact_accuracy_ci95", [0, 0])
    rows = [("model / task / preset", f"{record['model']} / {record['task']} / {record['preset']} (seed {record['seed']})"),
            ("status", status_text(record))]
    if record["preset"] in PRESET_MEANING:
        rows.append(("preset means", PRESET_MEANING[record["preset"]]))
    if record["provenance"].get("model_preset") is False:
        rows.append(("model settings", f"the model's own defaults: it has no '{record['preset']}' preset for "
                                       f"{record['task']} (the data is the task's '{record['preset']}' preset)"))
    if record.get("_data"):
        rows.append(("data", record["_data"]))
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
    compute = record.get("test_time_compute") or {}
    if compute.get("breadth", 1) > 1:
        oracle = m.get("oracle_any_trajectory_exact")
        rows.append(("test-time compute", f"depth {compute['depth']} x breadth {compute['breadth']}, "
                                          f"answer by {compute['select']}"
                     + (f"; any trajectory right: {100 * oracle:.2f}% (reads the labels)" if oracle is not None else "")))
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
