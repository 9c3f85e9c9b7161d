"""One run from a resolved config: check where its record goes (never replacing one unless told),
build the task and model, train (resuming where asked) or load the weights to evaluate, run the
test pass, and write the record. Data flows one way: task -> batch -> model -> metrics -> record."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L

from reasonbench.config.resolve import RunConfig, collapse_whitespace, parse_duration
from reasonbench.model.module import ReasoningModule
from reasonbench.record import schema as rec
from reasonbench.record.measure import TrainFlopCounter
from reasonbench.execution.assemble import checkpoint_training, evaluate_ood, make_record, ood_summary
from reasonbench.execution.build import build_model, build_task, configure_test_time, load_eval_weights
from reasonbench.execution.checkpoints import (InterruptCheckpoint, ResumePoint, check_resumable, resume_point,
                                         save_checkpoint, stop_message, training_checkpoints)
from reasonbench.execution.clock import AttemptsLedger, TrainClock, now
from reasonbench.execution.trainer import make_trainer, quiet_lightning, quiet_writer_threads, run_callbacks
from reasonbench.tasks.base import ReasoningTask
from reasonbench.util.atomic import MACHINE_ERRNOS, probe_folder
from reasonbench.util.errors import MachineError, UserError, cannot_write


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
    # an overwritten run's checkpoints would be resumed from or versioned beside the new ones
    if mode == "train" and overwrite:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    trainer = make_trainer(cfg, run_dir, run_callbacks(cfg, mode, run_dir, flop_counter, clock, interrupt),
                           checkpoints=mode == "train")
    if mode == "train":
        checkpoint_path = fit(cfg, trainer, model, task, clock, interrupt, point, run_dir)
    eval_seconds, ood_results = run_test_pass(trainer, model, task, mode, checkpoint_path)
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
    return save_final_weights(cfg, trainer, model, run_dir)


def save_final_weights(cfg: RunConfig, trainer: L.Trainer, model: ReasoningModule, run_dir: Path) -> Path:
    """Write the trained weights as ``final.pt`` and ``final.safetensors``; returns the first."""
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


def run_test_pass(trainer: L.Trainer, model: ReasoningModule, task: ReasoningTask, mode: str,
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
