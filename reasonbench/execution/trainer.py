"""The Lightning Trainer of a run: its callbacks (the run's own, then the user's), its logger,
checkpoint writing, and the loggers' and Lightning's chatter kept off the terminal. Loggers and
callbacks named on the command line are checked against the class-path allow-list first."""

from __future__ import annotations

import importlib
import logging
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from reasonbench.config.resolve import RunConfig, collapse_whitespace
from reasonbench.record.measure import TrainFlopCounter
from reasonbench.execution.checkpoints import AtomicCheckpointIO, InterruptCheckpoint, RunIdentity
from reasonbench.execution.clock import TimeEstimate, TrainClock
from reasonbench.execution.progress import RunProgressBar
from reasonbench.util.atomic import MACHINE_ERRNOS
from reasonbench.util.errors import UserError


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


def make_trainer(cfg: RunConfig, run_dir: Path, callbacks: list[L.Callback], checkpoints: bool) -> L.Trainer:
    """The run's Trainer: ``callbacks`` (the run's own) before the user's, the user's logger or
    TensorBoard in ``run_dir``, checkpoints written atomically (``checkpoints``: at all)."""
    args = dict(cfg.trainer_args)
    logger = user_logger(args.pop("logger", None), run_dir)
    given = args.pop("callbacks", None) or []  # the user's, after the run's own
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


def run_callbacks(cfg: RunConfig, mode: str, run_dir: Path, flop_counter: TrainFlopCounter, clock: TrainClock,
                  interrupt: InterruptCheckpoint) -> list[L.Callback]:
    """The run's own callbacks: the FLOP counter and the clock; a training run's also save it
    (``checkpoint_callbacks``) and estimate its time."""
    callbacks: list[L.Callback] = [flop_counter, clock]
    if mode == "train":
        callbacks += checkpoint_callbacks(cfg, run_dir, interrupt)
        # measured once the steps under the FLOP counter are past
        callbacks.append(TimeEstimate(warmup_steps=cfg.measure.train_flop_steps + 1))
    return callbacks


def checkpoint_callbacks(cfg: RunConfig, run_dir: Path, interrupt: InterruptCheckpoint) -> list[L.Callback]:
    """What saves a training run: the best checkpoint at validation, ``last.ckpt`` every
    ``checkpoint_every`` steps (what --resume continues from; Lightning's save_last refreshes it
    only when "best" improves), the run's identity in each, and the save on an interrupt."""
    folder = str(run_dir / "checkpoints")
    return [ModelCheckpoint(dirpath=folder, filename="best", monitor="val/exact_accuracy", mode="max"),
            ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
                            every_n_train_steps=cfg.checkpoint_every or None),
            RunIdentity(cfg.model, cfg.config), interrupt]


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
